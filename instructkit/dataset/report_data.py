"""What the dataset report shows, read from a dataset folder with Arrow.

The page follows the card's facts and computes no other numbers:

- records, tasks, methods, sources, licences and models come from the manifest's counts
  (``DatasetCounts``, counted while the records were written), where the card takes them;
- what the card does not show (records by task x method and by source, the token lengths of
  instruction, input and output) is aggregated with Arrow over a few narrow columns
  (``arrow_table``: about 3 s for 1M records), the lengths counted on the UTF-8 bytes with
  numpy (``token_counts``);
- quarantined records, drops by stage and reason, anonymization, dedup, bias and the LLM
  ledger come from ``manifest.json``, where the card takes them;
- the publish gates are the ones ``instructkit publish --dry-run`` reports
  (``hub.publisher.check_folder``); a build passes its own audit report of the files it
  just wrote instead of auditing them twice.

Only the sampled records, quarantine entries and dedup clusters (``report_samples``) are
turned into Python objects. The quarantine is embedded whole up to ``max_quarantine`` entries,
else a sample stratified by stage and reason; its counts always come from the manifest.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import SourceError
from instructkit.dataset.card import _license_of
from instructkit.dataset.counts import DatasetCounts
from instructkit.dataset.report_samples import (
    BATCH_ROWS,
    dedup_clusters,
    iter_quarantine,
    quarantine_index,
    read_rows,
    sample_quarantine,
    sample_rows,
)

logger = logging.getLogger("instructkit")

__all__ = ["ReportData", "load_report_data", "arrow_table", "token_counts", "LENGTH_FIELDS", "CountsView"]

LENGTH_FIELDS = ("instruction", "input", "output")
#: provenance fields the aggregates need (the rest of the JSON is not parsed)
PROVENANCE_FIELDS = ("builder", "template_id", "template_hash", "prompt_id", "prompt_hash",
                     "model", "provider")
QUANTILES = {"p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
#: longest text shown per field; the page says when a text was clipped
CLIP_CHARS = 4000


class CountsView:
    """The manifest's counts, in the shape the page uses."""

    def __init__(self, counts: DatasetCounts) -> None:
        self.records = counts.records
        self.tasks = Counter(counts.by["task"])
        self.methods = Counter(counts.by["method"])
        self.licenses = Counter(counts.by["license"])
        self.source_licenses = Counter(counts.split("source_license"))


@dataclass
class ReportData:
    """Everything the page shows about one dataset folder."""

    folder: Path
    manifest: dict[str, Any]
    recipe: dict[str, Any]
    stats: CountsView
    #: (task, method) -> records
    task_method: dict[tuple[str, str], int] = field(default_factory=dict)
    #: source name -> records in the data
    source_records: Counter = field(default_factory=Counter)
    #: field -> task -> {n, p5, p25, p50, p75, p95, max, mean}
    lengths: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    gates: list[Any] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    #: entries in quarantine.jsonl (the manifest's count is what the page shows)
    quarantine_lines: int = 0
    clusters: list[dict[str, Any]] = field(default_factory=list)
    #: kept records with dropped duplicates, and how many duplicates were dropped in all
    cluster_count: int = 0
    duplicates_dropped: int = 0
    card_license: str = "-"
    seconds: float = 0.0

    @property
    def n_records(self) -> int:
        return self.stats.records

    @property
    def n_quarantined(self) -> int:
        q = self.manifest.get("quarantined")
        return int(q) if isinstance(q, int) else self.quarantine_lines


# -- the data -------------------------------------------------------------------------------
def _byte_classes() -> tuple[Any, Any]:
    """Which ASCII bytes are word characters and which one-token marks (neither word nor
    space), as Python's ``re`` sees them (``\\w``, ``\\s`` on str); bytes >= 0x80 are neither
    (their strings are counted by ``approx_tokens``)."""
    import numpy as np

    word = np.zeros(256, bool)
    punct = np.zeros(256, bool)
    for b in range(128):
        ch = chr(b)
        word[b] = ch.isalnum() or ch == "_"
        punct[b] = not word[b] and not ch.isspace()
    return word, punct


