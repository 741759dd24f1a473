"""Which record of a duplicate cluster is kept: a deterministic, configurable rule.

Criteria are applied in order, the first that differs decides; ``id`` (smallest) and then
input order always break remaining ties, so the choice never depends on hash order.

- ``method``:        prefer methods earlier in ``method_order`` (default template, rag, synthetic)
- ``judge_score``:   prefer the higher judge score (``meta.judge.overall``; records without one come last)
- ``relevance``:     prefer the higher instruction-output relevance (``meta.quality.relevance``,
                     left by ``validate.relevance``; records without one come last)
- ``output_length``: prefer the longer output
- ``id``:            prefer the smallest record id

The judge and the validate stage run *before* dedup (``registry.STAGE_ORDER``), so their
scores are on the records when the keep rule reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from instructkit._exceptions import RecipeError

__all__ = ["KeepRule", "DEFAULT_KEEP_ORDER", "DEFAULT_METHOD_ORDER", "judge_score", "relevance"]

DEFAULT_KEEP_ORDER = ("method", "judge_score", "relevance", "output_length", "id")
DEFAULT_METHOD_ORDER = ("template", "rag", "synthetic")
CRITERIA = frozenset(DEFAULT_KEEP_ORDER)


def judge_score(record: Mapping[str, Any]) -> float:
    """The judge's overall score (``meta.judge.overall``; ``meta.judge.score`` or
    ``meta.judge_score`` as written by other tools) as a float; NaN when absent."""
    meta = record.get("meta")
    if not meta or not isinstance(meta, Mapping):
        return float("nan")
    judge = meta.get("judge")
    if isinstance(judge, Mapping):
        value = judge.get("overall", judge.get("score"))
    else:
        value = meta.get("judge_score")
    return _float(value)


def relevance(record: Mapping[str, Any]) -> float:
    """``meta.quality.relevance`` (the validate stage's relevance score); NaN when absent."""
    meta = record.get("meta")
    quality = meta.get("quality") if isinstance(meta, Mapping) else None
    return _float(quality.get("relevance") if isinstance(quality, Mapping) else None)


def _float(value: Any) -> float:
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class KeepRule:
    """Ranks the records of a cluster; the best-ranked one is kept."""

    def __init__(self, order: Sequence[str] = DEFAULT_KEEP_ORDER,
                 method_order: Sequence[str] = DEFAULT_METHOD_ORDER) -> None:
        unknown = [c for c in order if c not in CRITERIA]
        if unknown:
            raise RecipeError([f"stages.dedup.keep.order: unknown criterion '{c}' "
                               f"(use {', '.join(sorted(CRITERIA))})" for c in unknown])
        self.order = list(dict.fromkeys([*order, "id"]))
        self.method_order = list(method_order)

    @classmethod
    def from_config(cls, cfg: Any) -> "KeepRule":
        if cfg is None:
            return cls()
        if isinstance(cfg, (list, tuple)):
            return cls(order=cfg)
        return cls(order=cfg.get("order", DEFAULT_KEEP_ORDER),
                   method_order=cfg.get("method_order", DEFAULT_METHOD_ORDER))

    def method_rank(self, method: Any) -> int:
        try:
            return self.method_order.index(method)
        except ValueError:
            return len(self.method_order)

    def ranks(self, method_rank: np.ndarray, output_length: np.ndarray, score: np.ndarray,
              ids: Sequence[str]) -> np.ndarray:
        """Rank of every record (0 = kept first); ties broken by id, then input order.

        ``score`` holds the judge score per record, or (n, 2): judge score and relevance."""
        n = len(method_rank)
        id_rank = np.empty(n, np.int64)
        id_rank[np.argsort(np.asarray(ids, dtype=str), kind="stable")] = np.arange(n)
        score = np.asarray(score, np.float64).reshape(n, -1)
        rel = score[:, 1] if score.shape[1] > 1 else np.full(n, np.nan)
        columns = {
            "method": method_rank.astype(np.int64),
            "output_length": -output_length.astype(np.int64),
            "judge_score": -np.nan_to_num(score[:, 0], nan=-np.inf),
            "relevance": -np.nan_to_num(rel, nan=-np.inf),
            "id": id_rank,
        }
        # np.lexsort sorts by the LAST key first: criteria in order, then input position
        order = np.lexsort([np.arange(n)] + [columns[c] for c in reversed(self.order)])
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        return rank

    def describe(self) -> str:
        names = {"method": "method (" + " > ".join(self.method_order) + ")",
                 "output_length": "longer output", "judge_score": "higher judge score",
                 "relevance": "more relevant output",
                 "id": "smallest id"}
        return ", then ".join(names[c] for c in self.order)
