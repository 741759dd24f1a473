"""The dataset card: Hub metadata, every issue-8 section, rendering from a folder, and that
``datasets.load_dataset`` still loads the folder (default and per-task configs)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from instructkit.dataset.card import (REQUIRED_SECTIONS, build_card, card_for_folder, card_license,
                                     card_problems)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    from instructkit.api import build

    from conftest import template_quickstart

    out = tmp_path_factory.mktemp("qs") / "out"
    build(template_quickstart(), out, quiet=True)
    return out


def test_quickstart_card_is_complete_and_parses(quickstart):
    from huggingface_hub import DatasetCard

    text = (quickstart / "README.md").read_text(encoding="utf-8")
    assert card_problems(text) == []
    meta = DatasetCard(text).data.to_dict()
    assert meta["license"] == "apache-2.0"
    assert {"medical", "clinical", "instruction-tuning"} <= set(meta["tags"])
    assert "synthetic" not in meta["tags"]  # template records only
    assert meta["size_categories"] == ["n<1K"]
    assert "multiple-choice-qa" in meta["task_ids"]
    names = [c["config_name"] for c in meta["configs"]]
    assert names[0] == "default" and "diagnosis" in names and "report_labeling" in names
    for sec in REQUIRED_SECTIONS:
        assert f"## {sec}" in text
    # builders' card_section() markdown is still rendered
    assert "phrasing/variant use" in text
    # the default stages report what they did
    assert "**Residual-PHI audit: passed**" in text and "Anonymization: **not run**" not in text
    assert "### HIPAA Safe Harbor identifiers" in text and "recall (held-out)" in text
    assert "Deduplication: **not run**" not in text


def test_stages_that_did_not_run_say_so(tmp_path):
    from conftest import template_quickstart

    from instructkit.api import build

    recipe = template_quickstart()
    recipe["stages"] = {"anonymize": False, "dedup": False, "audit": False}
    build(recipe, tmp_path / "off", quiet=True, limit=2)
    text = (tmp_path / "off" / "README.md").read_text(encoding="utf-8")
    assert "Residual-PHI audit: not run" in text and "Deduplication: **not run**" in text
    assert "Anonymization: **not run**" in text
    assert "Safe Harbor identifiers" not in text


def test_folder_loads_with_default_and_per_task_configs(quickstart, tmp_path):
    datasets = pytest.importorskip("datasets")

    full = datasets.load_dataset(str(quickstart), cache_dir=str(tmp_path / "cache"))
    counts = Counter(full["train"]["task"])
    one = datasets.load_dataset(str(quickstart), "diagnosis", cache_dir=str(tmp_path / "cache"))
    assert set(one["train"]["task"]) == {"diagnosis"}
    assert one["train"].num_rows == counts["diagnosis"]


def test_card_for_folder_matches_the_data(quickstart):
    """The manifest's counts (merged while writing) are the data's; the card renders from them."""
    from instructkit.dataset.reader import open_dataset

    ds = open_dataset(quickstart)
    manifest = json.loads((quickstart / "manifest.json").read_text())
    tasks = Counter(r["task"] for r in ds.records())
    assert sum(tasks.values()) == manifest["records"] == len(ds)
    assert dict(tasks) == manifest["counts"]["task"]
    text = str(card_for_folder(quickstart, repo_id="org/qs"))
    assert card_problems(text) == []
    assert 'load_dataset("org/qs", ' in text
    assert text.count("```text") == 5  # a few rendered examples


def _manifest_with_every_stage() -> dict:
    """A manifest as a run writes it: merged figures per stage, with the markdown each step
    rendered from them, and the counts of the written records."""
    return {
        "instructkit_version": "0.1.0", "recipe": {"name": "r", "sha256": "ab" * 32}, "seed": 1,
        "records": 3, "quarantined": 4, "finished_at": "2025-01-01T00:00:00+00:00",
        "packages": {"datasets": "9.9"}, "python": "3.11.7",
        "sources": [{"name": "medquad", "license": "CC-BY-4.0", "citation": "Ben Abacha 2019"},
                    {"name": "own-notes", "license": "LicenseRef-StExample",
                     "license_declaration": "St Example Hospital holds the rights (board decision 2024-7)"}],
        "builders": [{"stage": "synthetic:qa", "method": "synthetic", "in": 5, "out": 3, "dropped": 2,
                      "dropped_by_reason": {"invalid_json": 2},
                      "card_section": "**synthetic:qa**: Self-Instruct from the seed pool."}],
        "stages": [
            {"stage": "anonymize", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "card_section": "### Anonymization\n\n| type | replaced |\n|---|---:|\n| PHONE | 2 |"},
            {"stage": "decontaminate", "in": 3, "out": 3, "dropped": 1,
             "dropped_by_reason": {"contaminated": 1},
             "card_section": "| benchmark | test items | records removed |\n|---|---|---|\n| medqa_usmle | 9 | 1 |"},
            {"stage": "dedup", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "card_section": "### Deduplication\n\n| kind | records removed |\n|---|---|\n| near | 0 |"},
            {"stage": "validate", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {}},
            {"stage": "validate.length", "in": 3, "out": 3, "dropped": 1, "dropped_by_reason": {"too_short": 1}},
            {"stage": "judge", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "card_section": "### LLM judge scores\n\nOverall: mean 4.33."},
            {"stage": "audit", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "extra": {"audit": {"passed": False, "suspects_by_type": {"PHONE": 1}}},
             "card_section": "### Residual-PHI audit\n\n| suspect type | count | limit |\n|---|---:|---:|\n| PHONE | 1 | 0 |"},
            {"stage": "bias_report", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "card_section": "### Demographic mentions\n\n| task | method | records | female |\n|---|---|---|---|\n| qa | synthetic | 3 | 2 (67%) |"},
            {"stage": "ner_check", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "card_section": "### A step of our own\n\nIt counted things."},
        ],
        "llm_usage": {"model": "gpt-4o-mini", "provider": "api.openai.com", "calls": 5, "requests": 6,
                      "retries": 1, "prompt_tokens": 1234, "completion_tokens": 567, "cost": 0.0123},
        "counts": {"records": 3, "task": {"qa": 3}, "method": {"synthetic": 3},
                   "source_license": {"own-notes\x1fLicenseRef-StExample": 3},
                   "model": {"api.openai.com\x1fgpt-4o-mini": 3},
                   "model_by_builder": {"synthetic:qa\x1fapi.openai.com\x1fgpt-4o-mini": 3},
                   "prompt_by_builder": {"synthetic:qa\x1fsynthetic/qa\x1fdeadbeef": 3},
                   "params_by_builder": {"synthetic:qa": {"temperature": 0.7}}},
    }


def test_every_section_is_filled_from_the_manifest():
    text = str(build_card(_manifest_with_every_stage()))
    from huggingface_hub import DatasetCard

    meta = DatasetCard(text).data.to_dict()
    assert "synthetic" in meta["tags"]
    # most restrictive licence: the declared, unlisted one -> other, and the declaration printed
    assert meta["license"] == "other" and meta["license_name"] == "LicenseRef-StExample"
    assert "St Example Hospital holds the rights" in text
    assert "Ben Abacha 2019" in text
    # how it was built: prompt id and hash, model, parameters, tokens and cost
    assert "`synthetic/qa` (hash `deadbeef`) ×3" in text and "gpt-4o-mini (api.openai.com) ×3" in text
    assert '"temperature": 0.7' in text and "| prompt tokens | 1234 |" in text and "0.0123" in text
    assert "Self-Instruct from the seed pool" in text
    # hosted-model terms flagged
    hosted = text.split("## Hosted-model terms", 1)[1].split("\n## ")[0]
    assert "Flagged" in hosted and "gpt-4o-mini" in hosted and "OpenAI" in hosted
    # each stage's own markdown lands in its section, with the counts of the stage
    anon = text.split("## Anonymization", 1)[1].split("\n## ")[0]
    assert "| PHONE | 2 |" in anon and "Residual-PHI audit: **FAILED**" in anon and "| PHONE | 1 | 0 |" in anon
    dd = text.split("## Deduplication and decontamination", 1)[1].split("\n## ")[0]
    assert "| near | 0 |" in dd and "| medqa_usmle | 9 | 1 |" in dd and "contaminated | 1" in dd
    vj = text.split("## Validation and judge", 1)[1].split("\n## ")[0]
    assert "too_short" in vj and "mean 4.33" in vj
    bias = text.split("## Bias report", 1)[1].split("\n## ")[0]
    assert "2 (67%)" in bias
    # a stage outside the topical sections still shows its markdown under processing stages
    assert "### A step of our own" in text.split("## Processing stages", 1)[1].split("\n## ")[0]
    assert "| datasets | 9.9 |" in text
    assert card_problems(text) == []


def test_step_card_sections_render_merged_figures():
    """Two workers' figures add up, and the card markdown shows the merged totals."""
    from instructkit.steps.base import StepStats
    from instructkit.steps.quality.bias import BiasReportStep

    a, b = BiasReportStep(), BiasReportStep()
    a.bind(__import__("instructkit").Quarantine())
    b.bind(__import__("instructkit").Quarantine())
    rec = {"task": "qa", "method": "template", "instruction": "A woman asks.", "input": "", "output": "x"}
    list(a([rec, rec]))
    list(b([{**rec, "instruction": "A man asks."}]))
    merged = a.collect() + b.collect()
    assert isinstance(merged, StepStats) and merged.n_in == 3 and merged.n_out == 3
    section = a.card_section(merged)
    assert "| qa | template | 3 |" in section


def test_card_license_most_restrictive_wins():
    assert card_license(["MIT", "CC-BY-4.0"]) == "cc-by-4.0"
    assert card_license(["CC-BY-4.0", "CC-BY-NC-4.0"]) == "cc-by-nc-4.0"
    assert card_license(["Apache-2.0", "CC-BY-SA-4.0"]) == "cc-by-sa-4.0"
    assert card_license(["CC-BY-4.0", "CC-BY-NC-ND-4.0"]) == "cc-by-nc-nd-4.0"
    assert card_license(["CC-BY-4.0", "unknown"]) == "unknown"
    assert card_license(["CC-BY-4.0"], declared="cc-by-nc-4.0") == "cc-by-nc-4.0"


def test_card_problems_finds_what_is_missing(quickstart):
    text = (quickstart / "README.md").read_text(encoding="utf-8")
    broken = text.replace("## Bias report", "## Something else")
    assert any("Bias report" in p for p in card_problems(broken))
    no_license = text.replace("license: apache-2.0\n", "", 1)
    assert any("'license'" in p for p in card_problems(no_license))
    bad_yaml = text.replace("language:\n- en", "language: [en", 1)
    assert card_problems(bad_yaml)
    assert card_problems("# just a title\n")
