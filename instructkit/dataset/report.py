"""``instructkit report DIR``: one self-contained HTML page about a dataset folder.

The page has an overview (records, quarantine, sources with licences, the publish gates),
charts (records by task and method, lengths in tokens, quarantine by stage and reason,
anonymization, the bias table as a heatmap, the LLM ledger), a record browser (filter by
task, method and source, search, provenance with retrieved passages, anonymization
placeholders marked), a quarantine browser and a sample of merged dedup clusters.

Everything is inline: CSS, a small script for the browsers, and the charts as static SVG
drawn in Python (``report_svg``), so the page works offline, with JavaScript off for all but
the filters, and stays small enough to email. Figures come from ``report_data``, which
follows the card.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instructkit.dataset.report_data import (
    CLIP_CHARS,
    LENGTH_FIELDS,
    ReportData,
    load_report_data,
    stage_drops,
)
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

__all__ = ["write_report", "render_report", "wants_report", "REPORT_FILE"]

ASSETS = Path(__file__).with_name("report_assets")
#: the report's file name in a dataset folder (``instructkit build`` writes it there)
REPORT_FILE = "report.html"

#: ``[TYPE]`` placeholders and ``[TYPE:digest]`` hashes the anonymizer writes
_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*)(?::[0-9a-f]{6,64})?\]")


def write_report(dir: str | Path, out: str | Path | None = None, *, max_records: int = 500,
                 max_quarantine: int = 500, quarantine_texts: bool = True) -> Path:
    """Write the HTML report of the dataset folder ``dir`` (default ``dir/report.html``).

    ``max_records`` records are embedded for browsing (a sample stratified by task, method
    and source when the data holds more), ``max_quarantine`` quarantine entries (all of them
    when there are no more, else a sample by stage and reason); ``quarantine_texts=False``
    leaves quarantined texts out (their counts stay). Returns the file written.
    """
    data = load_report_data(dir, max_records=max_records, max_quarantine=max_quarantine,
                            quarantine_texts=quarantine_texts)
    path = Path(out) if out is not None else Path(dir) / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(data, quarantine_texts=quarantine_texts), encoding="utf-8")
    return path


def wants_report(recipe: Mapping[str, Any] | None) -> bool:
    """Whether a build writes the report: the recipe's ``output.report``, else the schema's
    default (``schemas/recipe.schema.json``)."""
    from instructkit._resources import load_schema

    output = (recipe or {}).get("output") or {}
    if "report" in output:
        return bool(output["report"])
    return bool(load_schema("recipe.schema.json")["properties"]["output"]["properties"]["report"]["default"])


# -- text helpers (Jinja filters) --------------------------------------------------------------
def _clip(text: Any, n: int = CLIP_CHARS) -> Any:
    from markupsafe import Markup, escape

    if text is None:
        return ""
    s = str(text)
    if len(s) <= n:
        return s
    return Markup(f"{escape(s[:n])}<span class=\"clipped\"> … [{len(s) - n:,} more characters in the data]</span>")


def _phi(text: Any, types: frozenset[str] = frozenset()) -> Any:
    """Escape, then mark the anonymization placeholders of ``types`` (placeholders survive
    escaping unchanged; a bracketed word of another kind, such as "[M]", stays plain)."""
    from markupsafe import Markup, escape

    html = str(escape(text if text is not None else ""))
    if not types:
        return Markup(html)
    return Markup(_PLACEHOLDER.sub(
        lambda m: (f'<mark class="phi" title="anonymized: {m.group(1)}">{m.group(0)}</mark>'
                   if m.group(1) in types else m.group(0)), html))


def _record_marks(rec: Mapping[str, Any], default: frozenset[str]) -> frozenset[str]:
    """Which placeholders to mark in a record: the types its anonymization replaced
    (``provenance.anonymization.replaced``), else ``default``."""
    prov = rec.get("provenance") if isinstance(rec.get("provenance"), Mapping) else {}
    anon = prov.get("anonymization") if isinstance(prov.get("anonymization"), Mapping) else None
    if anon is None:
        return default
    replaced = anon.get("replaced") or {}
    return frozenset(str(k) for k, v in replaced.items() if v)


def _tojson_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _compact(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return "" if value is None else str(value)


def _provenance_rows(rec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Provenance as (label, value) rows: ids with their hashes, the model, the anonymization
    counts, then the rest; the source's record id and location last."""
    p = rec.get("provenance") if isinstance(rec.get("provenance"), Mapping) else {}
    rows: list[tuple[str, str]] = []
    done = set()

    def add(label: str, *keys: str, value: Any = None) -> None:
        done.update(keys)
        if value is None and keys:
            value = p.get(keys[0])
        if value not in (None, "", [], {}):
            rows.append((label, _compact(value)))

    add("builder", "builder")
    add("builder name", "builder_name")
    if p.get("template_id"):
        add("template", "template_id", "template_hash",
            value=f"{p['template_id']} @ {str(p.get('template_hash') or '-')[:16]}")
    add("phrasing", "phrasing_id")
    add("variant", "variant")
    if p.get("prompt_id"):
        add("prompt", "prompt_id", "prompt_hash", value=f"{p['prompt_id']} @ {str(p.get('prompt_hash') or '-')[:16]}")
    if p.get("model") or p.get("provider"):
        add("model", "model", "provider", value=f"{p.get('model') or '?'}" + (f" ({p['provider']})" if p.get("provider") else ""))
    add("parameters", "params")
    add("seed", "seed")
    add("seed tasks", "seed_task_ids")
    add("retrieved chunks", "chunk_ids")
    anon = p.get("anonymization")
    done.add("anonymization")
    if isinstance(anon, Mapping):
        replaced = anon.get("replaced") or {}
        what = ", ".join(f"{k} ×{v}" for k, v in sorted(replaced.items())) or "nothing"
        rows.append(("anonymization", f"{anon.get('operator', '?')}: {what}"))
    for k in sorted(p):
        if k not in done:
            add(k.replace("_", " "), k)
    src = rec.get("source") or {}
    for k in ("record_id", "location", "url", "citation"):
        if src.get(k):
            rows.append((f"source {k.replace('_', ' ')}", str(src[k])))
    return rows


