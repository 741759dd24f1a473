"""The dataset card: a template (``card_template.md``) filled from the run's manifest and data.

Built with ``huggingface_hub.DatasetCard``/``DatasetCardData`` so the YAML metadata is the
Hub's own format. Cards hold counts, ids and hashes, never record text other than the
example records (which have passed the anonymize stage).

Two ways in, one renderer:

- ``build_card(manifest, pipeline=..., samples=...)``: at the end of a run (``export.py``);
- ``card_for_folder(DIR)``: from a dataset folder alone (manifest.json, recipe.yaml and the
  data), as ``instructkit publish`` renders it, so the published card always matches the
  published data.

Stage figures come from ``manifest["stages"][i]["extra"]`` (each step's ``summary()``) and,
when the run's objects are at hand, each step's ``card_section()`` markdown.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["build_card", "card_for_folder", "card_license", "card_problems", "scan_dataset",
           "size_category", "DatasetStats", "REQUIRED_SECTIONS", "REQUIRED_METADATA"]

TEMPLATE = Path(__file__).with_name("card_template.md")

#: Sections (``## `` headings) a complete card has (publish gate 5).
REQUIRED_SECTIONS = (
    "Dataset summary", "Not for clinical use", "Sources", "How it was built", "Hosted-model terms",
    "Anonymization", "Deduplication and decontamination", "Validation and judge", "Bias report",
    "Processing stages", "Dataset structure", "Examples", "Intended use", "Limitations",
    "How to reproduce",
)
#: YAML metadata keys a complete card has (publish gate 5).
REQUIRED_METADATA = ("license", "language", "task_categories", "size_categories", "tags",
                     "pretty_name", "configs")
#: Tags every card carries.
BASE_TAGS = ("medical", "clinical", "instruction-tuning")

_TASK_CATEGORIES = {"consumer_health_qa": "question-answering", "research_qa": "question-answering",
                    "multiple_choice_qa": "multiple-choice", "report_labeling": "text-classification",
                    "impression_generation": "summarization",
                    "series_description_harmonization": "text-classification",
                    "diagnosis": "text-generation"}
_TASK_IDS = {"consumer_health_qa": "open-domain-qa", "research_qa": "closed-domain-qa",
             "multiple_choice_qa": "multiple-choice-qa", "report_labeling": "multi-label-classification",
             "series_description_harmonization": "multi-class-classification"}
#: methods whose outputs a language model wrote
_LLM_METHODS = {"synthetic", "rag"}

DEFAULT_LIMITATIONS = [
    "Answers come from the listed sources or a language model and are not reviewed by clinicians record by record.",
    "Template instructions are few and human-written: models may overfit their wording.",
    "Source collections cover some conditions, populations and care settings far more than others.",
    "Automatic anonymization lowers but does not remove the risk of residual identifiers: on a "
    "general PII benchmark (Presidio's synthetic set) it still leaves about one name or place in "
    "nine, mostly lower-case or foreign names; structured identifiers are far rarer (bench/phi_eval.py).",
]
_LLM_LIMITATION = ("Records written by a language model can state wrong facts fluently; the judge and "
                   "validation stages reduce but do not remove them.")
DEFAULT_INTENDED_USE = ("Instruction tuning and evaluation of medical language models in research. "
                        "Not for clinical decision making, and not for training models deployed in "
                        "care without further validation.")


# -- the data, scanned -------------------------------------------------------------------
@dataclass
class DatasetStats:
    """What the card needs from the records themselves (one pass over the Parquet files)."""

    records: int = 0
    tasks: Counter = field(default_factory=Counter)
    methods: Counter = field(default_factory=Counter)
    licenses: Counter = field(default_factory=Counter)
    #: (source name, licence) -> records
    source_licenses: Counter = field(default_factory=Counter)
    #: (provider, model) -> records
    models: Counter = field(default_factory=Counter)
    #: builder -> Counter of "model (provider)"
    models_by_builder: dict[str, Counter] = field(default_factory=dict)
    #: builder -> the generation parameters of its first record
    params_by_builder: dict[str, dict] = field(default_factory=dict)
    #: builder -> Counter of template/prompt "id@hash"
    prompts_by_builder: dict[str, Counter] = field(default_factory=dict)
    #: entity type -> replacements, from provenance.anonymization.replaced
    anonymized: Counter = field(default_factory=Counter)
    anonymization_operators: Counter = field(default_factory=Counter)
    samples: list[dict] = field(default_factory=list)


def _data_files(folder: Path) -> list[Path]:
    return sorted((folder / "data").rglob("*.parquet")) if (folder / "data").is_dir() else []


def scan_dataset(folder: str | Path, n_samples: int = 8) -> DatasetStats:
    """Count tasks, methods, licences, models and anonymization per record in ``folder``."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    st = DatasetStats()
    for f in _data_files(folder):
        pf = pq.ParquetFile(f)
        cols = [c for c in ("task", "method", "source", "provenance") if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=2000, columns=cols):
            for row in batch.to_pylist():
                st.records += 1
                st.tasks[row.get("task") or "?"] += 1
                st.methods[row.get("method") or "?"] += 1
                src = row.get("source") or {}
                lic = src.get("license") or "unknown"
                st.licenses[lic] += 1
                st.source_licenses[(src.get("name") or "?", lic)] += 1
                _count_provenance(st, row.get("provenance"))
    if n_samples and st.records:
        from instructkit.dataset.writer import read_dataset

        per_task: Counter = Counter()
        for rec in read_dataset(folder):
            if per_task[rec.get("task")] < 1:
                per_task[rec.get("task")] += 1
                st.samples.append(rec)
            if len(st.samples) >= min(n_samples, len(st.tasks)):
                break
    return st


