"""Synthetic records against their own seed tasks: a per-record check of the signatures phase.

A synthetic record names the seed tasks it was made from (``provenance.seed_task_ids``,
texts from ``prompts/synthetic/seed_tasks.yaml``); one that repeats a seed (exact, near or
semantic, on the fields the seed has) is dropped with ``duplicate_of: "seed_task:<id>"``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instructkit.records import Record
from instructkit.steps.dedup.text import exact_hash, normalize, record_text

if TYPE_CHECKING:
    from instructkit.steps.dedup.stage import DedupStep

logger = logging.getLogger("instructkit")

__all__ = ["SeedMatcher", "load_seed_tasks"]


def load_seed_tasks(path: str | Path | None) -> dict[str, dict[str, str]]:
    """Seed tasks by id from a YAML list (or ``{tasks: [...]}``); {} when absent or unreadable."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("dedup: seed tasks %s unreadable (%s); not comparing with seeds",
                       p, type(exc).__name__)
        return {}
    if isinstance(data, Mapping):
        data = data.get("tasks") or data.get("seed_tasks") or []
    tasks: dict[str, dict[str, str]] = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or "id" not in item:
            continue
        texts = {k: str(v) for k, v in item.items()
                 if k in ("instruction", "input", "output") and isinstance(v, (str, int, float)) and str(v).strip()}
        if "instruction" in texts:
            tasks[str(item["id"])] = texts
    return tasks


class SeedMatcher:
    """Compares a record with the seed tasks it names, with the step's kinds and thresholds."""

    def __init__(self, step: "DedupStep") -> None:
        self.step = step
        self._cache: dict[tuple[str, tuple[str, ...], str], Any] = {}

    def repeated_seed(self, rec: Record) -> tuple[str, str, float] | None:
        """(kind, seed id, similarity) of the first seed the record repeats, else None."""
        tasks = self.step.seed_tasks
        prov = rec.get("provenance") or {}
        for sid in (str(s) for s in (prov.get("seed_task_ids") or [])):
            if sid not in tasks:
                continue
            hit = self._compare(rec, sid)
            if hit:
                return hit[0], sid, hit[1]
        return None

    def _repr(self, seed_id: str, fields: tuple[str, ...], kind: str) -> Any:
        key = (seed_id, fields, kind)
        if key not in self._cache:
            text = record_text(self.step.seed_tasks[seed_id], fields)
            if kind == "exact":
                self._cache[key] = exact_hash(normalize(text))
            elif kind == "near":
                self._cache[key] = self.step.signatures([normalize(text)])[0][0]
            else:
                self._cache[key] = self.step.embedder.embed([text])[0]
        return self._cache[key]

    def _compare(self, rec: Record, sid: str) -> tuple[str, float] | None:
        step = self.step
        present = step.seed_tasks[sid]
        kinds = [("exact", step.exact, step.exact_fields), ("near", step.near, step.near_fields),
                 ("semantic", step.semantic, step.semantic_fields)]
        for kind, on, fields in kinds:
            if not on:
                continue
            # compare only the fields the seed task has (seeds may lack input/output)
            sub = tuple(f for f in fields if f in present)
            if not sub:
                continue
            text = record_text(rec, sub)
            if kind == "exact":
                if exact_hash(normalize(text)) == self._repr(sid, sub, kind):
                    return kind, 1.0
            elif kind == "near":
                sig = step.signatures([normalize(text)])[0][0]
                sim = float((sig == self._repr(sid, sub, kind)).mean())
                if sim >= step.near_threshold:
                    return kind, sim
            else:
                vec = step.embedder.embed([text])[0]
                sim = float(vec @ self._repr(sid, sub, kind))
                if sim >= step.semantic_threshold:
                    return kind, sim
        return None