_ENTRY_SHOWN = {"stage", "reason", "record_id", "source", "record", "row", "raw", "_line"}


def _quarantine_details(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(k.replace("_", " "), _clip(_compact(v), 600)) for k, v in sorted(entry.items())
            if k not in _ENTRY_SHOWN and v not in (None, "", [], {})]


def _short_text(rec: Mapping[str, Any], n: int = 700) -> str:
    parts = [str(rec.get("instruction") or "")]
    if rec.get("input"):
        parts.append(str(rec["input"]))
    parts.append("→ " + str(rec.get("output") or ""))
    text = "\n".join(parts)
    return text if len(text) <= n else text[:n].rstrip() + " …"


# -- charts ---------------------------------------------------------------------------------------
def _table(head: list[str], rows: list[list[Any]], text_cols: int = 1) -> dict[str, Any]:
    return {"head": head, "rows": rows, "text_cols": text_cols}


def _find(d: Any, *keys: str) -> Any:
    from instructkit.card import _find as card_find

    return card_find(d, *keys)


def _stage(manifest: Mapping[str, Any], *names: str) -> dict[str, Any] | None:
    for s in manifest.get("stages") or []:
        if s.get("stage") in names:
            return s
    return None


def _charts(d: ReportData) -> list[dict[str, Any]]:
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
    charts.append(_anonymization_chart(m))

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