def _count_provenance(st: DatasetStats, prov: Any) -> None:
    if isinstance(prov, str):
        try:
            prov = json.loads(prov)
        except json.JSONDecodeError:
            return
    if not isinstance(prov, dict):
        return
    builder = str(prov.get("builder") or "?")
    model, provider = prov.get("model"), prov.get("provider")
    if model or provider:
        st.models[(str(provider or ""), str(model or ""))] += 1
        st.models_by_builder.setdefault(builder, Counter())[_model_label(provider, model)] += 1
        if isinstance(prov.get("params"), dict) and builder not in st.params_by_builder:
            st.params_by_builder[builder] = prov["params"]
    pid = prov.get("prompt_id") or prov.get("template_id")
    if pid:
        h = prov.get("prompt_hash") or prov.get("template_hash") or "-"
        st.prompts_by_builder.setdefault(builder, Counter())[f"{pid}@{str(h)[:16]}"] += 1
    anon = prov.get("anonymization")
    if isinstance(anon, dict):
        if anon.get("operator"):
            st.anonymization_operators[str(anon["operator"])] += 1
        for k, v in (anon.get("replaced") or {}).items():
            if isinstance(v, (int, float)):
                st.anonymized[k] += int(v)


def _model_label(provider: Any, model: Any) -> str:
    return f"{model or '?'} ({provider})" if provider else str(model or "?")


# -- licence and size ---------------------------------------------------------------------
def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def card_license(licenses: Iterable[str], declared: str | None = None) -> str:
    """The card licence (Hub id): the recipe's, else the most restrictive source licence."""
    from instructkit.hub.licenses import classify_source, derive_card_license, license_info

    if declared:
        info = license_info(declared)
        return info.hub if info.known else "other"
    hub, _ = derive_card_license(classify_source({"name": l, "license": l}) for l in licenses)
    return hub


