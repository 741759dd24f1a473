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

from instructkit.dataset.outputs import check_report_out, report_name_in, rerecord_file
from instructkit.dataset.report_charts import build_charts, stage
from instructkit.dataset.report_data import CLIP_CHARS, ReportData, load_report_data
from instructkit.dataset.report_svg import METHOD_COLORS, fmt

__all__ = ["write_report", "render_report", "wants_report", "REPORT_FILE"]

ASSETS = Path(__file__).with_name("report_assets")
#: the report's file name in a dataset folder (``instructkit build`` writes it there)
REPORT_FILE = "report.html"

#: ``[TYPE]`` placeholders and ``[TYPE:digest]`` hashes the anonymizer writes
_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*)(?::[0-9a-f]{6,64})?\]")


def write_report(dir: str | Path, out: str | Path | None = None, *, max_records: int = 500,
                 max_quarantine: int = 500, quarantine_texts: bool = True,
                 audit: Mapping[str, Any] | None = None, complete: bool = True) -> Path:
    """Write the HTML report of the dataset folder ``dir`` (default ``dir/report.html``).

    ``max_records`` records are embedded for browsing (a sample stratified by task, method
    and source when the data holds more), ``max_quarantine`` quarantine entries (all of them
    when there are no more, else a sample by stage and reason); ``quarantine_texts=False``
    leaves quarantined texts out (their counts stay). Returns the file written.
    """
    path = Path(out) if out is not None else Path(dir) / REPORT_FILE
    if complete:  # a finished folder: write over nothing but a report (a build's staging is new)
        check_report_out(path, Path(dir))
    data = load_report_data(dir, max_records=max_records, max_quarantine=max_quarantine,
                            quarantine_texts=quarantine_texts, audit=audit, complete=complete)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(data, quarantine_texts=quarantine_texts), encoding="utf-8")
    written_as = report_name_in(Path(dir), path) if complete else None
    if written_as is not None:  # a report in its own dataset folder is the build's to replace
        rerecord_file(Path(dir), written_as)
    return path


def build_extra(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write the report into a build's folder before it is swapped into place; the gates use
    the build's own audit of these files (its audit stage), when it ran."""
    audit = next(((s.get("extra") or {}).get("audit") for s in manifest.get("stages") or []
                  if s.get("stage") == "audit"), None)
    write_report(folder, audit=audit, complete=False)


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


def _web_url(url: Any) -> bool:
    """Only http(s) addresses become links (a ``javascript:`` source URL stays text)."""
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


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


_ENTRY_SHOWN = {"stage", "reason", "record_id", "source", "record", "row", "raw", "_line", "phi_marks"}


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


# -- the page --------------------------------------------------------------------------------------
def render_report(data: ReportData, *, quarantine_texts: bool = True) -> str:
    """The report page of ``data`` (from ``report_data.load_report_data``) as HTML."""
    import jinja2

    from instructkit import __version__

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
    env.filters.update(num=fmt, phi=_phi, clip=_clip, tojson_pretty=_tojson_pretty, web_url=_web_url)
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
    from instructkit.steps.anonymize.findings import PHI_TYPES

    scrubbed = frozenset(PHI_TYPES) if stage(m, "anonymize") is not None else frozenset()
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
        charts=build_charts(data), method_colors=METHOD_COLORS,
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
        dedup_ran=stage(m, "dedup") is not None, short_text=_short_text,
        folder_name=data.folder.name, seconds=data.seconds,
        css=_asset("report.css"), js=_asset("report.js"),
    )
    return page


def _asset(name: str) -> Any:
    from markupsafe import Markup

    return Markup((ASSETS / name).read_text(encoding="utf-8"))
