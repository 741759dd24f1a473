"""Steps over streams of records, and the quarantine that keeps what they drop.

A ``Step`` has one method, ``process(records) -> records``. The base class owns what every
step needs and none should write again: counting records in and out, counting drops by
reason, timing, and writing each dropped record to the quarantine with its stage and
reason. A ``Filter`` is a step that only answers, per record, keep (``True``) or drop
(a reason string, or ``(reason, details)``).

Steps are chained lazily (generators), so a pipeline streams with bounded memory; steps
that must see everything (dedup) hold only what they need.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from instructkit.records import Record

logger = logging.getLogger("instructkit")

__all__ = ["Step", "Filter", "Quarantine", "StepStats", "Verdict"]

#: What ``Filter.check`` returns: True to keep; a reason, or (reason, details), to drop.
Verdict = "bool | str | tuple[str, dict]"


class StepStats:
    """Counts for one stage: records in, out, dropped by reason, seconds spent, extras."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.n_in = 0
        self.n_out = 0
        self.dropped: Counter[str] = Counter()
        self.seconds = 0.0
        self.extra: dict[str, Any] = {}

    def as_dict(self) -> dict[str, Any]:
        d = {"stage": self.name, "in": self.n_in, "out": self.n_out,
             "dropped": sum(self.dropped.values()),
             "dropped_by_reason": dict(sorted(self.dropped.items())),
             "seconds": round(self.seconds, 3)}
        if self.extra:
            d["extra"] = self.extra
        return d


class Quarantine:
    """Appends every dropped record to a JSONL file with its stage and reason.

    ``scrub`` is applied to every string written (the pipeline sets it to the anonymizer's
    text scrubber), so a record dropped *before* anonymization does not put PHI on disk.
    With ``path=None`` entries are kept in memory only (``entries``), for tests and the API.
    """

    def __init__(self, path: str | Path | None = None,
                 scrub: Callable[[str], str] | None = None) -> None:
        self.path = Path(path) if path else None
        self.scrub = scrub
        self.entries: list[dict[str, Any]] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._fh = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")

    def add(self, stage: str, reason: str, record: Mapping[str, Any] | None = None,
            **details: Any) -> None:
        entry: dict[str, Any] = {"stage": stage, "reason": reason}
        if record is not None:
            entry["record_id"] = record.get("id")
            src = record.get("source")
            if isinstance(src, Mapping):
                entry["source"] = {k: src.get(k) for k in ("name", "record_id", "location")}
        entry.update(details)
        if record is not None:
            entry["record"] = dict(record)
        if self.scrub is not None:
            entry = _scrub(entry, self.scrub)
        with self._lock:
            self.counts[(stage, reason)] += 1
            if self._fh:
                self._fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True, default=str) + "\n")
                self._fh.flush()
            else:
                self.entries.append(entry)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None


def _scrub(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        # keys are our field names, never PHI
        return {k: (v if k in _UNSCRUBBED else _scrub(v, fn)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, fn) for v in value]
    return value


# Fields that are identifiers or codes the project made, not free text.
_UNSCRUBBED = frozenset({"stage", "reason", "record_id", "id", "task", "method", "license",
                         "duplicate_of", "template_id", "template_hash", "prompt_id",
                         "prompt_hash", "chunk_ids", "seed_task_ids", "builder", "name"})


class Step:
    """A small stage with one job: ``process`` a stream of records into a stream of records.

    Subclasses implement ``process`` and call ``self.drop(record, reason, **details)`` for
    every record they do not pass on. Running a step (calling it) counts and times it.
    """

    #: stage name used in the manifest, the card and quarantine lines
    name: str = "step"

    def __init__(self) -> None:
        self.stats = StepStats(self.name)
        self.quarantine: Quarantine = Quarantine()

    # -- what subclasses implement ------------------------------------------------------
    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """Extra figures for the manifest and card (e.g. replaced-entity totals)."""
        return {}

    def card_section(self) -> str | None:
        """Markdown this step adds to the dataset card, if any."""
        return None

    # -- what the base class owns -------------------------------------------------------
    def bind(self, quarantine: Quarantine) -> "Step":
        """Attach the run's quarantine (the pipeline does this before running)."""
        self.quarantine = quarantine
        self.stats = StepStats(self.name)
        return self

    def drop(self, record: Mapping[str, Any] | None, reason: str, **details: Any) -> None:
        self.stats.dropped[reason] += 1
        self.quarantine.add(self.name, reason, record, **details)

    def __call__(self, records: Iterable[Record]) -> Iterator[Record]:
        return self._run(records)

    def _run(self, records: Iterable[Record]) -> Iterator[Record]:
        stats = self.stats
        upstream = _Timed(records, stats)
        start = time.perf_counter()
        try:
            for rec in self.process(upstream):
                stats.n_out += 1
                # time spent downstream while we are suspended is not ours
                stats.seconds += time.perf_counter() - start - upstream.take()
                yield rec
                start = time.perf_counter()
        finally:
            stats.seconds += max(0.0, time.perf_counter() - start - upstream.take())
            extra = self.summary()
            if extra:
                stats.extra.update(extra)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _Timed:
    """Wraps the upstream iterator: counts records in and the time spent producing them."""

    def __init__(self, it: Iterable[Record], stats: StepStats) -> None:
        self._it = iter(it)
        self._stats = stats
        self._spent = 0.0

    def __iter__(self) -> "_Timed":
        return self

    def __next__(self) -> Record:
        t = time.perf_counter()
        try:
            rec = next(self._it)
        finally:
            self._spent += time.perf_counter() - t
        self._stats.n_in += 1
        return rec

    def take(self) -> float:
        s, self._spent = self._spent, 0.0
        return s


class Filter(Step):
    """Keep, or drop with a reason. Subclasses implement ``check`` only."""

    def check(self, record: Record) -> bool | str | tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            verdict = self.check(rec)
            if verdict is True:
                yield rec
            elif isinstance(verdict, tuple):
                reason, details = verdict
                self.drop(rec, reason, **details)
            else:
                self.drop(rec, str(verdict) if verdict else "dropped")
