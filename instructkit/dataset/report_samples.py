"""The parts of a dataset folder the report shows one by one: a sample of records stratified
by task, method and source, quarantine entries (all, or a sample stratified by stage and
reason) and a sample of merged dedup clusters. Only these rows are read and parsed; the row
groups that hold them are found from the Parquet metadata.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("instructkit")

__all__ = ["sample_rows", "read_rows", "rows_of_ids", "quarantine_index", "iter_quarantine",
           "sample_quarantine", "dedup_clusters"]

BATCH_ROWS = 16_384


def data_files(folder: Path) -> list[Path]:
    from instructkit.dataset.reader import DatasetFolder

    return DatasetFolder(folder, require_complete=False).data_files


def _share(sizes: dict[Any, int], budget: int) -> dict[Any, int]:
    """Water-filling: every stratum gets an equal share, small strata give theirs back."""
    take = {k: 0 for k in sizes}
    left = budget
    open_ = [k for k in sorted(sizes, key=lambda k: (sizes[k], k)) if sizes[k] > 0]
    while open_ and left > 0:
        quota = max(1, left // len(open_))
        for k in open_:
            add = min(quota, sizes[k] - take[k], left)
            take[k] += add
            left -= add
            if left <= 0:
                break
        open_ = [k for k in open_ if take[k] < sizes[k]]
    return take


def _spread(items: list[int], k: int) -> list[int]:
    """``k`` items evenly spread over ``items`` (first and last included)."""
    if k >= len(items):
        return items
    if k <= 1:
        return items[:k]
    step = (len(items) - 1) / (k - 1)
    return [items[round(i * step)] for i in range(k)]


def sample_rows(table: Any, budget: int) -> list[int]:
    """Global row numbers of a sample stratified by (task, method, source)."""
    if table is None or budget <= 0:
        return []
    if table.num_rows <= budget:
        return list(range(table.num_rows))
    g = table.group_by(["task", "method", "source"]).aggregate([("row", "list")])
    strata = {tuple(k): rows for *k, rows in zip(g.column("task").to_pylist(), g.column("method").to_pylist(),
                                                  g.column("source").to_pylist(), g.column("row_list").to_pylist())}
    take = _share({k: len(v) for k, v in strata.items()}, budget)
    rows = [r for k in sorted(strata) for r in _spread(sorted(strata[k]), take[k])]
    return sorted(rows)


def read_rows(folder: Path, rows: Sequence[int]) -> list[dict[str, Any]]:
    """The records at global row numbers ``rows``, reading only the row groups that hold them."""
    from instructkit.dataset.reader import DatasetFolder

    return DatasetFolder(folder, require_complete=False).records_at(rows)


def rows_of_ids(folder: Path, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Records by id (reads the id column, then only the row groups holding the matches)."""
    from instructkit.dataset.reader import DatasetFolder

    return DatasetFolder(folder, require_complete=False).records_by_id(ids)


# -- the quarantine ----------------------------------------------------------------------------
_QUARANTINE_BLOCK = 1 << 26  # bytes of quarantine.jsonl parsed at a time


def quarantine_index(path: Path) -> Any:
    """stage, reason, record_id, duplicate_of and similarity of every quarantine entry (one
    row per non-empty line), read by Arrow's JSON reader in blocks of whole lines (the rest of
    each entry is not parsed; a block the reader refuses is parsed line by line); None when
    the file is empty."""
    import pyarrow as pa

    if not path.is_file() or path.stat().st_size == 0:
        return None
    tables = []
    with path.open("rb") as fh:
        rest = b""
        while True:
            block = fh.read(_QUARANTINE_BLOCK)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            block, rest = block[:cut], block[cut:]
            if block:
                tables.append(_index_block(block))
        if rest.strip():
            tables.append(_index_block(rest))
    return pa.concat_tables(tables) if tables else None


_INDEX_FIELDS = (("stage", "string"), ("reason", "string"), ("record_id", "string"),
                 ("duplicate_of", "string"), ("similarity", "float64"))


