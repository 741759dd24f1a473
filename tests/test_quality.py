"""The quality gate: one defective record per defect kind, each quarantined by the validate
stage with its specific reason, and clean look-alikes that must be kept."""

from __future__ import annotations

import itertools

import pytest

from instructkit._exceptions import RecipeError
from instructkit.context import RunContext
from instructkit.steps.quality import FILTER_CLASSES, BiasReportStep, QualitySettings, count_mentions
from instructkit.steps.quality.text import approx_tokens, containment, word_count
from instructkit.records import make_record
from instructkit.steps.base import Quarantine
from instructkit.steps.quality.validate import SchemaFilter, ValidateStage
from conftest import card_of, figures

_ids = itertools.count()

INSTRUCTIONS = {
    "consumer_health_qa": "Answer the following health question in clear, plain language.",
    "research_qa": "Read the research abstract below and answer the question with yes, no or maybe.",
    "multiple_choice_qa": "Answer the following multiple-choice medical question.",
    "report_labeling": "Read the chest X-ray findings below and list the abnormality labels, separated by commas.",
    "impression_generation": "Write the impression section for this chest X-ray report.",
    "series_description_harmonization": "Map this raw DICOM series description to its canonical series label.",
    "diagnosis": "Read the patient presentation and state the most likely diagnosis.",
}

CHQ_INPUT = "What are the symptoms of type 2 diabetes?"
CHQ_ANSWER = ("Common symptoms of type 2 diabetes include increased thirst, frequent urination, "
              "tiredness, blurred vision and sores that heal slowly. Many people have no symptoms "
              "at first, so blood tests are often how it is found.")
PQA_INPUT = ("Question: Does daily walking reduce resting blood pressure in older adults?\n\nContext:\n"
             "In a randomized trial of 210 adults aged 65 and over, participants assigned to 30 "
             "minutes of daily walking for 12 weeks had a mean reduction in systolic blood pressure "
             "of 6 mmHg compared with controls.")
MCQ_INPUT = ("A 24-year-old woman has fatigue and low ferritin. Which is the most likely cause?\n\n"
             "A. Vitamin B12 deficiency\nB. Iron deficiency\nC. Hemolysis\nD. Thalassemia trait")
MCQ_OPTIONS = {"A": "Vitamin B12 deficiency", "B": "Iron deficiency", "C": "Hemolysis",
               "D": "Thalassemia trait"}
FINDINGS = ("Findings: The heart is enlarged. There are small bilateral pleural effusions. "
            "No focal consolidation or pneumothorax. Degenerative changes of the thoracic spine.")
LABEL_SET = ["normal", "Cardiomegaly", "Pleural Effusion", "Catheters, Indwelling", "Opacity"]
VOCAB = ["AX_T2_FLAIR", "SAG_T1_3D", "AX_DWI", "LOCALIZER"]


def rec(task="consumer_health_qa", output=CHQ_ANSWER, input=None, instruction=None, meta=None,
        method="template"):
    defaults = {"consumer_health_qa": CHQ_INPUT, "research_qa": PQA_INPUT, "multiple_choice_qa": MCQ_INPUT,
                "report_labeling": FINDINGS, "impression_generation": FINDINGS,
                "series_description_harmonization": "SeriesDescription: Ax T2 FLAIR\nModality: MR",
                "diagnosis": "A 67-year-old man has sudden painless loss of vision in the right eye."}
    prov = ({"builder": "template", "seed": 0, "template_id": task, "template_hash": "0" * 16}
            if method == "template" else
            {"builder": method, "seed": 0, "prompt_id": f"{method}/x", "prompt_hash": "1" * 16})
    return make_record(task=task, method=method,
                       instruction=INSTRUCTIONS[task] if instruction is None else instruction,
                       input=defaults[task] if input is None else input, output=output,
                       source={"name": "test", "license": "MIT", "record_id": str(next(_ids))},
                       provenance=prov, meta=meta or {})


def run_validate(records, config=None):
    steps = ValidateStage.from_config(config or {}, RunContext())
    q = Quarantine()
    stream = iter(records)
    for s in steps:
        s.bind(q)
        stream = s(stream)
    return list(stream), q.entries, steps


