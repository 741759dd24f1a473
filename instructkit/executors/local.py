"""The local executor: builders and steps chained as generators in this process."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from instructkit._exceptions import BudgetExceeded
from instructkit.dataset.counts import DatasetCounts
from instructkit.executors.base import Execution
from instructkit.progress import progress_iter
from instructkit.records import Record
from instructkit.steps.base import Quarantine

if TYPE_CHECKING:
    from instructkit.dataset.writer import DatasetWriter
    from instructkit.pipeline import Pipeline

logger = logging.getLogger("instructkit")

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Stream every record through the builders and steps, into one shard writer."""

    name = "local"

    def run(self, pipeline: "Pipeline", writer: "DatasetWriter | None", *,
            quiet: bool = False) -> Execution:
        quarantine = Quarantine(writer.quarantine_path(0) if writer is not None else None)
        stopped: list[str] = []
        try:
            stream = until_budget(pipeline.stream(quarantine), stopped)
            if writer is not None:
                shard = writer.shard_writer(0)
                shard.write(progress_iter(stream, "building records", quiet=quiet))
                counts = shard.counts
            else:
                counts = DatasetCounts()
                for rec in stream:
                    counts.observe(rec)
        finally:
            quarantine.close()
        return Execution(builders=[(b, b.collect()) for b in pipeline.builders],
                         stages=[(s, s.collect()) for s in pipeline.stages],
                         counts=counts, quarantined=len(quarantine),
                         stopped_early=stopped[0] if stopped else None,
                         info={"name": self.name, "workers": 1})


def until_budget(records: Iterable[Record], stopped: list[str]) -> Iterator[Record]:
    """Stop cleanly at a request/cost cap: what was made so far is kept and reported."""
    try:
        yield from records
    except BudgetExceeded as exc:
        stopped.append(str(exc))
        logger.warning("stopped early: %s", exc)

