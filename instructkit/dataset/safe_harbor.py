"""The card's HIPAA Safe Harbor table: the 18 identifier kinds, what covers each, and its
measured recall.

Everything comes from data shipped with the anonymize stage, read as data (no detector is
built): ``safe_harbor.yaml`` (kinds, and detector / audit type -> kinds), ``recognizers.yaml``
(which recognizers emit each type), ``audit_patterns.yaml`` (the audit's types) and
``measured_recall.json`` (per-kind recall on the project's evaluation sets, written by
``bench/phi_eval.py --write-recall``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SAFE_HARBOR_KINDS", "load_safe_harbor", "measured_recall", "recognizers_by_type",
           "safe_harbor_rows", "safe_harbor_section"]

ANON = Path(__file__).resolve().parent.parent / "steps" / "anonymize"
SAFE_HARBOR = ANON / "safe_harbor.yaml"
RECALL = ANON / "measured_recall.json"
AUDIT_PATTERNS = ANON.parent / "audit_patterns.yaml"
#: the 18 kinds of 45 CFR 164.514(b)(2)(i)
SAFE_HARBOR_KINDS = 18


@lru_cache(maxsize=1)
def load_safe_harbor() -> dict[str, Any]:
    return yaml.safe_load(SAFE_HARBOR.read_text(encoding="utf-8"))


def measured_recall(path: Path | None = None) -> dict[str, Any]:
    """The shipped measured-recall file ({} when absent)."""
    p = Path(path or RECALL)
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def recognizers_by_type() -> dict[str, list[str]]:
    """Detector type -> the recognizers that emit it: spaCy NER labels, the stock Presidio
    recognizers kept, the pattern recognizers of ``recognizers.yaml`` and those in code."""
    cfg = yaml.safe_load((ANON / "recognizers.yaml").read_text(encoding="utf-8"))
    entity = cfg.get("entity_types") or {}
    out: dict[str, list[str]] = {}
    ner: dict[str, list[str]] = {}
    for label, ent in ((cfg.get("spacy") or {}).get("labels") or {}).items():
        if ent in entity:
            ner.setdefault(entity[ent], []).append(label)
    for typ, labels in ner.items():
        out.setdefault(typ, []).append(f"spaCy NER ({', '.join(labels)})")
    for cls, typ in (cfg.get("presidio") or {}).items():
        out.setdefault(typ, []).append(cls)
    for p in cfg.get("patterns") or []:
        out.setdefault(p["type"], []).append(p["name"])
    for name, types in (load_safe_harbor().get("code_recognizers") or {}).items():
        for typ in types:
            out.setdefault(typ, []).append(name)
    return out


def audit_types() -> list[str]:
    return list((yaml.safe_load(AUDIT_PATTERNS.read_text(encoding="utf-8")) or {}).get("types") or {})


def safe_harbor_rows(recall: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per Safe Harbor kind, in the rule's order: ``kind``, ``label``, ``covered``,
    ``not_covered`` (why), ``types`` ({detector type: recognizers}), ``audit`` (audit types),
    ``recall`` ({half: {gold, recall}} from the measured-recall file)."""
    sh = load_safe_harbor()
    recall = measured_recall() if recall is None else recall
    by_type = recognizers_by_type()
    known_audit = set(audit_types())
    rows = []
    for k in sh["kinds"]:
        kid = k["id"]
        types = {t: by_type.get(t, []) for t, kinds in sh["detector_types"].items() if kid in kinds}
        audit = [t for t, kinds in sh["audit_types"].items() if kid in kinds and t in known_audit]
        rec = {half: (entry.get("kinds") or {}).get(kid)
               for half, entry in (recall.get("halves") or {}).items()}
        rows.append({"kind": kid, "label": k["label"], "covered": bool(types) and not k.get("not_covered"),
                     "not_covered": k.get("not_covered"), "types": types, "audit": audit,
                     "recall": {h: r for h, r in rec.items() if r}})
    return rows


def _recognizers_cell(types: Mapping[str, list[str]], limit: int = 4) -> str:
    parts = []
    for typ, recs in types.items():
        shown = ", ".join(recs[:limit]) + (f", +{len(recs) - limit} more" if len(recs) > limit else "")
        parts.append(f"`{typ}`: {shown}" if recs else f"`{typ}`")
    return "; ".join(parts) or "-"


def _recall_cell(recall: Mapping[str, Any]) -> str:
    """Held-out recall; else the tune half's figure, said to be one; else "not measured"."""
    rec = recall.get("held-out")
    if rec:
        return f"{rec['recall']:.1%} of {rec['gold']}"
    tune = recall.get("tune")
    return f"none held out (tune half: {tune['recall']:.1%} of {tune['gold']})" if tune else "not measured"


def safe_harbor_section(manifest: Mapping[str, Any] | None = None,
                        recall: Mapping[str, Any] | None = None) -> str:
    """Markdown: the table and where its figures come from; "" when the anonymize stage did
    not run (the card then says so in its Anonymization section)."""
    stages = (manifest or {}).get("stages") or []
    if manifest is not None and not any(str(s.get("stage", "")).split(".")[0] == "anonymize" for s in stages):
        return ""
    recall = measured_recall() if recall is None else recall
    rows = safe_harbor_rows(recall)
    held = (recall.get("halves") or {}).get("held-out") or {}
    lines = ["### HIPAA Safe Harbor identifiers", "",
             "The 18 identifier kinds of HIPAA's Safe Harbor method, whether the anonymize stage "
             "replaces them, with which detector types and recognizers, which types the "
             "residual-PHI audit reports, and the stage's recall on evaluation text held out from "
             "tuning (share of gold identifiers of the kind that a placeholder covered).", "",
             "| # | identifier | covered | detector types (recognizers) | audit | recall (held-out) |",
             "|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        covered = "yes" if r["covered"] else f"no: {r['not_covered'] or 'no detector type'}"
        lines.append(f"| {i} | {r['label']} | {covered} | {_recognizers_cell(r['types'])} | "
                     f"{', '.join(r['audit']) or '-'} | {_recall_cell(r['recall'])} |")
    if held:
        lines += ["", f"Recall measured {recall.get('measured', '?')} (revision "
                      f"{recall.get('revision', '?')}, `{recall.get('bench', 'bench/phi_eval.py')}`) on "
                      f"the held-out halves of: {'; '.join(held.get('sets') or [])}. Generated and "
                      "synthetic text, not real patients' notes: recall on real notes may be lower. "
                      "\"none held out\": only the tune half's sets hold identifiers of that kind; "
                      "\"not measured\": no set does."]
    else:
        lines += ["", "Recall: not measured (no measured_recall.json shipped)."]
    return "\n".join(lines)
