"""Lines of a text that belong to a publication or an organisation, not to an individual.

Public health pages end in the parts of a publication: the references it cites, the experts
it thanks, its publication date, and the organisations a reader may contact. Their names,
places, dates, URLs and phone numbers are those of authors, reviewers, agencies and
charities, not of a patient:

* a *reference*: a line that starts with a Vancouver author list ("1Yeung SJ, Habra MA,
  Chiu AC. Graves disease. ...") or cites a page it was accessed on ("... Accessed
  December 10, 2011.");
* a *credit*: a line that thanks or names reviewers ("The NIDDK would like to thank: ...",
  "Reviewed by: ...") and gives their degrees ("M.D.", "Ph.D.");
* a *publication date*: a line holding only a date (or "Updated: <date>") right after a
  line about the publication's rights ("This information is not copyrighted ...");
* an *organisation's listing*: a line that gives a toll-free number or a public website
  (an ``.org``, ``.gov`` or ``.edu`` host) beside contact labels ("Phone:", "Fax:",
  "Internet:") - a directory entry of an association or an agency.

None of them is taken when the line shows a sign of one patient (a title before a name,
"patient", "I"/"my", a record label): a referral letter thanks a colleague too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["PublicLines", "month_year", "population_date", "study_site", "year_after_month"]

_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_DATE = rf"(?:{_MONTH}[ \t]+(?:\d{{1,2}},?[ \t]+)?(?:19|20)\d\d|\d{{1,2}}/\d{{1,2}}/(?:19|20)?\d\d|(?:19|20)\d\d)"
#: "Surname AB, Surname CD" at a line's start (a footnote number may stick to it)
_AUTHORS = re.compile(r"^[ \t]*(?:\[?\d{1,3}[\].]?[ \t]*)?[A-Z][\w'\u2019-]+[ \t]+[A-Z]{1,3}"
                      r"(?:,[ \t]*[A-Z][\w'\u2019-]+[ \t]+[A-Z]{1,3})*(?:,?[ \t]+et[ \t]+al)?\.[ \t]+[A-Z\d]")
_ACCESSED = re.compile(rf"(?i:\b(?:accessed|retrieved|cited|updated)(?:[ \t]+on)?)[ \t]*:?[ \t]*{_DATE}")
_THANKS = re.compile(r"(?i)\b(?:would\s+like\s+to\s+thank|wish(?:es)?\s+to\s+thank|thanks?\s+the\s+following|"
                     r"acknowledg(?:e|es|ements?)|(?:reviewed|written|prepared|edited)\s+by)\b")
_DEGREE = re.compile(r"(?<![\w.])(?:M\.D\.|Ph\.D\.|D\.O\.|R\.N\.|M\.P\.H\.|R\.D\.|M\.S\.|M\.A\.|Pharm\.D\.|"
                     r"MD|PhD|DO|RN|MPH|RD|FACP|FAAP)(?![\w])")
_RIGHTS = re.compile(r"(?i)\b(?:copyright(?:ed)?|public\s+domain|share\s+this\s+content|reproduc\w*|"
                     r"this\s+(?:information|content|publication|fact\s+sheet)\s+(?:is|was|may))\b")
_DATE_LINE = re.compile(rf"^[ \t]*(?:(?i:(?:last\s+)?(?:updated|reviewed|revised|published)|page\s+last\s+"
                        rf"(?:reviewed|updated))[ \t]*:?[ \t]*)?{_DATE}[ \t.]*$")
_TOLL_FREE = re.compile(r"(?<!\d)(?:1[-. ]?)?\(?8(?:00|33|44|55|66|77|88)\)?[-. ]?[\dA-Z]{3}[-. ]?[\dA-Z]{4}(?!\d)")
_PUBLIC_SITE = re.compile(r"(?i)(?:\bwww\.|https?://)[\w.-]+\.(?:org|gov|edu)\b|\b[\w-]+@[\w.-]+\.(?:org|gov)\b")
_CONTACT_LABEL = re.compile(r"(?i)\b(?:phone|tel|fax|tty|toll[- ]free|internet|website|web\s+site|e-?mail)\s*:")
#: what makes a line one patient's, whatever else it holds
_INDIVIDUAL = re.compile(r"(?i)\b(?:patient|pt|mrn|dob|mr|mrs|ms|my|me|i'm|spouse|son|daughter|wife|husband)\b"
                         r"|(?<![-/])\bI\b")

#: the types a public line's findings may not be PHI of, by kind of line
_DROP = {
    "reference": frozenset({"NAME", "URL", "DATE", "LOCATION", "HOSPITAL"}),
    "credit": frozenset({"NAME", "LOCATION", "HOSPITAL"}),
    "date": frozenset({"DATE", "ZIP"}),
    "listing": frozenset({"ADDRESS", "ZIP", "LOCATION", "PHONE", "EMAIL", "URL", "HOSPITAL"}),
}


#: a month and year that bound or date a count: "As of November 2012, 227 cases", "a transfusion
#: before July 1992"
_BOUND_MONTH_YEAR = re.compile(rf"(?i:\b(?:as\s+of|before|after|since|until|through|by)[ \t]+){_MONTH}[ \t]+(?:19|20)\d\d$")
#: an agency's act: "On August 2, 2013, the U.S. Food and Drug Administration (FDA) published"
_AGENCY_AFTER = re.compile(r",?[ \t]+the[ \t]+(?:U\.S\.[ \t]+)?(?:[A-Z][\w.&'-]*[ \t]+(?:(?:of|and|for|on)[ \t]+)?){1,8}\([A-Z]{2,6}\)")


def population_date(text: str, start: int, end: int) -> bool:
    """A date of no individual (asked only of texts without a sign of one): a month and year
    that bound or date a count, or the date of an agency's act."""
    m = _BOUND_MONTH_YEAR.search(text[max(0, start - 12):end])
    if m and m.end() - m.start() > end - start:
        return True
    return bool(_AGENCY_AFTER.match(text, end))


