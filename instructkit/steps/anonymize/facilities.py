"""Hospitals and clinics by name: the CMS-derived gazetteer and the facility contexts.

People write hospitals by short and informal names far more often than by the official
one: "seen at Hopkins", "admitted to mass general", "f/u at Cedars Sinai", "transferred from
St Anthonys". Two cheap recognizers find them:

* ``FacilityGazetteer``: the names in ``facilities.txt`` (derived from the CMS hospital
  list by bench/derive_facilities.py), matched case-insensitively on whole words. Text and
  list are canonicalised the same way per word (lower case, no apostrophes, St/Saint,
  Mt/Mount, Ctr/Center, Med/Medical, "&"/"and", a plural or possessive "s"), and a hyphen
  counts as a space, so "St. Anthony's", "ST ANTHONYS" and "Saint Anthony" are one entry.
  Lookup is by first word in a dict, then the longest entry starting there: one pass over
  the words of a text, no per-name regex.
* a name or *core* (a name without its facility words, "Johns Hopkins") counts when it is
  capitalised, or in any case after a facility context ("seen at", "admitted to" ...) or
  before a facility word; a *weak* core ("Mercy", "Scott County", "Good Samaritan") only
  in a facility context.

The facility-context pattern itself (any capitalised name after "seen at", "admitted to"
...) is a regex in recognizers.yaml, with ``plausible_facility`` as its validator.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: one word of a name: letters/digits with inner apostrophes, or "&"
WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*\.?|&")
_JOINERS = frozenset({"of", "and", "at", "the", "for", "de", "la", "del"})
#: a name that continues after a match: a capitalised word or a hyphenated part follows
_GOES_ON = re.compile(r"(?:[ \t]+[A-Z]|-[^\W\d_])")
CANON = {"st": "saint", "ste": "saint", "mt": "mount", "ctr": "center", "cntr": "center",
         "centre": "center", "med": "medical", "hosp": "hospital", "univ": "university",
         "mem": "memorial", "regl": "regional", "reg": "regional", "gen": "general", "hlth": "health",
         "&": "and", "u": "university", "ft": "fort", "cmty": "community", "comm": "community"}


def canon(word: str) -> str:
    """The canonical form of one word of a facility name."""
    w = word.lower().rstrip(".").replace("'", "").replace("\u2019", "")
    w = CANON.get(w, w)
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    return w


@functools.cache
def load_facility_list(path: str | None = None) -> tuple[tuple[str, str], ...]:
    """(kind, form) pairs of the shipped gazetteer."""
    p = Path(path) if path else HERE / "facilities.txt"
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            kind, form = line.split("\t", 1)
            out.append((kind, form))
    return tuple(out)


class FacilityGazetteer:
    """Longest-match lookup of canonical word sequences, first word -> entries."""

    def __init__(self, entries: tuple[tuple[str, str], ...]) -> None:
        self.index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for kind, form in entries:
            words = tuple(canon(w) for w in WORD.findall(form))
            if words:
                self.index.setdefault(words[0], []).append((words, kind))
        for cands in self.index.values():
            cands.sort(key=lambda c: -len(c[0]))

    def find(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, kind) of each longest gazetteer match in ``text``."""
        spans = [(m.start(), m.end() - (1 if m.group().endswith(".") and m.group() != "." else 0))
                 for m in WORD.finditer(text)]
        words = [canon(text[s:e]) for s, e in spans]
        i, n = 0, len(words)
        while i < n:
            best = None
            for entry, kind in self.index.get(words[i], ()):
                k = len(entry)
                if tuple(words[i:i + k]) == entry and self._joined(text, spans, i, k):
                    best = (k, kind)
                    break
            if best:
                k, kind = best
                yield spans[i][0], spans[i + k - 1][1], kind
                i += k
            else:
                i += 1

    @staticmethod
    def _joined(text: str, spans: list[tuple[int, int]], i: int, k: int) -> bool:
        """The words of a match stand together: spaces, a hyphen, a period or an
        apostrophe between them, no line break or other punctuation."""
        for j in range(i, i + k - 1):
            gap = text[spans[j][1]:spans[j + 1][0]]
            if len(gap) > 3 or not re.fullmatch(r"[ \t.\-'\u2019]*", gap):
                return False
        return True


