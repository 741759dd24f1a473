"""What the card and the report count in the written records, counted once while writing.

``DatasetCounts`` adds up across workers (``a + b``) like ``StepStats``, so the manifest and
the card are rendered from merged values and never re-scan the Parquet files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from instructkit.records import Record

__all__ = ["DatasetCounts"]

#: example records kept for the card: the first of each task, at most this many
MAX_SAMPLES = 8
_SEP = "\x1f"  # joins compound keys (JSON object keys must be strings)


class DatasetCounts:
    """Counts by task, method, source and licence; models, prompts and anonymization totals
    from provenance; and the ids of a few example records."""

    FIELDS = ("task", "method", "source", "license", "source_license", "model",
              "model_by_builder", "prompt_by_builder", "anonymized", "anonymization_operator")

    def __init__(self) -> None:
        self.records = 0
        self.by: dict[str, Counter[str]] = {f: Counter() for f in self.FIELDS}
        #: builder name -> generation parameters of its first record
        self.params_by_builder: dict[str, dict] = {}
        #: task -> id of its first record
        self.samples: dict[str, str] = {}

    def observe(self, rec: Record) -> None:
        self.records += 1
        by = self.by
        task = str(rec.get("task") or "?")
        by["task"][task] += 1
        by["method"][str(rec.get("method") or "?")] += 1
        src = rec.get("source") or {}
        name, lic = str(src.get("name") or "?"), str(src.get("license") or "unknown")
        by["source"][name] += 1
        by["license"][lic] += 1
        by["source_license"][name + _SEP + lic] += 1
        prov = rec.get("provenance") or {}
        builder = str(prov.get("builder_name") or prov.get("builder") or "?")
        model, provider = prov.get("model"), prov.get("provider")
        if model or provider:
            by["model"][f"{provider or ''}{_SEP}{model or ''}"] += 1
            by["model_by_builder"][f"{builder}{_SEP}{provider or ''}{_SEP}{model or ''}"] += 1
            if isinstance(prov.get("params"), dict) and builder not in self.params_by_builder:
                self.params_by_builder[builder] = prov["params"]
        pid = prov.get("prompt_id") or prov.get("template_id")
        if pid:
            h = str(prov.get("prompt_hash") or prov.get("template_hash") or "-")[:16]
            by["prompt_by_builder"][f"{builder}{_SEP}{pid}{_SEP}{h}"] += 1
        anon = prov.get("anonymization")
        if isinstance(anon, Mapping):
            if anon.get("operator"):
                by["anonymization_operator"][str(anon["operator"])] += 1
            for k, v in (anon.get("replaced") or {}).items():
                if isinstance(v, int):
                    by["anonymized"][k] += v
        if task not in self.samples and len(self.samples) < MAX_SAMPLES and rec.get("id"):
            self.samples[task] = str(rec["id"])

    def __add__(self, other: "DatasetCounts") -> "DatasetCounts":
        out = DatasetCounts()
        out.records = self.records + other.records
        out.by = {f: self.by[f] + other.by[f] for f in self.FIELDS}
        out.params_by_builder = {**other.params_by_builder, **self.params_by_builder}
        out.samples = dict(self.samples)
        for task, rid in other.samples.items():
            if task not in out.samples and len(out.samples) < MAX_SAMPLES:
                out.samples[task] = rid
        return out

    def __radd__(self, other: Any) -> "DatasetCounts":
        return self if other == 0 else NotImplemented

    # -- views the card and report use ----------------------------------------------------
    def split(self, field: str) -> dict[tuple[str, ...], int]:
        """A compound count (``source_license``, ``model``, ...) keyed by tuples."""
        return {tuple(k.split(_SEP)): v for k, v in self.by[field].items()}

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"records": self.records}
        d.update({f: dict(sorted(c.items())) for f, c in self.by.items()})
        d["params_by_builder"] = self.params_by_builder
        d["samples"] = self.samples
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DatasetCounts":
        out = cls()
        out.records = int(d.get("records", 0))
        for f in cls.FIELDS:
            out.by[f] = Counter(d.get(f) or {})
        out.params_by_builder = dict(d.get("params_by_builder") or {})
        out.samples = dict(d.get("samples") or {})
        return out
