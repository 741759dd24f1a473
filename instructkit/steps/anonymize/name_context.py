"""Names and places by the place they stand in, where spaCy sees none.

The small spaCy model misses names in forms it rarely saw: a dialogue's speaker labels
("Halldór: What a wife."), the name that heads a contact block or a résumé ("Dreux Joly" above
"Phone:", "E-mail:"), someone spoken to ("Danial, can I ..."), a given name and a surname in
the middle of a sentence ("change it to Sofia Lima"), names joined by "and" before a verb
("Usamov and Bowers were ..."), and anything in a text typed all in lower case ("follow up with
benjamin a seiler"). Each recognizer here needs such a context, and then checks the words
against the public-domain name lists (SSA given names, Census 2010 surnames; ``names.py``) or
the dictionary: the lists are never matched as bare words. A place is taken after a "Where:"
label or, in lower-case text, after a travel or residence verb.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["make_name_context_recognizers", "all_lower_case", "plausible_lower_case_name"]

#: a word of a name in any case ("Halldór", "jørgensen", "O'Neil", "Garcia-Smith")
_WORD = r"[^\W\d_][\w'\u2019-]*"
#: labels of form fields and document parts, no speakers ("Phone:", "Note:", "Q:")
_FIELD_LABELS = frozenset("""when where what who why how phone tel telephone fax mobile cell office
e-mail email website web url address name date time note notes subject re from to cc bcc question
answer q a summary patient doctor nurse comment comments reply update edit source reference
references title description location status result results answer response example warning
caution important tip tips step steps update news hpi ros pmh psh meds labs vitals plan assessment
impression allergies diagnosis diagnoses findings indication indications history exam procedure
technique comparison recommendation recommendations disposition addendum""".split())
#: a name's shape: one capital first ("Halldór", "McDowell", "O'Neil") or none ("mika")
_NAME_SHAPE = re.compile(r"(?:Mc|Mac|O'|D')?[^\W\d_][^\W\d_A-Z]*(?:[-'\u2019][^\W\d_][^\W\d_A-Z]*)?$")
#: a dialogue's line: a speaker label at the line start, then what is said
_SPEAKER = re.compile(rf"^[ \t>]*(?P<phi>{_WORD}(?:[ \t]+{_WORD})?)[ \t]*:[ \t]*(?=[\"\u201c\u2018'\[A-Za-z])",
                      re.MULTILINE)
#: how what a speaker says starts: a quote, a pronoun, a greeting, a question word
_SPEECH = re.compile(r"[\"\u201c\u2018']|(?i:i|i'm|i've|i'll|you|you're|we|what|who|why|how|where|when|hi|hello|"
                     r"yes|no|oh|well|please|thank|thanks|remember|are|is|do|did|can|will|don't|it's|my|your)\b")
#: someone spoken to at the start of a sentence ("Danial, can I please ...")
_VOCATIVE = re.compile(rf"(?:^|(?<=[.!?\n][ \t])|(?<=[.!?]\n))(?P<phi>{_WORD}),[ \t]+"
                       r"(?=(?:can|could|would|will|please|do|did|are|is|I|you|we|have|thank)\b)",
                       re.MULTILINE | re.IGNORECASE)
#: a line of two to four name words, an initial allowed ("Julieta S Almeida", "bertram m. jørgensen")
_HEADER_LINE = re.compile(rf"^[ \t>]*(?P<phi>{_WORD}(?:[ \t]+(?:[^\W\d_]\.?|{_WORD})){{1,3}})[ \t]*$",
                          re.MULTILINE)
#: what a contact block or a résumé holds below the name
_CONTACT_CUE = re.compile(r"(?i)\b(?:phone|e-?mail|fax|mobile|tel|website|address|personal\s+info)\b"
                          r"|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}|\[(?:PHONE|EMAIL|ADDRESS)\]")
#: a given name, an initial maybe, and a surname, capitalised
#: (one space apart: wider gaps are a table's columns, "Colon  Signs")
_PAIR = re.compile(r"(?<![\w'\u2019.-])(?P<phi>[A-Z][a-z]+(?: [A-Z]\.?)? (?:Mc|Mac|O')?[A-Z][a-z]+"
                   r"(?:-[A-Z][a-z]+)?)(?![\w-]|\.\w)")
#: before a pair: an article, so a thing's or a place's name ("the Royal Navy", "the San Francisco area")
_THING_BEFORE = re.compile(r"(?i:\b(?:the|a|an|this|that|these|those|its|their|our)) $")
#: after a pair: a state's code ("La Jolla, CA"), so a place
_STATE_AFTER = re.compile(r",[ \t]*[A-Z]{2}\b")
#: after a pair: one more capitalised word ("Early Chronic Kidney Disease", "Roswell Park Cancer
#: Institute"), maybe after "of" ("Royal College of General Practitioners")
_TITLE_WORD_AFTER = re.compile(r" (?:of )?(?P<w>[A-Z][a-z]+)\b")
#: before a pair: a capitalised word ("Childhood Brain Stem Glioma")
_TITLE_WORD_BEFORE = re.compile(r"(?<![\w'\u2019-])(?P<w>[A-Z][a-z]+) $")
#: words that may stand before a name in a title-case run ("Dear Anna Berg", "Hi Tom Lee")
_BEFORE_NAME = frozenset("dear hi hello hey thanks thank welcome congratulations sincerely regards cheers "
                         "mr mrs ms miss dr prof sir madam captain coach nurse doctor professor".split())
#: two names joined by "and" before a verb whose subject they are
_COORDINATED = re.compile(r"(?<![\w-])(?P<a>[A-Z][\w'\u2019-]*)[ \t]+(?:and|&)[ \t]+(?P<b>[A-Z][\w'\u2019-]*)"
                          r"[ \t]+(?=(?:were|are|have|had|both|met|went|said|told|wrote|founded|co-founded|"
                          r"started|married|worked|played|sang|recorded)\b)")
#: a place after a "Where:" or "Location:" label at a line's start
_PLACE_FIELD = re.compile(r"(?im)^[ \t>]*(?:where|location|city|town|hometown|birthplace|place\s+of\s+birth|venue)"
                          r"[ \t]*:[ \t]*(?P<phi>[^\W\d_][^\n.;:!?]{1,60}?)[ \t]*(?=[.;!?]?[ \t]*(?:\n|$))")
#: in lower-case text: what announces a person before the name
_LOWER_PERSON_CUE = re.compile(
    r"\b(?:mr|mrs|ms|dr|prof|miss)\.?[ \t]+|\b(?:my\s+name\s+is|my\s+name's|i'?m|i\s+am|calls?\s+me|call\s+me|"
    r"follow\s+up\s+with|speak\s+(?:to|with)|talk\s+(?:to|with)|dear|hi|hello|signed|sincerely|regards|contact|"
    r"verses\s+from|tribute\s+to|change\s+it\s+to|add|the|with|by|and|than\s+early)[ \t,]+$")
#: in lower-case text: what announces a lone given name ("mr. elliott", "calls me borna", "son marco")
_LONE_NAME_CUE = re.compile(r"\b(?:mr|mrs|ms|dr|prof|miss)\.?[ \t]+$|\bme[ \t]+$|\bi'?m[ \t]+$|\bearly[ \t]+$|"
                            r"\b(?:son|daughter|wife|husband|brother|sister|mother|father|friend)[ \t]+$")
#: in lower-case text: a travel or residence verb before a place
_LOWER_PLACE_CUE = re.compile(r"\b(?:flew|fly|flying|travel(?:l?ed|ling|ing)?|moved|moving|returned|relocated|"
                              r"emigrated|immigrated|went|drove|arrived|lives|lived|living|resides|resided|born|"
                              r"visiting|visited|based|located|grew\s+up)\s+(?:to|from|in|at|into|back\s+to)[ \t]+$")
_LOWER_TOWN_POSTCODE = re.compile(rf"\b(?:in|at|from|near|to)[ \t]+(?P<phi>{_WORD}(?:[ \t]+{_WORD}){{0,3}})"
                                  r"(?=[ \t]+\d{4,5}\b(?![ \t]*(?:%|mg|mcg|ml|g|kg|mm|cm|units?)\b))")

#: up to three words from each word's start (overlapping: every word is a candidate start)
_WORD_RUN = re.compile(rf"(?<![\w'\u2019-])(?=({_WORD}(?:[ \t]+{_WORD}\.?){{0,2}}))")
_PLACE_RUN = re.compile(rf"(?<![\w'\u2019-])(?=({_WORD}(?:[ \t]+(?:de|del|da|do|di|du|la|le|{_WORD})){{0,3}}))")


def all_lower_case(text: str) -> bool:
    """A text typed without capitals: case tells no name from a word there."""
    return any(c.isalpha() for c in text) and not any(c.isupper() for c in text)


def plausible_lower_case_name(words: list[str], given: Any, surnames: Any, common: Callable[[str], bool],
                              stop: Any) -> bool:
    """Words of a name in lower-case text: a given name first, a surname or a word no
    dictionary holds last, initials between, and no stop word."""
    core = [re.sub(r"['\u2019]s?$", "", w.strip(".,'\u2019()")) for w in words]
    core = [w for w in core if w]
    if not core or core[0].lower() not in given or any(w.lower() in stop for w in core if len(w) > 1):
        return False
    if len(core) == 1:
        return True
    last = core[-1].lower()
    return last in surnames or not common(last)


def make_name_context_recognizers(pa: Any, conf: dict[str, Any], lists: Any, common: Callable[[str], bool],
                                  stop: frozenset[str], make_result: Callable[..., Any],
                                  not_surname: frozenset[str] = frozenset()) -> list[Any]:
    """Presidio recognizers of names and places by their context (see the module doc).
    ``lists`` holds ``given``, ``common_given`` and ``surnames``; ``common(word)`` says whether
    a word is in the dictionary; ``not_surname`` holds words that end no person's name
    (facility kinds: "Hospital", "Clinic")."""
    score = float(conf.get("score", 0.75))
    given, common_given, surnames = lists.given, lists.common_given, lists.surnames

    def name_word(w: str, lower_ok: bool = False) -> bool:
        """A word that may be a name: a given name, or a capitalised word no dictionary holds."""
        w = w.strip(".,'\u2019()")
        if len(w) < 3 or w.lower() in stop or w.lower() in _FIELD_LABELS or not _NAME_SHAPE.match(w):
            return False  # "HPI", "Hx", "ROS": a note's headings
        if common(w):
            return w.lower() in common_given
        return w.lower() in given or (w[0].isupper() or lower_ok)

    def speakers(text: str) -> list[tuple[int, int]]:
        lines = list(_SPEAKER.finditer(text))
        if len(lines) < 2:
            return []
        # a label is a speaker's when it is a given name or what follows it is speech (a
        # quote, a pronoun, a question word): "Metformin: lowers blood sugar" is a list item
        return [m.span("phi") for m in lines
                if all(name_word(w, lower_ok=w.lower() in given) for w in m.group("phi").split())
                and (m.group("phi").split()[0].lower() in given or _SPEECH.match(text, m.end()))]

    def vocatives(text: str) -> list[tuple[int, int]]:
        out = []
        for m in _VOCATIVE.finditer(text):
            w = m.group("phi")
            if w.lower() in _FIELD_LABELS or w.lower() in stop or len(w) < 3 or not _NAME_SHAPE.match(w):
                continue
            if (w.lower() in given and not common(w)) or (w[0].isupper() and not common(w)):
                out.append(m.span("phi"))
        return out

    def header(text: str) -> list[tuple[int, int]]:
        """The name on one of a contact block's first three lines."""
        out = []
        for m in _HEADER_LINE.finditer(text, 0, text.find("\n", text.find("\n", text.find("\n") + 1) + 1)
                                       if text.count("\n") >= 3 else len(text)):
            if not _CONTACT_CUE.search(text, m.end(), m.end() + 400):
                continue
            words = [w for w in m.group("phi").split() if len(w.strip(".")) > 1]
            if len(words) < 2:
                continue
            lower = all_lower_case(m.group("phi"))
            if lower:
                ok = plausible_lower_case_name(m.group("phi").split(), given, surnames, common, stop)
            else:
                ok = (all(w[0].isupper() for w in words)
                      and (words[0].lower() in given or not common(words[0]))
                      and all(name_word(w) or w.lower() in surnames for w in words))
            if ok:
                out.append(m.span("phi"))
        return out

    def in_title_run(text: str, start: int, end: int) -> bool:
        """A pair inside a longer run of capitalised words that ends or starts in a dictionary
        word is a title or an institution ("Nutrition for Early Chronic Kidney Disease",
        "Childhood Brain Stem Glioma"); a given name or a surname may still follow a
        person's pair ("Eunice Kennedy Shriver")."""
        after = _TITLE_WORD_AFTER.match(text, end)
        if after and common(after.group("w")) and after.group("w").lower() not in given:
            return True
        before = _TITLE_WORD_BEFORE.search(text, max(0, start - 24), start)
        return (bool(before) and common(before.group("w")) and not _sentence_start(text, before.start())
                and before.group("w").lower() not in given and before.group("w").lower() not in _BEFORE_NAME)

    def pairs(text: str) -> list[tuple[int, int]]:
        out = []
        for m in _PAIR.finditer(text):
            words = m.group("phi").split()
            first, last = words[0], words[-1].strip(".")
            if (first.lower() in common_given and last.lower() in surnames
                    and last.lower() not in not_surname and first.lower() not in stop
                    and not (common(first) and _sentence_start(text, m.start()))
                    and not in_title_run(text, m.start(), m.end())
                    and not _THING_BEFORE.search(text, max(0, m.start() - 8), m.start())
                    and not _STATE_AFTER.match(text, m.end())):
                out.append(m.span("phi"))
        return out

    def coordinated(text: str) -> list[tuple[int, int]]:
        out = []
        for m in _COORDINATED.finditer(text):
            a, b = m.group("a"), m.group("b")
            if not all(_NAME_SHAPE.match(w) and len(w) > 2 for w in (a, b)):
                continue  # "Cmin and AUC0-24 were": measures, no names
            listed = [w.lower() in given or w.lower() in surnames for w in (a, b)]
            # both names in the lists, or one and a word no dictionary holds
            if all(listed) or (any(listed) and not all(common(w) for w in (a, b))):
                out += [m.span("a"), m.span("b")]
        return out

    def lower_names(text: str) -> list[tuple[int, int]]:
        """In a lower-case text: a given name (an initial, a surname) after a person cue."""
        if not all_lower_case(text):
            return []
        out = []
        for m in _WORD_RUN.finditer(text):
            if not _LOWER_PERSON_CUE.search(text, max(0, m.start() - 30), m.start()):
                continue
            words = m.group(1).split()
            # the longest run that ends in a surname or an unknown word ("benjamin a seiler")
            for k in range(len(words), 0, -1):
                run = words[:k]
                if k == 1 and not _LONE_NAME_CUE.search(text, max(0, m.start() - 14), m.start()):
                    continue
                if len(run[-1].strip(".")) > 1 and plausible_lower_case_name(run, given, surnames, common, stop):
                    out.append((m.start(), m.start() + _span_of_words(text[m.start():], k)))
                    break
        return out

    def lower_places(text: str) -> list[tuple[int, int]]:
        """In a lower-case text: words no dictionary holds after a travel or residence verb."""
        if not all_lower_case(text):
            return []
        out = []
        for m in _PLACE_RUN.finditer(text):
            if not _LOWER_PLACE_CUE.search(text, max(0, m.start() - 30), m.start()):
                continue
            words = m.group(1).split()
            k = len(words)
            while k and (common(words[k - 1]) or words[k - 1] in stop):
                k -= 1
            if k and not common(words[0]) and words[0] not in stop:
                out.append((m.start(), m.start() + _span_of_words(text[m.start():], k)))
        # a town before its postcode after a place preposition ("in barra de carrasco 15000")
        for m in _LOWER_TOWN_POSTCODE.finditer(text):
            if any(not common(w) and w not in stop for w in m.group("phi").split()):
                out.append(m.span("phi"))
        return out

    # a street in lower case: a number, up to four words, a street kind, a unit maybe
    # ("74678 midtvollen 130 st.")
    street = re.compile(r"(?<![\w/.,-])\d{1,6}[a-z]?(?:[ \t]+\d{1,5})?(?:[ \t]+[^\W\d_][\w'\u2019-]*(?:[ \t]+\d{1,5})?){1,4}"
                        rf"[ \t]+(?i:{conf.get('street_suffix') or '(?!)'})\b\.?", re.IGNORECASE)

    def lower_streets(text: str) -> list[tuple[int, int]]:
        if not all_lower_case(text):
            return []
        return [m.span() for m in street.finditer(text)
                if any(not common(w) for w in re.findall(r"[^\W\d_]{3,}", m.group()))]

    def place_fields(text: str) -> list[tuple[int, int]]:
        return [m.span("phi") for m in _PLACE_FIELD.finditer(text)]

    finders = {"name_speaker": ("PERSON", speakers), "name_vocative": ("PERSON", vocatives),
               "name_contact_header": ("PERSON", header), "name_pair": ("PERSON", pairs),
               "name_coordinated": ("PERSON", coordinated), "name_lower_case": ("PERSON", lower_names),
               "place_lower_case": ("LOCATION", lower_places), "place_field": ("LOCATION", place_fields),
               "street_lower_case": ("STREET_ADDRESS", lower_streets)}

    class ContextRecognizer(pa.LocalRecognizer):
        def __init__(self, name: str, entity: str, find: Callable[[str], list[tuple[int, int]]]) -> None:
            self.find = find
            super().__init__(supported_entities=[entity], name=name, supported_language="en")

        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list:
            entity = self.supported_entities[0]
            return [make_result(pa, self, entity, s, e, score) for s, e in self.find(text) if e > s]

    enabled = conf.get("enabled") or list(finders)
    return [ContextRecognizer(n, *finders[n]) for n in enabled]


def _sentence_start(text: str, start: int) -> bool:
    return bool(re.search(r"(?:^|[.!?:;\"\n])[ \t]*$", text[max(0, start - 4):start]))


def _span_of_words(text: str, k: int) -> int:
    m = re.match(r"\S+(?:[ \t]+\S+){%d}" % (k - 1), text)
    return m.end() if m else 0
