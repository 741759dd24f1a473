"""The Ray executor: the same builders and steps on a Ray cluster, through Ray Data.

- With no address, a local cluster is started for the run (and stopped after); with
  ``auto`` or ``HOST:PORT`` the run joins a cluster started with ``ray start``. A cluster
  already initialised in this process (``ray.init``) is used as it is.
- Builders run on the driver; their records are spilled in bounded memory to Parquet parts
  in the staging folder (``.parts/ray/``) and read back with ``ray.data.read_parquet``.
- The steps run in actor pools (``SegmentWorker``, ``workers`` actors each), made in each
  actor from the recipe: steps before dedup, then dedup's phases (``ray_dedup``), then the
  steps after it, whose workers stream into the dataset sink (``ShardSink``): every worker
  writes its own shards, export parts and quarantine part, in the local executor's layout,
  and ``DatasetWriter.assemble`` gathers them.
- Every worker's figures come back as ``StepStats`` and are added up (``+``).
- The LLM client's RPM/TPM limits hold across workers (one limiter actor).

Paths in the recipe, the output folder and its staging folder must be visible at the same
path on every node (shared storage) when the cluster has more than one.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instructkit._exceptions import RecipeError
from instructkit._resources import require
from instructkit.dataset.counts import DatasetCounts
from instructkit.executors.base import Execution
from instructkit.executors.local import until_budget
from instructkit.executors.ray_workers import (POS, RECORD, STATS, StepRef, WorkerSpec, context_fields,
                                               latest_snapshots, merge_snapshots, records_only, stats_rows)
from instructkit.progress import progress_iter
from instructkit.steps.base import Quarantine, StepStats, merge_figures

if TYPE_CHECKING:
    from instructkit.dataset.writer import DatasetWriter
    from instructkit.pipeline import Pipeline

logger = logging.getLogger("instructkit")

__all__ = ["RayExecutor"]

#: environment a worker needs to read the same paths offline (never tokens or keys)
WORKER_ENV = ("INSTRUCTKIT_ALLOW_PATHS", "INSTRUCTKIT_SHARED_DATA", "INSTRUCTKIT_CACHE_DIR",
              "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
#: records per spilled input part (one Ray block each)
PART_ROWS = 4096
#: blocks per worker actor at least (so a slow-starting actor still gets its share)
BLOCKS_PER_WORKER = 32
#: the smallest batch a worker step gets (spaCy's nlp.pipe and the shuffles want some)
MIN_BATCH = 16
#: CPUs a light task (reading parts, writing shards) asks for
LIGHT_CPUS = 0.2
#: CPUs left to Ray Data's own tasks while the worker actors run (listing the input files
#: asks for a whole one); without them the actors wait for input that never comes
RESERVED_CPUS = 1.0


class RayExecutor:
    """Run a recipe's pipeline on Ray Data (``instructkit[ray]``)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 batch_size: int = 256, partitions: int | None = None) -> None:
        self.address = address or None
        self.workers = int(workers) if workers else None
        self.batch_size = max(1, int(batch_size))
        self.partitions = partitions
        self._batch = self.batch_size

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "RayExecutor":
        from instructkit._resources import schema_defaults

        c = {**schema_defaults("execution.schema.json"), **dict(cfg or {})}
        return cls(c.get("address"), c.get("workers"), c.get("batch_size") or 256, c.get("partitions"))

    # -- the cluster ------------------------------------------------------------------------------
    def _connect(self, quiet: bool) -> bool:
        """Start or join a cluster unless this process already has one; True if we did."""
        ray = require("ray", "ray", "the Ray executor")
        # dedup's verify and filter phases use Dataset.join, which needs polars; say so now,
        # not from inside a worker halfway through the run
        require("polars", "ray", "the Ray executor's dedup joins")
        if ray.is_initialized():
            return False
        env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "include_dashboard": False,
                                  "runtime_env": {"env_vars": env}}
        if quiet:
            kwargs["log_to_driver"] = False
        if self.address:
            ray.init(address=self.address, **kwargs)
        else:
            ray.init(**kwargs)
        return True

    def run(self, pipeline: "Pipeline", writer: "DatasetWriter | None", *,
            quiet: bool = False) -> Execution:
        if pipeline.recipe is None:
            raise RecipeError(["execution.executor: the ray executor runs pipelines made from a recipe "
                               "(Pipeline.from_recipe); its workers make the steps from it"])
        import ray

        started_here = self._connect(quiet)
        try:
            return self._execute(pipeline, writer, quiet)
        finally:
            if started_here:
                ray.shutdown()

    # -- the run ----------------------------------------------------------------------------------
    def _execute(self, pipeline: "Pipeline", writer: "DatasetWriter | None", quiet: bool) -> Execution:
        import ray

        dctx = ray.data.DataContext.get_current()
        dctx.enable_progress_bars = not quiet
        if quiet:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        cpus = float(ray.cluster_resources().get("CPU", 1))
        workers = self.workers or max(1, int(cpus))
        self._actor_cpus = max(0.1, min(1.0, (cpus - RESERVED_CPUS) / workers))
        refs = step_refs(pipeline)
        with tempfile.TemporaryDirectory(prefix="instructkit-ray-",
                                         dir=str(writer.staging) if writer else None) as scratch:
            driver_q = Quarantine(writer.quarantine_path(0) if writer is not None else None)
            try:
                n, stopped = self._spill(pipeline, driver_q, Path(scratch), quiet)
            finally:
                driver_q.close()
            spec = self._spec(pipeline, writer, refs, workers)
            snapshots: list[bytes] = []
            driver_stats: dict[int, StepStats] = {}
            counts = DatasetCounts()
            if n:
                self._batch, blocks = work_split(n, workers, self.batch_size)
                parts = ray.data.read_parquet(scratch, num_cpus=LIGHT_CPUS, override_num_blocks=blocks)
                if blocks > -(-n // PART_ROWS):  # fewer parts than blocks: split them
                    parts = parts.repartition(blocks)
                counts = self._steps(parts, pipeline, refs, spec, workers, n,
                                     writer, snapshots, driver_stats)
        merged, stops, usage = merge_snapshots(latest_snapshots(snapshots).values())
        stages = []
        for ref, step in zip(refs, pipeline.stages):
            st = merged.get(ref.number, StepStats(step.name))
            if ref.number in driver_stats:
                st = st + driver_stats[ref.number]
            stages.append((step, st))
        quarantined = len(driver_q) + sum(sum(st.dropped.values()) for _, st in stages)
        info: dict[str, Any] = {"name": self.name, "workers": workers, "address": self.address or "local",
                                "ray": ray.__version__}
        if usage:
            info["llm_usage_workers"] = _merge_usage(usage)
        return Execution(builders=[(b, b.collect()) for b in pipeline.builders], stages=stages,
                         counts=counts, quarantined=quarantined,
                         stopped_early=(stopped or stops or [None])[0], info=info)

    def _spill(self, pipeline: "Pipeline", quarantine: Quarantine, scratch: Path,
               quiet: bool) -> tuple[int, list[str]]:
        """Run the builders here and write their records, numbered, to Parquet parts."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from instructkit.executors.ray_workers import encode_records

        scrub = pipeline.quarantine_scrubber()
        for b in pipeline.builders:
            b.bind(quarantine, scrub)
        stopped: list[str] = []
        limit = pipeline.context.limit
        stream = until_budget(itertools.chain.from_iterable(b.build(limit) for b in pipeline.builders), stopped)
        n, part = 0, 0
        batch: list = []
        schema = pa.schema([(POS, pa.int64()), (RECORD, pa.binary())])

        def flush() -> None:
            nonlocal part, batch
            pq.write_table(pa.table(encode_records(batch, range(n - len(batch), n)), schema=schema),
                           scratch / f"input-{part:06d}.parquet")
            part, batch = part + 1, []

        for rec in progress_iter(stream, "building records", quiet=quiet):
            batch.append(rec)
            n += 1
            if len(batch) >= PART_ROWS:
                flush()
        if batch:
            flush()
        return n, stopped

    def _spec(self, pipeline: "Pipeline", writer: "DatasetWriter | None", refs: list[StepRef],
              workers: int) -> WorkerSpec:
        from instructkit.executors.ray_limiter import start_limiter

        limiter = None
        if any(r.stage == "judge" for r in refs):
            llm = (pipeline.recipe.data.get("llm") or {})
            limiter = start_limiter(llm.get("rpm"), llm.get("tpm"))
        scrubber = next((r for r, s in zip(refs, pipeline.stages) if s.quarantine_scrubber() is not None), None)
        return WorkerSpec(recipe=pipeline.recipe.data, context=context_fields(pipeline.context), steps=[],
                          segment="", staging=str(writer.staging) if writer is not None else None,
                          scrubber=scrubber, cwd=os.getcwd(), limiter=limiter)

    def _segment(self, ds: Any, spec: WorkerSpec, steps: list[StepRef], name: str, workers: int,
                 dedup: StepRef | None = None) -> Any:
        from dataclasses import replace

        from instructkit.executors.ray_workers import SegmentWorker

        seg = replace(spec, steps=steps, segment=name, dedup=dedup)
        return ds.map_batches(SegmentWorker, fn_constructor_kwargs={"spec": seg},
                              **actor_pool(workers, self._actor_cpus),
                              batch_size=self._batch, batch_format="pyarrow")

    def _steps(self, ds: Any, pipeline: "Pipeline", refs: list[StepRef], spec: WorkerSpec, workers: int,
               n: int, writer: "DatasetWriter | None", snapshots: list[bytes],
               driver_stats: dict[int, StepStats]) -> DatasetCounts:
        """Steps before dedup, dedup's phases, the steps after it into the sink."""
        from dataclasses import replace

        from instructkit.executors.ray_dedup import run_dedup
        from instructkit.executors.ray_sink import ShardSink
        from instructkit.steps.dedup.stage import DedupStep

        at = next((i for i, s in enumerate(pipeline.stages) if isinstance(s, DedupStep)), None)
        tail, dedup = refs, None
        if at is not None:
            if at > 0:
                t0 = time.perf_counter()
                out = self._segment(ds, spec, refs[:at], "a", workers).materialize()
                logger.debug("ray: steps before dedup took %.1fs", time.perf_counter() - t0)
                snapshots += [r[STATS] for r in out.map_batches(stats_rows, batch_format="pyarrow").take_all()]
                ds = out.map_batches(records_only, batch_format="pyarrow")
            dedup, tail = refs[at], refs[at + 1:]
            partitions = self.partitions or max(2 * workers, n // 250_000 + 1)
            ds, driver_stats[dedup.number] = run_dedup(
                ds, replace(spec, dedup=dedup), pipeline.stages[at], workers=workers,
                partitions=partitions, batch_size=max(self.batch_size, 1024),
                pool=actor_pool(workers, self._actor_cpus))
            t0 = time.perf_counter()
            ds = ds.materialize()  # the shuffles are done before the next actors take the CPUs
            logger.debug("ray: dedup join took %.1fs", time.perf_counter() - t0)
        out = self._segment(ds, spec, tail, "b" if dedup else "a", workers, dedup)
        sink = ShardSink(str(writer.staging) if writer is not None else None,
                         writer.formats if writer is not None else [],
                         writer.shard_rows if writer is not None else 200_000)
        t0 = time.perf_counter()
        out.write_datasink(sink, ray_remote_args={"num_cpus": LIGHT_CPUS})
        logger.debug("ray: steps after dedup and writing took %.1fs", time.perf_counter() - t0)
        snapshots += sink.stats
        return sink.counts


def work_split(n: int, workers: int, batch_size: int) -> tuple[int, int]:
    """(batch size, blocks) for ``n`` records on ``workers`` actors.

    Ray Data hands an actor whole blocks, bundled up to the batch size, and an actor that is
    ready first takes more than one. With a few large blocks one actor ends up with most of
    the work (the heavy actors load their models at different speeds), so the records are
    cut into at least ``BLOCKS_PER_WORKER`` blocks per worker, each at least one batch, and
    small runs use smaller batches."""
    batch = max(MIN_BATCH, min(batch_size, n // (BLOCKS_PER_WORKER * workers) or 1))
    blocks = max(-(-n // PART_ROWS), min(BLOCKS_PER_WORKER * workers, max(1, n // batch)))
    return batch, blocks


def actor_pool(workers: int, cpus: float) -> dict[str, Any]:
    """``map_batches`` arguments for a pool of ``workers`` actors of ``cpus`` CPUs each."""
    import ray

    # one task at a time per actor: a task queued behind a busy actor while another actor is
    # idle is time lost at the end of a run (the tasks are CPU-bound; prefetching gains nothing)
    return {"compute": ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
            "num_cpus": cpus}


def step_refs(pipeline: "Pipeline") -> list[StepRef]:
    """How each of the pipeline's steps is made again in a worker: its stage and its place
    among that stage's steps."""
    seen: dict[str, int] = {}
    refs = []
    for number, step in enumerate(pipeline.stages):
        if step.stage is None:
            raise RecipeError([f"execution.executor: step {step.name!r} was not made by a recipe stage; "
                               "the ray executor makes every step from the recipe"])
        refs.append(StepRef(step.stage, seen.get(step.stage, 0), step.name, number))
        seen[step.stage] = seen.get(step.stage, 0) + 1
    return refs


def _merge_usage(usages: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for u in usages:
        u = {k: v for k, v in u.items() if k not in ("max_requests", "max_cost", "model", "provider")}
        out = merge_figures(out, u)
    return out
