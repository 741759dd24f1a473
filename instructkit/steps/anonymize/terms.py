"""Terms named after people and places: "Cox regression", "Bowman's layer", "Kaplan-Meier
survival curve", "Edmondson and Steiner's grade", "Philadelphia chromosome".

A name used as a modifier of a technical head noun is an eponym, not an individual. The head
nouns are kinds of things (``eponym_followers`` in ``denylist.yaml``: diseases and lesions,
signs and scales, methods and statistics, anatomy, molecules, instruments), or words of a
medical shape ("-ase", "-itis", ...). Between the name and its head may stand:

* a second name joined by a hyphen or "and" ("Kasabach-Merritt phenomenon", "Hoehn and
  Yahr disability score") and a possessive ("Fournier's gangrene");
* up to two modifiers: adjective- or medical-shaped words, or any content word after a
  possessive ("Kattan postoperative nomogram", "Bruton's tyrosine kinase", "Mc Grath's face
  scale"). A verb or a function word ends the search ("Smith has heart disease" is no
  eponym).

A person's full name (a given name first: "Leah Maldonado's test results") is never an
eponym, and neither is a name after a title ("Dr. Kaplan") unless the head follows it right
away. A word that is an eponym in one place of a text is one everywhere in it ("the
Trendelenburg position ... with Trendelenburg").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["Eponyms", "plural_forms"]

_WORD_AFTER = re.compile(r"[ \t]*(?:-[ \t]*)?([^\W\d_][\w'\u2019]*(?:-[^\W\d_][\w'\u2019]*)*)")
#: what joins a name to a second one and to its head: "-Meier", " and Steiner", "'s"
_JOIN = re.compile(r"(?:-[A-Z][\w\u2019]*|[ \t]+(?:and|&)[ \t]+[A-Z][\w\u2019-]*?(?=['\u2019\s]))*"
                   r"(?P<poss>['\u2019]s|s['\u2019]|['\u2019](?=\s))?")
_ADJECTIVE = re.compile(r"[a-z]{3,}(?:al|ic|ive|ous|ary|ar|ile|oid|ent|ant|tic)$")
_NAME_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*")
#: the first part of a split surname ("Mc Grath", "Van Gogh"), not a given name
_SURNAME_PREFIXES = frozenset({"mc", "mac", "o", "de", "da", "di", "du", "van", "von", "le", "la", "st"})
#: a name right before this one, joined by "and" or a hyphen ("Hoehn and Yahr", "Kaplan-Meier")
_JOINED_BEFORE = re.compile(r"[A-Z][\w\u2019]*(?:[ \t]+(?:and|&)[ \t]+|-)$")


def plural_forms(words: Iterable[str]) -> frozenset[str]:
    """Lower-case words with their regular plurals ("curve" -> "curves", "index" -> "indexes")."""
    out = set()
    for w in words:
        w = w.lower()
        out.update({w, w + "s", w + "es"})
        if w.endswith("y"):
            out.add(w[:-1] + "ies")
        if w.endswith("is"):
            out.add(w[:-2] + "es")  # analysis -> analyses
    return frozenset(out)


class Eponyms:
    """Tells eponyms from people's names by the words around a name-like span."""

    def __init__(self, heads: Iterable[str], *, medical_word: re.Pattern[str],
                 common: Callable[[str], bool], stop_words: frozenset[str],
                 given_names: frozenset[str], max_modifiers: int = 2) -> None:
        #: common given names (a person's name starts with one; "Kaplan Meier" does not)
        self.heads = plural_forms(heads)
        self.medical_word = medical_word
        self.common = common
        self.stop_words = stop_words
        self.given_names = given_names
        self.max_modifiers = max_modifiers

    def is_head(self, word: str) -> bool:
        """A head noun of an eponym; of a compound, its last part ("U-test")."""
        last = word.rsplit("-", 1)[-1]
        return last.lower() in self.heads or bool(self.medical_word.match(last))

    def _modifier(self, word: str, possessive: bool) -> bool:
        """A word that may stand between an eponym and its head: not a verb or a function
        word; after a possessive any content word ("Grath's face scale"), else one shaped
        like an adjective or a medical word, or an unknown one ("semirigid")."""
        if len(word) == 1:
            return word.isupper()  # "Mann-Whitney U test"
        if not word.islower() or len(word) < 3 or word in self.stop_words:
            return False
        return (possessive or bool(_ADJECTIVE.match(word)) or bool(self.medical_word.match(word))
                or not self.common(word))

    def head_after(self, text: str, end: int, max_modifiers: int | None = None,
                   start: int | None = None) -> bool:
        """Whether an eponym head follows a name ending at ``end`` (starting at ``start``).
        After a possessive or in a pair of names ("Hoehn and Yahr disability score") any
        content word may modify the head."""
        join = _JOIN.match(text, end)
        pos = join.end()
        possessive = bool(join.group("poss")) or join.end() > end + len(join.group("poss") or "") \
            or (start is not None and bool(_JOINED_BEFORE.search(text, max(0, start - 40), start)))
        limit = self.max_modifiers if max_modifiers is None else max_modifiers
        for i in range(limit + 1):
            m = _WORD_AFTER.match(text, pos)
            if not m:
                return False
            word = m.group(1).rstrip("'\u2019")
            if self.is_head(word):
                return True
            if i == limit or not self._modifier(word, possessive):
                return False
            pos = m.end()
        return False

    def full_name(self, text: str, start: int, end: int) -> bool:
        """A person's name of two words or more, not an eponym: a common given name first
        ("Leah Maldonado"), or a possessive after it ("Ruggero Tremonti's test results").
        Eponyms pair surnames with a hyphen ("Kaplan-Meier") or stand alone."""
        words = _NAME_WORD.findall(text[start:end])
        if len(words) < 2 or words[0].lower() in _SURNAME_PREFIXES or "-" in words[0]:
            return False
        return words[0].lower() in self.given_names or bool(re.match(r"['\u2019]s?\b", text[end:end + 2]))

    def used_as_eponym(self, text: str, word: str) -> bool:
        """Whether ``word`` stands before an eponym head somewhere in ``text``."""
        if len(word) < 3 or not word[:1].isupper():
            return False
        for m in re.finditer(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text):
            if self.head_after(text, m.end()):
                return True
        return False