_TEXT_SLICE = 2048  # rows per numpy pass (bounds the temporary arrays: ~20 bytes per text byte)


def token_counts(texts: Any) -> Any:
    """Approximate tokens per string, exactly ``quality.text.approx_tokens``, vectorised:
    a word counts one token per started 4 characters, any other non-space character one.
    ASCII strings are counted on their bytes with numpy; strings with other characters
    (whose classes need Unicode tables) go through ``approx_tokens`` itself."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    arr = pc.fill_null(arr, "")
    offset_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    word_lut, punct_lut = _BYTE_CLASSES
    out = np.zeros(len(arr), np.int64)
    for lo in range(0, len(arr), _TEXT_SLICE):
        part = arr.slice(lo, _TEXT_SLICE)
        n = len(part)
        offs = np.frombuffer(part.buffers()[1], offset_type)[part.offset:part.offset + n + 1].astype(np.int64)
        start, end = int(offs[0]), int(offs[-1])
        if end == start:
            continue
        data = np.frombuffer(part.buffers()[2], np.uint8)[start:end]
        offs = offs - start
        is_word = word_lut.take(data)
        # segments of one class (word characters or not), cut at every string start too
        change = np.empty(len(data), bool)
        change[0] = True
        np.not_equal(is_word[1:], is_word[:-1], out=change[1:])
        change[offs[:-1][offs[:-1] < len(data)]] = True
        seg = np.flatnonzero(change)
        seg_len = np.diff(seg, append=len(data))
        # a word counts one token per started 4 characters; every mark one token
        seg_tokens = np.where(is_word[seg], (seg_len + 3) >> 2, 0)
        seg_string = np.searchsorted(offs, seg, side="right") - 1
        out[lo:lo + n] = np.bincount(seg_string, weights=seg_tokens, minlength=n)[:n].astype(np.int64)
        marks = np.concatenate(([0], np.cumsum(punct_lut.take(data).view(np.uint8), dtype=np.int64)))
        out[lo:lo + n] += marks[offs[1:]] - marks[offs[:-1]]
        non_ascii = np.flatnonzero(pc.not_equal(pc.utf8_length(part), pc.binary_length(part)).to_numpy(zero_copy_only=False))
        if len(non_ascii):
            from instructkit.steps.quality.text import approx_tokens

            strings = part.take(pa.array(non_ascii)).to_pylist()
            out[lo + non_ascii] = [approx_tokens(t) for t in strings]
    return pa.array(out, pa.int32())


_BYTE_CLASSES = _byte_classes()


def _provenance_table(col: Any) -> Any:
    """The fields in ``PROVENANCE_FIELDS`` of a column of JSON strings, parsed by Arrow's
    JSON reader (newline-delimited), or row by row if the reader refuses the batch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    schema = pa.schema([(k, pa.string()) for k in PROVENANCE_FIELDS])
    lines = pc.binary_join_element_wise(pc.fill_null(col, "{}"), "", "\n")
    if len(lines):
        offset_type = pa.int64() if pa.types.is_large_string(lines.type) else pa.int32()
        offsets = pa.Array.from_buffers(offset_type, len(lines) + 1, [None, lines.buffers()[1]],
                                        offset=lines.offset)
        start, end = offsets[0].as_py(), offsets[-1].as_py()
        buf = lines.buffers()[2][start:end]
        try:
            table = pj.read_json(pa.BufferReader(buf), read_options=pj.ReadOptions(
                block_size=max(1 << 20, min(len(buf), 1 << 26)), use_threads=True),
                parse_options=pj.ParseOptions(explicit_schema=schema,
                                              unexpected_field_behavior="ignore"))
            if table.num_rows == len(col):
                return table
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            logger.debug("provenance batch parsed row by row (%s)", exc)
    rows = []
    for s in col.to_pylist():
        try:
            p = json.loads(s) if s else {}
        except (TypeError, json.JSONDecodeError):
            p = {}
        p = p if isinstance(p, dict) else {}
        rows.append({k: (None if p.get(k) is None else str(p.get(k))) for k in PROVENANCE_FIELDS})
    return pa.Table.from_pylist(rows, schema=schema)


