"""The five publish gates. Each is reported; publishing refuses on any failure.

1. the residual-PHI audit passed (``manifest["stages"][audit]["extra"]["audit"]``);
2. every source's licence allows publishing a derivative, under the card's licence;
3. records from hosted models whose terms limit training on outputs are flagged in the card;
4. the manifest shows anonymize, dedup (or decontaminate) and validate ran, with counts;
5. the card is complete and its YAML parses with ``huggingface_hub.DatasetCard``.

Gate messages name sources, stages, entity types and counts, never record text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from instructkit.dataset.card import DatasetStats, card_problems
from instructkit.hub.licenses import check_card_license, classify_source
from instructkit.hub.model_terms import flag_models

__all__ = ["GateResult", "run_gates", "GATE_NAMES"]

GATE_NAMES = {1: "residual-PHI audit", 2: "source licences", 3: "hosted-model terms",
              4: "pipeline stages ran", 5: "dataset card complete"}

#: stages gate 4 requires, each satisfied by any of the names (or their ``name.sub`` steps)
REQUIRED_STAGES = (("anonymize",), ("dedup", "decontaminate"), ("validate",))


@dataclass
class GateResult:
    """One gate: passed or not, why, and anything worth knowing even when it passed."""

    number: int
    name: str
    passed: bool
    details: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.number, "name": self.name, "passed": self.passed,
                "details": self.details, "warnings": self.warnings}

    def __str__(self) -> str:
        head = f"gate {self.number} ({self.name}): {'PASS' if self.passed else 'FAIL'}"
        lines = [head, *(f"    {d}" for d in self.details), *(f"    note: {w}" for w in self.warnings)]
        return "\n".join(lines)


def _stages(manifest: Mapping[str, Any], *names: str) -> list[dict[str, Any]]:
    return [s for s in manifest.get("stages") or [] if isinstance(s, Mapping) and any(
        s.get("stage") == n or str(s.get("stage", "")).startswith(n + ".") for n in names)]


def gate_audit(manifest: Mapping[str, Any] | None, stats: DatasetStats) -> GateResult:
    g = GateResult(1, GATE_NAMES[1], False)
    if manifest is None:
        g.details.append("manifest.json is missing, so there is no residual-PHI audit report")
        return g
    audit = next((s for s in _stages(manifest, "audit") if s.get("stage") == "audit"), None)
    report = ((audit or {}).get("extra") or {}).get("audit")
    if not isinstance(report, Mapping) or not isinstance(report.get("passed"), bool):
        g.details.append("no residual-PHI audit report in manifest.json (stage 'audit', "
                         "extra.audit.passed): enable the audit stage in the recipe and rebuild")
        return g
    suspects = report.get("suspects_by_type") or {}
    found = ", ".join(f"{k}: {v}" for k, v in sorted(suspects.items())) or "none listed"
    if not report["passed"]:
        g.details.append(f"the audit found suspected identifiers ({found}); see the audit "
                         "stage's quarantine entries, fix the anonymizer settings and rebuild")
        return g
    audited = audit.get("out")
    if isinstance(audited, int) and stats.records and audited != stats.records:
        g.details.append(f"the audit report covers {audited} records but the data holds "
                         f"{stats.records}: the data changed after the audit; rebuild")
        return g
    g.passed = True
    g.details.append(f"audit passed over {audit.get('in', '?')} records (suspects: {found})")
    return g


def gate_licenses(manifest: Mapping[str, Any] | None, stats: DatasetStats,
                  card_meta: Mapping[str, Any]) -> GateResult:
    g = GateResult(2, GATE_NAMES[2], False)
    sources = list((manifest or {}).get("sources") or [])
    by_name = {s.get("name"): s for s in sources}
    classified = [classify_source(s) for s in sources]
    # licences written on records that the manifest does not list (or lists differently)
    for (name, lic) in sorted(stats.source_licenses):
        m = by_name.get(name)
        if m is None or str(m.get("license")) != str(lic):
            classified.append(classify_source({"name": name, "license": lic}))
    if not classified:
        g.details.append("no sources: neither manifest.json nor the records name a source licence")
        return g
    problems = [p for c in classified for p in c.problems]
    card_license = card_meta.get("license")
    if card_license == "other":
        card_license = card_meta.get("license_name") or "other"
    if not problems:
        problems = check_card_license(card_license, classified)
    for c in classified:
        if c.declaration:
            g.warnings.append(f"licence of '{c.name}' ({c.license}) declared by the rights holder "
                              f"(printed in the card): {c.declaration}")
    if problems:
        g.details.extend(problems)
        return g
    g.passed = True
    seen = sorted({f"{c.name} ({c.license})" for c in classified})
    g.details.append(f"card licence {card_license}; sources: " + ", ".join(seen))
    return g


def gate_hosted_models(stats: DatasetStats, card_text: str) -> GateResult:
    g = GateResult(3, GATE_NAMES[3], False)
    flags = flag_models(stats.models)
    if not flags:
        used = ", ".join(sorted(f"{m or '?'} ({p or '?'})" for p, m in stats.models)) or "none"
        g.passed = True
        g.details.append(f"no record from a hosted model whose terms limit training (models: {used})")
        return g
    section = card_text.split("## Hosted-model terms", 1)
    body = section[1].split("\n## ", 1)[0] if len(section) == 2 else ""
    missing = [f for f in flags if f.model not in body or "Flagged" not in body]
    for f in flags:
        g.warnings.append(f"{f.records} records from {f.model} ({f.provider or 'provider not recorded'}): "
                          f"{f.restriction}")
    if missing:
        g.details.append("records from " + ", ".join(sorted({f.model for f in missing})) +
                         " are not flagged in the card's 'Hosted-model terms' section")
        return g
    g.passed = True
    g.details.append(f"{sum(f.records for f in flags)} records from hosted models are flagged in the card")
    return g


def gate_stages(manifest: Mapping[str, Any] | None) -> GateResult:
    g = GateResult(4, GATE_NAMES[4], False)
    if manifest is None:
        g.details.append("manifest.json is missing: nothing shows that anonymize, dedup and "
                         "validate ran")
        return g
    ok = True
    for names in REQUIRED_STAGES:
        group = _stages(manifest, *names)
        label = " or ".join(names)
        if not group:
            ok = False
            g.details.append(f"stage {label} did not run (not in manifest.json)")
            continue
        s = group[0]
        if not all(isinstance(s.get(k), int) for k in ("in", "out")):
            ok = False
            g.details.append(f"stage {s.get('stage')} has no in/out counts in manifest.json")
            continue
        dropped = sum(int(x.get("dropped", 0) or 0) for x in group)
        # a group runs as several steps (decontaminate then dedup, validate.<filter>...):
        # name them all, and count from the first one's input to the last one's output
        top = list(dict.fromkeys(str(x.get("stage", "")).split(".")[0] for x in group))
        g.details.append(f"{' + '.join(top)}: in {s['in']}, out {group[-1].get('out')}, dropped {dropped}")
    g.passed = ok
    return g


def gate_card(card_text: str) -> GateResult:
    g = GateResult(5, GATE_NAMES[5], False)
    problems = card_problems(card_text)
    if problems:
        g.details.extend(problems)
        return g
    g.passed = True
    g.details.append("metadata and every required section present; YAML parses with DatasetCard")
    return g


def run_gates(manifest: Mapping[str, Any] | None, stats: DatasetStats, card_text: str) -> list[GateResult]:
    """All five gates, in order (each runs whatever the others found)."""
    from huggingface_hub import DatasetCard

    try:
        meta = DatasetCard(card_text).data.to_dict()
    except Exception:
        meta = {}
    return [gate_audit(manifest, stats), gate_licenses(manifest, stats, meta),
            gate_hosted_models(stats, card_text), gate_stages(manifest), gate_card(card_text)]
