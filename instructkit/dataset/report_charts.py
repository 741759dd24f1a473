"""The report's charts: what each one shows, from which figures, with the table under it.

Counts follow the card: records by task, method and source from the data (``ReportData``),
drops, anonymization, the bias report and the LLM ledger from ``manifest.json``. The drawing
is ``report_svg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from instructkit.dataset.report_data import LENGTH_FIELDS, ReportData, stage_drops
from instructkit.dataset.report_svg import (
    METHOD_COLORS,
    PALETTE,
    bars,
    boxplots,
    color_map,
    fmt,
    heatmap,
    stacked_bars,
)

__all__ = ["build_charts", "stage"]


def _table(head: list[str], rows: list[list[Any]], text_cols: int = 1) -> dict[str, Any]:
    return {"head": head, "rows": rows, "text_cols": text_cols}


def stage(manifest: Mapping[str, Any], *names: str) -> dict[str, Any] | None:
    for s in manifest.get("stages") or []:
        if s.get("stage") in names:
            return s
    return None


def build_charts(d: ReportData) -> list[dict[str, Any]]:
    from markupsafe import Markup

    m = d.manifest
    charts: list[dict[str, Any]] = []

    # records by task x method (counted from the data, as the card's task counts are)
    order = list(METHOD_COLORS)
    methods = sorted({mt for _, mt in d.task_method}, key=lambda x: (order.index(x) if x in order else len(order), x))
    mcolors = color_map(methods, METHOD_COLORS)
    tasks = sorted(d.stats.tasks, key=lambda t: (-d.stats.tasks[t], t))
    rows = [(t, {mt: d.task_method.get((t, mt), 0) for mt in methods}) for t in tasks]
    comp = {"caption": "Records by task and method",
            "svg": Markup(stacked_bars(rows, methods, mcolors, "Records by task and method")) if rows else None,
            "table": _table(["task", *methods, "total"],
                            [[t, *[v[mt] for mt in methods], sum(v.values())] for t, v in rows]),
            "notes": [] if rows else ["No records."]}
    src_rows = sorted(d.source_records.items(), key=lambda kv: (-kv[1], kv[0]))
    by_source = {"caption": "Records by source",
                 "svg": Markup(bars([(s, n, PALETTE[4]) for s, n in src_rows], "Records by source")) if src_rows else None,
                 "table": _table(["source", "records"], [[s, n] for s, n in src_rows])}
    charts.append({"id": "composition", "nav": "Composition", "title": "Composition",
                   "lead": f"{fmt(d.n_records)} records, counted from the data as in the card.",
                   "figures": [comp, by_source]})

    # lengths in approximate tokens, per task, for instruction, input and output
    panels = [(f, d.lengths.get(f, {})) for f in LENGTH_FIELDS]
    trows = [[t, f, q["n"], q["p5"], q["p25"], q["p50"], q["p75"], q["p95"], q["max"], q["mean"]]
             for t in tasks for f in LENGTH_FIELDS for q in [d.lengths.get(f, {}).get(t)] if q]
    charts.append({"id": "lengths", "nav": "Lengths", "title": "Lengths (tokens)",
                   "lead": "Approximate tokens per field (the quality filters' measure: a word is one token "
                           "per started 4 characters, a punctuation mark one).",
                   "figures": [{"caption": "Tokens per record by task: instruction, input, output",
                                "svg": Markup(boxplots(panels, tasks, "Tokens per record by task")) if tasks else None,
                                "notes": ["Box: 25th–75th percentile; black line: median; whiskers: 5th–95th "
                                          "percentile; each panel has its own scale."],
                                "table": _table(["task", "field", "records", "p5", "p25", "median", "p75", "p95",
                                                 "max", "mean"], trows, 2)}]})

    # quarantine by stage and reason (the manifest's counts, as in the card)
    drops = stage_drops(m)
    qrows: list[tuple[str, float | None, str | None]] = []
    for s, r, n in drops:
        if _group_of(qrows) != s:
            qrows.append((s, None, None))
        qrows.append((r, n, PALETTE[5]))
    qfig = {"caption": "Dropped records by stage and reason",
            "svg": Markup(bars(qrows, "Dropped records by stage and reason")) if drops else None,
            "notes": [] if drops else ["Nothing was dropped."],
            "table": _table(["stage", "reason", "records"], [[s, r, n] for s, r, n in drops], 2)}
    n_q = d.n_quarantined
    charts.append({"id": "dropped", "nav": "Dropped", "title": "Dropped (quarantine)",
                   "lead": f"{fmt(n_q)} {'record or row was' if n_q == 1 else 'records or rows were'} dropped, "
                           "each with its stage and reason (manifest.json); browse them under Quarantine.",
                   "figures": [qfig]})

    # anonymization and the residual-PHI audit
    gate1 = next((g for g in d.gates if getattr(g, "number", None) == 1), None)
    charts.append(_anonymization_chart(m, getattr(gate1, "verdict", None)))

    # demographic mentions (bias report) as a heatmap
    charts.append(_bias_chart(m))

    # the language-model ledger
    charts.append(_ledger_chart(m))
    return charts


def _group_of(rows: list[tuple[str, float | None, str | None]]) -> str | None:
    """The heading (stage) the last bar row sits under."""
    for label, v, _ in reversed(rows):
        if v is None:
            return label
    return None


def _anonymization_chart(m: Mapping[str, Any], verdict: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``verdict``: publish gate 1's (``steps.audit_verdict``), shown instead of the build's
    own audit stage so the page, the gate and ``instructkit audit`` say the same."""
    from markupsafe import Markup
    from instructkit.steps.audit_verdict import AuditVerdict, audit_verdict

    anon, audit = stage(m, "anonymize"), stage(m, "audit")
    notes, figures = [], []
    if anon is None:
        notes.append("The anonymize stage did not run.")
        by_type: Mapping[str, Any] = {}
    else:
        extra = (anon.get("extra") or {}).get("anonymization") or {}
        by_type = extra.get("replaced") or {}
        op = (anon.get("settings") or {}).get("operator")
        line = f"{fmt(anon.get('in', 0))} records anonymized"
        if op:
            line += f" with the {op} operator"
        if isinstance(extra.get("replaced_total"), int):
            line += f": {fmt(extra['replaced_total'])} spans replaced"
            if isinstance(extra.get("records_changed"), int):
                line += f" in {fmt(extra['records_changed'])} records"
        notes.append(line + ".")
        canary = extra.get("canary") if isinstance(extra.get("canary"), Mapping) else None
        if canary and canary.get("enabled"):
            notes.append(f"Canary self-test {'passed' if canary.get('passed') else 'FAILED'}: "
                         f"{canary.get('removed', 0)} of {canary.get('values', 0)} planted identifiers removed.")
    report = ((audit or {}).get("extra") or {}).get("audit")
    if isinstance(verdict, Mapping):
        v = _verdict_from_dict(verdict, AuditVerdict)
        notes.append("Residual-PHI audit (as publish gate 1 judges it): " + "; ".join(v.lines()) + ".")
    elif isinstance(report, Mapping):
        v = audit_verdict(report, report.get("limits") or {})
        notes.append("Residual-PHI audit (the build's audit stage, under its recipe's limits): "
                     + "; ".join(v.lines()) + ".")
    else:
        notes.append("Residual-PHI audit: not run.")
    rows = sorted(((str(k), int(v)) for k, v in (by_type or {}).items() if isinstance(v, (int, float))),
                  key=lambda kv: (-kv[1], kv[0])) if isinstance(by_type, Mapping) else []
    figures.append({"caption": "Spans replaced by entity type",
                    "svg": Markup(bars([(k, v, PALETTE[5]) for k, v in rows], "Spans replaced by entity type",
                                       unit="spans")) if rows and any(v for _, v in rows) else None,
                    "notes": notes if anon is None or any(v for _, v in rows) else [*notes, "No span was replaced."],
                    "table": _table(["entity type", "replaced"], [[k, v] for k, v in rows]) if rows else None})
    return {"id": "anonymization", "nav": "Anonymization", "title": "Anonymization",
            "lead": "What the anonymize stage replaced (manifest.json; counts only, never the values). "
                    "Placeholders are marked in the records below.", "figures": figures}


