"""The dataset folder's layout, its Arrow schema, and records <-> Parquet rows.

    DIR/
      data/train-0000N-of-0000M.parquet   loadable with datasets.load_dataset(DIR)
      README.md                           the dataset card (YAML metadata + sections)
      report.html                         the dataset report (when output.report is on)
      manifest.json                       recipe hash, versions, per-stage counts, data-file hashes
      quarantine.jsonl                    every dropped record with its stage and reason
      recipe.yaml                         the recipe, so it travels with the data
      exports/{messages,alpaca,sharegpt}.jsonl   training formats chosen in the recipe
      .instructkit-complete               written last: the folder is whole

A build writes into a hidden sibling folder and renames it into place only when every file
is written, so a reader never sees a half-written folder; the completion marker lets readers
refuse a folder that was put together some other way.

Free-form parts of a record (``provenance``, ``meta``, ``context``) are stored as JSON strings
so that every row has the same Parquet schema whatever the builder put there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from instructkit.records import Record

__all__ = ["DATA_DIR", "MANIFEST", "CARD", "REPORT", "QUARANTINE", "RECIPE", "EXPORTS_DIR",
           "COMPLETE_MARKER", "FORMATS", "JSON_COLUMNS", "SOURCE_FIELDS", "arrow_schema",
           "shard_name", "record_to_row", "row_to_record"]

DATA_DIR = "data"
MANIFEST = "manifest.json"
CARD = "README.md"
REPORT = "report.html"
QUARANTINE = "quarantine.jsonl"
RECIPE = "recipe.yaml"
EXPORTS_DIR = "exports"
COMPLETE_MARKER = ".instructkit-complete"
#: training export formats
FORMATS = ("messages", "alpaca", "sharegpt")
#: record fields stored as JSON strings
JSON_COLUMNS = ("provenance", "meta", "context")
SOURCE_FIELDS = ("name", "license", "record_id", "url", "location", "citation")


def shard_name(index: int, total: int) -> str:
    """``data/train-00000-of-00003.parquet`` (the Hub's split-shard naming)."""
    return f"{DATA_DIR}/train-{index:05d}-of-{total:05d}.parquet"


@functools.cache
def arrow_schema():
    import pyarrow as pa

    msg = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([
        ("id", pa.string()), ("task", pa.string()), ("method", pa.string()),
        ("instruction", pa.string()), ("input", pa.string()), ("output", pa.string()),
        ("messages", pa.list_(msg)),
        ("source", pa.struct([(k, pa.string()) for k in SOURCE_FIELDS])),
        ("provenance", pa.string()), ("meta", pa.string()), ("context", pa.string()),
    ])


def record_to_row(rec: Mapping[str, Any]) -> dict[str, Any]:
    src = rec.get("source") or {}
    row = {k: rec.get(k) for k in ("id", "task", "method", "instruction", "input", "output")}
    row["messages"] = rec.get("messages") or []
    row["source"] = {k: (None if src.get(k) is None else str(src.get(k))) for k in SOURCE_FIELDS}
    for k in JSON_COLUMNS:
        v = rec.get(k)
        row[k] = None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)
    return row


def row_to_record(row: Mapping[str, Any]) -> Record:
    rec = {k: v for k, v in row.items() if k not in JSON_COLUMNS and k != "source"}
    rec["source"] = {k: v for k, v in (row.get("source") or {}).items() if v is not None}
    for k in JSON_COLUMNS:
        v = row.get(k)
        if isinstance(v, str):
            try:
                rec[k] = json.loads(v)
            except json.JSONDecodeError:  # a hand-edited row: shown as it is, never a crash
                rec[k] = v
        elif v is not None:  # rows made from record dicts (an in-memory Dataset)
            rec[k] = v
    return rec
