"""The downstream bench's parts: label parsing and scoring, and a LoRA smoke run through the real
SmolLM2-135M-Instruct (a few steps on a handful of records built by instructkit; the loss falls).

The full bench is ``python bench/downstream.py`` (about an hour on 2 cores), not a test."""

from __future__ import annotations

import pytest

from instructkit import build

from conftest import template_quickstart
from fixtures_downstream import bench_module, need_downstream_extra, smollm2


def test_labels_are_parsed_back_with_commas_inside_known_labels():
    b = bench_module()
    vocab = {"catheters, indwelling", "cardiomegaly", "normal"}
    assert b.parse_labels("Catheters, Indwelling, Cardiomegaly.", vocab) == {"catheters, indwelling", "cardiomegaly"}
    assert b.parse_labels("Labels: normal\n\nThe study is normal.", vocab) == {"normal"}
    assert b.gold_labels("Opacity;Opacity;Lung") == {"opacity", "lung"}


def test_scores_are_label_set_micro_macro_f1_and_exact_match():
    b = bench_module()
    gold = [frozenset({"a", "b"}), frozenset({"normal"}), frozenset({"a"})]
    pred = [frozenset({"a"}), frozenset({"normal"}), frozenset({"a", "c"})]
    s = b.scores(pred, gold)
    # tp a,a,normal = 3; fp c = 1; fn b = 1
    assert s["micro_f1"] == pytest.approx(6 / 8)
    # per label: a 1.0, b 0.0, normal 1.0 (c is not a test label)
    assert s["macro_f1"] == pytest.approx(2 / 3)
    assert s["exact"] == pytest.approx(1 / 3)


def test_the_unseen_evaluation_wording_is_no_template_phrasing():
    import yaml

    from instructkit._resources import prompts_dir

    b = bench_module()
    t = yaml.safe_load((prompts_dir() / "templates" / "report_labeling.yaml").read_text())
    assert b.UNSEEN_INSTRUCTION not in {p["instruction"] for p in t["phrasings"]}


@pytest.mark.timeout(900)  # about a minute on 2 idle cores; a shared machine is far slower
def test_a_few_lora_steps_on_built_records_lower_the_loss(tmp_path):
    need_downstream_extra()
    b = bench_module()
    recipe = template_quickstart()
    recipe["builders"] = [x for x in recipe["builders"] if x["task"] == "report_labeling"]
    recipe["stages"] = {"anonymize": False, "audit": False}
    recipe["output"] = {"formats": ["messages"]}
    out = tmp_path / "labeling"
    build(recipe, out, quiet=True)
    convs = b.read_export(out / "exports" / "messages.jsonl")  # as a user trains: from the export
    assert 4 <= len(convs) <= 12
    tok, base = smollm2()
    # a handful of records, seen a few times each: the loss must fall
    model, res = b.train_lora(base, tok, [convs[:4]], steps=6, batch=4, lr=3e-3, rank=8, max_len=256,
                              seed=1, layers=4, log_every=0)
    assert res.examples == 24 and res.skipped_long == 0
    first, last = sum(res.losses[:2]) / 2, sum(res.losses[-2:]) / 2
    assert last < 0.9 * first, res.losses
    # the base weights are untouched: the adapter trained a copy
    assert not any("lora" in n for n, _ in base.named_parameters())
    texts, _ = b.generate(model, tok, [convs[0][:-1]], batch=1, max_new=8)
    assert isinstance(texts[0], str)


def test_the_table_and_the_doc_keep_what_a_person_wrote(tmp_path):
    b = bench_module()
    tr = b.TrainResult(losses=[3.0, 2.0, 1.0], examples=24, skipped_long=1, seconds=5.0)
    rows = [b.Row("base", "-", "untuned", {"micro_f1": 0.1, "macro_f1": 0.05, "exact": 0.0},
                  {"micro_f1": 0.2, "macro_f1": 0.1, "exact": 0.05}),
            b.Row("mixed", "a", "every phrasing", {"micro_f1": 0.5, "macro_f1": 0.2, "exact": 0.3}, None, tr, 48,
                  {"train": 5.0})]
    text = b.table(rows)
    assert "| a | mixed: every phrasing | 48 | 24 (1) | 0.500 | 0.200 | 0.300 | - | - | - | 2.00 → 2.00 | train 5 s |" in text
    doc = tmp_path / "downstream.md"
    b.write_doc(doc, "first")
    doc.write_text("# Title\n\nWritten by hand.\n\n" + doc.read_text().split("\n", 2)[2] + "\nAfter.\n")
    b.write_doc(doc, "second")
    out = doc.read_text()
    assert "Written by hand." in out and "After." in out and "second" in out and "first" not in out