def _license_of(sources: list[dict], extra_licenses: Iterable[tuple[str, str]],
                declared: str | None) -> tuple[str, str | None, list[Any]]:
    from instructkit.hub.licenses import classify_source, derive_card_license, license_info

    classified = [classify_source(s) for s in sources]
    known = {s.get("name") for s in sources}
    for name, lic in extra_licenses:  # licences seen on records of sources the manifest lacks
        if name not in known:
            classified.append(classify_source({"name": name, "license": lic}))
    if declared:
        info = license_info(declared)
        return (info.hub, None, classified) if info.known else ("other", declared, classified)
    hub, name = derive_card_license(classified)
    return hub, name, classified


# -- rendering helpers ----------------------------------------------------------------------
def _reasons(d: Mapping[str, int] | None) -> str:
    return ", ".join(f"{k}: {v}" for k, v in (d or {}).items()) or "-"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        v = round(v, 4)
    if isinstance(v, (dict, list)):
        v = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v).replace("|", "\\|").replace("\n", " ")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v and len(rows) < 60:
            rows.extend(_flatten(v, key + "."))
        else:
            rows.append((key, v))
    return rows


def _kv_table(d: Mapping[str, Any] | None, head: tuple[str, str] = ("figure", "value"),
              limit: int = 60) -> str:
    """A two-column markdown table of a (nested) dict of figures."""
    rows = _flatten(d or {})
    if not rows:
        return ""
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"| … | {len(rows) - limit} more in manifest.json |")
    return "\n".join(lines)


def _stage(manifest: Mapping[str, Any], *names: str) -> dict[str, Any] | None:
    for s in manifest.get("stages") or []:
        if s.get("stage") in names:
            return s
    return None


def _find(d: Any, *keys: str) -> Any:
    """The first value under any of ``keys`` in a dict or its nested dicts."""
    if not isinstance(d, Mapping):
        return None
    for k in keys:
        if d.get(k) not in (None, {}, []):
            return d[k]
    for v in d.values():
        if isinstance(v, Mapping):
            hit = _find(v, *keys)
            if hit is not None:
                return hit
    return None


def _step_sections(objs: Iterable[Any]) -> dict[str, str]:
    out = {}
    for s in objs:
        fn = getattr(s, "card_section", None)
        if callable(fn):
            try:
                text = fn()
            except Exception:  # a card must not fail a finished run
                text = None
            if text:
                out[getattr(s, "name", type(s).__name__)] = str(text).strip()
    return out


# -- sections -----------------------------------------------------------------------------
def _builders_section(manifest: Mapping[str, Any], sections: dict[str, str],
                      st: DatasetStats | None) -> list[dict[str, Any]]:
    rows = []
    for b in manifest.get("builders") or []:
        name = b.get("stage", "?")
        summ = b.get("summary") or b.get("extra") or {}
        prompts = []
        if summ.get("template_id"):
            prompts.append(f"template `{summ['template_id']}` (hash `{summ.get('template_hash', '-')}`)")
        pid = _find(summ, "prompt_id")
        if pid:
            prompts.append(f"prompt `{pid}` (hash `{_find(summ, 'prompt_hash') or '-'}`)")
        prompt_map = _find(summ, "prompts")
        if isinstance(prompt_map, Mapping):
            prompts += [f"prompt `{k}` (hash `{v}`)" for k, v in prompt_map.items()]
        if st is not None and st.prompts_by_builder.get(name) and not prompts:
            prompts += [f"`{k.split('@')[0]}` (hash `{k.split('@')[1]}`) ×{v}"
                        for k, v in sorted(st.prompts_by_builder[name].items())]
        models = []
        if st is not None and st.models_by_builder.get(name):
            models = [f"{k} ×{v}" for k, v in sorted(st.models_by_builder[name].items())]
        elif _find(summ, "model"):
            models = [_model_label(_find(summ, "provider"), _find(summ, "model"))]
        params = _find(summ, "params") or (st.params_by_builder.get(name) if st else None)
        rows.append({"name": name, "method": b.get("method", "?"), "in": b.get("in", 0),
                     "out": b.get("out", 0), "dropped": b.get("dropped", 0),
                     "reasons": _reasons(b.get("dropped_by_reason")),
                     "prompts": "; ".join(prompts) or "-", "models": "; ".join(models) or "-",
                     "params": _cell(params) if params else "-",
                     "section": sections.get(name) or b.get("card_section")})
    return rows


