"""The dataset card: a template (``card_template.md``) filled from the run's manifest.

Built with ``huggingface_hub.DatasetCard``/``DatasetCardData`` so the YAML metadata is the
Hub's own format. Cards hold counts, ids and hashes, never record text other than the
example records (which have passed the anonymize stage).

One renderer, one input: ``build_card(manifest, recipe=..., samples=...)``. Every figure
comes from the manifest (merged ``StepStats`` of each stage, with the markdown each step
rendered from them, and the ``DatasetCounts`` of the written records); nothing re-scans the
data. ``card_for_folder(DIR)`` does the same from a folder alone, as ``instructkit publish``
renders it, reading only the example records the manifest names.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from instructkit.dataset.counts import DatasetCounts
from instructkit.dataset.safe_harbor import safe_harbor_section

__all__ = ["build_card", "card_for_folder", "card_license", "card_problems", "size_category",
           "REQUIRED_SECTIONS", "REQUIRED_METADATA"]

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
    "Automatic anonymization lowers but does not remove the risk of residual identifiers "
    "(bench/phi_eval.py): on generated clinical questions held out from tuning it left 0.0% of "
    "structured identifiers and 2.7% of names, places and facilities (stock Presidio: 17.6% and "
    "13.4%); on a general PII benchmark (Presidio's synthetic set) 0.2% and 3.2% (4.4% on the half "
    "of its templates held out from tuning; stock Presidio 9.7% and 27.1%), mostly foreign names, "
    "street addresses and names written in lower case.",
]
_LLM_LIMITATION = ("Records written by a language model can state wrong facts fluently; the judge and "
                   "validation stages reduce but do not remove them.")
DEFAULT_INTENDED_USE = ("Instruction tuning and evaluation of medical language models in research. "
                        "Not for clinical decision making, and not for training models deployed in "
                        "care without further validation.")


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


def _group(manifest: Mapping[str, Any], *names: str) -> list[dict[str, Any]]:
    """The rows of a stage and its steps (``validate``, ``validate.length``, ...), in run order."""
    return [s for s in manifest.get("stages") or []
            if any(s.get("stage") == n or str(s.get("stage", "")).startswith(n + ".") for n in names)]


def _block(group: list[dict[str, Any]], title: str) -> str:
    """A stage's counts, its drops by step and reason, and each step's own card markdown."""
    if not group:
        return f"{title}: **not run**."
    dropped = sum(s.get("dropped", 0) for s in group)
    lines = [f"{title}: {group[0].get('in', 0)} records in, {group[-1].get('out', 0)} out, "
             f"{dropped} dropped."]
    rows = [(s.get("stage"), k, v) for s in group for k, v in (s.get("dropped_by_reason") or {}).items()]
    if rows:
        lines.append("\n| step | dropped because | records |\n|---|---|---|\n" +
                     "\n".join(f"| {_cell(st)} | {_cell(k)} | {v} |" for st, k, v in rows))
    lines += ["\n" + s["card_section"] for s in group if s.get("card_section")]
    return "\n".join(lines)


# -- sections -----------------------------------------------------------------------------
def _builders_rows(manifest: Mapping[str, Any], counts: DatasetCounts) -> list[dict[str, Any]]:
    prompts: dict[str, list[str]] = {}
    for (builder, pid, h), n in sorted(counts.split("prompt_by_builder").items()):
        prompts.setdefault(builder, []).append(f"`{pid}` (hash `{h}`) ×{n}")
    models: dict[str, list[str]] = {}
    for (builder, provider, model), n in sorted(counts.split("model_by_builder").items()):
        models.setdefault(builder, []).append(f"{_model_label(provider, model)} ×{n}")
    rows = []
    for b in manifest.get("builders") or []:
        name = b.get("stage", "?")
        params = counts.params_by_builder.get(name)
        rows.append({"name": name, "method": b.get("method", "?"), "in": b.get("in", 0),
                     "out": b.get("out", 0), "dropped": b.get("dropped", 0),
                     "reasons": _reasons(b.get("dropped_by_reason")),
                     "prompts": "; ".join(prompts.get(name, [])) or "-",
                     "models": "; ".join(models.get(name, [])) or "-",
                     "params": _cell(params) if params else "-", "section": b.get("card_section")})
    return rows


def _model_label(provider: Any, model: Any) -> str:
    return f"{model or '?'} ({provider})" if provider else str(model or "?")


def _phi_before_llm(manifest: Mapping[str, Any]) -> str:
    g = manifest.get("llm_phi")
    if not g:
        return ""
    if g.get("send_phi"):
        return ("\n\n**`llm.send_phi: true`**: text from sources that may hold PHI was sent to the "
                "model as it was (the endpoint and the response cache saw it).")
    return (f"\n\nText from sources that may hold PHI was anonymized (placeholders) before any "
            f"request: {g.get('texts_anonymized_before_requests', 0)} texts, "
            f"{sum((g.get('replaced') or {}).values())} spans replaced.")


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
    return "\n".join(lines) + _phi_before_llm(manifest)


def _anonymization_section(manifest: Mapping[str, Any]) -> str:
    anon, audit = _group(manifest, "anonymize"), _group(manifest, "audit")
    out = []
    if not anon:
        out.append("Anonymization: **not run**. Records were published as the sources gave them.")
    else:
        out.append(_block(anon, "Anonymization"))
        out.append("\n" + safe_harbor_section(manifest))
    if not audit:
        out.append("\n**Residual-PHI audit: not run.**")
    else:
        report = (audit[0].get("extra") or {}).get("audit") or {}
        verdict = "passed" if report.get("passed") else "**FAILED**"
        out.append(f"\n**Residual-PHI audit: {verdict}** ({audit[0].get('in', 0)} records audited; "
                   "record ids of suspects are in manifest.json).")
        out += ["\n" + s["card_section"] for s in audit if s.get("card_section")]
    return "\n".join(out)


def _dedup_section(manifest: Mapping[str, Any]) -> str:
    parts = [_block(_group(manifest, "dedup"), "Deduplication")]
    decon = _group(manifest, "decontaminate")
    parts.append(_block(decon, "Decontamination") if decon
                 else "Decontamination against benchmarks: **not run**.")
    return "\n\n".join(parts)


def _judge_section(manifest: Mapping[str, Any]) -> str:
    judge = _group(manifest, "judge")
    return "\n\n".join([_block(_group(manifest, "validate"), "Validation"),
                         _block(judge, "Judge") if judge else _judge_not_run(manifest)])


def _judge_not_run(manifest: Mapping[str, Any]) -> str:
    """Why no LLM judge scored the records (it is off unless a recipe turns it on)."""
    from instructkit.llm.capability import is_small_model

    model = (manifest.get("llm_usage") or {}).get("model")
    why = ("Judge: **not run**. The LLM judge is off by default: it costs one request per record, "
           "and scores from a small model carry no information (the project found this for the "
           "embedded SmolLM2-135M).")
    if model and is_small_model(model):
        why += (f" This dataset's records were written by `{model}`, which is too small to judge them; "
                "the validate stage's model-free filters (placeholders, task lists, meta-text, "
                "label-only inputs, repetition, instruction-output relevance) ran instead.")
    return why + " With a capable endpoint, turn it on with `stages.judge` in the recipe."


def _bias_section(manifest: Mapping[str, Any]) -> str:
    group = _group(manifest, "bias_report")
    if not group:
        return "Bias report: **not run**."
    return group[0].get("card_section") or "Bias report: no records to count."


def _hosted_section(counts: DatasetCounts) -> tuple[str, list]:
    from instructkit.hub.model_terms import flag_models

    models = Counter({k: v for k, v in counts.split("model").items()})
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


_TOPICAL = ("anonymize", "audit", "dedup", "decontaminate", "validate", "judge", "bias_report")


# -- the card -----------------------------------------------------------------------------
def build_card(manifest: Mapping[str, Any], *, recipe: Mapping[str, Any] | None = None,
               samples: Iterable[Mapping[str, Any]] = (), repo_id: str | None = None):
    """Render the card from a run's manifest (its merged figures), the recipe's ``card:``
    settings and a few example records."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from instructkit.records import user_turn

    recipe = recipe or {}
    cfg = recipe.get("card") or {}
    counts = DatasetCounts.from_dict(manifest.get("counts") or {})
    task_counts = dict(counts.by["task"])
    tasks = sorted(task_counts)
    methods = sorted(counts.by["method"])
    sources = list(manifest.get("sources") or [])
    license_id, license_name, classified = _license_of(
        sources, list(counts.split("source_license")), cfg.get("license"))
    llm_made = bool(set(methods) & _LLM_METHODS) or bool(counts.by["model"])
    tags = list(dict.fromkeys([*BASE_TAGS, *(["synthetic"] if llm_made else []), *methods,
                               *(cfg.get("tags") or [])]))
    files = [{"split": "train", "path": "data/train-*.parquet"}]
    configs = [{"config_name": "default", "data_files": files, "default": True}]
    # one config per task over the same files: the Parquet builder filters rows on `task`
    configs += [{"config_name": t, "data_files": files, "filters": [["task", "==", t]]}
                for t in tasks if re.fullmatch(r"[A-Za-z0-9_.-]+", t) and t != "default"]
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
        size_categories=[size_category(counts.records)],
        tags=tags,
        source_datasets=source_datasets or None,
        configs=configs,
    )
    stages = list(manifest.get("stages") or [])
    stage_rows = [{**s, "reasons": _reasons(s.get("dropped_by_reason"))}
                  for s in [*(manifest.get("builders") or []), *stages]]
    other_sections = [s["card_section"] for s in stages if s.get("card_section")
                      and str(s.get("stage", "")).split(".")[0] not in _TOPICAL]
    by_name = {c.name: c for c in classified}
    source_rows = []
    for s in sources:
        c = by_name.get(s.get("name"))
        source_rows.append({**s, "location_name": Path(str(s.get("location", ""))).name,
                            "class": c.info.cls if c else "?",
                            "status": "ok" if c is None or c.publishable else "not publishable"})
    hosted_text, flags = _hosted_section(counts)
    examples = [{"task": r.get("task"), "method": r.get("method"), "id": r.get("id"),
                 "source": (r.get("source") or {}).get("name", "?"),
                 "license": (r.get("source") or {}).get("license", "?"),
                 "text": _clip(f"### Instruction\n{user_turn(r)}\n\n### Response\n{r.get('output', '')}")}
                for r in list(samples)[:5] if r.get("instruction") is not None]
    recipe_info = manifest.get("recipe") or {}
    limitations = [*(cfg.get("limitations") or []), *DEFAULT_LIMITATIONS,
                   *([_LLM_LIMITATION] if llm_made else []), *(manifest.get("limitations") or [])]
    return DatasetCard.from_template(
        data, template_path=str(TEMPLATE),
        pretty_name=data.pretty_name,
        summary=cfg.get("summary") or recipe.get("description")
        or "A medical instruction-tuning dataset built with instructkit.",
        n_records=counts.records, n_quarantined=manifest.get("quarantined", 0),
        task_counts=task_counts, methods=", ".join(methods) or "-",
        recipe_name=recipe_info.get("name", "-"), recipe_sha=(recipe_info.get("sha256") or "-")[:16],
        seed=manifest.get("seed"), limit=manifest.get("limit"),
        version=manifest.get("instructkit_version"),
        built_at=(manifest.get("finished_at") or _dt.date.today().isoformat())[:10],
        embedders=", ".join(f"{e.get('model')} ({e.get('backend')} backend)"
                            for e in manifest.get("embedders") or []),
        license_id=license_id if license_id != "other" else f"other ({license_name})",
        sources=source_rows, declarations=[c for c in classified if c.declaration],
        license_problems=[p for c in classified for p in c.problems],
        builders=_builders_rows(manifest, counts),
        usage=_usage_section(manifest),
        hosted=hosted_text, flagged=bool(flags),
        anonymization=_anonymization_section(manifest),
        dedup=_dedup_section(manifest),
        judge=_judge_section(manifest),
        bias=_bias_section(manifest),
        stage_rows=stage_rows, other_sections=other_sections,
        formats=", ".join(manifest.get("formats", [])) or "-",
        phases=_phases_section(manifest),
        configs=[c["config_name"] for c in configs],
        examples=examples, intended_use=cfg.get("intended_use") or DEFAULT_INTENDED_USE,
        limitations=limitations, citation=cfg.get("citation"),
        packages=sorted((manifest.get("packages") or {}).items()),
        python=manifest.get("python", "-"), repo_id=repo_id or "ORG/NAME",
    )


