"""The pipeline: builders -> stages -> a dataset folder in Hugging Face Hub layout.

``Pipeline.from_recipe(recipe)`` and a ``Pipeline`` assembled by hand in Python run the
same code, so a recipe and the equivalent Python give the same records.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit.recordbuilders.base import Builder
from instructkit.context import RunContext
from instructkit.records import Record
from instructkit.registry import BUILDERS, DEFAULT_STAGES, STAGE_ORDER, STAGES, resolve
from instructkit.steps.base import Quarantine, Step

logger = logging.getLogger("instructkit")

__all__ = ["Pipeline", "RunResult", "stages_from_config"]


@dataclass
class RunResult:
    """What a finished run wrote and counted."""

    out_dir: Path | None
    records: int
    quarantined: int
    manifest: dict[str, Any] = field(default_factory=dict)


def stages_from_config(stages_cfg: dict[str, Any] | None, ctx: RunContext) -> list[Step]:
    """Instantiate the recipe's stages in the fixed order; defaults on unless set to false."""
    stages_cfg = dict(stages_cfg or {})
    steps: list[Step] = []
    for name in STAGE_ORDER:
        cfg = stages_cfg.get(name, name in DEFAULT_STAGES)
        if cfg is False or cfg is None:
            continue
        cls = resolve(STAGES[name])
        made = cls.from_config({} if cfg is True else dict(cfg), ctx)
        steps.extend(made if isinstance(made, list) else [made])
    return steps


class Pipeline:
    """Builders produce records; stages pass them on or drop them into the quarantine."""

    def __init__(self, builders: Iterable[Builder], stages: Iterable[Step] = (), *,
                 context: RunContext | None = None, sources: dict[str, Any] | None = None) -> None:
        self.builders = list(builders)
        self.stages = list(stages)
        self.context = context or RunContext()
        self.sources = dict(sources or {})
        self.quarantine = Quarantine()

    # -- assembly ------------------------------------------------------------------------
    @classmethod
    def from_recipe(cls, recipe: Any, *, seed: int | None = None, limit: int | None = None,
                    context: RunContext | None = None) -> "Pipeline":
        from instructkit.recipe.load import Recipe, load_recipe
        from instructkit.recipe.sources import sources_from_recipe

        if not isinstance(recipe, Recipe):
            recipe = load_recipe(recipe)
        ctx = context or RunContext()
        ctx.recipe = recipe.data
        ctx.seed = recipe.data.get("seed", 0) if seed is None else seed
        ctx.limit = limit if limit is not None else ctx.limit
        sources = sources_from_recipe(recipe.data)
        builders = []
        for i, bcfg in enumerate(recipe.data["builders"]):
            bcls = resolve(BUILDERS[bcfg["type"]])
            b = bcls.from_config(dict(bcfg), sources, ctx)
            if not getattr(b, "_named", False) and bcfg.get("name"):
                b.name = bcfg["name"]
            builders.append(b)
        stages = stages_from_config(recipe.data.get("stages"), ctx)
        pipe = cls(builders, stages, context=ctx, sources=sources)
        pipe.recipe = recipe
        return pipe

    # -- running -------------------------------------------------------------------------
    def bind(self, quarantine: Quarantine) -> None:
        self.quarantine = quarantine
        for step in (*self.builders, *self.stages):
            step.bind(quarantine)
        # stages that can scrub text (the anonymizer) protect the quarantine file itself
        for step in self.stages:
            scrub = getattr(step, "scrub_text", None)
            if scrub is not None:
                quarantine.scrub = scrub
                break

    def records(self, quarantine: Quarantine | None = None) -> Iterator[Record]:
        """Stream every record through builders and stages (lazy)."""
        self.bind(quarantine if quarantine is not None else Quarantine())
        limit = self.context.limit
        stream: Iterable[Record] = itertools.chain.from_iterable(
            b.build(limit) for b in self.builders)
        for stage in self.stages:
            stream = stage(stream)
        yield from stream

    def run(self, out_dir: str | Path | None = None, *, quiet: bool = False,
            formats: Iterable[str] | None = None) -> RunResult:
        """Run to the end. With ``out_dir``, write the dataset folder (see ``export``)."""
        from instructkit.dataset.writer import DatasetWriter

        started = time.time()
        ctx = self.context
        try:
            if out_dir is None:
                q = Quarantine()
                recs = list(self.records(q))
                return RunResult(None, len(recs), len(q), self.manifest(started, len(recs), q))
            out = Path(out_dir)
            writer = DatasetWriter(out, formats=formats or _recipe_formats(self))
            writer.prepare()
            q = Quarantine(out / "quarantine.jsonl")
            from instructkit.progress import progress_iter

            n = writer.write(progress_iter(self._until_budget(self.records(q)), "building records",
                                           quiet=quiet))
            q.close()
            manifest = self.manifest(started, n, q, writer=writer)
            if self.stopped_early:
                manifest["stopped_early"] = self.stopped_early
            writer.finish(self, manifest)
            return RunResult(out, n, len(q), manifest)
        finally:
            ctx.close()

    stopped_early: str | None = None

    def _until_budget(self, records: Iterable[Record]) -> Iterator[Record]:
        """Stop cleanly at a request/cost cap: what was made so far is kept and reported."""
        from instructkit._exceptions import BudgetExceeded

        try:
            yield from records
        except BudgetExceeded as exc:
            self.stopped_early = str(exc)
            logger.warning("stopped early: %s", exc)

    def manifest(self, started: float, n_records: int, quarantine: Quarantine,
                 writer: Any = None) -> dict[str, Any]:
        from instructkit.dataset.manifest import build_manifest

        return build_manifest(self, started=started, n_records=n_records,
                              quarantine=quarantine, writer=writer)


def _recipe_formats(pipe: Pipeline) -> list[str]:
    recipe = getattr(pipe, "recipe", None)
    if recipe is None:
        return ["messages"]
    return list(recipe.data.get("output", {}).get("formats", ["messages"]))
