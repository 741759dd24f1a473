"""Filters for the junk a language model writes when it imitates a prompt instead of doing
the task: unrendered placeholders, enumerated task lists, an input that only repeats a
label, and text that does not answer its instruction (embedding relevance). Each is a
``validate.<filter>`` with named reasons; the patterns and the relevance threshold are
fitted on real template records (bench/llm_yield.py prints the fit).

Meta-text about the task ("This is an example of ...") is in ``model_artefacts`` and
degenerate repetition in ``repetition`` (``filters.py``), beside the checks they extend.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

from instructkit.steps.quality.filters import QualityFilter, Verdict, _compile_all, _text
from instructkit.steps.quality.text import normalize, word_count
from instructkit.records import Record

logger = logging.getLogger("instructkit")

__all__ = ["PlaceholderFilter", "TaskListFilter", "LabelInputFilter", "RelevanceFilter",
           "relevance_score", "RELEVANCE_META_KEY"]

#: where the relevance filter leaves its score on a kept record (``meta.quality.relevance``),
#: so that dedup's keep rule can prefer the more relevant record of a duplicate cluster
RELEVANCE_META_KEY = "relevance"


# -- unrendered placeholders ---------------------------------------------------------------
class PlaceholderFilter(QualityFilter):
    """Drop text with a fill-in slot left in it: ``{task1}``, ``{{ x }}``, ``<name>``,
    ``[insert dose]``, ``____``. Each pattern has a name, which the quarantine line gives.

    The anonymizer's own tags (``[NAME]``, ``<PERSON>``) are upper case and are not slots;
    HTML tags (``<br>``) are not slots either.
    """

    key = "placeholders"

    def prepare(self, opts: dict[str, Any]) -> dict[str, Any]:
        # case-sensitive on purpose: the case is what tells a slot from an anonymizer tag
        patterns = {name: re.compile(rx) for name, rx in (opts.get("patterns") or {}).items()}
        html = {t.lower() for t in opts.get("html_tags") or []}
        return {"fields": opts.get("fields", []), "patterns": patterns, "html": html}

    def judge(self, record: Record, p: dict[str, Any]) -> Verdict:
        for field in p["fields"]:
            text = _text(record, field)
            if not text:
                continue
            for name, rx in p["patterns"].items():
                for m in rx.finditer(text):
                    if name == "angle" and _tag_name(m.group(0)) in p["html"]:
                        continue
                    return "placeholder", {"field": field, "kind": name}
        return True


def _tag_name(slot: str) -> str:
    return re.sub(r"[^a-z0-9].*$", "", slot.strip("<>/ ").lower())


# -- enumerated task lists -----------------------------------------------------------------
class TaskListFilter(QualityFilter):
    """Drop an instruction that lists numbered tasks ("Task 1: ... Task 2: ...", "Tasks 1 to
    4") or starts with a task number: the model copied the prompt's list of examples
    instead of writing one task."""

    key = "task_list"

    def prepare(self, opts: dict[str, Any]) -> dict[str, Any]:
        return {"fields": opts.get("fields", ["instruction"]),
                "numbered": re.compile(opts.get("numbered_item", r"(?!)"), re.IGNORECASE),
                "max_items": int(opts.get("max_numbered_items", 1)),
                "leading": _compile_all(opts.get("leading")),
                "ranges": _compile_all(opts.get("ranges"))}

    def judge(self, record: Record, p: dict[str, Any]) -> Verdict:
        for field in p["fields"]:
            text = _text(record, field)
            if not text:
                continue
            for i, rx in enumerate(p["leading"]):
                if rx.search(text):
                    return "task_list", {"field": field, "kind": "numbered_start", "pattern": i}
            for i, rx in enumerate(p["ranges"]):
                if rx.search(text):
                    return "task_list", {"field": field, "kind": "task_range", "pattern": i}
            items = {m.group(0).lower().replace(" ", "") for m in p["numbered"].finditer(text)}
            if len(items) > p["max_items"]:
                return "task_list", {"field": field, "kind": "numbered_items", "items": len(items)}
        return True


# -- an input that is only a label -----------------------------------------------------------
class LabelInputFilter(QualityFilter):
    """Drop a record whose input only repeats a label ("Task: Task 1", "Input: none",
    "Example 2"): there is no data in it for the instruction to work on. An empty input is
    fine (the task needs none); a real field with a short value ("Findings: normal") is too."""

    key = "label_input"

    def prepare(self, opts: dict[str, Any]) -> dict[str, Any]:
        labels = [re.escape(str(w)) for w in opts.get("labels") or [] if w is not None]
        generic = re.compile(rf"^(?:{'|'.join(labels) or '(?!)'})(?:\s*#?\s*\d+)?$", re.IGNORECASE)
        return {"fields": opts.get("fields", ["input"]), "max_words": int(opts.get("max_words", 6)),
                "generic": generic}

    def judge(self, record: Record, p: dict[str, Any]) -> Verdict:
        for field in p["fields"]:
            text = _text(record, field).strip()
            if not text or word_count(text) > p["max_words"]:
                continue
            parts = [normalize(x) for x in re.split(r"\s*[:=\-–]\s+|\s*:\s*", text, maxsplit=1)]
            parts = [x for x in parts if x]
            if not parts:
                return "input_only_label", {"field": field, "kind": "punctuation"}
            if len(parts) == 1:
                if p["generic"].match(parts[0]):
                    return "input_only_label", {"field": field, "kind": "label"}
                continue
            key, value = parts
            if p["generic"].match(key) and (p["generic"].match(value) or value.startswith(key)):
                return "input_only_label", {"field": field, "kind": "label_value"}
        return True


# -- relevance: does the output answer the instruction? ---------------------------------------
class RelevanceFilter(QualityFilter):
    """Drop records whose output is far in meaning from its instruction and input: the
    cosine of their embeddings (the run's shared embedder, ``instructkit.embeddings``) is
    below ``min_cosine``. Applies to the ``methods`` listed (LLM-built records by default:
    a source's own question-answer pairs are related by construction) and to outputs of at
    least ``min_output_words`` words (a label or "yes" has no meaning to compare).

    The score of every record it judged is left in ``meta.quality.relevance`` so that
    dedup's keep rule can prefer the more relevant record of a cluster.
    """

    key = "relevance"
    batch_size = 64

    def __init__(self, settings=None, ctx: Any = None) -> None:
        super().__init__(settings)
        self.ctx = ctx
        self.scored = 0

    def prepare(self, opts: dict[str, Any]) -> dict[str, Any]:
        methods = opts.get("methods")
        return {"min_cosine": float(opts.get("min_cosine", 0.0)),
                "min_output_words": int(opts.get("min_output_words", 3)),
                "max_chars": int(opts.get("max_chars", 1000)),
                "methods": set(methods) if methods else None}

    def applies(self, record: Record) -> dict[str, Any] | None:
        p = self.options(record.get("task"))
        if p is None or (p["methods"] is not None and record.get("method") not in p["methods"]):
            return None
        if word_count(_text(record, "output")) < p["min_output_words"]:
            return None
        return p

    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        batch: list[Record] = []
        for rec in records:
            batch.append(rec)
            if len(batch) >= self.batch_size:
                yield from self._judge_batch(batch)
                batch = []
        if batch:
            yield from self._judge_batch(batch)

    def _judge_batch(self, batch: list[Record]) -> Iterator[Record]:
        todo = [(i, p) for i, r in enumerate(batch) if (p := self.applies(r)) is not None]
        scores: dict[int, float] = {}
        if todo:
            pairs = [relevance_pair(batch[i], p["max_chars"]) for i, p in todo]
            for (i, _), s in zip(todo, relevance_scores(pairs, self.ctx)):
                scores[i] = s
            self.scored += len(todo)
        opts = dict(todo)
        for i, rec in enumerate(batch):
            if i not in scores:
                yield rec
                continue
            s, p = scores[i], opts[i]
            if s < p["min_cosine"]:
                self.drop(rec, "low_relevance", cosine=round(s, 4), min=p["min_cosine"])
                continue
            yield _with_relevance(rec, s)

    def summary(self) -> dict[str, Any]:
        return {"scored": self.scored} if self.scored else {}


def relevance_pair(record: Record, max_chars: int = 1000) -> tuple[str, str]:
    """The two texts compared: instruction (+ input) and output, cut to ``max_chars``."""
    ask = _text(record, "instruction")
    inp = _text(record, "input").strip()
    if inp:
        ask = f"{ask}\n{inp}"
    return ask[:max_chars], _text(record, "output")[:max_chars]


def relevance_scores(pairs: list[tuple[str, str]], ctx: Any = None) -> list[float]:
    """Cosine of each (ask, output) pair with the run's shared embedder."""
    from instructkit.embeddings import embedder_from_context

    if not pairs:
        return []
    emb = embedder_from_context(ctx)
    vecs = emb.embed([a for a, _ in pairs] + [b for _, b in pairs])
    n = len(pairs)
    return [float(vecs[i] @ vecs[n + i]) for i in range(n)]


def relevance_score(record: Record) -> float:
    """``meta.quality.relevance`` of a record, NaN when it was not scored."""
    meta = record.get("meta")
    q = meta.get("quality") if isinstance(meta, dict) else None
    v = q.get(RELEVANCE_META_KEY) if isinstance(q, dict) else None
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _with_relevance(record: Record, score: float) -> Record:
    meta = dict(record.get("meta") or {})
    quality = dict(meta.get("quality") or {})
    quality[RELEVANCE_META_KEY] = round(score, 4)
    meta["quality"] = quality
    return {**record, "meta": meta}
