"""The pipeline: a recipe's builders and steps, assembled; an executor runs them into a
dataset folder.

``Pipeline.from_recipe(recipe)`` and a ``Pipeline`` assembled by hand in Python run the
same code, so a recipe and the equivalent Python give the same records.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import EmptyDatasetError
from instructkit.context import RunContext
from instructkit.recordbuilders.base import Builder
from instructkit.records import Record
from instructkit.registry import BUILDERS, DEFAULT_STAGES, STAGE_ORDER, STAGES, resolve
from instructkit.steps.base import Quarantine, Step

logger = logging.getLogger("instructkit")

__all__ = ["Pipeline", "RunResult", "stages_from_config", "stage_steps"]


@dataclass
class RunResult:
    """What a finished run wrote and counted."""

    out_dir: Path | None
    records: int
    quarantined: int
    manifest: dict[str, Any] = field(default_factory=dict)


def stages_from_config(stages_cfg: dict[str, Any] | None, ctx: RunContext) -> list[Step]:
    """Instantiate the recipe's stages in the fixed order; defaults on unless set to false.
    A record-limits step always comes first (it keeps oversized texts out of the models)."""
    steps: list[Step] = []
    for name in ["limits", *STAGE_ORDER]:
        steps.extend(stage_steps(name, stages_cfg, ctx))
    return steps


def stage_steps(name: str, stages_cfg: dict[str, Any] | None, ctx: RunContext) -> list[Step]:
    """The steps the stage ``name`` makes from the recipe's ``stages:`` ([] when it is off),
    each marked with ``step.stage = name`` (an executor rebuilds steps in its workers so)."""
    stages_cfg = dict(stages_cfg or {})
    if name == "limits":
        from instructkit.steps.limits import RecordLimitsFilter

        made: Any = RecordLimitsFilter.from_config(stages_cfg.get("limits") or {}, ctx)
    else:
        cfg = stages_cfg.get(name, name in DEFAULT_STAGES)
        if cfg is False or cfg is None:
            return []
        made = resolve(STAGES[name]).from_config({} if cfg is True else dict(cfg), ctx)
    steps = made if isinstance(made, list) else [made]
    for step in steps:
        step.stage = name
    return steps


class Pipeline:
    """Builders produce records; steps pass them on or drop them into the quarantine."""

    def __init__(self, builders: Iterable[Builder], stages: Iterable[Step] = (), *,
                 context: RunContext | None = None, sources: dict[str, Any] | None = None,
                 recipe: Any = None) -> None:
        self.builders = list(builders)
        self.stages = list(stages)
        self.context = context or RunContext()
        self.sources = dict(sources or {})
        self.recipe = recipe

    # -- assembly ------------------------------------------------------------------------
    @classmethod
    def from_recipe(cls, recipe: Any, *, seed: int | None = None, limit: int | None = None,
                    context: RunContext | None = None) -> "Pipeline":
        from instructkit.recipe.load import Recipe, load_recipe
        from instructkit.recipe.path_fields import check_recipe_paths
        from instructkit.recipe.sources import sources_from_recipe

        if not isinstance(recipe, Recipe):
            recipe = load_recipe(recipe)
        ctx = context or RunContext()
        ctx.recipe = recipe.data
        ctx.recipe_dir = recipe.path.parent if recipe.path is not None else None
        ctx.trusted_recipe = recipe.shipped
        # every path field of the recipe, found from the schemas, before anything is read
        check_recipe_paths(recipe.data, ctx, str(recipe.path) if recipe.path else None)
        ctx.seed = recipe.data.get("seed", 0) if seed is None else seed
        ctx.limit = limit if limit is not None else ctx.limit
        sources = sources_from_recipe(recipe.data, ctx)
        builders = []
        for bcfg in recipe.data["builders"]:
            bcls = resolve(BUILDERS[bcfg["type"]])
            b = bcls.from_config(dict(bcfg), sources, ctx)
            if not getattr(b, "_named", False) and bcfg.get("name"):
                b.name = bcfg["name"]
            builders.append(b)
        stages = stages_from_config(recipe.data.get("stages"), ctx)
        return cls(builders, stages, context=ctx, sources=sources, recipe=recipe)

    @property
    def steps(self) -> list[Step]:
        return [*self.builders, *self.stages]

    def quarantine_scrubber(self) -> Callable[[str], str] | None:
        """The scrubber every quarantine entry of this run passes through (the first step
        that offers one: the anonymizer), so a record dropped before anonymization does not
        put PHI on disk."""
        for step in self.stages:
            scrub = step.quarantine_scrubber()
            if scrub is not None:
                return scrub
        return None

    # -- running -------------------------------------------------------------------------
    def stream(self, quarantine: Quarantine) -> Iterator[Record]:
        """Bind every step to ``quarantine`` and chain builders and steps (lazy)."""
        scrub = self.quarantine_scrubber()
        for step in self.steps:
            step.bind(quarantine, scrub)
        limit = self.context.limit
        stream: Iterable[Record] = itertools.chain.from_iterable(b.build(limit) for b in self.builders)
        for stage in self.stages:
            stream = stage(stream)
        return iter(stream)

    def records(self, quarantine: Quarantine | None = None) -> Iterator[Record]:
        """Stream every record through builders and stages, in this process (lazy)."""
        yield from self.stream(quarantine if quarantine is not None else Quarantine())

    def run(self, out_dir: str | Path | None = None, *, quiet: bool = False,
            formats: Iterable[str] | None = None, executor: Any = None,
            allow_empty: bool | None = None) -> RunResult:
        """Run to the end. With ``out_dir``, write the dataset folder: into a staging folder
        beside it, swapped into place only when every file is written."""
        from instructkit.dataset.writer import DatasetWriter
        from instructkit.executors import executor_from_config

        started = time.time()
        ctx = self.context
        from instructkit._resources import schema_defaults

        recipe_data = getattr(self.recipe, "data", {}) or {}
        output_cfg = {**schema_defaults("recipe.schema.json", "output"), **(recipe_data.get("output") or {})}
        executor = executor or executor_from_config(recipe_data.get("execution"))
        allow_empty = output_cfg["allow_empty"] if allow_empty is None else allow_empty
        try:
            if out_dir is None:
                ex = executor.run(self, None, quiet=quiet)
                self._check_not_empty(ex, allow_empty)
                return RunResult(None, ex.counts.records, ex.quarantined,
                                 self._manifest(ex, started, [], None))
            formats = list(formats or output_cfg.get("formats") or ["messages"])
            with DatasetWriter(out_dir, formats=formats, shard_rows=output_cfg["shard_rows"],
                               reads=self.read_paths()) as writer:
                ex = executor.run(self, writer, quiet=quiet)
                self._check_not_empty(ex, allow_empty)
                writer.assemble()
                export_order = self._training_exports(writer, output_cfg)
                manifest = self._manifest(ex, started, writer.formats, writer.hash_files())
                if export_order:
                    manifest["export_order"] = export_order
                writer.commit(manifest, recipe_text=getattr(self.recipe, "text", None),
                              extras=self._extras(output_cfg))
            return RunResult(Path(out_dir), ex.counts.records, ex.quarantined, manifest)
        finally:
            ctx.close()

    def read_paths(self) -> list[tuple[str, Path]]:
        """(what, path) of every local file or folder the run reads: sources, and the
        documents of RAG builders. The output folder may not overlap any of them."""
        reads = [(f"source '{name}'", Path(src.path)) for name, src in self.sources.items()
                 if getattr(src, "path", None)]
        for b in self.builders:
            for i, spec in enumerate(getattr(b, "document_specs", None) or []):
                if isinstance(spec, dict) and spec.get("path"):
                    reads.append((f"builder '{b.name}' documents.{i}", _local_path(spec["path"])))
        return [(what, p) for what, p in reads if p is not None]

    def _manifest(self, ex: Any, started: float, formats: list[str],
                  data_files: dict[str, str] | None) -> dict[str, Any]:
        from instructkit.dataset.manifest import build_manifest

        extra: dict[str, Any] = {}
        if ex.stopped_early:
            extra["stopped_early"] = ex.stopped_early
        llm = self.context.get("llm")
        if llm is not None and getattr(llm, "ledger", None) is not None:
            extra["llm_usage"] = llm.ledger.as_dict()
        # the sentence embedder(s) the run used (retrieval, citation check, relevance, dedup)
        embedders = [obj.describe() for key, obj in self.context._shared.items()
                     if key.split(":", 1)[0] == "embedder" and hasattr(obj, "describe")]
        if embedders:
            extra["embedders"] = embedders
        if self.context.phi_free_sources or self.context.phi_free_copies:
            # what the audit at publish holds apart (steps/audit.py PhiFreeScope)
            extra["phi_free"] = {"sources": sorted(self.context.phi_free_sources),
                                 "copies": sorted(self.context.phi_free_copies)}
        extra.update(self.context.manifest_notes)
        return build_manifest(recipe=self.recipe, seed=self.context.seed, limit=self.context.limit,
                              sources=self.sources.values(), builders=ex.builders, stages=ex.stages,
                              counts=ex.counts, quarantined=ex.quarantined, started=started,
                              finished=time.time(), formats=formats, data_files=data_files,
                              executor=ex.info, extra=extra)

    def _training_exports(self, writer: Any, output_cfg: dict[str, Any]) -> dict[str, Any] | None:
        """Phase exports and the curriculum order (``output.phases``, ``output.curriculum``),
        from the written records; before the manifest, which records the choice."""
        from instructkit.dataset.phases import write_phase_exports

        return write_phase_exports(writer.staging, output_cfg, writer.formats)

    def _extras(self, output_cfg: dict[str, Any]) -> list[Callable[[Path, dict], None]]:
        """Files written into the folder after the card (the report, phase exports)."""
        extras: list[Callable[[Path, dict], None]] = []
        if output_cfg.get("report"):
            from instructkit.dataset.report import build_extra

            extras.append(build_extra)
        return extras

    def _check_not_empty(self, ex: Any, allow_empty: bool) -> None:
        if ex.counts.records or allow_empty:
            return
        raise EmptyDatasetError(empty_reason(ex))


def _local_path(raw: Any) -> Path | None:
    """A recipe path as the run resolves it, or None when it is not a local one."""
    from instructkit.recipe.load import resolve_path

    try:
        return Path(resolve_path(str(raw)))
    except Exception:  # noqa: BLE001 - the builder reports a bad path itself, with context
        return None


def empty_reason(ex: Any) -> str:
    """Why a run wrote nothing, from its figures: the builder or stage that dropped most."""
    parts = []
    for step, st in [*ex.builders, *ex.stages]:
        if not st.dropped:
            continue
        reason, n = st.dropped.most_common(1)[0]
        detail = ""
        missing = (st.extra or {}).get("missing_fields") or {}
        if reason == "missing_field" and missing:
            col, k = max(missing.items(), key=lambda kv: kv[1])
            detail = f": rows lacked column '{col}' ({k} rows); check the builder's `columns:` mapping"
        parts.append(f"{st.name} dropped {sum(st.dropped.values())} ({reason} {n}){detail}")
    if not parts:
        builders = ", ".join(f"{st.name} made {st.n_out}" for _, st in ex.builders) or "no builders"
        return f"the build wrote 0 records ({builders}); are the sources empty?"
    return "the build wrote 0 records: " + "; ".join(parts)