def _usage_section(manifest: Mapping[str, Any]) -> str:
    u = manifest.get("llm_usage")
    if not u:
        return "No language model was called in this run."
    cost = u.get("cost")
    lines = ["| figure | value |", "|---|---|",
             f"| model | `{_cell(u.get('model', '?'))}` ({_cell(u.get('provider', '?'))}) |",
             f"| calls / HTTP requests / retries | {u.get('calls', '-')} / {u.get('requests', '-')} / {u.get('retries', '-')} |",
             f"| answered from cache | {u.get('cached', 0)} |",
             f"| failed calls / invalid outputs | {u.get('failures', 0)} / {u.get('invalid_outputs', 0)} |",
             f"| prompt tokens | {u.get('prompt_tokens', 0)} |",
             f"| completion tokens | {u.get('completion_tokens', 0)} |",
             f"| cost | {'not priced' if cost is None else f'{cost:.4f}'} |"]
    if u.get("budget_exhausted"):
        lines.append(f"| stopped early | {_cell(u['budget_exhausted'])} |")
    return "\n".join(lines)


_ANON_KEYS = ("method", "operator", "operators", "engine", "replaced_by_type", "replaced", "entities",
              "counts_by_type", "by_type", "canary", "canaries")


def _anonymization_section(manifest: Mapping[str, Any], sections: dict[str, str],
                           st: DatasetStats | None) -> str:
    anon = _stage(manifest, "anonymize")
    audit = _stage(manifest, "audit")
    out: list[str] = []
    if anon is None:
        out.append("Anonymization: **not run**. Records were published as the sources gave them.")
    else:
        extra = anon.get("extra") or {}
        if isinstance(extra.get("anonymization"), Mapping):
            extra = extra["anonymization"]
        out.append(f"Anonymization ran over {anon.get('in', 0)} records ({anon.get('out', 0)} kept, "
                   f"{anon.get('dropped', 0)} dropped: {_reasons(anon.get('dropped_by_reason'))}).")
        if sections.get("anonymize"):
            out.append("\n" + sections["anonymize"])
        else:
            method = _find(extra, "method", "operator", "operators", "engine")
            if method:
                out.append(f"Method: {_cell(method)}.")
            by_type = _find(extra, "replaced_by_type", "replaced", "entities", "counts_by_type", "by_type")
            if not by_type and st is not None and st.anonymized:
                by_type = dict(st.anonymized)
            if isinstance(by_type, Mapping) and by_type:
                out.append("\n| entity type | replaced |\n|---|---|\n" + "\n".join(
                    f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(by_type.items())))
            rest = {k: v for k, v in extra.items() if k not in _ANON_KEYS}
            if rest:
                out.append("\n" + _kv_table(rest))
    # the residual-PHI audit (publish gate 1 reads the same report from the manifest)
    report = ((audit or {}).get("extra") or {}).get("audit")
    if audit is None or not isinstance(report, Mapping):
        out.append("\n**Residual-PHI audit: not run.**")
    else:
        verdict = "passed" if report.get("passed") else "**FAILED**"
        out.append(f"\n**Residual-PHI audit: {verdict}** ({audit.get('in', 0)} records audited; "
                   "record ids of suspects are in manifest.json).")
        if sections.get("audit"):
            out.append("\n" + sections["audit"])
        else:
            suspects = report.get("suspects_by_type") or {}
            if suspects:
                out.append("\n| suspected identifier type | count |\n|---|---|\n" + "\n".join(
                    f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(suspects.items())))
            else:
                out.append("No suspected identifier was found.")
            rest = {k: v for k, v in report.items()
                    if k not in ("passed", "suspects_by_type", "record_ids_by_type")}
            if rest:
                out.append("\n" + _kv_table(rest))
    canary = None
    for s in (audit, anon):
        canary = canary or _find((s or {}).get("extra") or {}, "canaries", "canary")
    if not canary or (isinstance(canary, Mapping) and canary.get("enabled") is False):
        out.append("\nCanary check (planted identifiers that must not survive): not run.")
    else:
        out.append("\nCanary check (planted identifiers that must not survive):\n\n" +
                   (_kv_table(canary) if isinstance(canary, Mapping) else _cell(canary)))
    return "\n".join(out)


