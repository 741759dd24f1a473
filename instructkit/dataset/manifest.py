"""The run manifest: what ran, on what, with which versions, every stage's merged figures,
the counts of the written records and the sha256 of every data file.

It is rendered from merged values only (``StepStats`` and ``DatasetCounts`` added up
across workers); the card and the report read it and nothing else about the run.
"""

from __future__ import annotations

import datetime as _dt
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from instructkit.dataset.counts import DatasetCounts
from instructkit.steps.base import Step, StepStats

__all__ = ["build_manifest", "package_versions", "step_entry"]

_PACKAGES = ("instructkit", "datasets", "huggingface_hub", "pyarrow", "jsonschema", "jinja2",
             "openai", "llama_cpp_python", "sentence-transformers", "faiss-cpu",
             "langchain-text-splitters", "presidio-analyzer", "presidio-anonymizer", "spacy",
             "torch", "numpy", "ray", "onnxruntime", "model2vec", "bm25s")


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="seconds")


def step_entry(step: Step, stats: StepStats) -> dict[str, Any]:
    """A step's manifest row: merged counts, finalized figures, settings and card markdown."""
    stats = StepStats(stats.name, stats.n_in, stats.n_out, stats.dropped, stats.seconds,
                      step.finalize(dict(stats.extra)))
    entry = stats.as_dict()
    settings = step.settings()
    if settings:
        entry["settings"] = settings
    section = step.card_section(stats)
    if section:
        entry["card_section"] = str(section).strip()
    return entry


def build_manifest(*, recipe: Any, seed: int, limit: int | None, sources: Iterable[Any],
                   builders: Iterable[tuple[Step, StepStats]], stages: Iterable[tuple[Step, StepStats]],
                   counts: DatasetCounts, quarantined: int, started: float, finished: float,
                   formats: list[str], data_files: Mapping[str, str] | None = None,
                   executor: Mapping[str, Any] | None = None,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from instructkit import __version__

    m: dict[str, Any] = {
        "instructkit_version": __version__,
        "recipe": ({"name": recipe.name, "sha256": recipe.sha256, "file": "recipe.yaml"}
                   if recipe is not None else None),
        "seed": seed,
        "limit": limit,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "seconds": round(finished - started, 3),
        "python": platform.python_version(),
        "packages": package_versions(),
        "executor": dict(executor or {"name": "local", "workers": 1}),
        "sources": [s.info() for s in sources],
        "builders": [{**step_entry(b, st), "method": b.method} for b, st in builders],
        "stages": [step_entry(s, st) for s, st in stages],
        "records": counts.records,
        "quarantined": quarantined,
        "counts": counts.as_dict(),
        "formats": list(formats),
        "data_files": dict(data_files or {}),
    }
    m.update(extra or {})
    return m