def _slim_batches(folder: Path, lengths: bool = True) -> Iterator[tuple[Any, Any]]:
    """One narrow batch per Parquet batch: task, method, source, licence, token counts (when
    ``lengths``) and the provenance fields, plus the global row number; and the batch's raw
    provenance column. Token counts run in a thread pool (Arrow releases the GIL)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.compute as pc

    from instructkit.dataset.reader import DatasetFolder

    row = 0
    wanted = ["task", "method", "source", "provenance", *(LENGTH_FIELDS if lengths else ())]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        # one pass over the folder's shards, narrow columns only
        for batch in DatasetFolder(folder, require_complete=False).iter_batches(wanted, BATCH_ROWS):
            n = batch.num_rows
            names = set(batch.schema.names)

            def col(name: str, default: str) -> Any:
                return pc.fill_null(batch.column(name), default) if name in names else pa.array([default] * n)

            tokens = {fld: pool.submit(token_counts, batch.column(fld))
                      for fld in (LENGTH_FIELDS if lengths else ()) if fld in names}
            src = batch.column("source") if "source" in names else None
            out = {
                "row": pa.array(range(row, row + n), pa.int64()),
                "task": col("task", "?"), "method": col("method", "?"),
                "source": pc.fill_null(pc.struct_field(src, "name"), "?") if src is not None else pa.array(["?"] * n),
                "license": pc.fill_null(pc.struct_field(src, "license"), "unknown") if src is not None
                else pa.array(["unknown"] * n),
            }
            prov_col = batch.column("provenance") if "provenance" in names else None
            prov = (_provenance_table(prov_col) if prov_col is not None
                    else pa.table({k: pa.nulls(n, pa.string()) for k in PROVENANCE_FIELDS}))
            for k in PROVENANCE_FIELDS:
                out[f"prov_{k}"] = prov.column(k).combine_chunks()
            if lengths:
                for fld in LENGTH_FIELDS:
                    out[f"tok_{fld}"] = tokens[fld].result() if fld in tokens else pa.array([0] * n, pa.int32())
            yield pa.RecordBatch.from_pydict(out), prov_col
            row += n


def _counts(table: Any, keys: Sequence[str]) -> dict[Any, int]:
    g = table.group_by(list(keys)).aggregate([([], "count_all")])
    cols = [g.column(k).to_pylist() for k in keys]
    n = g.column("count_all").to_pylist()
    if len(keys) == 1:
        return dict(zip(cols[0], n))
    return {tuple(vals): c for *vals, c in zip(*cols, n)}


def arrow_table(folder: str | Path, lengths: bool = True) -> Any:
    """The narrow per-record table (row, task, method, source, licence, provenance ids, token
    counts when ``lengths``) the charts and the record sampler use; None for no records."""
    import pyarrow as pa

    batches = [slim for slim, _ in _slim_batches(Path(folder), lengths)]
    return pa.Table.from_batches(batches) if batches else None


def _counts_of_table(table: Any) -> DatasetCounts:
    """Counts for a folder whose manifest is missing (nothing else has them)."""
    out = DatasetCounts()
    if table is None:
        return out
    out.records = table.num_rows
    out.by["task"] = Counter(_counts(table, ["task"]))
    out.by["method"] = Counter(_counts(table, ["method"]))
    out.by["license"] = Counter(_counts(table, ["license"]))
    out.by["source_license"] = Counter({f"{n}\x1f{lic}": c for (n, lic), c in
                                        _counts(table, ["source", "license"]).items()})
    return out


def _lengths(table: Any, tasks: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    import pyarrow.compute as pc

    out: dict[str, dict[str, dict[str, float]]] = {f: {} for f in LENGTH_FIELDS}
    task_col = table.column("task")
    for t in tasks:
        sub = table.filter(pc.equal(task_col, t))
        for f in LENGTH_FIELDS:
            vals = sub.column(f"tok_{f}")
            if not len(vals):
                continue
            qs = pc.quantile(vals, q=list(QUANTILES.values())).to_pylist()
            q = {k: round(v, 1) for k, v in zip(QUANTILES, qs)}
            q.update(n=len(vals), max=pc.max(vals).as_py(), mean=round(pc.mean(vals).as_py(), 1))
            out[f][t] = q
    return out


# -- everything ---------------------------------------------------------------------------------
def load_report_data(folder: str | Path, *, max_records: int = 500, max_quarantine: int = 500,
                     n_clusters: int = 12, quarantine_texts: bool = True,
                     audit: Mapping[str, Any] | None = None, complete: bool = True) -> ReportData:
    """Read a dataset folder for the report (see the module docstring for where each figure
    comes from)."""
    import time

    import yaml

    t0 = time.perf_counter()
    folder = Path(folder)
    from instructkit.dataset.reader import DatasetFolder

    DatasetFolder(folder, require_complete=complete)  # one message for a folder that is not one
    mpath = folder / "manifest.json"
    manifest: dict[str, Any] | None = None
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SourceError(f"manifest.json is not valid JSON ({exc.msg})", file=str(mpath),
                              line=exc.lineno) from None
    recipe: dict[str, Any] = {}
    rpath = folder / "recipe.yaml"
    if rpath.is_file():
        from instructkit._yaml import safe_load

        try:
            loaded = safe_load(rpath.read_text(encoding="utf-8"))
            recipe = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            recipe = {}
    table = arrow_table(folder)
    counts = (manifest or {}).get("counts")
    stats = CountsView(DatasetCounts.from_dict(counts) if counts else _counts_of_table(table))
    data = ReportData(folder=folder, manifest=manifest or {}, recipe=recipe, stats=stats)
    if table is not None:
        data.task_method = _counts(table, ["task", "method"])
        data.source_records = Counter(_counts(table, ["source"]))
        data.lengths = _lengths(table, sorted(stats.tasks))
    # sources and licences as the card classifies them
    m = data.manifest
    sources = list(m.get("sources") or [])
    hub_id, hub_name, classified = _license_of(sources, list(stats.source_licenses),
                                               (recipe.get("card") or {}).get("license"))
    data.card_license = hub_id if hub_id != "other" else f"other ({hub_name})"
    by_name = {c.name: c for c in classified}
    listed = set()
    for s in sources:
        c = by_name.get(s.get("name"))
        listed.add(s.get("name"))
        data.sources.append({**s, "class": c.info.cls if c else "?",
                             "publishable": c is None or c.publishable,
                             "problems": list(c.problems) if c else [],
                             "records": data.source_records.get(s.get("name"), 0)})
    for (name, lic), n in sorted(stats.source_licenses.items()):
        if name not in listed:  # records of a source the manifest does not list
            c = by_name.get(name)
            data.sources.append({"name": name, "license": lic, "class": c.info.cls if c else "?",
                                 "publishable": c is None or c.publishable,
                                 "problems": list(c.problems) if c else [], "records": n})
    # the publish gates, as `instructkit publish --dry-run` reports them
    from instructkit.hub.publisher import check_folder

    # the page a build writes for itself (not complete yet) reports names only if its own
    # audit looked; a finished folder's page looks as publish does
    data.gates = check_folder(folder, audit=audit, require_complete=complete, names=complete)[3]
    # records to browse
    data.records = read_rows(folder, sample_rows(table, max_records))
    # the quarantine and the dedup clusters
    qpath = folder / "quarantine.jsonl"
    index = quarantine_index(qpath)
    data.quarantine_lines = index.num_rows if index is not None else 0
    if quarantine_texts and index is not None:
        wanted = set(sample_quarantine(index, max_quarantine))
        data.quarantine = list(iter_quarantine(qpath, wanted))
        data.clusters, data.cluster_count, data.duplicates_dropped = dedup_clusters(folder, index, n_clusters)
    elif index is not None:
        _, data.cluster_count, data.duplicates_dropped = dedup_clusters(folder, index, 0)
    data.seconds = time.perf_counter() - t0
    return data


def stage_drops(manifest: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(stage, reason, records) for every drop the manifest counts, builders first, in run order."""
    out = []
    for s in [*(manifest.get("builders") or []), *(manifest.get("stages") or [])]:
        for reason, n in (s.get("dropped_by_reason") or {}).items():
            if n:
                out.append((str(s.get("stage", "?")), str(reason), int(n)))
    return out
