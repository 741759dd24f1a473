"""Phased and curriculum-ordered training exports, written from a finished dataset folder.

Phased instruction tuning trains on the data in stages (general tasks first, then the target
task; or easy then hard), and a curriculum orders the examples inside one stage from easy to
hard. Both are orders over the same records, so they are written after the run from the
records in the folder's Parquet data (read back streaming), beside the full exports:

    output:
      formats: [messages, alpaca]
      phases:                                  # ordered; a record goes to the first it matches
        - {name: general, task: [impression_generation, consumer_health_qa]}
        - {name: easy-labeling, task: report_labeling, labels: {max: 1}}
        - {name: hard-labeling, task: report_labeling}
      curriculum: length                       # or {by: labels, order: easy_to_hard}

    DIR/exports/messages.jsonl                 every record (in curriculum order when set)
    DIR/exports/phase-1-general/messages.jsonl
    DIR/exports/phase-2-easy-labeling/messages.jsonl ...

A phase filters on ``task``, ``method``, ``source`` (a name or a list) and on difficulty
measures (``length``, ``input_length``, ``output_length``, ``labels``: ``{min, max}``,
inclusive). A phase with no filter takes every record no earlier phase took. What was chosen
and how many records each phase got go into ``manifest.json`` (``export_order``) and the card.
Defaults come from ``schemas/recipe.schema.json`` (the ``output`` section), nowhere else.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import RecipeError
from instructkit.records import Record

logger = logging.getLogger("instructkit")

__all__ = ["MEASURES", "Phase", "ExportOrder", "write_phase_exports", "phase_errors",
           "phases_card_section", "measure"]

EXPORTS = "exports"
PHASE_DIR_PREFIX = "phase-"


def _words(text: Any) -> int:
    return len(str(text or "").split())


def _labels(rec: Mapping[str, Any]) -> int:
    """Distinct labels in ``meta.labels`` (a list, or a comma/semicolon-separated string);
    'normal' means no finding, so it counts as none."""
    labels = (rec.get("meta") or {}).get("labels")
    if isinstance(labels, str):
        labels = labels.replace(";", ",").split(",")
    if not isinstance(labels, list):
        return 0
    names = {str(x).strip().casefold() for x in labels if str(x).strip()}
    return len(names - {"normal"})


#: difficulty measures by name (the names are the schema's ``$defs.measure`` enum)
MEASURES: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "length": lambda r: _words(r.get("instruction")) + _words(r.get("input")) + _words(r.get("output")),
    "input_length": lambda r: _words(r.get("instruction")) + _words(r.get("input")),
    "output_length": lambda r: _words(r.get("output")),
    "labels": _labels,
}


def measure(name: str, record: Mapping[str, Any]) -> int:
    """The value of difficulty measure ``name`` for ``record``."""
    return MEASURES[name](record)


def _schema_default(*path: Any) -> Any:
    """A default from the recipe schema's ``output`` section (the one place defaults live)."""
    from instructkit._resources import load_schema

    node: Any = load_schema("recipe.schema.json")["properties"]["output"]["properties"]
    for key in path:
        node = node[key]
    return node["default"]


