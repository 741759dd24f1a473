"""Bias report: how often the dataset mentions demographic groups (sex and gender, age
group, race and ethnicity, pregnancy), by task and method.

``BiasReportStep`` is a pass-through step: it drops nothing and counts, per (task, method),
the records that mention each group at least once (patterns in ``bias_terms.yaml``).
``summary()`` gives the counts for the manifest, ``card_section()`` a markdown table and
the caveat about what such counts do and do not show.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from instructkit.records import Record
from instructkit.steps.base import Step

__all__ = ["BiasReportStep", "count_mentions", "bias_groups", "CAVEAT"]

TERMS_PATH = Path(__file__).with_name("bias_terms.yaml")

CAVEAT = (
    "These counts are keyword matches in the instruction, input and output: the number of "
    "records that *mention* a group, not the demographics of the patients behind the data, "
    "and not a measure of whether the answers treat groups fairly. Negated or incidental "
    "mentions count too; pronouns are not counted; a group that is never named may still be "
    "represented, and a low count does not show the dataset is free of bias. Use the table "
    "to spot groups that are absent or dominate a task, then review samples by hand.")


@functools.cache
def _terms() -> dict[str, Any]:
    data = yaml.safe_load(TERMS_PATH.read_text(encoding="utf-8"))
    person = data["person_nouns"]
    cats: dict[str, Any] = {}
    for cat, spec in data["categories"].items():
        groups = {g: re.compile(p.replace("PERSON", person), re.IGNORECASE)
                  for g, p in spec["groups"].items()}
        cats[cat] = {"label": spec["label"], "groups": groups,
                     "numeric_age": re.compile(spec["numeric_age"], re.IGNORECASE) if spec.get("numeric_age") else None,
                     "pediatric_below": spec.get("pediatric_below", 18),
                     "older_from": spec.get("older_from", 65)}
    return cats


def bias_groups() -> dict[str, list[str]]:
    """Category -> its group names, in report order."""
    return {c: list(spec["groups"]) for c, spec in _terms().items()}


def count_mentions(text: str) -> set[tuple[str, str]]:
    """The (category, group) pairs mentioned in ``text``."""
    found: set[tuple[str, str]] = set()
    for cat, spec in _terms().items():
        for group, rx in spec["groups"].items():
            if rx.search(text):
                found.add((cat, group))
        if spec["numeric_age"] is not None:
            for m in spec["numeric_age"].finditer(text):
                age = int(next(g for g in m.groups() if g))
                if age > 120:
                    continue
                group = ("pediatric" if age < spec["pediatric_below"] else
                         "older_adult" if age >= spec["older_from"] else "adult")
                found.add((cat, group))
    return found


def _record_text(record: Mapping[str, Any]) -> str:
    return "\n".join(str(record.get(f) or "") for f in ("instruction", "input", "output"))


class BiasReportStep(Step):
    """Pass every record on; count demographic mentions by task and method."""

    name = "bias_report"

    def __init__(self) -> None:
        super().__init__()
        self._reset()

    def _reset(self) -> None:
        self.records: Counter[tuple[str, str]] = Counter()
        self.mentions: dict[tuple[str, str], Counter[tuple[str, str]]] = defaultdict(Counter)

    @classmethod
    def from_config(cls, config: dict[str, Any] | None = None, ctx: Any = None) -> "BiasReportStep":
        return cls()

    def bind(self, quarantine):  # a new run starts new counts
        self._reset()
        return super().bind(quarantine)

    def observe(self, record: Mapping[str, Any]) -> None:
        key = (str(record.get("task")), str(record.get("method")))
        self.records[key] += 1
        self.mentions[key].update(count_mentions(_record_text(record)))

    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        for rec in records:
            self.observe(rec)
            yield rec

    # -- reporting -------------------------------------------------------------------------
    def totals(self) -> tuple[int, Counter[tuple[str, str]]]:
        total: Counter[tuple[str, str]] = Counter()
        for c in self.mentions.values():
            total.update(c)
        return sum(self.records.values()), total

    def summary(self) -> dict[str, Any]:
        groups = bias_groups()

        def block(n: int, c: Counter) -> dict[str, Any]:
            return {"records": n, **{cat: {g: c.get((cat, g), 0) for g in gs} for cat, gs in groups.items()}}

        n, total = self.totals()
        return {"bias": {
            "method": "keyword mentions per record (instructkit/steps/quality/bias_terms.yaml)",
            "overall": block(n, total),
            "by_task_method": {f"{t}/{m}": block(self.records[(t, m)], self.mentions[(t, m)])
                               for t, m in sorted(self.records)}}}

    def card_section(self) -> str:
        n, total = self.totals()
        if not n:
            return ""
        groups = bias_groups()
        cols = [(cat, g) for cat, gs in groups.items() for g in gs]
        labels = {c: spec["label"] for c, spec in _terms().items()}

        def cell(k: int, of: int) -> str:
            return f"{k} ({100 * k / of:.0f}%)" if of else "0"

        head = "| task | method | records | " + " | ".join(g.replace("_", " ") for _, g in cols) + " |"
        rows = [head, "|" + "---|" * (3 + len(cols))]
        for t, m in sorted(self.records):
            k = self.records[(t, m)]
            rows.append(f"| {t} | {m} | {k} | " + " | ".join(
                cell(self.mentions[(t, m)].get(c, 0), k) for c in cols) + " |")
        rows.append("| **all** | | " + f"{n} | " + " | ".join(cell(total.get(c, 0), n) for c in cols) + " |")
        legend = "; ".join(f"{labels[cat]}: " + ", ".join(g.replace("_", " ") for g in gs)
                           for cat, gs in groups.items())
        return ("### Demographic mentions\n\n"
                "Records that mention each group at least once (share of the row's records). "
                f"Columns by category — {legend}.\n\n" + "\n".join(rows) +
                f"\n\n*Caveat:* {CAVEAT}\n")