_STUDY_ACT = re.compile(r"(?i)\b(?:were|was|been)[ \t]+(?:recruited|enrolled|conducted|performed|carried[ \t]+out|"
                        r"randomi[sz]ed|screened|sampled)\b")
_COHORT = re.compile(r"(?i)\b(?:patients|participants|subjects|volunteers|respondents|adults|children|women|men)\b"
                     r"|\(\s*[Nn]\s*=\s*\d")
_ONE_PERSON = re.compile(r"(?i)\b(?:the[ \t]+patient|he|she|his|her|him)\b")


def study_site(text: str, start: int, end: int) -> bool:
    """A place in a sentence that reports how a study was run on a cohort ("patients (N=1200)
    ... were recruited from clinics at a medical center in Philadelphia, PA"): the study's
    site, no individual's."""
    a = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start)) + 1
    b = min((i for i in (text.find(". ", end), text.find("\n", end)) if i >= 0), default=len(text))
    sentence = text[a:b]
    return bool(_STUDY_ACT.search(sentence) and _COHORT.search(sentence) and not _ONE_PERSON.search(sentence))


_MONTH_YEAR = re.compile(rf"(?i:{_MONTH})[ \t]+\d{{4}}")


def month_year(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a month and a year ("January 2008")."""
    return bool(_MONTH_YEAR.fullmatch(text, start, end))


_MONTH_BEFORE = re.compile(rf"\b{_MONTH}[ \t]+(?:\d{{1,2}},?[ \t]+)?$")


def year_after_month(text: str, start: int, end: int) -> bool:
    """A year after its month ("November 2014"), which a postcode pattern may take."""
    return bool(re.fullmatch(r"(?:19|20)\d\d", text[start:end]) and _MONTH_BEFORE.search(text, max(0, start - 16), start))


class PublicLines:
    """The spans of ``text`` that are references, credits, publication dates or
    organisations' listings, with the finding types that are not PHI in each."""

    def spans(self, text: str) -> list[tuple[int, int, frozenset[str]]]:
        out: list[tuple[int, int, frozenset[str]]] = []
        prev = ""
        pos = 0
        for line in text.split("\n"):
            kind = self._kind(line, prev)
            if kind:
                out.append((pos, pos + len(line), _DROP[kind]))
            pos += len(line) + 1
            if line.strip():
                prev = line
        return out

    @staticmethod
    def _kind(line: str, prev: str) -> str | None:
        if not line.strip():
            return None
        if _DATE_LINE.match(line):
            return "date" if _RIGHTS.search(prev) else None
        if _INDIVIDUAL.search(line):
            return None
        if _AUTHORS.match(line) or _ACCESSED.search(line):
            return "reference"
        if _THANKS.search(line) and _DEGREE.search(line):
            return "credit"
        if (_TOLL_FREE.search(line) or _PUBLIC_SITE.search(line)) and _CONTACT_LABEL.search(line):
            return "listing"
        return None

    @staticmethod
    def keep(found: Iterable, spans: list[tuple[int, int, frozenset[str]]]) -> list:
        """``found`` without the findings that lie in a public span of their type."""
        return [f for f in found
                if not any(s <= f.start and f.end <= e and f.type in types for s, e, types in spans)]
