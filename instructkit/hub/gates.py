"""The five publish gates. Each is reported; publishing refuses on any failure.

1. the residual-PHI and credential audit, run at publish over every file to be sent (card,
   manifest, recipe copy, Parquet, exports), passed under the package's limits (a folder
   can only lower them: ``hub.policy``); and every data and export file is the one the
   build wrote (its sha256 is in the manifest);
2. every source's licence allows publishing a derivative, under the card's licence;
3. records from hosted models whose terms limit training on outputs are flagged in the card;
4. the manifest shows anonymize, dedup (or decontaminate) and validate ran, with counts;
5. the card is complete and its YAML parses with ``huggingface_hub.DatasetCard``.

Gate messages name files, sources, stages, entity types and counts, never record text
or a found value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from instructkit.dataset.card import card_problems
from instructkit.dataset.counts import DatasetCounts
from instructkit.hub.licenses import check_card_license, classify_source
from instructkit.hub.model_terms import flag_models
from instructkit.steps.audit_verdict import audit_verdict

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
    #: gate 1: the audit's verdict (``steps.audit_verdict.AuditVerdict.as_dict``), for the report page
    verdict: dict[str, Any] | None = None

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


def _listed(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


def gate_audit(manifest: Mapping[str, Any] | None, changed: list[str],
               report: Mapping[str, Any] | None) -> GateResult:
    """``changed``: files whose sha256 differs from the manifest's (or that it does not list);
    ``report``: the audit just run over the exact files to be uploaded
    (``hub.upload_audit.audit_upload``): one failing line per file, naming it."""
    g = GateResult(1, GATE_NAMES[1], False)
    if manifest is None:
        g.details.append("manifest.json is missing: the files cannot be checked against the build")
        return g
    if not manifest.get("data_files"):
        g.details.append("manifest.json lists no data-file hashes (built by an older instructkit): "
                         "rebuild the dataset")
        return g
    if changed:
        g.details.append(f"{', '.join(changed)} changed since the build (sha256 differs from "
                         "manifest.json); rebuild instead of editing the data")
    if report is None:
        return g
    for path, found in sorted((report.get("files") or {}).items()):
        if found.get("identifiers"):
            g.details.append(f"{path}: suspected identifiers over the limits ({_listed(found['identifiers'])}); "
                             "fix the anonymizer settings or the recipe text and rebuild")
        if found.get("secrets"):
            g.details.append(f"{path}: holds credentials ({_listed(found['secrets'])}); remove them "
                             "from the recipe or the data and rebuild")
    bad_exports = [f for f, v in (report.get("exports") or {}).items() if v != "matches"]
    if bad_exports:
        g.details.append(f"{', '.join(bad_exports)} do not match the audited records")
    g.warnings.extend(report.get("ignored") or [])
    free = report.get("phi_free_suspects_by_type") or {}
    if free:
        g.warnings.append(f"in text declared free of PHI (names, places, dates and URLs; reported, "
                          f"not held to the limits): {_listed(free)}")
    # the same verdict `instructkit audit` and the report page print (``steps.audit_verdict``)
    verdict = audit_verdict(report, report.get("limits") or {})
    g.verdict = verdict.as_dict()
    lines = [f"audit {line}" for line in verdict.lines(with_phi_free=False)]
    if g.details:
        g.details.extend(lines)
        return g
    g.passed = True
    g.details.extend(lines)
    g.details.append("every file to upload audited; every file matches its build-time sha256")
    return g


def gate_licenses(manifest: Mapping[str, Any] | None, counts: DatasetCounts,
                  card_meta: Mapping[str, Any]) -> GateResult:
    g = GateResult(2, GATE_NAMES[2], False)
    sources = list((manifest or {}).get("sources") or [])
    by_name = {s.get("name"): s for s in sources}
    classified = [classify_source(s) for s in sources]
    # licences written on records that the manifest does not list (or lists differently)
    for (name, lic) in sorted(counts.split("source_license")):
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


def gate_hosted_models(counts: DatasetCounts, card_text: str) -> GateResult:
    g = GateResult(3, GATE_NAMES[3], False)
    models = counts.split("model")
    flags = flag_models(models)
    if not flags:
        used = ", ".join(sorted(f"{m or '?'} ({p or '?'})" for p, m in models)) or "none"
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


def run_gates(manifest: Mapping[str, Any] | None, card_text: str, *, changed: list[str],
              audit: Mapping[str, Any] | None) -> list[GateResult]:
    """All five gates, in order (each runs whatever the others found)."""
    from huggingface_hub import DatasetCard

    try:
        meta = DatasetCard(card_text).data.to_dict()
    except Exception:
        meta = {}
    counts = DatasetCounts.from_dict((manifest or {}).get("counts") or {})
    return [gate_audit(manifest, changed, audit), gate_licenses(manifest, counts, meta),
            gate_hosted_models(counts, card_text), gate_stages(manifest), gate_card(card_text)]
