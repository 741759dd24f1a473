"""What runs inside the Ray workers: steps rebuilt from the recipe, one actor per worker.

A ``SegmentWorker`` is a Ray Data actor (``map_batches`` with a class). Its constructor
builds its run of steps with the registry's stage factories from the recipe and the run's
settings, so the heavy objects (Presidio and spaCy, the embedder, the LLM client) are made
once per worker and never pickled from the driver. Each batch goes through the steps as a
list; the worker's dropped records go to its own quarantine part in the staging folder
(``.parts/quarantine-<segment>-<worker>.jsonl``), flushed after every batch.

Records travel between Ray operators as rows ``{pos, record}``: ``pos`` is the record's
place in the builders' output (the keep rule's last tie-break, and the key the dedup
decisions are joined on), ``record`` the pickled record. Each output batch ends with one
more row (``pos = -1``) carrying the worker's figures so far (``stats``: every step's
``StepStats``, pickled): the driver keeps each worker's latest and adds them up.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from instructkit._exceptions import BudgetExceeded
from instructkit.context import RunContext
from instructkit.records import Record
from instructkit.steps.base import Quarantine, Step, StepStats

logger = logging.getLogger("instructkit")

__all__ = ["WorkerSpec", "SegmentWorker", "StepRef", "build_steps", "encode_records",
           "decode_records", "worker_context", "stats_rows", "records_only", "latest_snapshots",
           "POS", "RECORD", "STATS", "DECISION_COLUMNS"]

POS, RECORD, STATS = "pos", "record", "stats"
#: columns the dedup filter reads (joined onto the records by position)
DECISION_COLUMNS = ("reason", "duplicate_of", "similarity", "seed_task")


@dataclass(frozen=True)
class StepRef:
    """Which step to make: the ``index``-th step of stage ``stage``, named ``name``, the
    ``number``-th step of the pipeline."""

    stage: str
    index: int
    name: str
    number: int


@dataclass
class WorkerSpec:
    """Everything a worker needs to make its steps (small and picklable)."""

    recipe: dict[str, Any]
    context: dict[str, Any]
    steps: list[StepRef]
    segment: str
    staging: str | None
    #: the step that offers the run's quarantine scrubber (the anonymizer), if any
    scrubber: StepRef | None = None
    #: the segment starts with the dedup filter (its decisions arrive joined to the records)
    dedup: StepRef | None = None
    cwd: str | None = None
    limiter: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def context_fields(ctx: RunContext) -> dict[str, Any]:
    """The run's settings a worker's ``RunContext`` needs (not its shared objects)."""
    keep = ("seed", "recipe", "limit", "max_requests", "cache_dir", "recipe_dir", "allowed_paths",
            "phi_free_sources", "phi_free_copies", "execution", "quiet")
    return {k: getattr(ctx, k) for k in keep}


def worker_context(spec: WorkerSpec) -> RunContext:
    """The run's context in a worker: the driver's settings, marked as a Ray worker (a step
    then keeps its own work in one process: the workers are the parallelism)."""
    fields = dict(spec.context)
    fields["execution"] = {**(fields.get("execution") or {}), "executor": "ray", "worker": True}
    return RunContext(**fields)


def build_steps(spec: WorkerSpec, refs: Iterable[StepRef], ctx: RunContext) -> list[Step]:
    """Make the steps ``refs`` with the stage factories, as the driver's pipeline made them."""
    from instructkit.pipeline import stage_steps

    made: dict[str, list[Step]] = {}
    out = []
    for ref in refs:
        if ref.stage not in made:
            made[ref.stage] = stage_steps(ref.stage, spec.recipe.get("stages"), ctx)
        step = made[ref.stage][ref.index]
        if step.name != ref.name:
            raise RuntimeError(f"worker made step {step.name!r} where the driver has {ref.name!r}")
        out.append(step)
    return out


class _LazyScrubber:
    """The run's quarantine scrubber, made in the worker on first use (only a worker that
    drops records needs the anonymizer's detector)."""

    def __init__(self, spec: WorkerSpec, ctx: RunContext, have: dict[StepRef, Step]) -> None:
        self.spec, self.ctx, self.have = spec, ctx, have
        self._fn: Any = None

    def __call__(self, texts: list[str]) -> list[str]:
        if self._fn is None:
            ref = self.spec.scrubber
            step = self.have.get(ref) or build_steps(self.spec, [ref], self.ctx)[0]
            self._fn = step.quarantine_scrubber()
        return self._fn(texts)


def encode_records(records: Iterable[Record], positions: Iterable[int]) -> dict[str, list]:
    return {POS: list(positions), RECORD: [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in records]}


def decode_records(column: Any) -> list[Record]:
    return [pickle.loads(b) for b in column.to_pylist()]


