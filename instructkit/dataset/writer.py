"""Writing a dataset folder: shards while streaming, then everything else, then the swap.

- ``ShardWriter`` streams one worker's records into Parquet shards (a new file every
  ``shard_rows`` rows) and into the training exports, counting as it goes. Nothing holds
  the whole dataset in memory.
- ``DatasetWriter`` owns one build's output folder: it takes the lock, makes the staging
  folder, hands out shard writers (one per worker), and on ``commit`` names the shards
  ``train-0000N-of-0000M``, joins the export and quarantine parts, writes the manifest
  (with each data file's sha256), recipe, card and report, the completion marker last (it
  lists every file written, with its sha256), and swaps the folder into place. On any failure
  ``abort`` leaves the previous dataset as it was. A folder is replaced only when it holds
  nothing but what the previous build listed (``staging.check_replaceable``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from instructkit.dataset.counts import DatasetCounts
from instructkit.dataset.layout import (COMPLETE_MARKER, DATA_DIR, EXPORTS_DIR, FORMATS, MANIFEST,
                                        QUARANTINE, RECIPE, arrow_schema, record_to_row, shard_name)
from instructkit.dataset.staging import (OutputLock, StagedFolder, build_record,
                                         check_not_reading_itself, check_output_dir,
                                         check_replaceable, followed_output)
from instructkit.records import Record, to_alpaca, to_sharegpt

logger = logging.getLogger("instructkit")

__all__ = ["DatasetWriter", "ShardWriter", "export_row", "file_sha256", "part_path", "worker_tag"]

PARTS_DIR = ".parts"


def worker_tag(worker: int | str) -> str:
    """How a worker is named in part files: a number (``00003``) or an executor's own tag."""
    return f"{worker:05d}" if isinstance(worker, int) else str(worker)


def part_path(staging: str | Path, kind: str, worker: int | str, suffix: str = ".jsonl") -> Path:
    """A worker's part file in the staging folder (``.parts/<kind>-<worker><suffix>``); the
    same path whichever process writes it."""
    p = Path(staging) / PARTS_DIR / f"{kind}-{worker_tag(worker)}{suffix}"
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def export_row(fmt: str, rec: Record) -> dict[str, Any]:
    if fmt == "alpaca":
        return {"id": rec["id"], **to_alpaca(rec)}
    if fmt == "sharegpt":
        return {"id": rec["id"], **to_sharegpt(rec)}
    return {"id": rec["id"], "messages": rec.get("messages") or []}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ShardWriter:
    """One worker's Parquet shards and export parts in the staging folder."""

    def __init__(self, staging: Path, worker: int | str = 0, formats: Iterable[str] = ("messages",),
                 shard_rows: int = 200_000, batch_rows: int = 1000) -> None:
        self.parts = Path(staging) / PARTS_DIR
        self.worker = worker
        self.formats = [f for f in formats if f in FORMATS]
        self.shard_rows = max(1, int(shard_rows))
        self.batch_rows = max(1, int(batch_rows))
        self.counts = DatasetCounts()
        self.shards: list[Path] = []
        self._pq = None
        self._rows_in_shard = 0
        self._batch: list[dict[str, Any]] = []
        self.parts.mkdir(parents=True, exist_ok=True)
        self._exports = {f: (self.parts / f"{f}-{worker_tag(worker)}.jsonl").open("w", encoding="utf-8")
                         for f in self.formats}

    def write(self, records: Iterable[Record]) -> int:
        n = 0
        for rec in records:
            self.add(rec)
            n += 1
        return n

    def add(self, rec: Record) -> None:
        self._batch.append(record_to_row(rec))
        self.counts.observe(rec)
        for f, fh in self._exports.items():
            fh.write(json.dumps(export_row(f, rec), ensure_ascii=False) + "\n")
        if len(self._batch) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        while self._batch:
            if self._pq is None:
                path = self.parts / f"data-{worker_tag(self.worker)}-{len(self.shards):05d}.parquet"
                self._pq = pq.ParquetWriter(path, arrow_schema())
                self.shards.append(path)
                self._rows_in_shard = 0
            room = self.shard_rows - self._rows_in_shard
            take, self._batch = self._batch[:room], self._batch[room:]
            self._pq.write_table(pa.Table.from_pylist(take, schema=arrow_schema()))
            self._rows_in_shard += len(take)
            if self._rows_in_shard >= self.shard_rows:
                self._pq.close()
                self._pq = None

    def close(self) -> None:
        self._flush()
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        for fh in self._exports.values():
            fh.close()
        self._exports = {}