LOOP = ("Diabetes is a disease in which blood glucose levels are too high. Over time it can damage "
        "the eyes, kidneys and nerves. It can damage the eyes, it can damage the eyes, it can damage "
        "the eyes, it can damage the eyes, it can damage the eyes and it can damage the eyes.")

# (case id, record, expected stage, expected reason)
DEFECTS = [
    ("whitespace_output", lambda: rec(output="  \n\t "), "validate.empty_fields", "empty_field"),
    ("whitespace_instruction", lambda: rec(instruction=" \n "), "validate.empty_fields", "empty_field"),
    ("empty_input_for_labeling", lambda: rec("report_labeling", input="   ", output="normal", meta={"labels": ["normal"]}),
     "validate.empty_fields", "empty_field"),
    ("too_short", lambda: rec(output="Yes."), "validate.length", "too_short"),
    ("too_long", lambda: rec(output=" ".join(f"word{i}" for i in range(2600)) + "."), "validate.length", "too_long"),
    ("jinja_left", lambda: rec(output="The answer is {{ answer }} and it should be followed closely."),
     "validate.template_leakage", "template_leakage"),
    ("jinja_block_left", lambda: rec(instruction="{% for q in questions %}Answer this question{% endfor %}"),
     "validate.template_leakage", "template_leakage"),
    ("placeholder_name", lambda: rec(instruction="Answer the following question: {question}"),
     "validate.template_leakage", "template_leakage"),
    ("insert_marker", lambda: rec(output="Take [insert dose here] of metformin twice a day with meals."),
     "validate.template_leakage", "template_leakage"),
    ("instruction_echo", lambda: rec(output="Instruction: Answer the health question.\nResponse: " + CHQ_ANSWER),
     "validate.template_leakage", "template_leakage"),
    ("ai_identity", lambda: rec(output="As an AI language model, I cannot provide medical advice about diabetes symptoms."),
     "validate.model_artefacts", "refusal"),
    ("refusal", lambda: rec(output="I'm sorry, but I can't help with that request. Diabetes questions need a professional."),
     "validate.model_artefacts", "refusal"),
    ("cannot_provide_advice", lambda: rec(output="I cannot provide medical advice. Symptoms vary from person to person and over time."),
     "validate.model_artefacts", "refusal"),
    ("disclaimer_only", lambda: rec(output="Please consult your doctor. This is not medical advice."),
     "validate.model_artefacts", "disclaimer"),
    ("meta_text_json", lambda: rec(output='Here is the JSON you asked for: {"answer": "thirst and frequent urination"}'),
     "validate.model_artefacts", "meta_text"),
    ("meta_text_sure", lambda: rec(output="Sure! " + CHQ_ANSWER), "validate.model_artefacts", "meta_text"),
    ("chat_token_output", lambda: rec(output="<|im_start|>assistant\n" + CHQ_ANSWER), "validate.model_artefacts", "chat_tokens"),
    ("chat_token_instruction", lambda: rec(instruction="[INST] Answer the health question. [/INST]"),
     "validate.model_artefacts", "chat_tokens"),
    ("finish_reason_length", lambda: rec(output=CHQ_ANSWER, meta={"finish_reason": "length"}), "validate.truncation", "truncated"),
    ("open_bracket", lambda: rec(output="First-line treatment is metformin (a biguanide that lowers glucose production."),
     "validate.truncation", "truncated"),
    ("open_quote", lambda: rec(output='Doctors sometimes call high blood sugar a "silent problem because it has no symptoms.'),
     "validate.truncation", "truncated"),
    ("cut_mid_sentence", lambda: rec(output="Common symptoms include increased thirst, frequent urination and tiredness. "
                                     "People with these symptoms should ask their doctor for a blood test and the"),
     "validate.truncation", "truncated"),
    ("copies_input", lambda: rec(output=CHQ_INPUT), "validate.copy", "copies_input"),
    ("copies_instruction", lambda: rec(instruction="Answer the following health question in clear, plain language "
                                       "that a patient or caregiver can understand without medical training.",
                                       output="Answer the following health question in clear, plain language that "
                                       "a patient or caregiver can understand."),
     "validate.copy", "copies_instruction"),
    ("repetition", lambda: rec(output=LOOP), "validate.repetition", "repetition"),
    ("answer_key_missing", lambda: rec("multiple_choice_qa", output="E. Folate deficiency",
                                       meta={"options": MCQ_OPTIONS, "answer_key": "E"}),
     "validate.multiple_choice", "answer_key_not_in_options"),
    ("duplicate_options", lambda: rec("multiple_choice_qa", output="B. Iron deficiency",
                                      meta={"options": {**MCQ_OPTIONS, "C": "iron deficiency"}, "answer_key": "B"}),
     "validate.multiple_choice", "duplicate_options"),
    ("one_option", lambda: rec("multiple_choice_qa", output="A. Vitamin B12 deficiency",
                               meta={"options": {"A": "Vitamin B12 deficiency"}, "answer_key": "A"}),
     "validate.multiple_choice", "invalid_options"),
    ("answer_mismatch", lambda: rec("multiple_choice_qa", output="C. Hemolysis",
                                    meta={"options": MCQ_OPTIONS, "answer_key": "B"}),
     "validate.multiple_choice", "answer_mismatch"),
    ("label_not_in_set", lambda: rec("report_labeling", output="Cardiomegaly, Banana",
                                     meta={"labels": ["Cardiomegaly", "Banana"]}),
     "validate.label_set", "label_not_in_set"),
    ("no_labels", lambda: rec("report_labeling", output="none", meta={"labels": []}), "validate.label_set", "no_labels"),
    ("labels_mismatch", lambda: rec("report_labeling", output="Pleural Effusion", meta={"labels": ["Cardiomegaly"]}),
     "validate.label_set", "labels_mismatch"),
    ("invalid_decision", lambda: rec("research_qa", output="Answer: perhaps\n\nThe trial suggests a modest benefit.",
                                     meta={"final_decision": "perhaps"}),
     "validate.decision", "invalid_decision"),
    ("decision_mismatch", lambda: rec("research_qa", output="Answer: no\n\nWalking lowered systolic pressure by 6 mmHg.",
                                      meta={"final_decision": "yes"}),
     "validate.decision", "decision_mismatch"),
    ("short_non_decision", lambda: rec("research_qa", output="probably", meta={"final_decision": "yes"}),
     "validate.decision", "invalid_decision"),
    ("impression_copies_findings", lambda: rec("impression_generation",
                                               output="The heart is enlarged. There are small bilateral pleural effusions."),
     "validate.impression_copy", "impression_copies_findings"),
    ("series_not_in_vocabulary", lambda: rec("series_description_harmonization", output="AX_T2_FLAIR_POST",
                                             meta={"canonical_vocabulary": VOCAB}),
     "validate.series_vocabulary", "not_in_vocabulary"),
    ("wrong_language", lambda: rec(output="Les symptômes courants du diabète de type 2 comprennent une soif accrue, "
                                   "des mictions fréquentes et de la fatigue."),
     "validate.language", "wrong_language"),
    ("schema", lambda: {k: v for k, v in rec().items() if k != "source"}, "validate", "schema"),
]

