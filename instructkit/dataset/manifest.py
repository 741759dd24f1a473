"""The run manifest: what ran, on what, with which versions, and every stage's counts."""

from __future__ import annotations

import datetime as _dt
import platform
import time
from importlib import metadata
from typing import Any

__all__ = ["build_manifest", "package_versions"]

_PACKAGES = ("instructkit", "datasets", "huggingface_hub", "pyarrow", "jsonschema", "jinja2",
             "openai", "llama_cpp_python", "sentence-transformers", "faiss-cpu",
             "langchain-text-splitters", "presidio-analyzer", "presidio-anonymizer", "spacy",
             "torch", "numpy", "onnxruntime", "model2vec", "bm25s")


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


def build_manifest(pipeline: Any, *, started: float, n_records: int, quarantine: Any,
                   writer: Any = None) -> dict[str, Any]:
    from instructkit import __version__

    ctx = pipeline.context
    recipe = getattr(pipeline, "recipe", None)
    finished = time.time()
    m: dict[str, Any] = {
        "instructkit_version": __version__,
        "recipe": ({"name": recipe.name, "sha256": recipe.sha256, "file": "recipe.yaml"}
                   if recipe is not None else None),
        "seed": ctx.seed,
        "limit": ctx.limit,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "seconds": round(finished - started, 3),
        "python": platform.python_version(),
        "packages": package_versions(),
        "sources": [s.info() for s in pipeline.sources.values()],
        # card sections travel in the manifest so `publish` can re-render the card from the folder
        "builders": [{**b.stats.as_dict(), "method": b.method, "summary": b.summary(),
                      "card_section": b.card_section()} for b in pipeline.builders],
        "stages": [{**s.stats.as_dict(), "card_section": s.card_section()} for s in pipeline.stages],
        "records": n_records,
        "quarantined": len(quarantine),
    }
    if writer is not None:
        m["counts"] = {k: dict(sorted(v.items())) for k, v in writer.counts.items()}
        m["formats"] = writer.formats
    # the sentence embedder(s) the run used (retrieval, citation check, semantic dedup)
    embedders = [obj.describe() for key, obj in getattr(ctx, "_shared", {}).items()
                 if key.split(":", 1)[0] == "embedder" and hasattr(obj, "describe")]
    if embedders:
        m["embedders"] = embedders
    # the LLM usage ledger, when any builder or stage used the model
    llm = ctx.get("llm")
    if llm is not None and getattr(llm, "ledger", None) is not None:
        m["llm_usage"] = llm.ledger.as_dict()
    return m