def _bias_chart(m: Mapping[str, Any]) -> dict[str, Any]:
    from markupsafe import Markup

    bias = stage(m, "bias_report")
    report = ((bias or {}).get("extra") or {}).get("bias") if bias else None
    if not isinstance(report, Mapping) or not isinstance(report.get("overall"), Mapping):
        return {"id": "bias", "nav": "Bias", "title": "Demographic mentions",
                "figures": [{"caption": None, "svg": None, "table": None,
                             "notes": ["The bias report did not run." if bias is None else "No bias figures."]}]}
    overall = report["overall"]
    cols = [(cat, g) for cat, groups in overall.items() if isinstance(groups, Mapping) for g in groups]
    blocks = [("all records", overall), *sorted((report.get("by_task_method") or {}).items())]
    rows = [(label, int(b.get("records", 0) or 0), [int((b.get(c) or {}).get(g, 0) or 0) for c, g in cols])
            for label, b in blocks]
    from instructkit.steps.quality.bias import CAVEAT

    return {"id": "bias", "nav": "Bias", "title": "Demographic mentions",
            "lead": "Records that mention each group at least once, as a share of the row's records "
                    "(the bias report in manifest.json, as in the card).",
            "figures": [{"caption": "Mentions by task/method and group",
                         "svg": Markup(heatmap(rows, cols, "Demographic mentions by task/method")) if cols else None,
                         "notes": ["Method: keyword mentions per record (steps/quality/bias_terms.yaml).", CAVEAT],
                         "table": _table(["task/method", "records", *[g.replace("_", " ") for _, g in cols]],
                                         [[label, n, *counts] for label, n, counts in rows])}]}