class SegmentWorker:
    """A Ray Data actor running one segment of the pipeline's steps over batches of rows."""

    def __init__(self, spec: WorkerSpec) -> None:
        if spec.cwd and os.path.isdir(spec.cwd):
            os.chdir(spec.cwd)  # recipes name paths relative to where the build started
        self.spec = spec
        self.key = f"{spec.segment}-{uuid.uuid4().hex[:12]}"
        self.ctx = worker_context(spec)
        atexit.register(self.ctx.close)
        if any(r.stage == "judge" for r in spec.steps) and spec.limiter is not None:
            from instructkit.executors.ray_limiter import SharedRateLimiter
            from instructkit.llm import llm_from_context

            llm_from_context(self.ctx).rate_limiter = SharedRateLimiter(spec.limiter)
        self.steps = build_steps(spec, spec.steps, self.ctx)
        self.dedup = build_steps(spec, [spec.dedup], self.ctx)[0] if spec.dedup else None
        path = None
        if spec.staging:
            from instructkit.dataset.writer import part_path

            path = part_path(spec.staging, "quarantine", self.key)
        self.quarantine = Quarantine(path)
        have = {r: s for r, s in zip(spec.steps, self.steps)}
        scrub = _LazyScrubber(spec, self.ctx, have) if spec.scrubber else None
        for step in [*self.steps, *([self.dedup] if self.dedup else [])]:
            step.bind(self.quarantine, scrub)
        self.seq = 0
        self.stopped: str | None = None

    def __call__(self, batch: Any) -> dict[str, list]:
        import pyarrow.compute as pc

        batch = batch.filter(pc.greater_equal(batch[POS], 0)) if batch.num_rows else batch
        records = decode_records(batch[RECORD])
        positions = batch[POS].to_pylist()
        out_records: list[Record] = []
        if self.stopped is None:
            try:
                for rec in self._chain(records, batch):
                    out_records.append(rec)
            except BudgetExceeded as exc:  # stop cleanly: what was made so far is kept
                self.stopped = str(exc)
                logger.warning("stopped early: %s", exc)
        self.quarantine.flush()
        out = encode_records(out_records, _positions_of(out_records, records, positions))
        self.seq += 1
        out[POS].append(-1)
        out[RECORD].append(None)
        out[STATS] = [None] * len(out_records) + [self.snapshot()]
        return out

    def _chain(self, records: list[Record], batch: Any) -> Iterator[Record]:
        stream: Iterable[Record] = records
        if self.dedup is not None:
            cols = {c: batch[c].to_pylist() for c in DECISION_COLUMNS}
            decisions = [None if reason is None else
                         (reason, _details(dup, sim, seed)) for reason, dup, sim, seed in
                         zip(cols["reason"], cols["duplicate_of"], cols["similarity"], cols["seed_task"])]
            stream = self.dedup.filter_decided(zip(records, decisions))
        for step in self.steps:
            stream = step(stream)
        return iter(stream)

    def snapshot(self) -> bytes:
        """This worker's figures so far (cumulative: the driver keeps the latest)."""
        stats = [(r.number, s.collect()) for r, s in zip(self.spec.steps, self.steps)]
        if self.dedup is not None:
            stats.append((self.spec.dedup.number, self.dedup.collect()))
        llm = self.ctx.get("llm")
        usage = llm.ledger.as_dict() if llm is not None and getattr(llm, "ledger", None) else None
        return pickle.dumps({"worker": self.key, "seq": self.seq, "stats": stats,
                             "stopped": self.stopped, "llm_usage": usage})


def _details(dup: Any, sim: Any, seed: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"duplicate_of": dup, "similarity": sim}
    if seed:
        d["seed_task"] = True
    return d


def _positions_of(out: list[Record], records: list[Record], positions: list[int]) -> list[int]:
    """Each output record's position. Steps keep the order, drop records and may replace a
    record by its changed copy, but never change its id, so the ids tell which input an
    output came from (records sharing an id are the same record)."""
    if len(out) == len(records) and all(a is b for a, b in zip(out, records)):
        return positions
    by_id: dict[Any, deque[int]] = defaultdict(deque)
    for rec, p in zip(records, positions):
        by_id[rec.get("id")].append(p)
    result = []
    for rec in out:
        queue = by_id.get(rec.get("id"))
        if not queue:
            raise RuntimeError(f"a step changed record ids (record {rec.get('id')!r}); the ray "
                               "executor follows records by id")
        result.append(queue.popleft())
    return result


# -- driver-side helpers over the rows ------------------------------------------------------
def stats_rows(table: Any) -> dict[str, list]:
    """Only the figures rows of a batch (for ``map_batches``)."""
    import pyarrow.compute as pc

    rows = table.filter(pc.less(table[POS], 0))
    return {STATS: rows[STATS].to_pylist() if STATS in rows.column_names else []}


def records_only(table: Any) -> Any:
    """Only the record rows of a batch, as ``{pos, record}``."""
    import pyarrow.compute as pc

    return table.filter(pc.greater_equal(table[POS], 0)).select([POS, RECORD])


def latest_snapshots(blobs: Iterable[bytes | None]) -> dict[str, dict[str, Any]]:
    """Each worker's latest figures (its highest ``seq``)."""
    latest: dict[str, dict[str, Any]] = {}
    for blob in blobs:
        if not blob:
            continue
        snap = pickle.loads(blob)
        if snap["worker"] not in latest or snap["seq"] > latest[snap["worker"]]["seq"]:
            latest[snap["worker"]] = snap
    return latest


def merge_snapshots(snapshots: Iterable[Mapping[str, Any]]) -> tuple[dict[int, StepStats], list[str], list[dict]]:
    """Step number -> merged figures; stop messages; LLM usage per worker."""
    merged: dict[int, StepStats] = {}
    stopped, usage = [], []
    for snap in snapshots:
        for number, st in snap["stats"]:
            merged[number] = merged[number] + st if number in merged else st
        if snap.get("stopped"):
            stopped.append(snap["stopped"])
        if snap.get("llm_usage"):
            usage.append(snap["llm_usage"])
    return merged, stopped, usage

