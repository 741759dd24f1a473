"""Steps over streams of records, their mergeable counts, and the quarantine they write to.

A ``Step`` has one method, ``process(records) -> records``. The base class owns what every
step needs and none should write again: counting records in and out, counting drops by
reason, timing, and handing each dropped record to the quarantine with its stage and
reason. A ``Filter`` is a step that only answers, per record, keep (``True``) or drop
(a reason string, or ``(reason, details)``); an exception while checking one record drops
that record (``step_failed``), never the run.

Reporting contract (the same under every executor):

- ``summary()`` returns this worker's figures as *additive* values (counts, sums,
  histograms); ``StepStats.__add__`` merges them across workers;
- ``finalize(summary)`` runs once on the merged figures (derived values: pass/fail,
  means, truncated id lists);
- ``settings()`` is the step's configuration, the same on every worker;
- ``card_section(stats)`` renders markdown from the merged ``StepStats`` and the settings.

The quarantine is a second output of each step: ``drop`` hands an entry to the sink the
executor bound (one per worker, gathered at the end). Before an entry leaves the step it
passes through the run's scrubber, which the executor takes from the steps' own
``quarantine_scrubber()`` hook (the anonymizer provides one), and which looks at every
string by its content, whatever its key.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from instructkit.records import Record

logger = logging.getLogger("instructkit")

__all__ = ["Step", "Filter", "Quarantine", "StepStats", "Verdict", "merge_figures", "scrub_strings"]

#: What ``Filter.check`` returns: True to keep; a reason, or (reason, details), to drop.
Verdict = "bool | str | tuple[str, dict]"


def merge_figures(a: Any, b: Any) -> Any:
    """Add two workers' figures: numbers add, booleans must all hold, mappings merge key by
    key, lists concatenate; for anything else the first worker's value stands."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) and bool(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge_figures(out.get(k), v)
        return out
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    return a


class StepStats:
    """One step's figures: records in and out, drops by reason, seconds, extra figures.

    Values add up across workers (``a + b``), so a run's figures are the same whether one
    process or many made them.
    """

    def __init__(self, name: str, n_in: int = 0, n_out: int = 0,
                 dropped: Mapping[str, int] | None = None, seconds: float = 0.0,
                 extra: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.n_in = n_in
        self.n_out = n_out
        self.dropped: Counter[str] = Counter(dropped or {})
        self.seconds = seconds
        self.extra: dict[str, Any] = dict(extra or {})

    def __add__(self, other: "StepStats") -> "StepStats":
        if not isinstance(other, StepStats):
            return NotImplemented
        if other.name != self.name:
            raise ValueError(f"cannot add figures of step {other.name!r} to {self.name!r}")
        return StepStats(self.name, self.n_in + other.n_in, self.n_out + other.n_out,
                         self.dropped + other.dropped, self.seconds + other.seconds,
                         merge_figures(self.extra, other.extra))

    def __radd__(self, other: Any) -> "StepStats":  # sum() starts from 0
        if other == 0:
            return self
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StepStats) and self.as_dict(seconds=False) == other.as_dict(seconds=False)

    def as_dict(self, seconds: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"stage": self.name, "in": self.n_in, "out": self.n_out,
                             "dropped": sum(self.dropped.values()),
                             "dropped_by_reason": dict(sorted(self.dropped.items()))}
        if seconds:
            d["seconds"] = round(self.seconds, 3)
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StepStats":
        return cls(d["stage"], d.get("in", 0), d.get("out", 0), d.get("dropped_by_reason"),
                   d.get("seconds", 0.0), d.get("extra"))

    def __repr__(self) -> str:
        return f"StepStats({self.name!r}, in={self.n_in}, out={self.n_out}, dropped={dict(self.dropped)})"


# -- the quarantine -------------------------------------------------------------------------
_HASH = re.compile(r"[0-9a-f]{16,64}")


def scrub_strings(value: Any, fn: Callable[[list[str]], list[str]]) -> Any:
    """``value`` with every string (at any depth, whatever its key) replaced by what the batch
    scrubber ``fn`` makes of it, except hex digests (record ids, content hashes), which the
    project made and which hold no text. Each distinct string goes to ``fn`` once."""
    found: dict[str, None] = {}
    _collect(value, found)
    if not found:
        return value
    texts = list(found)
    clean = dict(zip(texts, fn(texts)))
    return _replace(value, clean)


def _collect(value: Any, found: dict[str, None]) -> None:
    if isinstance(value, str):
        if value and not _HASH.fullmatch(value):
            found[value] = None
    elif isinstance(value, Mapping):
        for v in value.values():
            _collect(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, found)


