"""Write a dataset folder in Hugging Face Hub layout, and read it back.

    DIR/
      data/train-00000-of-00001.parquet   loadable with datasets.load_dataset(DIR)
      README.md                           the dataset card (YAML metadata + sections)
      manifest.json                       recipe hash, versions, per-stage counts, timings
      quarantine.jsonl                    every dropped record with its stage and reason
      recipe.yaml                         the recipe, so it travels with the data
      exports/{alpaca,sharegpt,messages}.jsonl   training formats chosen in the recipe

Free-form parts of a record (``provenance``, ``meta``, ``context``) are stored as JSON
strings so that every row has the same Parquet schema whatever the builder put there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from instructkit.records import Record, to_alpaca, to_sharegpt

__all__ = ["DatasetWriter", "read_dataset", "DATA_FILE", "FORMATS"]

DATA_FILE = "data/train-00000-of-00001.parquet"
FORMATS = ("messages", "alpaca", "sharegpt")
JSON_COLUMNS = ("provenance", "meta", "context")


def arrow_schema():
    import pyarrow as pa

    msg = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([
        ("id", pa.string()), ("task", pa.string()), ("method", pa.string()),
        ("instruction", pa.string()), ("input", pa.string()), ("output", pa.string()),
        ("messages", pa.list_(msg)),
        ("source", pa.struct([(k, pa.string()) for k in
                              ("name", "license", "record_id", "url", "location", "citation")])),
        ("provenance", pa.string()), ("meta", pa.string()), ("context", pa.string()),
    ])


def _row(rec: Mapping[str, Any]) -> dict[str, Any]:
    src = rec.get("source") or {}
    row = {k: rec.get(k) for k in ("id", "task", "method", "instruction", "input", "output")}
    row["messages"] = rec.get("messages") or []
    row["source"] = {k: (None if src.get(k) is None else str(src.get(k)))
                     for k in ("name", "license", "record_id", "url", "location", "citation")}
    for k in JSON_COLUMNS:
        v = rec.get(k)
        row[k] = None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)
    return row


class DatasetWriter:
    """Streams records into Parquet (in batches) and the chosen export formats."""

    def __init__(self, out_dir: str | Path, formats: Iterable[str] = ("messages",),
                 batch_size: int = 1000) -> None:
        self.out = Path(out_dir)
        self.formats = [f for f in formats if f in FORMATS]
        self.batch_size = batch_size
        self.counts: dict[str, Counter[str]] = {"task": Counter(), "method": Counter(),
                                                "source": Counter(), "license": Counter()}
        self.samples: list[Record] = []
        self.n = 0

    def prepare(self) -> None:
        """Empty the files this writer owns, so a rerun into the same folder starts clean."""
        self.out.mkdir(parents=True, exist_ok=True)
        for rel in (DATA_FILE, "quarantine.jsonl", "manifest.json", "README.md", "recipe.yaml"):
            p = self.out / rel
            if p.exists():
                p.unlink()
        for f in FORMATS:
            p = self.out / "exports" / f"{f}.jsonl"
            if p.exists():
                p.unlink()

    def write(self, records: Iterable[Record]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        data_path = self.out / DATA_FILE
        data_path.parent.mkdir(parents=True, exist_ok=True)
        schema = arrow_schema()
        tmp = data_path.with_suffix(".parquet.partial")
        exports = {}
        if self.formats:
            (self.out / "exports").mkdir(exist_ok=True)
            exports = {f: (self.out / "exports" / f"{f}.jsonl").open("w", encoding="utf-8")
                       for f in self.formats}
        writer = pq.ParquetWriter(tmp, schema)
        batch: list[dict[str, Any]] = []
        try:
            for rec in records:
                batch.append(_row(rec))
                self._count(rec)
                for f, fh in exports.items():
                    fh.write(json.dumps(_export(f, rec), ensure_ascii=False) + "\n")
                if len(batch) >= self.batch_size:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch or self.n == 0:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        finally:
            writer.close()
            for fh in exports.values():
                fh.close()
        tmp.replace(data_path)  # a crashed run never leaves a half-written data file behind
        return self.n

    def _count(self, rec: Record) -> None:
        self.n += 1
        self.counts["task"][rec.get("task", "?")] += 1
        self.counts["method"][rec.get("method", "?")] += 1
        src = rec.get("source") or {}
        self.counts["source"][src.get("name", "?")] += 1
        self.counts["license"][src.get("license", "unknown")] += 1
        # a few examples per task for the card, chosen by arrival (records are already seeded)
        if sum(1 for s in self.samples if s.get("task") == rec.get("task")) < 1 and len(self.samples) < 8:
            self.samples.append(rec)

    def finish(self, pipeline: Any, manifest: dict[str, Any]) -> None:
        """Write manifest.json, the recipe copy and the card."""
        from instructkit.dataset.card import build_card

        (self.out / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
        recipe = getattr(pipeline, "recipe", None)
        if recipe is not None:
            (self.out / "recipe.yaml").write_text(recipe.text, encoding="utf-8")
        card = build_card(manifest, pipeline=pipeline, samples=self.samples, data_dir=self.out)
        card.save(str(self.out / "README.md"))


def _export(fmt: str, rec: Record) -> dict[str, Any]:
    if fmt == "alpaca":
        return {"id": rec["id"], **to_alpaca(rec)}
    if fmt == "sharegpt":
        return {"id": rec["id"], **to_sharegpt(rec)}
    return {"id": rec["id"], "messages": rec.get("messages") or []}


def read_dataset(path: str | Path) -> Iterator[Record]:
    """Read back the records of a dataset folder (or a Parquet file) as record dicts."""
    import pyarrow.parquet as pq

    path = Path(path)
    files = [path] if path.is_file() else sorted((path / "data").rglob("*.parquet"))
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                rec = {k: v for k, v in row.items() if k not in JSON_COLUMNS}
                rec["source"] = {k: v for k, v in (row.get("source") or {}).items() if v is not None}
                for k in JSON_COLUMNS:
                    if row.get(k) is not None:
                        rec[k] = json.loads(row[k])
                yield rec
