"""Gate 1 reads every byte it uploads, whatever wrote it.

``audit_upload`` takes the exact files of the commit (``publisher.collect_files``) and finds,
per file:

- **identifiers**: records of each Parquet file go through the residual-PHI audit under the
  gate's policy (``hub.policy``); the card, the manifest and the recipe copy (text the tool
  and the recipe's author wrote: summaries, descriptions, citations, limitations) are held to
  the direct identifiers (SSN, phone, email, IP, record numbers, ages over 89), as text
  declared free of PHI is; the exports are checked to be exactly the audited records.
- **credentials**: every file, Parquet records included, is searched for the well-known
  token shapes and URLs with a password (``_secrets.find_secrets``).

It reports types, kinds and counts per file, never a value.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from instructkit._exceptions import SourceError
from instructkit._secrets import find_secrets
from instructkit.dataset.layout import row_to_record
from instructkit.records import Record, path_label, text_fields
from instructkit.steps.audit import (AuditDetector, AuditReport, audit_records, auto_processes,
                                     direct_types)
from instructkit.steps.audit_folder import ExportCheck

__all__ = ["audit_upload", "TEXT_FILES"]

logger = logging.getLogger("instructkit")

#: files of the commit that are text the tool and the recipe's author wrote (not records)
TEXT_FILES = ("README.md", "manifest.json", "recipe.yaml")


def audit_upload(files: Iterable[Any], manifest: Mapping[str, Any] | None, policy: Any,
                 records_audit: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The audit of the exact files to upload (``UploadFile``s) under ``policy``
    (``hub.policy.GatePolicy``). ``records_audit``: a build's own audit of these records (the
    report written with a build), used instead of auditing the Parquet files again.

    Returns ``{"files": {path: {"identifiers": {...}, "secrets": {...}}}`` (files with a
    finding only), ``records_scanned``, ``suspects_by_type``, ``phi_free_suspects_by_type``,
    ``exports`` ({file: "matches" | reason}), ``limits`` and ``ignored`` (folder settings not
    honoured)."""
    files = list(files)
    out: dict[str, Any] = {"files": {}, "records_scanned": 0, "suspects_by_type": {},
                           "phi_free_suspects_by_type": {}, "exports": {},
                           "limits": dict(sorted(policy.limits.items())), "ignored": list(policy.ignored),
                           "names_checked": bool(policy.names)}
    data = [f for f in files if f.path.endswith(".parquet")]
    exports = [f for f in files if f.path.startswith("exports/") and f.path.endswith(".jsonl")]
    samples = _sample_ids(manifest)
    fakes: set[str] = set()
    if records_audit is None:
        _audit_records_per_file(data, exports, policy, out, samples, fakes)
    else:
        _use_build_audit(records_audit, data, out, samples, fakes, policy)
    detector = AuditDetector(names=False)
    for f in files:
        if f.path in TEXT_FILES:
            _audit_text_file(f, detector, policy, out, fakes)
        elif not f.path.endswith(".parquet"):  # exports, and whatever else is ever uploaded
            _find_secrets_in_lines(f, out)
    return out


def _sample_ids(manifest: Mapping[str, Any] | None) -> set[str]:
    """Ids of the records the card shows as examples."""
    samples = ((manifest or {}).get("counts") or {}).get("samples")
    return {str(v) for v in samples.values()} if isinstance(samples, Mapping) else set()


def _note(out: dict[str, Any], path: str, what: str, counts: Mapping[str, int]) -> None:
    if counts:
        entry = out["files"].setdefault(path, {})
        merged = Counter(entry.get(what) or {})
        merged.update(counts)
        entry[what] = dict(sorted(merged.items()))


