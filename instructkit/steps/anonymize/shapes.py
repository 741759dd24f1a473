"""Values whose shape or place says they belong to no individual.

Safe Harbor's URLs, phone numbers and ages are an individual's. Some values of those
shapes cannot be:

* a URL on a public-sector host (``.gov``, ``.mil``, ``.int``, ``gov.uk`` and the like, or
  ``.edu`` without a personal ``~`` page) and without a query string: a government
  agency's or a university's page ("www.cdc.gov", "www.nhlbi.nih.gov/health/...");
* a North American toll-free number (area code 800, 833, 844, 855, 866, 877, 888): those
  are rented to organisations for callers ("call 1-800-860-8747");
* an age that bounds or spans a population ("up to age 90", "aged 92 or 93", "18-100
  years of age", "90 years and older");
* a number that ranks or counts rather than addresses ("Level 2 Trauma Center", "60 Class I
  and 40 Class II"), and an enzyme's EC number ("EC 3.1.1.11") where an IP address would be.
"""

from __future__ import annotations

import re

__all__ = ["public_value", "rank_before", "conjoined_numbers", "et_al_before"]

_PUBLIC_HOST = re.compile(r"(?:^|\.)(?:[a-z0-9-]+\.)*(?:gov|mil|int|gov\.[a-z]{2}|gc\.ca|nhs\.uk|europa\.eu"
                          r"|edu|ac\.[a-z]{2}|edu\.[a-z]{2})$")
_TOLL_FREE = frozenset({"800", "833", "844", "855", "866", "877", "888"})
_AGE_BOUND_BEFORE = re.compile(
    r"(?i)(?:\bup\s+to|\bunder|\bbelow|\bthrough|\buntil|\bover|\d\s*(?:-|\u2013|to|or|and))\s*"
    r"(?:the\s+)?(?:ages?d?\s+(?:of\s+)?)?$")
_AGE_BOUND_AFTER = re.compile(
    r"(?i)^\s*(?:(?:-|\u2013|to|or|and)\s*\d|\+|(?:years?\s+(?:old\s+|of\s+age\s+)?)?(?:and|or)\s+"
    r"(?:older|over|above|up|more)\b)")
_RANK_BEFORE = re.compile(
    r"(?i)\b(?:level|stage|grade|type|class|phase|step|tier|zone|category|group|ward|room|bed|floor|"
    r"cycle|day|week|visit|arm|cohort|lead|sector|figure|table|model|version|series|score)\s*$")
_FUNCTION_WORD = re.compile(r"(?i)(?<![\w-])(?:and|or|vs|versus|to|of|with|from|in|than)(?![\w-])")


def public_value(text: str, start: int, end: int, typ: str) -> bool:
    """Whether the finding ``text[start:end]`` of ``typ`` is by its shape or place no
    individual's (see the module doc)."""
    span = text[start:end]
    if typ == "URL":
        if "?" in span or "~" in span or "@" in span:
            return False
        host = re.sub(r"^(?i:[a-z][a-z0-9+.-]*://)", "", span).split("/", 1)[0].split(":", 1)[0].lower()
        return bool(_PUBLIC_HOST.search(host))
    if typ == "PHONE":
        digits = re.sub(r"\D", "", span)
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        return len(digits) == 10 and digits[:3] in _TOLL_FREE
    if typ == "AGE":
        return bool(_AGE_BOUND_BEFORE.search(text, max(0, start - 30), start)
                    or _AGE_BOUND_AFTER.match(text[end:end + 40]))
    if typ == "IP":
        return bool(re.search(r"(?i)\bEC\s*$", text[max(0, start - 6):start]))
    return False


def rank_before(text: str, start: int) -> bool:
    """A number right after a rank word ("Level 2 ...", "Stage 3 ...") ranks, not addresses."""
    return bool(_RANK_BEFORE.search(text, max(0, start - 12), start))


def conjoined_numbers(span: str) -> bool:
    """Two counts joined by a function word ("60 Class I and 40", "21 HPV-positive and 11")."""
    return bool(_FUNCTION_WORD.search(span))


def et_al_before(text: str, start: int) -> bool:
    """ "et al." of a citation, not the Polish street prefix "al." ("Jin Q, et al. PubMedQA")."""
    return bool(re.search(r"(?i)\bet\s*$", text[max(0, start - 4):start]))
