"""The checks that decide which generated tasks are kept (novelty, suitability, elimination)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["NoveltyFilter", "instruction_problem", "elimination_reason"]

#: Self-Instruct drops tasks a text-only model cannot do (the paper's list, medical additions)
UNSUITABLE_WORDS = ("image", "images", "picture", "pictures", "graph", "graphs", "photo",
                    "photos", "video", "audio", "file", "files", "map", "maps", "draw",
                    "plot", "diagram", "flowchart", "go to", "click", "upload", "attached")


@functools.cache
def _scorer():
    from instructkit._resources import require

    rouge_scorer = require("rouge_score.rouge_scorer", "llm", "ROUGE-L novelty filtering")
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(a: str, b: str) -> float:
    return _scorer().score(a, b)["rougeL"].fmeasure


class NoveltyFilter:
    """Keeps a pool of instructions; a new one is novel if its ROUGE-L F1 to every one is
    below ``threshold`` (Self-Instruct's 0.7)."""

    def __init__(self, threshold: float = 0.7) -> None:
        self.threshold = threshold
        self._texts: list[str] = []
        self._ids: list[str] = []
        self._tokens: list[list[str]] = []

    def add(self, id: str, text: str) -> None:
        self._ids.append(id)
        self._texts.append(text)
        self._tokens.append(_scorer()._tokenizer.tokenize(text))

    def add_many(self, items: Iterable[tuple[str, str]]) -> None:
        for i, t in items:
            self.add(i, t)

    def __len__(self) -> int:
        return len(self._texts)

    def most_similar(self, text: str) -> tuple[float, str | None]:
        from rouge_score.rouge_scorer import _score_lcs

        toks = _scorer()._tokenizer.tokenize(text)
        best, best_id = 0.0, None
        for id_, other in zip(self._ids, self._tokens):
            f = _score_lcs(other, toks).fmeasure
            if f > best:
                best, best_id = f, id_
        return best, best_id

    def check(self, text: str) -> tuple[str, dict[str, Any]] | None:
        score, similar = self.most_similar(text)
        if score >= self.threshold:
            return "too_similar", {"rouge_l": round(score, 4), "similar_to": similar}
        return None


def instruction_problem(text: str, min_words: int = 3, max_words: int = 150) -> str | None:
    """Self-Instruct's heuristic filters: length, unsuitable tasks, malformed starts."""
    words = text.split()
    if len(words) < min_words or len(words) > max_words:
        return "bad_length"
    low = text.lower()
    if any(re.search(rf"\b{re.escape(w)}\b", low) for w in UNSUITABLE_WORDS):
        return "unsuitable_for_text"
    if not text[0].isalnum() and text[0] not in "\"'(":
        return "malformed"
    return None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@functools.cache
def _stopwords() -> frozenset[str]:
    return frozenset("""a an the and or but if of to in on at by for with from as is are was were be
    been being it its this that these those i you he she we they me him her us them my your our
    their what which who whom how why when where not no yes do does did so than then too very can
    will just should would could may might must shall""".split())


def elimination_reason(parent: str, evolved: str, answer: str | None, *, copied_phrases: Iterable[str],
                       refusal_phrases: Iterable[str], refusal_max_words: int,
                       same_threshold: float) -> tuple[str, dict[str, Any]] | None:
    """Evol-Instruct's elimination step for one evolution (``answer`` None: not answered yet)."""
    low = evolved.lower()
    for phrase in copied_phrases:
        if phrase.lower() in low:
            return "copies_prompt", {"phrase": phrase}
    if answer is None:
        score = rouge_l(parent, evolved)
        if score >= same_threshold:
            return "no_change", {"rouge_l": round(score, 4)}
        return None
    words = _words(answer)
    if not words or all(w in _stopwords() for w in words):
        return "empty_answer", {}
    a_low = answer.lower()
    if len(words) <= refusal_max_words and any(p in a_low for p in refusal_phrases):
        return "refusal", {}
    return None