def _stage_group(manifest: Mapping[str, Any], *names: str) -> list[dict[str, Any]]:
    """A stage and its sub-steps (``validate``, ``validate.length``, ...), in run order."""
    return [s for s in manifest.get("stages") or []
            if any(s.get("stage") == n or str(s.get("stage", "")).startswith(n + ".") for n in names)]


def _stage_block(group: list[dict[str, Any]] | dict[str, Any] | None, title: str,
                 sections: dict[str, str], skip: tuple[str, ...] = ()) -> str:
    group = [group] if isinstance(group, dict) else list(group or [])
    if not group:
        return f"{title}: **not run**."
    first, last = group[0], group[-1]
    dropped = sum(s.get("dropped", 0) for s in group)
    lines = [f"{title}: {first.get('in', 0)} records in, {last.get('out', 0)} out, {dropped} dropped."]
    rows = [(s.get("stage", "?"), k, v) for s in group for k, v in (s.get("dropped_by_reason") or {}).items()]
    if rows:
        lines.append("\n| step | dropped because | records |\n|---|---|---|\n" +
                     "\n".join(f"| {_cell(s)} | {_cell(k)} | {v} |" for s, k, v in rows))
    for s in group:
        name = s.get("stage", "?")
        if sections.get(name):
            lines.append("\n" + sections[name])
        else:
            extra = {k: v for k, v in (s.get("extra") or {}).items() if k not in skip}
            if extra:
                lines.append("\n" + (f"`{name}`:\n\n" if len(group) > 1 else "") + _kv_table(extra))
    return "\n".join(lines)


def _dedup_section(manifest: Mapping[str, Any], sections: dict[str, str]) -> str:
    dedup = _stage_group(manifest, "dedup")
    decon = _stage_group(manifest, "decontaminate", "decontamination")
    parts = [_stage_block(dedup, "Deduplication", sections)]
    # decontamination may be its own stage or part of dedup's figures
    bench = None
    for s in [*decon, *dedup]:
        bench = bench or _find(s.get("extra") or {}, "by_benchmark", "benchmarks")
    if decon:
        parts.append(_stage_block(decon, "Decontamination", sections,
                                  skip=("by_benchmark", "benchmarks")))
    if isinstance(bench, Mapping) and bench:
        parts.append("\n| benchmark | records removed |\n|---|---|\n" + "\n".join(
            f"| {_cell(k)} | {_cell(v if not isinstance(v, Mapping) else v.get('removed', v))} |"
            for k, v in sorted(bench.items())))
    elif not decon:
        parts.append("Decontamination against benchmarks: **not run**.")
    return "\n\n".join(parts)


def _judge_section(manifest: Mapping[str, Any], sections: dict[str, str]) -> str:
    parts = [_stage_block(_stage_group(manifest, "validate"), "Validation", sections)]
    judge = _stage_group(manifest, "judge")
    parts.append(_stage_block(judge, "Judge", sections,
                              skip=("scores", "score_distribution", "histogram")))
    dist = None
    for s in judge:
        dist = dist or _find(s.get("extra") or {}, "score_distribution", "scores", "histogram")
    if isinstance(dist, Mapping) and dist:
        parts.append("Score distribution:\n\n| score | records |\n|---|---|\n" + "\n".join(
            f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(dist.items(), key=lambda kv: str(kv[0]))))
    return "\n\n".join(parts)


