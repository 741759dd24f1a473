"""The dataset card: Hub metadata, every issue-8 section, rendering from a folder, and that
``datasets.load_dataset`` still loads the folder (default and per-task configs)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from instructkit.dataset.card import (REQUIRED_SECTIONS, DatasetStats, build_card, card_for_folder,
                              card_license, card_problems, scan_dataset)


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


def test_folder_loads_with_default_and_per_task_configs(quickstart, tmp_path):
    datasets = pytest.importorskip("datasets")

    full = datasets.load_dataset(str(quickstart), cache_dir=str(tmp_path / "cache"))
    counts = Counter(full["train"]["task"])
    one = datasets.load_dataset(str(quickstart), "diagnosis", cache_dir=str(tmp_path / "cache"))
    assert set(one["train"]["task"]) == {"diagnosis"}
    assert one["train"].num_rows == counts["diagnosis"]


def test_card_for_folder_matches_the_data(quickstart):
    st = scan_dataset(quickstart)
    manifest = json.loads((quickstart / "manifest.json").read_text())
    assert st.records == manifest["records"]
    assert dict(st.tasks) == manifest["counts"]["task"]
    text = str(card_for_folder(quickstart, repo_id="org/qs"))
    assert card_problems(text) == []
    assert 'load_dataset("org/qs", ' in text
    assert text.count("```text") == 5  # a few rendered examples


def _manifest_with_every_stage() -> dict:
    return {
        "instructkit_version": "0.1.0", "recipe": {"name": "r", "sha256": "ab" * 32}, "seed": 1,
        "records": 3, "quarantined": 4, "finished_at": "2025-01-01T00:00:00+00:00",
        "packages": {"datasets": "9.9"}, "python": "3.11.7",
        "sources": [{"name": "medquad", "license": "CC-BY-4.0", "citation": "Ben Abacha 2019"},
                    {"name": "own-notes", "license": "LicenseRef-StExample",
                     "license_declaration": "St Example Hospital holds the rights (board decision 2024-7)"}],
        "builders": [{"stage": "synthetic:qa", "method": "synthetic", "in": 5, "out": 3, "dropped": 2,
                      "dropped_by_reason": {"invalid_json": 2},
                      "summary": {"prompt_id": "synthetic/qa", "prompt_hash": "deadbeef",
                                  "model": "gpt-4o-mini", "provider": "api.openai.com",
                                  "params": {"temperature": 0.7}}}],
        "stages": [
            {"stage": "anonymize", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "extra": {"anonymization": {"operator": "surrogate", "replaced": {"PHONE": 2, "NAME": 5},
                                         "canary": {"enabled": True, "passed": True, "values": 21, "removed": 21}}}},
            {"stage": "dedup", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "extra": {"duplicates": {"exact": 0, "near": 0, "semantic": 0}}},
            {"stage": "decontaminate", "in": 3, "out": 3, "dropped": 1,
             "dropped_by_reason": {"contaminated": 1}, "extra": {"by_benchmark": {"medqa_usmle": 1, "pubmedqa": 0}}},
            {"stage": "validate", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {}},
            {"stage": "validate.length", "in": 3, "out": 3, "dropped": 1, "dropped_by_reason": {"too_short": 1}},
            {"stage": "judge", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "extra": {"score_distribution": {"1": 0, "4": 2, "5": 1}}},
            {"stage": "audit", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "extra": {"audit": {"passed": False, "suspects_by_type": {"PHONE": 1}}}},
            {"stage": "bias_report", "in": 3, "out": 3, "dropped": 0, "dropped_by_reason": {},
             "extra": {"bias": {"method": "keyword mentions",
                                "overall": {"records": 3, "sex": {"female": 2, "male": 1}},
                                "by_task_method": {"qa/synthetic": {"records": 3, "sex": {"female": 2, "male": 1}}}}}},
        ],
        "llm_usage": {"model": "gpt-4o-mini", "provider": "api.openai.com", "calls": 5, "requests": 6,
                      "retries": 1, "prompt_tokens": 1234, "completion_tokens": 567, "cost": 0.0123},
        "counts": {"task": {"qa": 3}, "method": {"synthetic": 3}},
    }


def test_every_section_is_filled_from_the_manifest():
    stats = DatasetStats(records=3, tasks=Counter(qa=3), methods=Counter(synthetic=3),
                         models=Counter({("api.openai.com", "gpt-4o-mini"): 3}),
                         models_by_builder={"synthetic:qa": Counter({"gpt-4o-mini (api.openai.com)": 3})})
    text = str(build_card(_manifest_with_every_stage(), stats=stats))
    from huggingface_hub import DatasetCard

    meta = DatasetCard(text).data.to_dict()
    assert "synthetic" in meta["tags"]
    # most restrictive licence: the declared, unlisted one -> other, and the declaration printed
    assert meta["license"] == "other" and meta["license_name"] == "LicenseRef-StExample"
    assert "St Example Hospital holds the rights" in text
    assert "Ben Abacha 2019" in text
    # how it was built: prompt id and hash, model, parameters, tokens and cost
    assert "`synthetic/qa` (hash `deadbeef`)" in text and "gpt-4o-mini (api.openai.com) ×3" in text
    assert '"temperature": 0.7' in text and "| prompt tokens | 1234 |" in text and "0.0123" in text
    # hosted-model terms flagged
    hosted = text.split("## Hosted-model terms")[1].split("\n## ")[0]
    assert "Flagged" in hosted and "gpt-4o-mini" in hosted and "OpenAI" in hosted
    # anonymization: method, counts by type, audit and canary results
    anon = text.split("## Anonymization")[1].split("\n## ")[0]
    assert "surrogate" in anon and "| PHONE | 2 |" in anon and "Residual-PHI audit: **FAILED**" in anon
    assert "| removed | 21 |" in anon
    # dedup and decontamination per kind and per benchmark
    dd = text.split("## Deduplication and decontamination")[1].split("\n## ")[0]
    assert "duplicates.near" in dd and "| medqa_usmle | 1 |" in dd
    # validation and judge: drops by reason (sub-steps too), score distribution
    vj = text.split("## Validation and judge")[1].split("\n## ")[0]
    assert "too_short" in vj and "| 4 | 2 |" in vj
    # the bias table
    bias = text.split("## Bias report")[1].split("\n## ")[0]
    assert "female" in bias and "2 (67%)" in bias
    # how to reproduce: package versions
    assert "| datasets | 9.9 |" in text
    assert card_problems(text) == []


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