def _ledger_chart(m: Mapping[str, Any]) -> dict[str, Any]:
    from markupsafe import Markup

    u = m.get("llm_usage")
    if not isinstance(u, Mapping):
        return {"id": "llm", "nav": "LLM usage", "title": "Language-model usage",
                "figures": [{"caption": None, "svg": None, "table": None,
                             "notes": ["No language model was called in this run."]}]}
    keys = [("calls", "calls"), ("requests", "requests sent (retries included)"),
            ("cached", "answered from cache"), ("retries", "retries"), ("failures", "failures"),
            ("invalid_outputs", "invalid structured outputs")]
    rows = [(label, int(u.get(k) or 0), PALETTE[i % 6]) for i, (k, label) in enumerate(keys)]
    cost = u.get("cost")
    notes = [f"Model: {u.get('model') or '?'} ({u.get('provider') or '?'}).",
             f"Tokens: {fmt(u.get('prompt_tokens', 0))} prompt, {fmt(u.get('completion_tokens', 0))} completion "
             f"(from cache: {fmt(u.get('cached_prompt_tokens', 0))} prompt, "
             f"{fmt(u.get('cached_completion_tokens', 0))} completion).",
             "Cost: " + (f"{cost:.4f}" if isinstance(cost, (int, float)) else "not priced (no prices in the recipe)") + "."]
    if u.get("errors"):
        notes.append("Errors: " + ", ".join(f"{k} {v}" for k, v in sorted(u["errors"].items())) + ".")
    if u.get("budget_exhausted"):
        notes.append(f"Stopped early: {u['budget_exhausted']}.")
    table_rows = [[label, v] for label, v, _ in rows]
    table_rows += [["prompt tokens", u.get("prompt_tokens", 0)], ["completion tokens", u.get("completion_tokens", 0)],
                   ["cost", cost if cost is not None else "-"]]
    return {"id": "llm", "nav": "LLM usage", "title": "Language-model usage",
            "lead": "The run's usage ledger (manifest.json, as in the card).",
            "figures": [{"caption": "Requests", "svg": Markup(bars(rows, "Language-model requests", unit="")),
                         "notes": notes, "table": _table(["figure", "value"], table_rows)}]}




def _verdict_from_dict(d: Mapping[str, Any], cls: Any) -> Any:
    """An ``AuditVerdict`` back from its ``as_dict()``."""
    blocking = d.get("blocking") or {}
    found = {t: int(v.get("count") or 0) for t, v in blocking.items()}
    found.update({t: int(n) for t, n in (d.get("report_only") or {}).items()})
    limits = {t: v.get("limit") for t, v in blocking.items()}
    limits.update({t: None for t in d.get("report_only") or {}})
    return cls(records_scanned=int(d.get("records_scanned") or 0), found={t: n for t, n in found.items() if n},
               limits=limits, names_checked=bool(d.get("names_checked")), phi_free=dict(d.get("phi_free") or {}))
