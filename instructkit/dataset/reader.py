"""Reading a dataset folder back: its manifest, its counts, its records.

``open_dataset(DIR)`` refuses a folder without the completion marker (a build that did not
finish, or files put together by hand), with one message that says so. ``read_dataset`` reads
the records of a folder (or of one Parquet file) as record dicts, streaming.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from instructkit._exceptions import SourceError
from instructkit.dataset.counts import DatasetCounts
from instructkit.dataset.layout import COMPLETE_MARKER, DATA_DIR, MANIFEST, row_to_record
from instructkit.records import Record

__all__ = ["DatasetFolder", "open_dataset", "read_dataset", "is_dataset_folder"]


def is_dataset_folder(path: Path) -> bool:
    """Whether ``path`` is a folder an instructkit build wrote (complete, or from an older
    version that wrote no marker), so that a rebuild may replace it."""
    return (path / COMPLETE_MARKER).is_file() or (
        (path / MANIFEST).is_file() and (path / DATA_DIR).is_dir())


class DatasetFolder:
    """A dataset folder: ``manifest``, ``counts``, ``data_files``, and its records."""

    def __init__(self, path: str | Path, *, require_complete: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError("not a folder" if self.path.exists() else "folder not found",
                              file=str(self.path))
        if require_complete and not (self.path / COMPLETE_MARKER).is_file():
            if (self.path / DATA_DIR).is_dir():
                raise SourceError(f"incomplete dataset folder (no {COMPLETE_MARKER}): the build "
                                  "that wrote it did not finish, or it was not written by "
                                  "`instructkit build`; rebuild it", file=str(self.path))
            raise SourceError("not a dataset folder written by `instructkit build` (no data/)",
                              file=str(self.path))

    @cached_property
    def manifest(self) -> dict[str, Any]:
        p = self.path / MANIFEST
        if not p.is_file():
            return {}
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            raise SourceError("not valid JSON", file=str(p)) from None

    @property
    def counts(self) -> DatasetCounts:
        return DatasetCounts.from_dict(self.manifest.get("counts") or {})

    @property
    def data_files(self) -> list[Path]:
        d = self.path / DATA_DIR
        return sorted(d.rglob("*.parquet")) if d.is_dir() else []

    def iter_batches(self, columns: list[str] | None = None, batch_size: int = 1000):
        import pyarrow.parquet as pq

        for f in self.data_files:
            # pre_buffer keeps every column chunk read so far in memory until the file is done
            pf = pq.ParquetFile(f, pre_buffer=False)
            cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
            yield from pf.iter_batches(batch_size=batch_size, columns=cols)

    def records(self) -> Iterator[Record]:
        for batch in self.iter_batches():
            for row in batch.to_pylist():
                yield row_to_record(row)

    def records_at(self, rows: Iterable[int]) -> list[Record]:
        """The records at global row numbers ``rows`` (in order), reading only the row groups
        that hold them."""
        import pyarrow.parquet as pq

        wanted = sorted(set(rows))
        out: list[Record] = []
        base, i = 0, 0
        for f in self.data_files:
            pf = pq.ParquetFile(f, pre_buffer=False)
            for rg in range(pf.num_row_groups):
                n = pf.metadata.row_group(rg).num_rows
                local = []
                while i < len(wanted) and wanted[i] < base + n:
                    local.append(wanted[i] - base)
                    i += 1
                if local:
                    out += [row_to_record(r) for r in pf.read_row_group(rg).take(local).to_pylist()]
                base += n
                if i >= len(wanted):
                    return out
        return out

    def records_by_id(self, ids: Iterable[str]) -> dict[str, Record]:
        """The records with these ids: reads the id column, then only the row groups that
        hold a match."""
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = sorted(set(ids))
        if not wanted:
            return {}
        value_set = pa.array(wanted, pa.string())
        rows, base = [], 0
        for batch in self.iter_batches(columns=["id"], batch_size=16_384):
            hit = pc.indices_nonzero(pc.is_in(batch.column("id"), value_set=value_set))
            rows += [base + j for j in hit.to_pylist()]
            base += batch.num_rows
        return {r["id"]: r for r in self.records_at(rows)}

    def __len__(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.data_files)


def open_dataset(path: str | Path) -> DatasetFolder:
    """A complete dataset folder (refused with one message when it is not)."""
    return DatasetFolder(path)


def read_dataset(path: str | Path) -> Iterator[Record]:
    """Read back the records of a dataset folder (or one Parquet file) as record dicts."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_file():
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                yield row_to_record(row)
        return
    yield from open_dataset(path).records()
