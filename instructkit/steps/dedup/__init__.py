"""The dedup stage: benchmark decontamination, then exact / near / semantic dedup.

Recipe (``stages.dedup``, schema ``schemas/stages/dedup.schema.json``)::

    stages:
      dedup:
        exact: true                       # normalised-text hash
        near: {threshold: 0.7, num_perm: 128, shingle_size: 1}
        semantic: {threshold: 0.95}       # off unless set (embeds every record)
        keep: {order: [method, judge_score, relevance, output_length, id],
               method_order: [template, rag, synthetic]}
        decontaminate:
          - {path: ../shared/data/decontam/medqa_usmle_4opt_test.jsonl, optional: true}
          - {path: ../shared/data/pubmedqa, adapter: pubmedqa}
        decontamination: {ngram: 13, min_ngram: 8}

``DedupStage.from_config`` returns up to two steps: ``decontaminate`` (streaming, runs
first so a contaminated record is never chosen as the kept copy of a cluster) and
``dedup``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from instructkit._exceptions import RecipeError
from instructkit.context import RunContext
from instructkit.steps.base import Step
from instructkit.steps.dedup.decontam import (ADAPTERS, Benchmark, BenchmarkItem, DecontaminateStep, benchmark_from_spec,
                       load_benchmark)
from instructkit.steps.dedup.keep import KeepRule
from instructkit.steps.dedup.stage import DEFAULT_FIELDS, DedupStep, load_seed_tasks
from instructkit.steps.dedup.text import normalize

__all__ = ["DedupStage", "DedupStep", "DecontaminateStep", "KeepRule", "Benchmark",
           "BenchmarkItem", "load_benchmark", "benchmark_from_spec", "ADAPTERS", "normalize",
           "DEFAULT_NEAR_THRESHOLD", "DEFAULT_SEMANTIC_THRESHOLD"]

DEFAULT_NEAR_THRESHOLD = 0.7
DEFAULT_SHINGLE_SIZE = 1
DEFAULT_SEMANTIC_THRESHOLD = 0.95


def _kind(value: Any, threshold_default: float, name: str) -> dict[str, Any] | None:
    """``true`` / a threshold / a mapping -> settings dict; ``false`` / None -> None."""
    if value is None or value is False:
        return None
    if value is True:
        return {"threshold": threshold_default}
    if isinstance(value, (int, float)):
        return {"threshold": float(value)}
    if isinstance(value, Mapping):
        return {"threshold": threshold_default, **value}
    raise RecipeError([f"stages.dedup.{name}: expected true/false, a threshold or a mapping"])


class DedupStage:
    """Factory for the ``dedup`` stage (registry name ``dedup``)."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, ctx: RunContext | None = None) -> list[Step]:
        cfg = dict(config or {})
        ctx = ctx or RunContext()
        steps: list[Step] = []
        decon = cls.decontaminate_step(cfg.get("decontaminate"), cfg.get("decontamination"))
        if decon is not None:
            steps.append(decon)
        steps.append(cls.dedup_step(cfg, ctx))
        return steps

    @staticmethod
    def decontaminate_step(specs: Any, settings: Mapping[str, Any] | None = None) -> DecontaminateStep | None:
        if not specs:
            return None
        if isinstance(specs, (str, Mapping)):
            specs = [specs]
        benchmarks: list[Benchmark] = []
        skipped: list[str] = []
        for spec in specs:
            bench = benchmark_from_spec(spec)
            if bench is None:
                skipped.append(str(spec.get("name") or spec.get("path") or spec.get("dataset"))
                               if isinstance(spec, Mapping) else str(spec))
            else:
                benchmarks.append(bench)
        s = dict(settings or {})
        return DecontaminateStep(benchmarks, ngram=s.get("ngram", 13), min_ngram=s.get("min_ngram", 8),
                                 min_exact_words=s.get("min_exact_words", 4),
                                 fields=s.get("fields", DEFAULT_FIELDS), skipped=skipped)

    @staticmethod
    def dedup_step(cfg: Mapping[str, Any], ctx: RunContext) -> DedupStep:
        from instructkit._resources import prompts_dir

        fields = tuple(cfg.get("fields", DEFAULT_FIELDS))
        exact = cfg.get("exact", True)
        exact_fields = exact.get("fields") if isinstance(exact, Mapping) else None
        near = _kind(cfg.get("near", True), DEFAULT_NEAR_THRESHOLD, "near")
        semantic = _kind(cfg.get("semantic", False), DEFAULT_SEMANTIC_THRESHOLD, "semantic")
        kwargs: dict[str, Any] = {}
        if near:
            kwargs.update(near_threshold=near["threshold"], num_perm=near.get("num_perm", 128),
                          shingle_size=near.get("shingle_size", DEFAULT_SHINGLE_SIZE), bands=near.get("bands"),
                          rows=near.get("rows"), near_fields=near.get("fields"),
                          near_min_words=near.get("min_words", 12))
        if semantic:
            from instructkit.embeddings import EmbedderSettings, embedder_from_context

            model = semantic.get("model")
            embedder_settings = EmbedderSettings.from_config((ctx.recipe or {}).get("embedder"))
            kwargs.update(semantic_threshold=semantic["threshold"],
                          semantic_fields=semantic.get("fields"),
                          embedder=lambda: embedder_from_context(ctx, model),
                          embed_batch_size=semantic.get("batch_size"),
                          cache_vectors=embedder_settings.cache_vectors, cache_dir=ctx.cache_dir,
                          approximate_after=semantic.get("approximate_after", 100_000),
                          nlist=semantic.get("nlist"), nprobe=semantic.get("nprobe", 16))
        seed_path = cfg.get("seed_tasks", "default")
        if seed_path == "default":
            try:
                seed_path = prompts_dir() / "synthetic" / "seed_tasks.yaml"
            except FileNotFoundError:
                seed_path = None
        elif seed_path:
            from instructkit.recipe.load import resolve_path

            seed_path = resolve_path(str(seed_path))
        return DedupStep(fields=fields, exact=bool(exact), exact_fields=exact_fields,
                         near=bool(near), semantic=bool(semantic),
                         keep=KeepRule.from_config(cfg.get("keep")),
                         clustering=cfg.get("clustering", "star"), scope=cfg.get("scope", "task"),
                         seed_tasks=load_seed_tasks(seed_path) if seed_path else {},
                         batch_size=cfg.get("batch_size", 1024),
                         spill_after=cfg.get("spill_after", 50_000),
                         spill_dir=ctx.cache_dir, seed=ctx.seed, **kwargs)