def _anonymization_chart(m: Mapping[str, Any]) -> dict[str, Any]:
    from markupsafe import Markup

    anon, audit = _stage(m, "anonymize"), _stage(m, "audit")
    notes, figures = [], []
    if anon is None:
        notes.append("The anonymize stage did not run.")
        by_type: Mapping[str, Any] = {}
    else:
        extra = anon.get("extra") or {}
        if isinstance(extra.get("anonymization"), Mapping):
            extra = extra["anonymization"]
        by_type = _find(extra, "replaced_by_type", "replaced", "entities", "counts_by_type", "by_type") or {}
        op = _find(extra, "method", "operator", "operators", "engine")
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
    if isinstance(report, Mapping):
        suspects = report.get("suspects_by_type") or {}
        notes.append(f"Residual-PHI audit {'passed' if report.get('passed') else 'FAILED'} over "
                     f"{fmt((audit or {}).get('in', 0))} records; suspects: "
                     + (", ".join(f"{k} {v}" for k, v in sorted(suspects.items())) or "none") + ".")
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

    stage = _stage(m, "bias_report", "bias")
    report = _find((stage or {}).get("extra") or {}, "bias", "bias_report") if stage else None
    if not isinstance(report, Mapping) or not isinstance(report.get("overall"), Mapping):
        return {"id": "bias", "nav": "Bias", "title": "Demographic mentions",
                "figures": [{"caption": None, "svg": None, "table": None,
                             "notes": ["The bias report did not run." if stage is None else "No bias figures."]}]}
    overall = report["overall"]
    cols = [(cat, g) for cat, groups in overall.items() if isinstance(groups, Mapping) for g in groups]
    blocks = [("all records", overall), *sorted((report.get("by_task_method") or {}).items())]
    rows = [(label, int(b.get("records", 0) or 0), [int((b.get(c) or {}).get(g, 0) or 0) for c, g in cols])
            for label, b in blocks]
    from instructkit.quality.bias import CAVEAT

    return {"id": "bias", "nav": "Bias", "title": "Demographic mentions",
            "lead": "Records that mention each group at least once, as a share of the row's records "
                    "(the bias report in manifest.json, as in the card).",
            "figures": [{"caption": "Mentions by task/method and group",
                         "svg": Markup(heatmap(rows, cols, "Demographic mentions by task/method")) if cols else None,
                         "notes": [f"Method: {report.get('method', 'keyword mentions')}.", CAVEAT],
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


# -- the page --------------------------------------------------------------------------------------
def render_report(data: ReportData, *, quarantine_texts: bool = True) -> str:
    """The report page of ``data`` (from ``report_data.load_report_data``) as HTML."""
    import jinja2

    from instructkit import __version__

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
    env.filters.update(num=fmt, phi=_phi, clip=_clip, tojson_pretty=_tojson_pretty)
    m = data.manifest
    recipe_info = m.get("recipe") or {}
    cfg = data.recipe.get("card") or {}
    gates = data.gates
    for s in data.sources:
        s.setdefault("where", Path(str(s.get("location") or "")).name)
    stage_rows = [*(m.get("builders") or []), *(m.get("stages") or [])]
    methods = sorted(data.stats.methods)
    # placeholders to mark: a record's own replaced types; in the quarantine (scrubbed with
    # the anonymizer when it ran) every placeholder type
    from instructkit.anonymize.detect import PHI_TYPES

    scrubbed = frozenset(PHI_TYPES) if _stage(m, "anonymize") is not None else frozenset()
    for r in data.records:
        r["phi_marks"] = _record_marks(r, frozenset())
    for e in data.quarantine:
        e["phi_marks"] = _record_marks(e["record"], scrubbed) if isinstance(e.get("record"), Mapping) else scrubbed
    for c in data.clusters:
        if c.get("kept"):
            c["kept"]["phi_marks"] = _record_marks(c["kept"], frozenset())
        for d in c["dropped"]:
            d["phi_marks"] = _record_marks(d["record"], scrubbed) if isinstance(d.get("record"), Mapping) else scrubbed

    def facets(items: list[dict[str, Any]], key) -> list[tuple[str, int]]:
        c = Counter(key(x) for x in items)
        return sorted(c.items())

    page = env.get_template("report.html.j2").render(
        version=__version__,
        title=cfg.get("pretty_name") or data.recipe.get("name") or recipe_info.get("name") or data.folder.name,
        summary=cfg.get("summary") or data.recipe.get("description") or "A medical instruction-tuning dataset built with instructkit.",
        recipe_name=recipe_info.get("name") or data.recipe.get("name") or "-",
        recipe_sha=(recipe_info.get("sha256") or "")[:16], seed=m.get("seed"), limit=m.get("limit"),
        built_with=m.get("instructkit_version") or "?", built_at=(m.get("finished_at") or "")[:10],
        n_records=data.n_records, n_quarantined=data.n_quarantined,
        tasks=sorted(data.stats.tasks), methods=methods, sources=data.sources,
        card_license=data.card_license, gates=gates, gates_passed=all(g.passed for g in gates),
        gates_failed=sum(not g.passed for g in gates), stage_rows=stage_rows,
        charts=_charts(data), method_colors=METHOD_COLORS,
        records=data.records,
        record_facets={"task": facets(data.records, lambda r: r.get("task")),
                       "method": facets(data.records, lambda r: r.get("method")),
                       "source": facets(data.records, lambda r: (r.get("source") or {}).get("name"))},
        provenance_rows=_provenance_rows,
        quarantine=data.quarantine, quarantine_lines=data.quarantine_lines, quarantine_texts=quarantine_texts,
        quarantine_facets={"stage": facets(data.quarantine, lambda e: str(e.get("stage"))),
                           "reason": facets(data.quarantine, lambda e: str(e.get("reason")))},
        quarantine_details=_quarantine_details,
        clusters=data.clusters, cluster_count=data.cluster_count, duplicates_dropped=data.duplicates_dropped,
        dedup_ran=_stage(m, "dedup") is not None, short_text=_short_text,
        folder_name=data.folder.name, seconds=data.seconds,
        css=_asset("report.css"), js=_asset("report.js"),
    )
    return page


def _asset(name: str) -> Any:
    from markupsafe import Markup

    return Markup((ASSETS / name).read_text(encoding="utf-8"))