def _bias_section(manifest: Mapping[str, Any], sections: dict[str, str]) -> str:
    stage = _stage(manifest, "bias_report", "bias")
    if stage is None:
        return "Bias report: **not run**."
    if sections.get(stage["stage"]):
        return sections[stage["stage"]]
    report = _find(stage.get("extra") or {}, "bias", "bias_report")
    if not isinstance(report, Mapping):
        return _kv_table(stage.get("extra") or {}) or "Bias report: no figures."
    rows = {"all": report.get("overall") or {}}
    rows.update(report.get("by_task_method") or {})
    cols = [(cat, g) for cat, groups in (report.get("overall") or {}).items()
            if isinstance(groups, Mapping) for g in groups]
    if not cols:
        return _kv_table(report)
    head = "| task/method | records | " + " | ".join(g.replace("_", " ") for _, g in cols) + " |"
    lines = [f"Method: {_cell(report.get('method', 'keyword mentions'))}.", "", head,
             "|" + "---|" * (2 + len(cols))]
    for label, block in rows.items():
        n = block.get("records", 0)
        cells = [block.get(c, {}).get(g, 0) for c, g in cols]
        lines.append(f"| {_cell(label)} | {n} | " + " | ".join(
            f"{k} ({100 * k / n:.0f}%)" if n else "0" for k in cells) + " |")
    lines.append("\nCounts are records that *mention* a group, not the demographics of the "
                 "patients behind the data, and not a measure of fairness.")
    return "\n".join(lines)


def _hosted_section(st: DatasetStats | None, manifest: Mapping[str, Any]) -> tuple[str, list]:
    from instructkit.hub.model_terms import flag_models

    models: Counter = Counter(st.models) if st is not None else Counter()
    if not models and manifest.get("llm_usage"):
        u = manifest["llm_usage"]
        models[(str(u.get("provider") or ""), str(u.get("model") or ""))] += 1
    flags = flag_models(models)
    if not flags:
        used = ", ".join(sorted(_model_label(p, m) for p, m in models)) or "none"
        return ("No record was generated by a hosted model whose terms limit training on its "
                f"outputs (models used: {used}).", [])
    lines = ["**Flagged:** some records were generated by hosted models whose terms of use limit "
             "training on their outputs. Check the terms before training a model on them; each "
             "record's `provenance.model` and `provenance.provider` say which model wrote it.", "",
             "| provider | model | records | terms | restriction |", "|---|---|---|---|---|"]
    for f in flags:
        terms = f"[{f.terms_name}]({f.terms_url})" if f.terms_url else f.terms_name
        lines.append(f"| {_cell(f.provider or '-')} | `{_cell(f.model or '-')}` | {f.records} | "
                     f"{terms} | {_cell(f.restriction)} |")
    return "\n".join(lines), flags


