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
    #: the quarantine reason of a row with ``error`` (default ``unreadable_row``)
    reason: str | None = None


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
    #: whether rows may hold PHI (undeclared: assume they may)
    phi: bool = True
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
             "rows_unreadable": self.n_unreadable, "phi": self.phi}
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
        patterns = {k: compile_where(v, f"source '{self.name}' where.{k}") for k, v in self.where.items()}
        kept = 0
        for row in self._read():
            if self.limit is not None and kept >= self.limit:
                break
            row = _checked_row(row)
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
            self._check_kind(self.path)
        yield from reader()

    def _check_kind(self, path: Path) -> None:
        """Regular files only (a FIFO or device would block or never end); a folder only for
        the types that read one."""
        if path.is_dir():
            if self.type not in FOLDER_TYPES:
                raise SourceError(f"source '{self.name}': is a folder; a {self.type} source reads "
                                  "one file", file=str(path))
        elif not path.is_file():
            raise SourceError(f"source '{self.name}': not a regular file (a pipe, socket or "
                              "device is never read)", file=str(path))

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
            any_line = good = 0
            first_error = None
            for n, raw in _bounded_lines(fh, MAX_LINE_BYTES):
                if raw is None:
                    yield SourceRow({}, f"line-{n}", f"{path.name}:{n}",
                                    f"line longer than {MAX_LINE_BYTES:,} bytes")
                    continue
                if not raw.strip():
                    continue
                any_line += 1
                loc = f"{path.name}:{n}"
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    first_error = first_error or (n, f"not valid UTF-8 (byte {exc.start})")
                    yield SourceRow({}, f"line-{n}", loc, f"not valid UTF-8 (byte {exc.start})")
                    continue
                except json.JSONDecodeError as exc:
                    first_error = first_error or (n, f"not valid JSON ({exc.msg})")
                    yield SourceRow({}, f"line-{n}", loc, f"not valid JSON ({exc.msg})")
                    continue
                except RecursionError:
                    first_error = first_error or (n, TOO_DEEP)
                    yield SourceRow({}, f"line-{n}", loc, TOO_DEEP)
                    continue
                if not isinstance(obj, dict):
                    first_error = first_error or (n, f"expected a JSON object, got {type(obj).__name__}")
                    yield SourceRow({}, f"line-{n}", loc, f"expected a JSON object, got {type(obj).__name__}")
                    continue
                good += 1
                yield SourceRow(obj, self._rid(obj, f"line-{n}"), loc)
            if not any_line:
                raise SourceError(f"source '{self.name}': file is empty", file=str(path))
            if not good and first_error:
                raise SourceError(f"source '{self.name}': no line is a JSON object ({first_error[1]} "
                                  "at the first); is this a JSONL file?", file=str(path),
                                  line=first_error[0])

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
        except RecursionError:
            raise SourceError(TOO_DEEP, file=str(path)) from None
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
            if not obj:
                raise SourceError(f"source '{self.name}': the JSON list has no rows", file=str(path))
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
        # the parser's own cap (128 KiB a cell) would end the build; cells are bounded below
        csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise SourceError("no header row", file=str(path), line=1)
        start = 2
        rows = 0
        for row in reader:
            rows += 1
            loc = f"{path.name}:{start}"
            start = reader.line_num + 1
            if None in row:  # more cells than header columns
                yield SourceRow({}, f"line-{loc.rsplit(':', 1)[1]}", loc,
                                "more cells than the header has columns")
                continue
            data = {k: v for k, v in row.items()}
            longest = max((len(v) for v in data.values() if isinstance(v, str)), default=0)
            if longest > MAX_CELL_CHARS:
                yield SourceRow({}, f"line-{loc.rsplit(':', 1)[1]}", loc,
                                f"a cell of {longest:,} characters (over {MAX_CELL_CHARS:,})", "too_long")
                continue
            yield SourceRow(data, self._rid(data, f"line-{loc.rsplit(':', 1)[1]}"), loc)
        if not rows:
            raise SourceError(f"source '{self.name}': the CSV has a header row but no data rows",
                              file=str(path), line=2)

    def _read_parquet(self) -> Iterator[SourceRow]:
        import pyarrow.parquet as pq

        files = _regular_files(self.path, "*.parquet")
        if not files:
            raise SourceError("no .parquet files", file=str(self.path))
        for f in files:
            try:
                pf = pq.ParquetFile(f)
            except Exception as exc:
                raise SourceError(f"not a readable Parquet file ({type(exc).__name__})", file=str(f)) from None
            if pf.metadata.num_rows == 0:
                raise SourceError(f"source '{self.name}': file is empty", file=str(f))
            yield from self._parquet_rows(pf, f)

    def _parquet_rows(self, pf: Any, f: Path) -> Iterator[SourceRow]:
        """Row group by row group: a corrupt group is one quarantined entry (``unreadable_row``
        naming the file and group), and the groups after it are still read."""
        i = 0
        for group in range(pf.metadata.num_row_groups):
            n_rows = pf.metadata.row_group(group).num_rows
            done = 0
            try:
                for batch in pf.iter_batches(batch_size=1024, row_groups=[group]):
                    for data in batch.to_pylist():
                        yield SourceRow(data, self._rid(data, f"row-{i + done}"), f"{f.name}:row {i + done}")
                        done += 1
            except (OSError, ValueError, ArithmeticError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                yield SourceRow({}, f"row-group-{group}", f"{f.name}:row group {group}",
                                f"row group {group} of {f.name} is unreadable ({type(exc).__name__}); "
                                f"{n_rows - done:,} rows skipped")
            i += n_rows

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
        files = _regular_files(path, "*.xml")
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


def source_from_config(cfg: dict[str, Any], ctx: Any = None, index: int | None = None) -> Source:
    from instructkit.recipe.paths import checked_source_path

    from instructkit.recipe.path_fields import is_local_path

    where = f"sources.{index}" if index is not None else f"source '{cfg.get('name')}'"
    path = checked_source_path(cfg["path"], ctx, f"{where}.path") if cfg.get("path") else None
    dataset = cfg.get("dataset")
    if dataset and path is None and is_local_path(dataset, "read-or-hub-id"):
        # an hf source's local dataset folder: the same check and path as any other
        path, dataset = checked_source_path(dataset, ctx, f"{where}.dataset"), None
    return Source(name=cfg["name"], type=cfg["type"], license=cfg.get("license") or "unknown",
                  path=path, dataset=dataset, config=cfg.get("config"),
                  split=cfg.get("split", "train"), rows_inline=cfg.get("rows"),
                  records_key=cfg.get("records_key"), id_field=cfg.get("id_field"),
                  url=cfg.get("url"), citation=cfg.get("citation"),
                  description=cfg.get("description"),
                  license_declaration=cfg.get("license_declaration"),
                  where=dict(cfg.get("where") or {}), limit=cfg.get("limit"),
                  phi=cfg.get("phi", True))


def sources_from_recipe(recipe: dict[str, Any], ctx: Any = None) -> dict[str, Source]:
    sources = {s["name"]: source_from_config(s, ctx, i) for i, s in enumerate(recipe.get("sources", []))}
    if ctx is not None:
        ctx.phi_free_sources = {n for n, s in sources.items() if not s.phi}
    return sources


#: a JSONL line longer than this is quarantined (``line longer than``), not read into memory
MAX_LINE_BYTES = 64 * 1024 * 1024
#: a CSV cell longer than this is quarantined ``too_long`` (spaCy's own limit; shorter but
#: long texts are the limits step's to judge)
MAX_CELL_CHARS = 1_000_000
#: rows nested deeper than this are quarantined: no record field is, and deep nesting ends
#: Python's recursion in every later step
MAX_DEPTH = 64
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
#: the source types whose path may be a folder
FOLDER_TYPES = ("parquet", "medquad", "hf")


def compile_where(pattern: str, field: str) -> Any:
    """A ``where`` pattern in RE2 (linear time: ``^(a+)+$`` cannot hang a build); a pattern RE2
    does not support (backreferences, look-around) is an error naming the field."""
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line to stderr besides ours
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise SourceError(f"{field}: pattern {pattern[:80]!r} is not a supported regular "
                          f"expression ({why}); RE2 syntax, no backreferences or look-around") from None


def _regular_files(path: Path, pattern: str) -> list[Path]:
    """``path`` itself, or the regular files under a folder (never a pipe or device)."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob(pattern) if p.is_file())


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` (iterative: no recursion of our own)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, (list, tuple)):
            if d > limit:
                return True
            stack.extend((x, d + 1) for x in v)
    return False


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def _checked_row(row: SourceRow) -> SourceRow:
    """A row nested too deep, or holding a NUL character (it would reach the exports and break
    tools downstream), becomes an unreadable row; its text is not kept."""
    if row.error:
        return row
    if _depth_over(row.data, MAX_DEPTH):
        return SourceRow({}, row.record_id, row.location, TOO_DEEP)
    if _has_nul(row.data):
        return SourceRow({}, row.record_id, row.location, "holds a NUL character")
    return row


def _bounded_lines(fh: Any, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` per line; ``None`` for a line over ``limit`` bytes (skipped
    without holding it)."""
    n = 0
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        n += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # drain the rest of the line
                raw = fh.readline(1 << 20)
            yield n, None
            continue
        yield n, raw