def _index_block(block: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema([(k, getattr(pa, t)()) for k, t in _INDEX_FIELDS])
    try:
        return pj.read_json(pa.BufferReader(block), read_options=pj.ReadOptions(block_size=1 << 24),
                            parse_options=pj.ParseOptions(explicit_schema=schema,
                                                          unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        logger.debug("a quarantine block read line by line (%s)", exc)
    rows = []
    for raw in block.splitlines():
        if not raw.strip():
            continue
        e = _parse_entry(raw)
        rows.append({"stage": _str(e.get("stage")), "reason": _str(e.get("reason")),
                     "record_id": _str(e.get("record_id")), "duplicate_of": _str(e.get("duplicate_of")),
                     "similarity": e.get("similarity") if isinstance(e.get("similarity"), (int, float)) else None})
    return pa.Table.from_pylist(rows, schema=schema)


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _parse_entry(raw: bytes) -> dict[str, Any]:
    try:
        e = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"stage": "?", "reason": "unreadable quarantine line"}
    return e if isinstance(e, dict) else {"stage": "?", "reason": "not an object"}


def iter_quarantine(path: Path, wanted: set[int] | None = None) -> Iterator[dict[str, Any]]:
    """Parsed quarantine entries (all, or only the non-empty lines numbered in ``wanted``)."""
    n = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            if wanted is None or n in wanted:
                e = _parse_entry(raw)
                e["_line"] = n
                yield e
            n += 1


def sample_quarantine(index: Any, budget: int) -> list[int]:
    """Line numbers of the quarantine entries to embed: all of them up to ``budget``,
    else a sample stratified by (stage, reason)."""
    import pyarrow as pa

    if index is None or budget <= 0:
        return []
    if index.num_rows <= budget:
        return list(range(index.num_rows))
    import pyarrow.compute as pc

    t = pa.table({"stage": pc.fill_null(index.column("stage"), "?"),
                  "reason": pc.fill_null(index.column("reason"), "?"),
                  "line": pa.array(range(index.num_rows), pa.int64())})
    g = t.group_by(["stage", "reason"]).aggregate([("line", "list")])
    strata = {(s, r): lines for s, r, lines in zip(g.column("stage").to_pylist(), g.column("reason").to_pylist(),
                                                   g.column("line_list").to_pylist())}
    take = _share({k: len(v) for k, v in strata.items()}, budget)
    return sorted(r for k in sorted(strata) for r in _spread(sorted(strata[k]), take[k]))


def dedup_clusters(folder: Path, index: Any, n_clusters: int) -> tuple[list[dict[str, Any]], int, int]:
    """A sample of merged clusters: the kept record and the duplicates dropped in its favour.
    Returns (clusters, clusters in all, duplicates in all)."""
    import pyarrow.compute as pc

    if index is None:
        return [], 0, 0
    has_dup = pc.is_valid(index.column("duplicate_of"))
    if not pc.any(has_dup).as_py():
        return [], 0, 0
    import pyarrow as pa

    dups = pa.table({"kept": index.column("duplicate_of"), "reason": pc.fill_null(index.column("reason"), "?"),
                     "line": pa.array(range(index.num_rows), pa.int64())}).filter(has_dup)
    g = dups.group_by(["kept"]).aggregate([("line", "list"), ("reason", "min")])
    kept = g.column("kept").to_pylist()
    lines = g.column("line_list").to_pylist()
    reasons = g.column("reason_min").to_pylist()
    # the largest clusters of each kind of duplicate, taken in turn
    by_reason: dict[str, list[int]] = {}
    for i in sorted(range(len(kept)), key=lambda i: (-len(lines[i]), kept[i])):
        by_reason.setdefault(reasons[i], []).append(i)
    chosen: list[int] = []
    queues = [by_reason[r] for r in sorted(by_reason)]
    while len(chosen) < n_clusters and any(queues):
        for q in queues:
            if q and len(chosen) < n_clusters:
                chosen.append(q.pop(0))
    wanted = {ln for i in chosen for ln in lines[i][:6]}
    entries = {e["_line"]: e for e in iter_quarantine(folder / "quarantine.jsonl", wanted)}
    kept_records = rows_of_ids(folder, [kept[i] for i in chosen if not kept[i].startswith("seed_task:")])
    clusters = []
    for i in chosen:
        clusters.append({"kept_id": kept[i], "kept": kept_records.get(kept[i]),
                         "size": len(lines[i]) + 1, "reason": reasons[i],
                         "dropped": [entries[ln] for ln in lines[i][:6] if ln in entries],
                         "more": max(0, len(lines[i]) - 6)})
    return clusters, len(kept), dups.num_rows