def _names(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


@dataclass(frozen=True)
class Phase:
    """One training phase: a name and a filter over task, method, source and measures."""

    name: str
    tasks: frozenset[str] | None = None
    methods: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    #: measure name -> (min or None, max or None), inclusive
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    config: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Phase":
        ranges = tuple((m, cfg[m].get("min"), cfg[m].get("max")) for m in MEASURES if m in cfg)
        return cls(name=cfg["name"], tasks=_names(cfg.get("task")), methods=_names(cfg.get("method")),
                   sources=_names(cfg.get("source")), ranges=ranges, config=dict(cfg))

    def matches(self, rec: Mapping[str, Any]) -> bool:
        if self.tasks is not None and rec.get("task") not in self.tasks:
            return False
        if self.methods is not None and rec.get("method") not in self.methods:
            return False
        if self.sources is not None and (rec.get("source") or {}).get("name") not in self.sources:
            return False
        for name, lo, hi in self.ranges:
            v = measure(name, rec)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return False
        return True

    def describe(self) -> str:
        """The filter in words, for the card."""
        parts = []
        for label, names in (("task", self.tasks), ("method", self.methods), ("source", self.sources)):
            if names is not None:
                parts.append(f"{label} " + " or ".join(f"`{n}`" for n in sorted(names)))
        for name, lo, hi in self.ranges:
            if lo is not None and hi is not None:
                parts.append(f"{lo:g} ≤ {name} ≤ {hi:g}")
            elif lo is not None:
                parts.append(f"{name} ≥ {lo:g}")
            else:
                parts.append(f"{name} ≤ {hi:g}")
        return ", ".join(parts) or "every record not in an earlier phase"


@dataclass(frozen=True)
class ExportOrder:
    """The recipe's ``output.phases`` and ``output.curriculum``."""

    phases: tuple[Phase, ...] = ()
    curriculum_by: str | None = None
    curriculum_order: str = "easy_to_hard"

    @classmethod
    def from_output(cls, output: Mapping[str, Any] | None) -> "ExportOrder":
        output = output or {}
        errors = phase_errors(output)
        if errors:
            raise RecipeError(errors)
        phases = tuple(Phase.from_config(p) for p in output.get("phases") or [])
        cur = output.get("curriculum")
        if isinstance(cur, str):
            cur = {"by": cur}
        by = (cur or {}).get("by")
        order = (cur or {}).get("order") or _schema_default("curriculum", "anyOf", 1, "properties",
                                                            "order")
        return cls(phases, by, order)

    @property
    def active(self) -> bool:
        return bool(self.phases or self.curriculum_by)

    def phase_of(self, rec: Mapping[str, Any]) -> int:
        """Index of the first phase ``rec`` matches, or -1."""
        for i, p in enumerate(self.phases):
            if p.matches(rec):
                return i
        return -1

    def sort_key(self, rec: Mapping[str, Any]) -> int:
        if not self.curriculum_by:
            return 0
        v = measure(self.curriculum_by, rec)
        return -v if self.curriculum_order == "hard_to_easy" else v

    def curriculum(self) -> dict[str, str] | None:
        return {"by": self.curriculum_by, "order": self.curriculum_order} if self.curriculum_by else None


def phase_errors(output: Mapping[str, Any] | None) -> list[str]:
    """What JSON Schema cannot say about ``output.phases``: duplicate names, min above max."""
    errors = []
    seen: set[str] = set()
    for i, p in enumerate((output or {}).get("phases") or []):
        if not isinstance(p, Mapping):
            continue
        name = p.get("name")
        if name in seen:
            errors.append(f"output.phases.{i}.name: duplicate phase name '{name}'")
        seen.add(name)
        for m in MEASURES:
            r = p.get(m)
            if isinstance(r, Mapping) and r.get("min") is not None and r.get("max") is not None \
                    and r["min"] > r["max"]:
                errors.append(f"output.phases.{i}.{m}: min {r['min']} is above max {r['max']}")
    return errors


def _export_line(fmt: str, rec: Record) -> str:
    # the very line the dataset writer puts in exports/<fmt>.jsonl, so a phase file is a
    # subset of the full export, line for line
    from instructkit.dataset.writer import export_row

    return json.dumps(export_row(fmt, rec), ensure_ascii=False) + "\n"


def _clear_phase_dirs(exports: Path) -> None:
    """Remove phase folders of an earlier run into the same folder."""
    if exports.is_dir():
        for d in exports.iterdir():
            if d.is_dir() and d.name.startswith(PHASE_DIR_PREFIX):
                shutil.rmtree(d)


def phase_dir_name(index: int, name: str) -> str:
    return f"{PHASE_DIR_PREFIX}{index + 1}-{name}"


def write_phase_exports(folder: str | Path, output: Mapping[str, Any] | None,
                        formats: Iterable[str] | None = None,
                        records: Iterable[Record] | None = None) -> dict[str, Any] | None:
    """Write the phase exports (and the curriculum order) of a built dataset folder.

    ``output`` is the recipe's ``output`` section; ``formats`` the export formats (default: the
    section's ``formats``, else messages). Records are read back streaming from the folder's
    Parquet data unless given. Returns what the manifest records under ``export_order``, or
    None when the recipe asks for neither phases nor a curriculum.
    """
    from instructkit.dataset.layout import FORMATS
    from instructkit.dataset.reader import DatasetFolder

    folder = Path(folder)
    exports = folder / EXPORTS
    _clear_phase_dirs(exports)
    order = ExportOrder.from_output(output)
    if not order.active:
        return None
    fmts = [f for f in (formats if formats is not None else (output or {}).get("formats") or ["messages"])
            if f in FORMATS] or ["messages"]
    exports.mkdir(parents=True, exist_ok=True)
    # pass 1 (streaming): each record's export lines go to a spool file per format; only
    # (phase, sort key, position, offsets) stay in memory
    entries: list[tuple[int, int, int, list[tuple[int, int]]]] = []
    by_task: list[Counter] = [Counter() for _ in order.phases]
    unphased = Counter()
    spools = {f: tempfile.TemporaryFile() for f in fmts}
    try:
        # the folder may be a build's staging folder (not complete yet)
        source = records if records is not None else DatasetFolder(folder, require_complete=False).records()
        for pos, rec in enumerate(source):
            ph = order.phase_of(rec) if order.phases else -1
            if order.phases:
                (by_task[ph] if ph >= 0 else unphased)[rec.get("task") or "?"] += 1
            offsets = []
            for f in fmts:
                data = _export_line(f, rec).encode("utf-8")
                offsets.append((spools[f].tell(), len(data)))
                spools[f].write(data)
            entries.append((ph, order.sort_key(rec), pos, offsets))
        # pass 2: copy the lines out in phase and curriculum order
        ranked = sorted(entries, key=lambda e: (e[1], e[2]))  # stable: ties keep build order
        result_phases = []
        for i, phase in enumerate(order.phases):
            d = exports / phase_dir_name(i, phase.name)
            d.mkdir(parents=True, exist_ok=True)
            chosen = [e for e in ranked if e[0] == i]
            for j, f in enumerate(fmts):
                _copy_lines(spools[f], [e[3][j] for e in chosen], d / f"{f}.jsonl")
            result_phases.append({
                "name": phase.name, "dir": f"{EXPORTS}/{d.name}", "records": len(chosen),
                "filter": {k: v for k, v in phase.config.items() if k != "name"},
                "by_task": dict(sorted(by_task[i].items()))})
        if order.curriculum_by:  # the full exports in curriculum order too
            for j, f in enumerate(fmts):
                _copy_lines(spools[f], [e[3][j] for e in ranked], exports / f"{f}.jsonl")
    finally:
        for s in spools.values():
            s.close()
    result: dict[str, Any] = {"formats": fmts, "curriculum": order.curriculum(),
                              "phases": result_phases}
    if order.phases:
        result["unphased"] = sum(unphased.values())
        if result["unphased"]:
            logger.info("%d records match no phase; they are only in the full exports",
                        result["unphased"])
    return result


def _copy_lines(spool: Any, spans: list[tuple[int, int]], path: Path) -> None:
    tmp = path.with_suffix(".jsonl.partial")
    with tmp.open("wb") as out:
        for off, n in spans:
            spool.seek(off)
            out.write(spool.read(n))
    spool.seek(0, 2)  # back to the end, where pass 1 left it
    tmp.replace(path)


def phases_card_section(export_order: Mapping[str, Any] | None) -> str:
    """Markdown for the card: the phases in training order, and the curriculum."""
    if not export_order:
        return ""
    lines = []
    phases = export_order.get("phases") or []
    if phases:
        lines += ["Training phases (train on them in this order; each record is in the first phase "
                  "whose filter it matches):", "",
                  "| phase | folder | filter | records | by task |", "|---|---|---|---|---|"]
        for i, p in enumerate(phases, 1):
            filt = Phase.from_config({"name": p["name"], **(p.get("filter") or {})}).describe()
            tasks = ", ".join(f"{t}: {n}" for t, n in (p.get("by_task") or {}).items()) or "-"
            lines.append(f"| {i}. {p['name']} | `{p['dir']}/` | {filt} | {p['records']} | {tasks} |")
        if export_order.get("unphased"):
            lines += ["", f"{export_order['unphased']} records match no phase; they are in the full "
                      "exports only."]
    cur = export_order.get("curriculum")
    if cur:
        lines += ["", f"Curriculum: the records of every export are ordered by `{cur['by']}` "
                  f"({cur['order'].replace('_', ' ')}); the Parquet data keeps the build order."]
    return "\n".join(lines).strip()
