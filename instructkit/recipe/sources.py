"""Source readers: local JSONL / JSON / CSV / Parquet, Hugging Face datasets, MedQuAD XML
folders, and inline rows. Each yields ``SourceRow``s that remember where they came from.

Each source declares its licence; an undeclared one is ``unknown``, never guessed. A row
that cannot be read (bad JSON, not UTF-8) is yielded with ``error`` set so the builder
quarantines it: no source row disappears without a trace. A file that cannot be read at
all (missing, empty, undecodable CSV) raises ``SourceError`` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import SourceError

__all__ = ["Source", "SourceRow", "sources_from_recipe", "source_from_config"]


@dataclass
class SourceRow:
    """One row of a source: its fields, a stable id, and where it was read."""

    data: dict[str, Any]
    record_id: str
    location: str
    error: str | None = None


@dataclass
class Source:
    """A named, licensed source of rows."""

    name: str
    type: str
    license: str = "unknown"
    path: Path | None = None
    dataset: str | None = None
    config: str | None = None
    split: str = "train"
    rows_inline: list[dict[str, Any]] | None = None
    records_key: str | None = None
    id_field: str | None = None
    url: str | None = None
    citation: str | None = None
    description: str | None = None
    license_declaration: str | None = None
    where: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    # counts for the manifest
    n_read: int = 0
    n_skipped_where: int = 0
    n_unreadable: int = 0

    def __post_init__(self) -> None:
        # the Python API takes a path as a string too, with the recipe's ${VAR:-default}
        # and pkg://samples/ forms
        if isinstance(self.path, str):
            from instructkit.recipe.load import resolve_path

            self.path = resolve_path(self.path)

    # -- public -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What the manifest and card say about this source (never row content)."""
        d = {"name": self.name, "type": self.type, "license": self.license,
             "url": self.url, "citation": self.citation, "description": self.description,
             "location": str(self.path) if self.path else self.dataset,
             "rows_read": self.n_read, "rows_skipped_by_where": self.n_skipped_where,
             "rows_unreadable": self.n_unreadable}
        if self.license_declaration:
            d["license_declaration"] = self.license_declaration
        return {k: v for k, v in d.items() if v is not None}

    def record_source(self, row: SourceRow) -> dict[str, Any]:
        """The ``source`` object of a record built from ``row``."""
        url = row.data.get("url") if isinstance(row.data.get("url"), str) else None
        return {"name": self.name, "license": self.license, "record_id": row.record_id,
                "url": url or self.url, "location": row.location, "citation": self.citation}

    def rows(self) -> Iterator[SourceRow]:
        """Yield rows (respecting ``where`` and ``limit``), counting as it goes."""
        self.n_read = self.n_skipped_where = self.n_unreadable = 0
        patterns = {k: re.compile(v) for k, v in self.where.items()}
        kept = 0
        for row in self._read():
            if self.limit is not None and kept >= self.limit:
                break
            self.n_read += 1
            if row.error:
                self.n_unreadable += 1
            elif patterns and not all(
                    p.search(str(row.data.get(k, ""))) for k, p in patterns.items()):
                self.n_skipped_where += 1
                continue
            kept += 1
            yield row

    # -- readers ------------------------------------------------------------------------
    def _read(self) -> Iterator[SourceRow]:
        reader = getattr(self, f"_read_{self.type}", None)
        if reader is None:
            raise SourceError(f"unknown source type '{self.type}'", file=self.name)
        if self.type in ("jsonl", "json", "csv", "parquet", "medquad"):
            if self.path is None or not self.path.exists():
                raise SourceError(f"source '{self.name}': path not found (relative paths are "
                                  "read from the current directory)", file=str(self.path))
        yield from reader()

    def _rid(self, data: dict[str, Any], fallback: str) -> str:
        if self.id_field:
            v = data.get(self.id_field)
            if v is not None and str(v).strip():
                return str(v)
        return fallback

    def _check_not_empty(self, raw: bytes) -> None:
        if not raw.strip():
            raise SourceError(f"source '{self.name}': file is empty", file=str(self.path))

    def _read_jsonl(self) -> Iterator[SourceRow]:
        path = self.path
        assert path is not None
        with path.open("rb") as fh:
            any_line = False
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                any_line = True
                loc = f"{path.name}:{n}"
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    yield SourceRow({}, f"line-{n}", loc, f"not valid UTF-8 (byte {exc.start})")
                    continue
                except json.JSONDecodeError as exc:
                    yield SourceRow({}, f"line-{n}", loc, f"not valid JSON ({exc.msg})")
                    continue
                if not isinstance(obj, dict):
                    yield SourceRow({}, f"line-{n}", loc, f"expected a JSON object, got {type(obj).__name__}")
                    continue
                yield SourceRow(obj, self._rid(obj, f"line-{n}"), loc)
            if not any_line:
                raise SourceError(f"source '{self.name}': file is empty", file=str(path))

    def _read_json(self) -> Iterator[SourceRow]:
        path = self.path
        assert path is not None
        raw = path.read_bytes()
        self._check_not_empty(raw)
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise SourceError(f"not valid UTF-8 (byte {exc.start})", file=str(path),
                              line=raw[:exc.start].count(b"\n") + 1) from None
        except json.JSONDecodeError as exc:
            raise SourceError(f"not valid JSON ({exc.msg})", file=str(path), line=exc.lineno) from None
        if self.records_key:
            if not isinstance(obj, dict) or self.records_key not in obj:
                raise SourceError(f"no key '{self.records_key}' at the top level", file=str(path),
                                  field=self.records_key)
            obj = obj[self.records_key]
        if isinstance(obj, dict):
            # {id: row} (PubMedQA's PMID -> item shape)
            for key, val in obj.items():
                loc = f"{path.name}:{key}"
                if isinstance(val, dict):
                    yield SourceRow({"_key": key, **val}, self._rid(val, str(key)), loc)
                else:
                    yield SourceRow({"_key": key, "value": val}, str(key), loc)
        elif isinstance(obj, list):
            for i, val in enumerate(obj):
                loc = f"{path.name}:[{i}]"
                if isinstance(val, dict):
                    yield SourceRow(val, self._rid(val, f"item-{i}"), loc)
                else:
                    yield SourceRow({}, f"item-{i}", loc, f"expected a JSON object, got {type(val).__name__}")
        else:
            raise SourceError("expected a JSON list or object of rows", file=str(path))

    def _read_csv(self) -> Iterator[SourceRow]:
        path = self.path
        assert path is not None
        raw = path.read_bytes()
        self._check_not_empty(raw)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(f"not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8",
                              file=str(path), line=raw[:exc.start].count(b"\n") + 1) from None
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise SourceError("no header row", file=str(path), line=1)
        start = 2
        for row in reader:
            loc = f"{path.name}:{start}"
            start = reader.line_num + 1
            if None in row:  # more cells than header columns
                yield SourceRow({}, f"line-{loc.rsplit(':', 1)[1]}", loc,
                                "more cells than the header has columns")
                continue
            data = {k: v for k, v in row.items()}
            yield SourceRow(data, self._rid(data, f"line-{loc.rsplit(':', 1)[1]}"), loc)

    def _read_parquet(self) -> Iterator[SourceRow]:
        import pyarrow.parquet as pq

        files = sorted(self.path.rglob("*.parquet")) if self.path.is_dir() else [self.path]
        if not files:
            raise SourceError("no .parquet files", file=str(self.path))
        for f in files:
            try:
                pf = pq.ParquetFile(f)
            except Exception as exc:
                raise SourceError(f"not a readable Parquet file ({type(exc).__name__})", file=str(f)) from None
            if pf.metadata.num_rows == 0:
                raise SourceError(f"source '{self.name}': file is empty", file=str(f))
            i = 0
            for batch in pf.iter_batches(batch_size=1024):
                for data in batch.to_pylist():
                    yield SourceRow(data, self._rid(data, f"row-{i}"), f"{f.name}:row {i}")
                    i += 1

    def _read_hf(self) -> Iterator[SourceRow]:
        from instructkit._resources import require

        datasets = require("datasets", "all", "Hugging Face dataset sources")
        target = str(self.path) if self.path else self.dataset
        try:
            ds = datasets.load_dataset(target, self.config, split=self.split, streaming=False)
        except Exception as exc:
            raise SourceError(f"could not load Hugging Face dataset '{target}' split "
                              f"'{self.split}' ({type(exc).__name__}: {str(exc)[:200]}); "
                              "offline, give a local dataset folder or files",
                              file=str(target)) from None
        for i, data in enumerate(ds):
            yield SourceRow(dict(data), self._rid(data, f"{self.split}-{i}"), f"{target}:{self.split}[{i}]")

    def _read_inline(self) -> Iterator[SourceRow]:
        for i, data in enumerate(self.rows_inline or []):
            yield SourceRow(dict(data), self._rid(data, f"row-{i}"), f"{self.name}:[{i}]")

    def _read_medquad(self) -> Iterator[SourceRow]:
        path = self.path
        assert path is not None
        files = sorted(path.rglob("*.xml")) if path.is_dir() else [path]
        if not files:
            raise SourceError("no MedQuAD .xml files in the folder", file=str(path))
        for f in files:
            try:
                root = ET.parse(f).getroot()
            except ET.ParseError as exc:
                yield SourceRow({}, f.stem, f"{f.name}:{exc.position[0]}", f"not valid XML ({exc.msg})")
                continue
            doc = {"doc_id": root.get("id") or f.stem, "url": root.get("url"),
                   "collection": root.get("source"),
                   "focus": (root.findtext("Focus") or "").strip()}
            for pair in root.iter("QAPair"):
                q = pair.find("Question")
                qid = (q.get("qid") if q is not None else None) or f"{f.stem}-{pair.get('pid')}"
                data = {**doc, "qid": qid,
                        "qtype": q.get("qtype") if q is not None else None,
                        "question": (q.text or "").strip() if q is not None else "",
                        "answer": (pair.findtext("Answer") or "").strip()}
                yield SourceRow(data, qid, f"{f.name}:{qid}")


def source_from_config(cfg: dict[str, Any]) -> Source:
    from instructkit.recipe.load import resolve_path

    path = resolve_path(cfg["path"]) if cfg.get("path") else None
    return Source(name=cfg["name"], type=cfg["type"], license=cfg.get("license") or "unknown",
                  path=path, dataset=cfg.get("dataset"), config=cfg.get("config"),
                  split=cfg.get("split", "train"), rows_inline=cfg.get("rows"),
                  records_key=cfg.get("records_key"), id_field=cfg.get("id_field"),
                  url=cfg.get("url"), citation=cfg.get("citation"),
                  description=cfg.get("description"),
                  license_declaration=cfg.get("license_declaration"),
                  where=dict(cfg.get("where") or {}), limit=cfg.get("limit"))


def sources_from_recipe(recipe: dict[str, Any]) -> dict[str, Source]:
    return {s["name"]: source_from_config(s) for s in recipe.get("sources", [])}