class DatasetWriter:
    """One build's output folder, written whole or not at all."""

    def __init__(self, out_dir: str | Path, formats: Iterable[str] = ("messages",),
                 shard_rows: int = 200_000, reads: Iterable[tuple[str, Path]] = ()) -> None:
        self.out = followed_output(Path(out_dir))
        #: (what, path) the build reads: ``out`` may not be, hold or sit inside any of them
        self.reads = list(reads)
        self.formats = [f for f in formats if f in FORMATS]
        self.shard_rows = shard_rows
        self.lock = OutputLock(self.out)
        self.staged = StagedFolder(self.out)
        self.staging: Path | None = None
        self.shard_writers: list[ShardWriter] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> "DatasetWriter":
        check_output_dir(self.out)
        check_not_reading_itself(self.out, self.reads)
        self.lock.acquire()
        try:
            self.staging = self.staged.create()
        except BaseException:
            self.lock.release()
            raise
        return self

    def __enter__(self) -> "DatasetWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.staging is not None:
            self.abort()

    def shard_writer(self, worker: int | None = None) -> ShardWriter:
        assert self.staging is not None, "open() the writer first"
        w = ShardWriter(self.staging, len(self.shard_writers) if worker is None else worker,
                        self.formats, self.shard_rows)
        self.shard_writers.append(w)
        return w

    def quarantine_path(self, worker: int | str = 0) -> Path:
        assert self.staging is not None, "open() the writer first"
        return part_path(self.staging, "quarantine", worker)

    def abort(self) -> None:
        """Throw the staging folder away; the previous dataset stays as it was."""
        for w in self.shard_writers:
            try:
                w.close()
            except Exception:  # noqa: BLE001 - closing must not hide the first failure
                pass
        if self.staging is not None:
            self.staged.abort()
            self.staging = None
        self.lock.release()

    # -- finishing ----------------------------------------------------------------------------
    def assemble(self) -> dict[str, str]:
        """Name the shards, join export and quarantine parts. Returns {data file: sha256}
        (``hash_files`` again after anything rewrites an export)."""
        assert self.staging is not None
        for w in self.shard_writers:
            w.close()
        # shards of this process's writers, then those other processes wrote into the parts
        shards = [p for w in self.shard_writers for p in w.shards]
        known = set(shards)
        shards += [p for p in sorted((self.staging / PARTS_DIR).glob("data-*.parquet")) if p not in known]
        # every worker's leftovers (a worker that wrote nothing still has an empty part)
        data = self.staging / DATA_DIR
        data.mkdir(exist_ok=True)
        if not shards:
            import pyarrow as pa
            import pyarrow.parquet as pq

            empty = self.staging / PARTS_DIR / "data-empty.parquet"
            pq.write_table(pa.Table.from_pylist([], schema=arrow_schema()), empty)
            shards = [empty]
        for i, p in enumerate(shards):
            p.replace(self.staging / shard_name(i, len(shards)))
        parts = self.staging / PARTS_DIR
        if self.formats:
            (self.staging / EXPORTS_DIR).mkdir(exist_ok=True)
        for f in self.formats:
            _concat(sorted(parts.glob(f"{f}-*.jsonl")), self.staging / EXPORTS_DIR / f"{f}.jsonl")
        _concat(sorted(parts.glob("quarantine-*.jsonl")), self.staging / QUARANTINE)
        return self.hash_files()

    def hash_files(self) -> dict[str, str]:
        """sha256 of every data and export file (phase exports included), by relative path."""
        assert self.staging is not None
        files = [*sorted((self.staging / DATA_DIR).glob("*.parquet")),
                 *sorted((self.staging / EXPORTS_DIR).rglob("*.jsonl"))]
        return {p.relative_to(self.staging).as_posix(): file_sha256(p) for p in files}

    @property
    def counts(self) -> DatasetCounts:
        return sum((w.counts for w in self.shard_writers), DatasetCounts())

    def commit(self, manifest: Mapping[str, Any], *, recipe_text: str | None = None,
               extras: Iterable[Callable[[Path, Mapping[str, Any]], None]] = (),
               write_manifest: bool = True) -> None:
        """Write manifest, recipe, card and extra files, the completion marker last, then
        swap the staging folder into place and release the lock."""
        assert self.staging is not None
        from instructkit._secrets import without_url_credentials
        from instructkit.dataset.card import card_for_folder

        staging = self.staging
        # a URL's user:password@ (an llm.base_url, a source url) never lands in the folder (part B)
        manifest, recipe_text = without_url_credentials(manifest), without_url_credentials(recipe_text)
        if write_manifest:
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
        if recipe_text is not None:
            (staging / RECIPE).write_text(recipe_text, encoding="utf-8")
        card_for_folder(staging, manifest, complete=False).save(str(staging / "README.md"))
        for extra in extras:
            extra(staging, manifest)
        shutil.rmtree(staging / PARTS_DIR, ignore_errors=True)
        marker = {"manifest_sha256": file_sha256(staging / MANIFEST)} if write_manifest else {}
        # every file this build wrote: a later build replaces the folder only if it holds
        # nothing else (written last, so the list is whole)
        marker["files"] = build_record(staging)
        (staging / COMPLETE_MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        # a file may have been added to the previous folder while this build ran
        check_replaceable(self.out)
        self.staged.commit()
        self.staging = None
        self.lock.release()


def _concat(parts: list[Path], dest: Path) -> None:
    with dest.open("wb") as out:
        for p in parts:
            with p.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