VALIDATE_CONFIG = {"tasks": {"report_labeling": {"label_set": {"labels": LABEL_SET}}}}


@pytest.fixture(scope="module")
def defect_run():
    records = [make() for _, make, _, _ in DEFECTS]
    kept, entries, steps = run_validate(records, VALIDATE_CONFIG)
    return records, kept, entries


@pytest.mark.parametrize("case,make,stage,reason", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_each_defect_is_quarantined_with_its_reason(defect_run, case, make, stage, reason):
    records, kept, entries = defect_run
    i = [d[0] for d in DEFECTS].index(case)
    rid = records[i]["id"]
    assert rid not in {r["id"] for r in kept}
    mine = [e for e in entries if e["record_id"] == rid]
    assert len(mine) == 1, mine
    assert (mine[0]["stage"], mine[0]["reason"]) == (stage, reason)


def test_quarantine_details_name_the_field_not_the_text(defect_run):
    records, kept, entries = defect_run
    by_reason = {e["reason"]: e for e in entries}
    assert by_reason["empty_field"]["field"] in ("output", "instruction", "input")
    assert by_reason["too_long"]["unit"] == "words"
    assert "As an AI" not in str({k: v for k, v in by_reason["refusal"].items() if k != "record"})


CLEAN = [
    ("answer_advising_doctor", lambda: rec(output=CHQ_ANSWER + " If you notice these symptoms, consult your doctor "
                                           "for a blood glucose test.")),
    ("answer_with_disclaimer_sentence", lambda: rec(output=CHQ_ANSWER + " This is not medical advice.")),
    ("short_yes_research_qa", lambda: rec("research_qa", output="yes", meta={"final_decision": "yes"})),
    ("answer_prefixed_research_qa", lambda: rec("research_qa", output="Answer: maybe", meta={"final_decision": "maybe"})),
    ("template_research_qa", lambda: rec("research_qa", meta={"final_decision": "yes"},
                                         output="Answer: yes\n\nIn this trial, 12 weeks of daily walking lowered systolic "
                                         "blood pressure by about 6 mmHg compared with controls.")),
    ("one_label", lambda: rec("report_labeling", output="Cardiomegaly", meta={"labels": ["Cardiomegaly"]})),
    ("normal_label", lambda: rec("report_labeling", output="normal", meta={"labels": ["normal"]})),
    ("label_with_comma", lambda: rec("report_labeling", output="Catheters, Indwelling, Cardiomegaly",
                                     meta={"labels": ["Catheters, Indwelling", "Cardiomegaly"]})),
    ("mcq_valid", lambda: rec("multiple_choice_qa", output="B. Iron deficiency",
                              meta={"options": MCQ_OPTIONS, "answer_key": "B"})),
    ("mcq_answer_sentence", lambda: rec("multiple_choice_qa", output="A low ferritin points to iron deficiency (B).",
                                        meta={"options": MCQ_OPTIONS, "answer_key": "B"})),
    ("diagnosis_no_period", lambda: rec("diagnosis", output="Central retinal artery occlusion")),
    ("series_canonical", lambda: rec("series_description_harmonization", output="AX_T2_FLAIR",
                                     meta={"canonical_vocabulary": VOCAB, "raw_series_description": "Ax T2 FLAIR"})),
    ("impression_summary", lambda: rec("impression_generation", output="Cardiomegaly with small bilateral effusions.")),
    ("short_identical_impression", lambda: rec("impression_generation", input="Findings: No acute disease.",
                                               output="Normal chest.")),
    ("enumerated_list", lambda: rec(output="Symptoms include: 1) increased thirst, 2) frequent urination and "
                                    "3) tiredness. Some people notice blurred vision.")),
    ("inline_list_end", lambda: rec(output="Neuropathy can affect many parts of the body, including - feet - legs - hands")),
    ("anonymized_tags", lambda: rec(output="<PERSON> was told on <DATE_TIME> that her symptoms of thirst and frequent "
                                    "urination were due to type 2 diabetes.")),
    ("terse_radiology_english", lambda: rec("impression_generation",
                                            input="Findings: Cardiomediastinal silhouette is a within normal limits. No focal "
                                            "consolidation, pneumothorax, or pleural effusion. Multiple granulomas. No acute "
                                            "bony abnormalities.", output="No acute cardiopulmonary abnormality.")),
    ("synthetic_method", lambda: rec(method="synthetic")),
    ("url_at_end", lambda: rec(output="More information about diabetes symptoms and tests is available from "
                               "the NIDDK at www.niddk.nih.gov/health-information/diabetes")),
]


@pytest.mark.parametrize("case,make", CLEAN, ids=[c[0] for c in CLEAN])
def test_clean_look_alikes_are_kept(case, make):
    r = make()
    kept, entries, _ = run_validate([r], VALIDATE_CONFIG)
    assert entries == [] and [k["id"] for k in kept] == [r["id"]], entries


# -- configuration ---------------------------------------------------------------------------
def test_validate_stage_is_schema_first_then_named_filters():
    steps = ValidateStage.from_config({}, RunContext())
    assert isinstance(steps[0], SchemaFilter) and steps[0].name == "validate"
    assert [s.name for s in steps[1:]] == [f"validate.{k}" for k in FILTER_CLASSES]
    assert [type(s) for s in ValidateStage.from_config({"quality": False}, RunContext())] == [SchemaFilter]


def test_recipe_turns_a_filter_off_per_task_and_overrides_thresholds():
    refusal = rec(output="As an AI language model, I think these are the common symptoms of diabetes.")
    kept, entries, _ = run_validate([refusal], {"tasks": {"consumer_health_qa": {"model_artefacts": False}}})
    assert len(kept) == 1 and not entries
    short = rec(output="Thirst and frequent urination are typical.")
    kept, entries, _ = run_validate([short], {"tasks": {"consumer_health_qa": {"length": {"output": {"min_words": 10}}}}})
    assert entries[0]["reason"] == "too_short" and entries[0]["min"] == 10
    kept, entries, _ = run_validate([rec()], {"filters": {"length": {"max_tokens": 20}}})
    assert (entries[0]["reason"], entries[0]["unit"], entries[0]["field"]) == ("too_long", "tokens", "record")


def test_a_task_filter_can_be_enabled_for_another_task():
    r = rec("diagnosis", output="Banana disease", meta={"labels": ["Banana disease"]})
    kept, entries, _ = run_validate([r], {"tasks": {"diagnosis": {"label_set": {"labels": ["Stroke"]}}}})
    assert kept  # label_set stays off for diagnosis unless turned on
    kept, entries, _ = run_validate([r], {"tasks": {"diagnosis": {"label_set": {"enabled": True, "labels": ["Stroke"]}}}})
    assert entries[0]["reason"] == "label_not_in_set"


def test_series_vocabulary_from_the_recipe():
    r = rec("series_description_harmonization", output="AX_T2_FLAIR")
    kept, entries, _ = run_validate([r], {"tasks": {"series_description_harmonization":
                                                    {"series_vocabulary": {"vocabulary": ["AX_T1_PRE"]}}}})
    assert entries[0]["reason"] == "not_in_vocabulary"


def test_unknown_filter_in_recipe_is_a_clear_error():
    with pytest.raises(RecipeError, match="stages.validate.filters.langauge"):
        QualitySettings({"filters": {"langauge": {"allowed": ["en"]}}})


def test_validate_settings_schema_accepts_defaults_and_rejects_typos():
    from jsonschema import Draft202012Validator

    from instructkit._resources import load_schema
    from instructkit.steps.quality.settings import load_defaults

    v = Draft202012Validator(load_schema("stages/validate.schema.json"))
    assert not list(v.iter_errors({k: load_defaults()[k] for k in ("filters", "tasks")}))
    assert list(v.iter_errors({"filters": {"length": {"output": {"min_wrds": 3}}}}))


def test_text_measures():
    assert word_count("Type 2 diabetes isn't rare.") == 5
    assert 5 <= approx_tokens("Cardiomegaly with small bilateral effusions.") <= 14
    assert containment("the heart is enlarged", "findings: the heart is enlarged today") == 1.0


# -- real data -------------------------------------------------------------------------------
def test_real_pubmedqa_records_pass_the_gate(shared_data):
    """Records the template builder makes from PubMedQA keep meta keys the filters read."""
    from instructkit.pipeline import Pipeline

    pipe = Pipeline.from_recipe("builders/research_qa.yaml", limit=60)
    q = Quarantine()
    kept = list(pipe.records(q))
    # decontamination rightly drops PubMedQA's own test-set questions; the quality filters
    # must keep (nearly) all the rest
    filtered = [(e["stage"], e["reason"]) for e in q.entries if e["stage"].startswith("validate")]
    assert len(kept) >= 20 and len(filtered) <= 3, filtered
    assert all(r["meta"]["final_decision"] in ("yes", "no", "maybe") for r in kept)


def test_shipped_series_recipe_passes_vocabulary_check():
    from instructkit.pipeline import Pipeline

    pipe = Pipeline.from_recipe("builders/series_description_harmonization.yaml", limit=30)
    q = Quarantine()
    kept = list(pipe.records(q))
    assert kept and not [e for e in q.entries if e["stage"].startswith("validate")]


# -- bias report -----------------------------------------------------------------------------
def test_count_mentions_groups():
    found = count_mentions("A 72-year-old Black woman, pregnant with twins? No: her 8-year-old son "
                           "has white blood cells in the urine.")
    assert {("sex_gender", "female"), ("sex_gender", "male"), ("age", "older_adult"), ("age", "pediatric"),
            ("race_ethnicity", "black"), ("pregnancy", "pregnancy")} <= found
    assert ("race_ethnicity", "white") not in found  # "white blood cells" is not a race mention


def test_bias_report_passes_everything_and_counts_by_task_and_method():
    records = [rec(output=CHQ_ANSWER + " Women who are pregnant should be tested."),
               rec(output=CHQ_ANSWER + " Hispanic and Latino adults have higher rates.", method="synthetic"),
               rec("diagnosis", output="Central retinal artery occlusion")]
    report = BiasReportStep().bind(Quarantine())
    out = list(report(records))
    assert out == records and report.stats.dropped == {}
    s = report.summary()["bias"]
    assert s["overall"]["records"] == 3
    assert s["by_task_method"]["consumer_health_qa/template"]["pregnancy"]["pregnancy"] == 1
    assert s["by_task_method"]["consumer_health_qa/synthetic"]["race_ethnicity"]["hispanic_latino"] == 1
    assert s["by_task_method"]["diagnosis/template"]["age"]["older_adult"] == 1  # 67-year-old in input
    card = card_of(report)
    assert "| consumer_health_qa | synthetic | 1 |" in card and "Caveat" in card


def test_bias_report_cli(tmp_path):
    from typer.testing import CliRunner

    from instructkit.cli.app import app
    from instructkit.records import write_jsonl

    path = tmp_path / "recs.jsonl"
    write_jsonl(path, [rec(output=CHQ_ANSWER + " Older adults and children are at risk.")])
    res = CliRunner().invoke(app, ["bias-report", str(path)])
    assert res.exit_code == 0, res.output
    assert "Demographic mentions" in res.output and "pediatric" in res.output


def test_validate_cli_uses_the_quality_filters(tmp_path):
    import json

    from typer.testing import CliRunner

    from instructkit.cli.app import app
    from instructkit.records import write_jsonl

    good, bad = rec(), rec(output="As an AI language model, I cannot answer questions about diabetes symptoms.")
    write_jsonl(tmp_path / "in.jsonl", [good, bad])
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")])
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()] == [good["id"]]
    (entry,) = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert (entry["stage"], entry["reason"], entry["record_id"]) == ("validate.model_artefacts", "refusal", bad["id"])