def card_for_folder(folder: str | Path, manifest: Mapping[str, Any] | None = None,
                    repo_id: str | None = None, *, complete: bool = True):
    """Render the card of a dataset folder from its manifest.json, recipe.yaml and the example
    records the manifest names (``complete=False`` while the build is still writing it)."""
    from instructkit.dataset.reader import DatasetFolder

    ds = DatasetFolder(folder, require_complete=complete)
    manifest = ds.manifest if manifest is None else manifest
    recipe: dict[str, Any] = {}
    rpath = Path(folder) / "recipe.yaml"
    if rpath.is_file():
        from instructkit._yaml import safe_load

        try:
            loaded = safe_load(rpath.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - the recipe copy only adds card settings
            loaded = None
        recipe = loaded if isinstance(loaded, dict) else {}
    sample_ids = list(((manifest.get("counts") or {}).get("samples") or {}).values())
    found = ds.records_by_id(sample_ids)
    samples = [found[i] for i in sample_ids if i in found]
    return build_card(manifest, recipe=recipe, samples=samples, repo_id=repo_id)


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


def _phases_section(manifest: Mapping[str, Any]) -> str:
    from instructkit.dataset.phases import phases_card_section

    return phases_card_section(manifest.get("export_order"))


def _clip(text: str, n: int = 1200) -> str:
    return text if len(text) <= n else text[:n].rstrip() + " …"
