"""Residual-PHI audit: an independent second detector over finished records.

The audit does not reuse the anonymizer's recognizers. It runs its own high-recall
pattern battery for structured identifiers (``audit_patterns.yaml``) plus spaCy NER for
names, and reports suspects by type with the ids of the records they are in (never the
values). A recipe sets the limits (default: zero structured identifiers; names are
reported only); the result's ``passed`` is what ``publish`` reads from the manifest at
``manifest["stages"][i]["extra"]["audit"]["passed"]`` for the stage named ``audit``.

Text the anonymizer marked (placeholders ``[NAME]``, hashes ``[NAME:1a2b..]``), masks the
source already had (``XXXX``, ``[** ... **]``) and the spans where the surrogate operator
wrote fake values (``provenance.anonymization.surrogate_spans``) are not suspects.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from instructkit._exceptions import SourceError
from instructkit.records import Record
from instructkit.steps.base import Step

logger = logging.getLogger("instructkit")

__all__ = ["AuditDetector", "AuditStep", "audit_dataset", "audit_records", "default_limits"]

HERE = Path(__file__).resolve().parent


@functools.cache
def _battery() -> dict[str, Any]:
    return yaml.safe_load((HERE / "audit_patterns.yaml").read_text(encoding="utf-8"))


def default_limits() -> dict[str, int | None]:
    """Zero for every structured identifier type; names and long numbers reported only."""
    return {t: (0 if spec.get("structured") else None) for t, spec in _battery()["types"].items()}


class AuditDetector:
    """Finds suspects in text: {type: count}, skipping masks and exempt spans."""

    def __init__(self, *, names: bool = True, ner_model: str | None = None) -> None:
        b = _battery()
        self.patterns = {t: re.compile("|".join(f"(?:{p})" for p in spec["patterns"]),
                                       re.IGNORECASE | re.MULTILINE)
                         for t, spec in b["types"].items()}
        self.masks = re.compile("|".join(f"(?:{m})" for m in b["masks"]))
        self.names = names
        self._nlp = None
        self._ner_model = ner_model

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            from instructkit.steps.anonymize.detect import _load_spacy, load_recognizer_config

            scfg = load_recognizer_config()["spacy"]
            # NER alone: the audit is a second opinion, without the detector's tagger rules
            self._nlp = _load_spacy(self._ner_model or scfg["model"],
                                    tuple(scfg["exclude"]) + ("tok2vec", "tagger"))
        return self._nlp

    def scan_many(self, items: list[tuple[str, list[list[int]]]]) -> list[Counter[str]]:
        """``items``: (text, exempt spans). Returns suspect counts per text."""
        blanked = [self._blank(t, ex) for t, ex in items]
        out = []
        for text in blanked:
            c: Counter[str] = Counter()
            for typ, rx in self.patterns.items():
                n = sum(1 for _ in rx.finditer(text))
                if n:
                    c[typ] += n
            out.append(c)
        if self.names:
            todo = [(i, t) for i, t in enumerate(blanked) if any(ch.isalpha() for ch in t)]
            for (i, _), doc in zip(todo, self.nlp.pipe([t for _, t in todo], batch_size=32)):
                n = sum(1 for e in doc.ents if e.label_ == "PERSON" and any(ch.isalpha() for ch in e.text))
                if n:
                    out[i]["NAME"] += n
        return out

    def _blank(self, text: str, exempt: list[list[int]]) -> str:
        """Masks and exempt spans become spaces (offsets kept, nothing left to match)."""
        chars = list(text)
        for m in self.masks.finditer(text):
            chars[m.start():m.end()] = " " * (m.end() - m.start())
        for s, e in exempt or []:
            s, e = max(0, int(s)), min(len(chars), int(e))
            chars[s:e] = " " * (e - s)
        return "".join(chars)


def _texts(rec: Record) -> list[tuple[str, str]]:
    """(path, text) of every free text of a record (same paths as surrogate_spans)."""
    out = [(k, rec.get(k)) for k in ("instruction", "input", "output")]
    out += [(f"messages.{j}.content", m.get("content")) for j, m in enumerate(rec.get("messages") or [])
            if isinstance(m, dict)]
    out += [(f"context.{j}.text", c.get("text")) for j, c in enumerate(rec.get("context") or [])
            if isinstance(c, dict)]
    return [(p, t) for p, t in out if isinstance(t, str) and t]


class AuditReport:
    """Running totals of an audit; ``as_dict()`` is what the manifest gets."""

    def __init__(self, limits: dict[str, int | None], max_record_ids: int = 50,
                 names: bool = True) -> None:
        self.limits = limits
        self.max_record_ids = max_record_ids
        self.names = names
        self.records = 0
        self.records_with_suspects = 0
        self.suspects: Counter[str] = Counter()
        self.ids: dict[str, list[str]] = defaultdict(list)

    def add(self, record_id: str, counts: Counter[str]) -> None:
        self.records += 1
        if counts:
            self.records_with_suspects += 1
        for typ, n in counts.items():
            self.suspects[typ] += n
            if len(self.ids[typ]) < self.max_record_ids:
                self.ids[typ].append(record_id)

    def failed_types(self) -> list[str]:
        return sorted(t for t, n in self.suspects.items()
                      if self.limits.get(t) is not None and n > self.limits[t])

    @property
    def passed(self) -> bool:
        return not self.failed_types()

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed_types": self.failed_types(),
                "records_scanned": self.records, "records_with_suspects": self.records_with_suspects,
                "suspects_by_type": dict(sorted(self.suspects.items())),
                "record_ids_by_type": {t: list(v) for t, v in sorted(self.ids.items())},
                "limits": dict(sorted(self.limits.items())), "names_checked": self.names}


def _limits(config: dict[str, Any]) -> dict[str, int | None]:
    limits = default_limits()
    for t, n in (config.get("limits") or {}).items():
        limits[t] = None if n is None else int(n)
    return limits


def audit_records(records: Iterable[Record], detector: AuditDetector, report: AuditReport,
                  batch: int = 64) -> Iterator[tuple[Record, Counter[str]]]:
    """Scan records in batches; yield each with its suspect counts (added to ``report``)."""
    buf: list[Record] = []

    def flush() -> Iterator[tuple[Record, Counter[str]]]:
        items, owners = [], []
        for k, rec in enumerate(buf):
            anon = (rec.get("provenance") or {}).get("anonymization") or {}
            spans = anon.get("surrogate_spans") or {}
            for path, text in _texts(rec):
                items.append((text, spans.get(path, [])))
                owners.append(k)
        counts = [Counter() for _ in buf]
        for k, c in zip(owners, detector.scan_many(items)):
            counts[k].update(c)
        for rec, c in zip(buf, counts):
            report.add(str(rec.get("id")), c)
            yield rec, c

    for rec in records:
        buf.append(rec)
        if len(buf) >= batch:
            yield from flush()
            buf = []
    if buf:
        yield from flush()


class AuditStep(Step):
    """Pass records on unchanged and report residual-PHI suspects (optionally drop them)."""

    name = "audit"

    def __init__(self, *, limits: dict[str, int | None] | None = None, names: bool = True,
                 drop_suspects: bool = False, max_record_ids: int = 50,
                 detector: AuditDetector | None = None) -> None:
        super().__init__()
        self.limits = limits if limits is not None else default_limits()
        self.names = names
        self.drop_suspects = drop_suspects
        self.max_record_ids = max_record_ids
        self.detector = detector or AuditDetector(names=names)
        self.report = AuditReport(self.limits, max_record_ids, names)

    @classmethod
    def from_config(cls, config: dict[str, Any], ctx: Any) -> "AuditStep":
        config = dict(config or {})
        names = bool(config.get("names", True))
        detector = ctx.shared(f"audit.detector.names={names}", lambda: AuditDetector(names=names))
        return cls(limits=_limits(config), names=names,
                   drop_suspects=bool(config.get("drop_suspects", False)),
                   max_record_ids=int(config.get("max_record_ids", 50)), detector=detector)

    def bind(self, quarantine: Any) -> "AuditStep":
        super().bind(quarantine)
        self.report = AuditReport(self.limits, self.max_record_ids, self.names)
        return self

    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec, counts in audit_records(records, self.detector, self.report):
            over = sorted(t for t, n in counts.items() if self.limits.get(t) is not None and n)
            if self.drop_suspects and over:
                self.drop(rec, "residual_phi_suspect", types=over)
                continue
            yield rec

    def summary(self) -> dict[str, Any]:
        return {"audit": self.report.as_dict()}

    def card_section(self) -> str:
        r = self.report.as_dict()
        lines = ["### Residual-PHI audit", "",
                 f"An independent detector (pattern battery{' + spaCy NER for names' if r['names_checked'] else ''}) "
                 f"scanned {r['records_scanned']} records: **{'passed' if r['passed'] else 'FAILED'}**."]
        if r["suspects_by_type"]:
            lines += ["", "| suspect type | count | limit |", "|---|---:|---:|"]
            lines += [f"| {t} | {n} | {r['limits'].get(t) if r['limits'].get(t) is not None else 'report only'} |"
                      for t, n in r["suspects_by_type"].items()]
        return "\n".join(lines) + "\n"


def audit_dataset(directory: str | Path, config: dict[str, Any] | None = None, *,
                  names: bool | None = None) -> dict[str, Any]:
    """Audit a dataset folder written by ``instructkit build`` (its ``data/*.parquet``).

    Settings come from ``config`` or else from the recipe copy in the folder
    (``stages.audit``). Returns the report dict (``passed``, ``suspects_by_type``, ...)."""
    directory = Path(directory)
    files = sorted((directory / "data").rglob("*.parquet")) if (directory / "data").is_dir() else []
    if not files:
        raise SourceError("no data/*.parquet files: not a dataset folder written by `instructkit build`",
                          file=str(directory))
    if config is None:
        config = _recipe_audit_config(directory)
    if names is not None:
        config = {**config, "names": names}
    use_names = bool(config.get("names", True))
    report = AuditReport(_limits(config), int(config.get("max_record_ids", 50)), use_names)
    detector = AuditDetector(names=use_names)
    for _ in audit_records(_read_parquet_records(files), detector, report):
        pass
    return report.as_dict()


def _recipe_audit_config(directory: Path) -> dict[str, Any]:
    for p in sorted(directory.glob("recipe*.y*ml")):
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        cfg = (data.get("stages") or {}).get("audit")
        if isinstance(cfg, dict):
            return cfg
    return {}


_JSON_COLUMNS = ("provenance", "meta", "context", "source")


def _read_parquet_records(files: list[Path]) -> Iterator[Record]:
    import pyarrow.parquet as pq

    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=256):
            for n, row in enumerate(batch.to_pylist()):
                for col in _JSON_COLUMNS:
                    val = row.get(col)
                    if isinstance(val, str):
                        try:
                            row[col] = json.loads(val)
                        except json.JSONDecodeError:
                            raise SourceError(f"column '{col}' is not valid JSON", file=str(f),
                                              line=n + 1) from None
                yield row