def _replace(value: Any, clean: dict[str, str]) -> Any:
    if isinstance(value, str):
        return clean.get(value, value)
    if isinstance(value, Mapping):
        return {k: _replace(v, clean) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace(v, clean) for v in value]
    return value


class Quarantine:
    """Where dropped records go: one JSONL file (``path``) or memory (``entries``).

    A step's ``drop`` builds the entry (stage, reason, record id, source, details, the record)
    and scrubs it of PHI before handing it here; the quarantine scrubs secrets (token-shaped
    strings) from every entry, counts and stores.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.entries: list[dict[str, Any]] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._fh = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")

    def add(self, entry: Mapping[str, Any]) -> None:
        from instructkit._secrets import scrub_secrets

        # an endpoint may echo a token in an error message
        entry = scrub_strings(entry, lambda texts: [scrub_secrets(t) for t in texts])
        with self._lock:
            self.counts[(str(entry.get("stage")), str(entry.get("reason")))] += 1
            if self._fh:
                self._fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True, default=str) + "\n")
            else:
                self.entries.append(dict(entry))

    def __len__(self) -> int:
        return sum(self.counts.values())

    def flush(self) -> None:
        """Push written entries to the file (a worker that may be stopped without notice)."""
        with self._lock:
            if self._fh:
                self._fh.flush()

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None


def quarantine_entry(stage: str, reason: str, record: Mapping[str, Any] | None,
                     details: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"stage": stage, "reason": reason}
    if record is not None:
        entry["record_id"] = record.get("id")
        src = record.get("source")
        if isinstance(src, Mapping):
            entry["source"] = {k: src.get(k) for k in ("name", "record_id", "location")}
    entry.update(details)
    if record is not None:
        entry["record"] = dict(record)
    return entry


# -- steps ------------------------------------------------------------------------------------
class Step:
    """A small stage with one job: ``process`` a stream of records into a stream of records.

    Subclasses implement ``process`` and call ``self.drop(record, reason, **details)`` for
    every record they do not pass on. Running a step (calling it) counts and times it.
    """

    #: the name used in the manifest, the card and quarantine lines
    name: str = "step"
    #: the recipe stage whose factory made this step (set by ``stages_from_config``), so an
    #: executor can make the same step again in another process
    stage: str | None = None

    def __init__(self) -> None:
        self.stats = StepStats(self.name)
        self.quarantine: Quarantine = Quarantine()
        self.scrub: Callable[[list[str]], list[str]] | None = None

    # -- what subclasses implement ------------------------------------------------------
    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """This worker's extra figures, as additive values (see the module docstring)."""
        return {}

    def finalize(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Derived figures from the merged summary (runs once, after merging)."""
        return summary

    def settings(self) -> dict[str, Any]:
        """The step's configuration, for the manifest."""
        return {}

    def card_section(self, stats: StepStats) -> str | None:
        """Markdown this step adds to the dataset card, from the run's merged figures."""
        return None

    def quarantine_scrubber(self) -> Callable[[list[str]], list[str]] | None:
        """A batch text scrubber (texts in, scrubbed texts out) the run applies to every
        quarantine entry (the anonymizer provides one)."""
        return None

    def reset(self) -> None:
        """Forget the figures of an earlier run (steps with their own counters extend this)."""

    # -- what the base class owns -------------------------------------------------------
    def bind(self, quarantine: Quarantine,
             scrub: Callable[[list[str]], list[str]] | None = None) -> "Step":
        """Attach a run's quarantine and scrubber, and start new figures."""
        self.quarantine = quarantine
        self.scrub = scrub
        self.stats = StepStats(self.name)
        self.reset()
        return self

    def drop(self, record: Mapping[str, Any] | None, reason: str, **details: Any) -> None:
        self.stats.dropped[reason] += 1
        entry = quarantine_entry(self.name, reason, record, details)
        if self.scrub is not None:
            head = {"stage": entry.pop("stage"), "reason": entry.pop("reason")}
            entry = {**head, **scrub_strings(entry, self.scrub)}
        self.quarantine.add(entry)

    def collect(self) -> StepStats:
        """This worker's figures, with the extra figures of ``summary()``."""
        s = self.stats
        return StepStats(s.name, s.n_in, s.n_out, s.dropped, s.seconds,
                         merge_figures(dict(s.extra), self.summary() or {}))

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
            try:
                verdict = self.check(rec)
            except Exception as exc:  # noqa: BLE001 - one bad record must not end the run
                logger.debug("%s failed on record %s: %s", self.name, rec.get("id"), type(exc).__name__)
                self.drop(rec, "step_failed", error=type(exc).__name__)
                continue
            if verdict is True:
                yield rec
            elif isinstance(verdict, tuple):
                reason, details = verdict
                self.drop(rec, reason, **details)
            else:
                self.drop(rec, str(verdict) if verdict else "dropped")
