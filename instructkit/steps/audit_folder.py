"""The residual-PHI audit of a dataset folder as it is on disk (``instructkit audit``): every
text field of every record in its Parquet files, and that each training export holds exactly
those records (``ExportCheck``, which publish gate 1 also uses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from instructkit._exceptions import SourceError
from instructkit.records import Record
from instructkit.steps.audit import (AuditDetector, AuditReport, PhiFreeScope, _limits,
                                     audit_records, auto_processes)

__all__ = ["audit_dataset", "ExportCheck"]


def audit_dataset(directory: str | Path, config: dict[str, Any] | None = None, *,
                  names: bool | None = None, check_exports: bool = True,
                  require_complete: bool = True, policy: Any = None) -> dict[str, Any]:
    """Audit a dataset folder as it is on disk: every text field of every record in its
    Parquet files, and (``check_exports``) that each training export is exactly what those
    audited records give, byte for byte, so nothing else can ride along in it.

    Limits and the text held apart as PHI-free come from ``policy`` (``hub.policy.GatePolicy``:
    ``instructkit audit`` passes publish gate 1's, so both give one verdict), else from
    ``config``, else from the recipe copy in the folder (``stages.audit``). Returns the report
    dict (``passed``, ``suspects_by_type``, ..., ``verdict``, ``exports``: {file: "matches" |
    reason})."""
    from instructkit.dataset.reader import DatasetFolder

    folder = DatasetFolder(directory, require_complete=require_complete)
    if not folder.data_files:
        raise SourceError("no data/*.parquet files: not a dataset folder written by `instructkit build`",
                          file=str(directory))
    if config is None:
        config = _recipe_audit_config(Path(directory)) if policy is None else {}
    if names is not None:
        config = {**config, "names": names}
    use_names = bool(config.get("names", True))
    limits = policy.limits if policy is not None else _limits(config)
    report = AuditReport(limits, int(config.get("max_record_ids", 50)), use_names)
    detector = AuditDetector(names=use_names, n_process=int(config.get("n_process") or auto_processes()))
    try:
        return _audit_folder(folder, detector, report, directory, check_exports,
                             policy.phi_free if policy is not None else None)
    finally:
        detector.close()


def _audit_folder(folder: Any, detector: AuditDetector, report: AuditReport, directory: str | Path,
                  check_exports: bool, phi_free: PhiFreeScope | None = None) -> dict[str, Any]:
    from instructkit.dataset.layout import EXPORTS_DIR

    export_files = sorted((Path(directory) / EXPORTS_DIR).rglob("*.jsonl")) if check_exports else []
    formats = sorted({f.stem for f in export_files})
    check = ExportCheck(formats, phases=any(f.parent.name != EXPORTS_DIR for f in export_files))
    phi_free = phi_free if phi_free is not None else PhiFreeScope.from_manifest(folder.manifest)
    for rec, _ in audit_records(folder.records(), detector, report, phi_free=phi_free):
        check.add(rec)
    out = report.as_dict()
    if check_exports:
        out["exports"] = {f.relative_to(directory).as_posix(): check.verdict(f) for f in export_files}
        if any(v != "matches" for v in out["exports"].values()):
            out["passed"] = False
    return out


class ExportCheck:
    """Whether each training export holds exactly the audited records' lines: a full export
    is the same multiset of lines (a curriculum may reorder it), a phase export a subset."""

    _MOD = 1 << 256

    def __init__(self, formats: list[str], phases: bool) -> None:
        self.formats = formats
        self.sums = dict.fromkeys(formats, 0)
        self.counts = dict.fromkeys(formats, 0)
        self.members: dict[str, set[int]] | None = {f: set() for f in formats} if phases else None

    @staticmethod
    def _digest(line: bytes) -> int:
        import hashlib

        return int.from_bytes(hashlib.sha256(line).digest(), "big")

    def add(self, rec: Record) -> None:
        from instructkit.dataset.writer import export_row

        for fmt in self.formats:
            try:
                line = (json.dumps(export_row(fmt, rec), ensure_ascii=False) + "\n").encode("utf-8")
            except (KeyError, TypeError):
                continue
            d = self._digest(line)
            self.sums[fmt] = (self.sums[fmt] + d) % self._MOD
            self.counts[fmt] += 1
            if self.members is not None:
                self.members[fmt].add(d >> 192)

    def verdict(self, path: Path) -> str:
        fmt, total, n = path.stem, 0, 0
        if fmt not in self.sums:
            return "not a known export format"
        full = path.parent.name == "exports"
        with path.open("rb") as fh:
            for line in fh:
                d = self._digest(line)
                total = (total + d) % self._MOD
                n += 1
                if not full and (self.members is None or (d >> 192) not in self.members[fmt]):
                    return "holds a line that is not one of the records (edited, or not made from this data)"
        if full and (total != self.sums[fmt] or n != self.counts[fmt]):
            return "does not hold exactly the records (edited, or not made from this data)"
        return "matches"


def _recipe_audit_config(directory: Path) -> dict[str, Any]:
    from instructkit._yaml import safe_load

    for p in sorted(directory.glob("recipe*.y*ml")):
        try:
            data = safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        cfg = (data.get("stages") or {}).get("audit") if isinstance(data, dict) else None
        if isinstance(cfg, dict):
            return cfg
    return {}