def test_repetition_measures_match_their_plain_definitions():
    """The fast loop and n-gram counts (runs found by list.index, grams by zip) agree with
    the definitions written out position by position, on random word streams."""
    import random

    from instructkit.steps.quality.filters import _duplicate_chars, _longest_repeat_run

    def plain_run(words, max_n):
        best, best_n = 1, 1
        for n in range(1, max_n + 1):
            for i in range(len(words) - 2 * n + 1):
                gram = words[i:i + n]
                if all(w.isdigit() or set(w) == {"x"} for w in gram):
                    continue
                run, j = 1, i + n
                while words[j:j + n] == gram:
                    run, j = run + 1, j + n
                if run > best:
                    best, best_n = run, n
        return best, best_n

    def plain_dup(words, n):
        seen, repeated, i = set(), 0, 0
        while i < len(words) - n + 1:
            gram = tuple(words[i:i + n])
            if gram in seen:
                repeated, i = repeated + sum(map(len, gram)), i + n
            else:
                seen.add(gram)
                i += 1
        return repeated

    rng = random.Random(7)
    for _ in range(400):
        vocab = rng.choice([["a", "b"], ["the", "pain", "is", "worse", "12", "xxxx"], list("abcdefghij")])
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 40))]
        assert _longest_repeat_run(words, 6) == plain_run(words, 6), words
        for n in (1, 3, 5):
            assert _duplicate_chars(words, n) == plain_dup(words, n), (words, n)
