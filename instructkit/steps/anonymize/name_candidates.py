"""Name candidates: the words of a sentence that may be a name.

The name model (name_model.py) costs more than the rest of the detector, so it reads only
the sentences with a candidate that nothing else found (``PhiDetector._worth_tagging``). A
candidate is a shape and a list lookup, never a finding on its own: the model decides.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterator

__all__ = ["name_candidates", "name_shaped"]

#: a run of letters (two or more)
ALPHA_RUN = re.compile(r"[^\W\d_]{2,}")
NAME_PREFIX = re.compile(r"(?:Mc|Mac|O'|D'|De|Di|Da|Du|La|Le|Van|Von)[A-Z][a-z]+$")


def name_shaped(t: str) -> bool:
    """One capital ("Yefremova"), or one per part of a prefixed name ("McDowell")."""
    return sum(c.isupper() for c in t) == 1 or bool(NAME_PREFIX.match(t))


_MONTH_OR_DAY = re.compile(r"(?i)(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|mon|tue|tues|wed|thu|"
                           r"thur|thurs|fri|sat|sun)")


def _in_address_or_date(sentence: str, m: re.Match) -> bool:
    """A word that is part of a web or mail address ("www.acevedo.com") or a month or
    weekday's abbreviation ("03 Jul 84"): no name candidate."""
    before, after = sentence[m.start() - 1:m.start()], sentence[m.end():m.end() + 2]
    return (before in ("/", "@", ".") and m.start() > 1 and sentence[m.start() - 2].isalnum()) \
        or after[:1] in ("@",) or (after[:1] == "." and after[1:2].isalnum()) \
        or bool(_MONTH_OR_DAY.fullmatch(m.group()))


def _beside_digit(sentence: str, m: re.Match) -> bool:
    """A word glued to a digit is part of an id or a measure ("CT259623070", "5mg")."""
    return (m.start() > 0 and sentence[m.start() - 1].isdigit()) \
        or (m.end() < len(sentence) and sentence[m.end()].isdigit())


_AND_CAPITAL_AFTER = re.compile(r"[ \t]+(?:and|&)[ \t]+[A-Z][a-z]")


def name_candidates(sentence: str, words: Container[str], given: frozenset[str],
                    common_given: frozenset[str], surnames: frozenset[str],
                    stop_words: frozenset[str]) -> Iterator[re.Match]:
    """The words of a sentence that may be a name the name model would find: a capitalised
    word outside the dictionary, a capitalised common given name ("Grant", "Fletcher Hill"),
    a place in capitals ("SANDEFJORD"); in a sentence written all in one case, any listed
    given name or unknown word. Most sentences of clinical and research text have none
    ("The heart is normal in size."), and the model costs more than the rest of the detector."""
    runs = [m for m in ALPHA_RUN.finditer(sentence)
            if not _in_address_or_date(sentence, m) and not _beside_digit(sentence, m)]
    if not any(c.islower() for c in sentence) or not any(c.isupper() for c in sentence):
        # one case throughout: capitals carry no sign
        for m in runs:
            low = m.group().lower()
            if len(low) > 2 and low not in stop_words and (low in given or low not in words):
                yield m
        return
    if len(runs) <= 3 and all(m.group()[0].isupper() for m in runs):
        # a short line of capitalised words: a name or a town on its own line ("Boyle",
        # "> TRONDHEIM", "Pines Beach")
        yield from runs
        return
    for i, m in enumerate(runs):
        w = m.group()
        if not w[0].isupper():
            # a listed given name written in lower case that is no word ("with eva kleist")
            if w in given and w not in words and w not in stop_words:
                yield m
            continue
        if w.isupper():
            # a place or name in capitals, not an abbreviation ("COPD") nor a heading ("FINDINGS")
            if len(w) >= 5 and w not in words:
                yield m
        elif w not in words:
            if name_shaped(w):
                yield m
        elif i and w.lower() in surnames:
            # a listed surname that is also a word, inside a sentence ("early Goldberg")
            yield m
        elif i == 0 and _AND_CAPITAL_AFTER.match(sentence, m.end()):
            yield m  # "Park and Mann were ..."
        elif w.lower() in common_given and (i or len(runs) > 1 and runs[1].group()[0].isupper()):
            # a common given name that is also a word, not a capitalised first word alone
            # ("seen by Grant"; not "Will this hurt?")
            yield m
