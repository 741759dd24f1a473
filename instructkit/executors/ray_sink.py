"""The dataset folder as a Ray Data sink: each write task streams its rows into a
``ShardWriter`` of the build's staging folder (same layout as the local executor's), counts
them (``DatasetCounts``) and hands back the workers' figures rows it received."""

from __future__ import annotations

import pickle
from typing import Any

from instructkit.dataset.counts import DatasetCounts

__all__ = ["ShardSink"]

try:  # the module is imported only with ray installed (instructkit[ray])
    from ray.data.datasource import Datasink
except ImportError:  # pragma: no cover
    Datasink = object  # type: ignore[assignment,misc]


class ShardSink(Datasink):
    """Writes record rows to ``data-w<task>-*.parquet`` shards and export parts in
    ``staging`` (nothing when ``staging`` is None: a run without an output folder only
    counts). After the write, ``counts`` and ``stats`` hold what every task returned."""

    def __init__(self, staging: str | None, formats: list[str], shard_rows: int) -> None:
        self.staging = staging
        self.formats = list(formats)
        self.shard_rows = int(shard_rows)
        self.counts = DatasetCounts()
        self.stats: list[bytes] = []

    @property
    def min_rows_per_write(self) -> int:
        # one write task fills about one shard
        return self.shard_rows

    def write(self, blocks: Any, ctx: Any) -> tuple[DatasetCounts, list[bytes]]:
        import pyarrow.compute as pc

        from instructkit.dataset.writer import ShardWriter
        from instructkit.executors.ray_workers import POS, RECORD, STATS

        writer = None
        if self.staging is not None:
            writer = ShardWriter(self.staging, f"w{ctx.task_idx:05d}", self.formats, self.shard_rows)
        counts = DatasetCounts()
        stats: list[bytes] = []
        try:
            for block in blocks:
                is_rec = pc.greater_equal(block[POS], 0)
                if STATS in block.column_names:
                    stats += [s for s in block.filter(pc.invert(is_rec))[STATS].to_pylist() if s]
                for blob in block.filter(is_rec)[RECORD].to_pylist():
                    rec = pickle.loads(blob)
                    if writer is not None:
                        writer.add(rec)
                    else:
                        counts.observe(rec)
        finally:
            if writer is not None:
                writer.close()
                counts = writer.counts
        return counts, stats

    def on_write_complete(self, write_result: Any) -> None:
        for counts, stats in write_result.write_returns:
            self.counts = self.counts + counts
            self.stats += stats