def make_gazetteer_recognizer(pa: Any, cfg: dict[str, Any], make_result: Callable[..., Any],
                              common: Any = frozenset(), given: Any = frozenset()) -> Any:
    """A Presidio recognizer of HOSPITAL spans from the gazetteer. A name or a distinctive
    core counts when it is capitalised ("Johns Hopkins", "JOHNS HOPKINS") or stands in a
    facility context; in lower case ("johns hopkins") and for weak cores ("Mercy"), only
    after a facility context ("seen at") or before a facility word ("Mercy ED")."""
    conf = cfg["facilities"]
    gazetteer = FacilityGazetteer(load_facility_list())
    # Safe Harbor keeps states and countries ("born in Texas"): a core that is one is not a facility
    places = frozenset(p.lower() for p in cfg.get("safe_harbor_places", []))
    context_before = re.compile(conf["context_before"] + r"$", re.IGNORECASE)
    kind_after = re.compile(r"[ \t-]*(?:" + conf["kind_after"] + r")\b", re.IGNORECASE)
    score = float(conf["score"])

    class FacilityGazetteerRecognizer(pa.LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list:
            out = []
            for start, end, kind in gazetteer.find(text):
                after = kind_after.match(text, end)
                before = bool(context_before.search(text, max(0, start - 60), start))
                lower = text[start:end].islower()
                # in lower case, only a facility context says it is a name ("patient's medical
                # center" is not one); a weak core also needs a context or a facility word
                # in lower case a facility needs a context and a name of two words or more
                # ("admitted to mass general"; not "went to the park", "taken in high doses")
                # in lower case a facility needs a context, and one word that is no common
                # English word ("admitted to mass general", "seen at chambersburg"; not
                # "went to the park", "taken in high doses")
                if lower and not (before and (len(WORD.findall(text[start:end])) >= 2
                                              or text[start:end] not in common)):
                    continue
                if kind == "weak" and not (before or after):
                    continue
                # without a context, every word capitalised, as names are ("Gulf Coast";
                # "swimming in the Gulf coast" is a place)
                if not before and not all(w[:1].isupper() or w == "&" or w.lower() in _JOINERS
                                          for w in WORD.findall(text[start:end])):
                    continue
                # the name goes on past a weak entry ("United States", "Lead-time"): not this one
                if kind == "weak" and not after and _GOES_ON.match(text, end):
                    continue
                if not after and text[start:end].lower() in places:
                    continue
                # the list's "Native" written "Natives" is a plural noun ("Alaska Natives"), not
                # a name's possessive without its apostrophe ("St Anthonys", "Saint Lukes")
                if not (before or after) and _plural_of_common(text[start:end], common, given):
                    continue
                if after:
                    end = after.end()  # "Mercy ED", "Hopkins Hospital": the whole name
                out.append(make_result(pa, self, "HOSPITAL", start, end, score))
            return out

    return FacilityGazetteerRecognizer(supported_entities=["HOSPITAL"], name="facility_gazetteer",
                                       supported_language="en")


def _plural_of_common(span: str, common: Any, given: Any) -> bool:
    """The last word is the plural of a common word that is no given name ("Natives")."""
    last = WORD.findall(span)[-1].rstrip(".")
    if not last.endswith("s") or last.endswith(("ss", "'s", "\u2019s")) or len(last) < 4:
        return False
    stem = last[:-1].lower()
    return stem in common and stem not in given


_DURATION_AFTER = re.compile(r"[ \t]+(?:years?|months?|weeks?|days?|hours?)\b")
#: the last word of a programme's or an agency's name, which is no place of care
_PROGRAMME_HEAD = re.compile(r"Program(?:me)?|Project|Initiative|Institutes?|Agency|Administration|Foundation|"
                             r"Association|Society|Council|Service|Survey|Registry|Network|Department|Commission")


def _programme_acronym(text: str, acronym: str) -> bool:
    """Whether ``text`` defines ``acronym`` as a programme's or an agency's name."""
    m = re.search(rf"((?:[A-Z][\w'\u2019-]*[ \t]+(?:(?:and|of|for|on|the)[ \t]+)*){{1,8}})\({re.escape(acronym)}\)",
                  text)
    return bool(m and _PROGRAMME_HEAD.fullmatch(m.group(1).split()[-1]))


def facility_validator(cfg: dict[str, Any], words: Any,
                       stop: frozenset[str] = frozenset()) -> Callable[[str, int, int], bool]:
    """Whether a name after a facility context is a facility: not a unit, department,
    person, time or a state or country ("admitted to the ICU", "referred to Dr. Lee",
    "born in Texas"), not a common word in lower case ("seen at home"), and not a
    capitalised word of a title-case heading ("Is Surgery at Night Safe?")."""
    conf = cfg.get("facilities", {})
    not_fac = frozenset(w.lower() for w in [*conf.get("not_facilities", []),
                                            *cfg.get("generic_facility_words", [])])
    places = frozenset(p.lower() for p in cfg.get("safe_harbor_places", []))

    def plain(w: str) -> str:
        return re.sub(r"(?:['\u2019]s|s['\u2019])$", "", w.strip(".,'\u2019")).lower()

    def check(text: str, start: int, end: int) -> bool:
        span = text[start:end].strip()
        tokens = [plain(t) for t in re.findall(r"[^\W_]+(?:['\u2019][^\W_]+)*\.?|&", span)]
        tokens = [t for t in tokens if t]
        if not tokens or span.lower() in places or tokens[0] in not_fac and len(tokens) == 1:
            return False
        if span.islower():
            # an abbreviation typed in lower case ("mgh", "bidmc", "ucsf"): short, at most one vowel
            first = span.split("-")[0]
            return (len(first) <= 6 and sum(c in "aeiou" for c in first) <= 1 and first not in stop
                    and (words is None or first not in words) and tokens[0] not in not_fac)
        # an abbreviation alone after "in" is a study's or a lab's ("seen in OS", "in the GM")
        if len(tokens) == 1 and span.isupper() and re.search(r"\bin\s+(?:the\s+)?$", text[max(0, start - 9):start]):
            return False
        if tokens[0] in {"dr", "mr", "mrs", "ms", "miss", "prof", "nurse", "mx"}:
            return False
        if tokens[-1].isdigit() and _DURATION_AFTER.match(text, end):
            return False  # "died from CJD 22 years later": a count of years
        if span.isupper() and len(tokens) == 1 and _programme_acronym(text, span):
            return False  # "NHPP records" of the "National Hormone and Pituitary Program (NHPP)"
        if all(t in stop for t in tokens):
            return False  # "in their records. When records were ...": a sentence's first word
        if all(t in not_fac or t in {"of", "and", "for", "at", "&", "saint", "st"} or t.isdigit()
               for t in tokens):
            return False
        # a heading in title case capitalises every word: "Surgery at Night", "Is Care in Rural ..."
        line_start = max(text.rfind("\n", 0, start), -1) + 1
        line_end = text.find("\n", end)
        line = text[line_start:line_end if line_end >= 0 else len(text)]
        alpha = [w for w in re.findall(r"[^\W\d_]{4,}", line)]
        if len(alpha) >= 5 and sum(w[0].isupper() for w in alpha) / len(alpha) > 0.7:
            return False
        return True

    return check