# -- the card -----------------------------------------------------------------------------
def build_card(manifest: dict[str, Any], *, pipeline: Any = None, samples: list[dict] | None = None,
               recipe: Mapping[str, Any] | None = None, stats: DatasetStats | None = None,
               data_dir: str | Path | None = None, repo_id: str | None = None):
    """Render the card from a run's manifest (and, when given, the pipeline, sample records,
    recipe data and figures scanned from the data; ``data_dir`` scans the folder's data)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from instructkit.records import user_turn

    manifest = manifest or {}
    if stats is None and data_dir is not None and _data_files(Path(data_dir)):
        stats = scan_dataset(data_dir, n_samples=0 if samples else 8)
    if recipe is None:
        recipe = getattr(getattr(pipeline, "recipe", None), "data", None) or {}
    cfg = recipe.get("card") or {}
    counts = manifest.get("counts", {})
    task_counts = dict(stats.tasks) if stats and stats.records else dict(counts.get("task", {}))
    tasks = sorted(task_counts)
    methods = sorted(stats.methods if stats and stats.records else counts.get("method", {}))
    n_records = stats.records if stats and stats.records else manifest.get("records", 0)
    sources = list(manifest.get("sources") or [])
    record_licenses = list(stats.source_licenses) if stats else [
        (n, None) for n in counts.get("source", {})]
    license_id, license_name, classified = _license_of(
        sources, [(n, l) for n, l in record_licenses if l], cfg.get("license"))
    llm_made = bool(set(methods) & _LLM_METHODS) or bool(stats and stats.models)
    tags = list(dict.fromkeys([*BASE_TAGS, *(["synthetic"] if llm_made else []), *methods,
                               *(cfg.get("tags") or [])]))
    configs = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
                "default": True}]
    # one config per task over the same file: the Parquet builder filters rows on `task`
    configs += [{"config_name": t, "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
                 "filters": [["task", "==", t]]} for t in tasks if re.fullmatch(r"[A-Za-z0-9_.-]+", t)
                and t != "default"]
    source_datasets = [f"extended|{s.get('dataset') or s['name']}" for s in sources if s.get("name")]
    task_ids = cfg.get("task_ids") or sorted({_TASK_IDS[t] for t in tasks if t in _TASK_IDS})
    data = DatasetCardData(
        pretty_name=cfg.get("pretty_name") or recipe.get("name") or
        (manifest.get("recipe") or {}).get("name") or "instructkit dataset",
        license=license_id,
        license_name=license_name if license_id == "other" else None,
        language=cfg.get("language") or ["en"],
        task_categories=cfg.get("task_categories") or sorted(
            {_TASK_CATEGORIES.get(t, "text-generation") for t in tasks}) or ["text-generation"],
        task_ids=task_ids or None,
        size_categories=[size_category(n_records)],
        tags=tags,
        source_datasets=source_datasets or None,
        configs=configs,
    )
    builder_objs = list(getattr(pipeline, "builders", []) or [])
    stage_objs = list(getattr(pipeline, "stages", []) or [])
    sections = _step_sections([*builder_objs, *stage_objs])
    for entry in [*(manifest.get("builders") or []), *(manifest.get("stages") or [])]:
        if entry.get("card_section") and entry.get("stage") not in sections:
            sections[entry["stage"]] = str(entry["card_section"]).strip()
    stage_rows = [{**b, "reasons": _reasons(b.get("dropped_by_reason"))} for b in manifest.get("builders", [])]
    stage_rows += [{**s, "reasons": _reasons(s.get("dropped_by_reason"))} for s in manifest.get("stages", [])]
    topical = {"anonymize", "audit", "dedup", "decontaminate", "decontamination", "validate", "judge",
               "bias_report", "bias"}
    other_sections = [text for name, text in sections.items()
                      if name in {s.get("stage") for s in manifest.get("stages", [])}
                      and name.split(".")[0] not in topical]
    by_name = {c.name: c for c in classified}
    source_rows = []
    for s in sources:
        c = by_name.get(s.get("name"))
        source_rows.append({**s, "location_name": Path(str(s.get("location", ""))).name,
                            "class": c.info.cls if c else "?",
                            "status": "ok" if c is None or c.publishable else "not publishable"})
    hosted_text, flags = _hosted_section(stats, manifest)
    samples = list(samples if samples is not None else (stats.samples if stats else []))
    examples = [{"task": r.get("task"), "method": r.get("method"), "id": r.get("id"),
                 "source": (r.get("source") or {}).get("name", "?"),
                 "license": (r.get("source") or {}).get("license", "?"),
                 "text": _clip(f"### Instruction\n{user_turn(r)}\n\n### Response\n{r.get('output', '')}")}
                for r in samples[:5] if r.get("instruction") is not None]
    recipe_info = manifest.get("recipe") or {}
    limitations = [*(cfg.get("limitations") or []), *DEFAULT_LIMITATIONS,
                   *([_LLM_LIMITATION] if llm_made else [])]
    declarations = [c for c in classified if c.declaration]
    return DatasetCard.from_template(
        data, template_path=str(TEMPLATE),
        pretty_name=data.pretty_name,
        summary=cfg.get("summary") or recipe.get("description")
        or "A medical instruction-tuning dataset built with instructkit.",
        n_records=n_records, n_quarantined=manifest.get("quarantined", 0),
        task_counts=task_counts, methods=", ".join(methods) or "-",
        recipe_name=recipe_info.get("name", "-"), recipe_sha=(recipe_info.get("sha256") or "-")[:16],
        seed=manifest.get("seed"), limit=manifest.get("limit"),
        version=manifest.get("instructkit_version"),
        built_at=(manifest.get("finished_at") or _dt.date.today().isoformat())[:10],
        embedders=", ".join(f"{e.get('model')} ({e.get('backend')} backend)"
                            for e in manifest.get("embedders") or []),
        license_id=license_id if license_id != "other" else f"other ({license_name})",
        sources=source_rows, declarations=declarations,
        license_problems=[p for c in classified for p in c.problems],
        builders=_builders_section(manifest, sections, stats),
        usage=_usage_section(manifest),
        hosted=hosted_text, flagged=bool(flags),
        anonymization=_anonymization_section(manifest, sections, stats),
        dedup=_dedup_section(manifest, sections),
        judge=_judge_section(manifest, sections),
        bias=_bias_section(manifest, sections),
        stage_rows=stage_rows, other_sections=other_sections,
        formats=", ".join(manifest.get("formats", [])) or "-",
        configs=[c["config_name"] for c in configs],
        examples=examples, intended_use=cfg.get("intended_use") or DEFAULT_INTENDED_USE,
        limitations=limitations, citation=cfg.get("citation"),
        packages=sorted((manifest.get("packages") or {}).items()),
        python=manifest.get("python", "-"), repo_id=repo_id or "ORG/NAME",
    )


def card_for_folder(folder: str | Path, manifest: dict[str, Any] | None = None,
                    repo_id: str | None = None):
    """Render the card of a dataset folder from its manifest.json, recipe.yaml and data."""
    import yaml

    folder = Path(folder)
    if manifest is None:
        mpath = folder / "manifest.json"
        manifest = json.loads(mpath.read_text(encoding="utf-8")) if mpath.is_file() else {}
    recipe: dict[str, Any] = {}
    rpath = folder / "recipe.yaml"
    if rpath.is_file():
        loaded = yaml.safe_load(rpath.read_text(encoding="utf-8"))
        recipe = loaded if isinstance(loaded, dict) else {}
    return build_card(manifest, recipe=recipe, stats=scan_dataset(folder), repo_id=repo_id)


def card_problems(text: str) -> list[str]:
    """What a card lacks to be complete: YAML that ``DatasetCard`` parses, the required
    metadata, the required sections and the not-for-clinical-use notice."""
    from huggingface_hub import DatasetCard

    try:
        card = DatasetCard(text)
    except Exception as exc:  # invalid YAML header
        return [f"the card's YAML metadata does not parse ({type(exc).__name__})"]
    problems = []
    meta = card.data.to_dict()
    if not meta:
        problems.append("the card has no YAML metadata block")
    for key in REQUIRED_METADATA:
        if not meta.get(key):
            problems.append(f"metadata '{key}' is missing or empty")
    tags = set(meta.get("tags") or [])
    missing_tags = [t for t in BASE_TAGS if t not in tags]
    if missing_tags:
        problems.append("tags lack " + ", ".join(missing_tags))
    for cfg in meta.get("configs") or []:
        if not isinstance(cfg, dict) or not cfg.get("config_name") or not cfg.get("data_files"):
            problems.append("a config lacks config_name or data_files")
    headings = {m.strip() for m in re.findall(r"^##\s+(.+?)\s*$", card.text, re.MULTILINE)}
    for sec in REQUIRED_SECTIONS:
        if sec not in headings:
            problems.append(f"section '## {sec}' is missing")
    if "Not for clinical use" not in card.text:
        problems.append("the not-for-clinical-use notice is missing")
    return problems


def _clip(text: str, n: int = 1200) -> str:
    return text if len(text) <= n else text[:n].rstrip() + " …"