# -- the records -------------------------------------------------------------------------------
def _records_of(f: Any) -> Iterator[Record]:
    """Every record of one Parquet file of the upload."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f.local if f.local is not None else pa.BufferReader(f.content), pre_buffer=False)
        for batch in pf.iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                yield row_to_record(row)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"not a readable Parquet file ({type(exc).__name__}): rebuild the dataset",
                          file=f.path) from None


def _audit_records_per_file(data: list[Any], exports: list[Any], policy: Any, out: dict[str, Any],
                            samples: set[str], fakes: set[str]) -> None:
    """The residual-PHI audit of each Parquet file under the gate's limits, credentials in
    every field of every record, and the exports checked against the audited records."""
    formats = sorted({Path(f.path).stem for f in exports})
    check = ExportCheck(formats, phases=any(Path(f.path).parent.name != "exports" for f in exports))
    detector = AuditDetector(names=policy.names, n_process=auto_processes() if policy.names else 1)
    total, free = Counter(), Counter()
    try:
        for f in data:
            report = AuditReport(policy.limits, names=policy.names)
            secrets: Counter[str] = Counter()
            for rec, _ in audit_records(_records_of(f), detector, report, phi_free=policy.phi_free):
                check.add(rec)
                secrets.update(find_secrets(json.dumps(rec, ensure_ascii=False, default=str)))
                if str(rec.get("id")) in samples:
                    fakes.update(_surrogate_values(rec))
            out["records_scanned"] += report.records
            total.update(report.suspects)
            free.update(report.phi_free)
            _note(out, f.path, "identifiers", {t: report.suspects[t] for t in report.failed_types()})
            _note(out, f.path, "secrets", secrets)
    finally:
        detector.close()
    out["suspects_by_type"] = dict(sorted(total.items()))
    out["phi_free_suspects_by_type"] = dict(sorted(free.items()))
    out["exports"] = {f.path: check.verdict(Path(f.local)) for f in exports if f.local is not None}


def _use_build_audit(records_audit: Mapping[str, Any], data: list[Any], out: dict[str, Any],
                     samples: set[str], fakes: set[str], policy: Any) -> None:
    """A build's own audit of the records it just wrote stands for the Parquet files' audit
    (the report of a build; ``publish`` always audits afresh). Its counts are judged under
    the gate's limits, not the ones the build's recipe gave its audit stage."""
    from instructkit.steps.audit_verdict import audit_verdict

    out["records_scanned"] = int(records_audit.get("records_scanned") or 0)
    out["suspects_by_type"] = dict(records_audit.get("suspects_by_type") or {})
    out["phi_free_suspects_by_type"] = dict(records_audit.get("phi_free_suspects_by_type") or {})
    out["exports"] = dict(records_audit.get("exports") or {})
    out["names_checked"] = bool(records_audit.get("names_checked"))
    failed = audit_verdict(records_audit, policy.limits).over
    if failed:
        _note(out, "data/*.parquet", "identifiers", failed)
    for f in data:
        for rec in _records_of(f):
            _note(out, f.path, "secrets", find_secrets(json.dumps(rec, ensure_ascii=False, default=str)))
            if str(rec.get("id")) in samples:
                fakes.update(_surrogate_values(rec))


def _surrogate_values(rec: Record) -> set[str]:
    """The fake values the surrogate operator wrote into a record: the card shows a few
    records, and these are no one's identifiers there either."""
    spans = (((rec.get("provenance") or {}).get("anonymization") or {}).get("surrogate_spans") or {})
    if not spans:
        return set()
    texts = {path_label(p): t for p, t in text_fields(rec)}
    return {texts[label][int(s):int(e)] for label, pairs in spans.items() if label in texts
            for s, e in pairs or [] if int(e) - int(s) >= 4}


# -- the card, the manifest, the recipe copy and the exports -----------------------------------
def _audit_text_file(f: Any, detector: AuditDetector, policy: Any, out: dict[str, Any],
                     fakes: set[str]) -> None:
    """Direct identifiers over the limits and credentials in a file the tool or the recipe's
    author wrote (names, places, dates and URLs there are the author's declared text)."""
    raw = f.read().decode("utf-8", errors="replace")
    texts = _string_leaves(f.path, raw)
    _note(out, f.path, "secrets", _most(find_secrets(raw), sum(map(find_secrets, texts), Counter())))
    items = [(t, [[i, i + len(v)] for v in fakes for i in _occurrences(t, v)]) for t in texts]
    counts = sum(detector.scan_many(items), Counter()) if items else Counter()
    direct = direct_types()
    over = {t: n for t, n in counts.items() if t in direct and policy.limits.get(t) is not None
            and n > policy.limits[t]}
    _note(out, f.path, "identifiers", over)


def _string_leaves(path: str, raw: str) -> list[str]:
    """The texts of a file as a reader sees them: a JSON or YAML file's strings (keys too)
    unescaped, one by one (``\\n123-45-6789`` in JSON is an SSN after a line break); else the
    whole text."""
    if not path.endswith((".json", ".yaml", ".yml")):
        return [raw]
    try:
        if path.endswith(".json"):
            data = json.loads(raw)
        else:
            from instructkit._yaml import safe_load

            data = safe_load(raw)
    except Exception:  # noqa: BLE001 - unparsable: read as it is
        return [raw]
    leaves: list[str] = []
    _walk_strings(data, leaves)
    return leaves


def _walk_strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if value:
            out.append(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _walk_strings(str(k), out)
            _walk_strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk_strings(v, out)
    elif value is not None and not isinstance(value, bool):
        out.append(str(value))  # dates YAML parsed, numbers: an SSN or phone written bare


def _most(a: Counter[str], b: Counter[str]) -> Counter[str]:
    """Per kind, the larger count (a file read raw and read as its strings)."""
    return Counter({k: max(a.get(k, 0), b.get(k, 0)) for k in {*a, *b}})


def _occurrences(text: str, value: str) -> Iterator[int]:
    i = text.find(value)
    while i >= 0:
        yield i
        i = text.find(value, i + 1)


def _find_secrets_in_lines(f: Any, out: dict[str, Any]) -> None:
    """Credentials in an export, read line by line (exports can be large)."""
    found: Counter[str] = Counter()
    if f.local is None:
        found.update(find_secrets(f.read().decode("utf-8", errors="replace")))
    else:
        with Path(f.local).open("r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                found.update(find_secrets(line))
    _note(out, f.path, "secrets", found)
