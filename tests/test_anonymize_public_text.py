"""Text nobody's patient wrote is never rewritten (issue 26, item 6).

The anonymize stage scans a record's text only where it may hold text from a source that may
hold PHI: a template's own words (labels such as "Case:", shipped few-shot turns), template
records of ``phi: false`` sources and what a model wrote from PHI-free inputs only are held
apart, and counted by reason. A PHI source's text inside a template, and what a model wrote
from a PHI source, are still scanned.
"""

from __future__ import annotations

import json
import random

import pytest
from fixtures_anonymize import phi_detector  # noqa: F401 - fixture

from instructkit.context import RunContext
from instructkit.recipe.sources import Source
from instructkit.records import make_record, schema_errors
from instructkit.recordbuilders.template import TemplateBuilder, TemplateSet, load_template_set
from instructkit.steps.anonymize import AnonymizeStep
from instructkit.steps.anonymize.public_text import template_text_ranges

NAME = "Margaret Oduya"


def _stage(detector, **kw):
    return AnonymizeStep(detector=detector, canary=False, **kw)


def _labels_tset() -> TemplateSet:
    """A template whose literal text is full of words a detector may take for names."""
    return TemplateSet({
        "id": "labels_demo", "variables": {"presentation": "str", "diagnosis": "str"},
        "phrasings": [{"id": "a", "instruction": "Case: read it. Attending Dr. Case asks: {{ presentation | clean }}"},
                      {"id": "b", "instruction": "Case: name the diagnosis of {{ presentation }}."},
                      {"id": "c", "instruction": "Case: give the diagnosis."}],
        "input": "Case: {{ presentation | clean }}\nReferred by: Mercy General",
        "output": "Diagnosis: {{ diagnosis }}",
        "few_shot": {"k": 2, "header": "Example:",
                     "example": "Case: {{ input }}\nDiagnosis: {{ output }}",
                     "examples": [{"input": "Mrs. Chen, 67, has sudden loss of vision at Boston General.",
                                   "output": "Central retinal artery occlusion"},
                                  {"input": "Jack Hale, 19, fever and neck stiffness.",
                                   "output": "Meningococcal meningitis"}]},
    }, "labels_demo.yaml")


def _template_records(tset, rows, *, source="sample-presentations", few_shot_share=1.0, **src_kw):
    src = Source(name=source, type="inline", license="Apache-2.0", rows_inline=rows, id_field="id", **src_kw)
    b = TemplateBuilder("diagnosis", [src], templates=tset, seed=7, few_shot_share=few_shot_share)
    return list(b.build())


# -- (a) the quickstart's few-shot labels --------------------------------------------------------
def test_template_labels_and_few_shot_turns_are_kept_with_anonymize_forced_on(phi_detector):
    tset = load_template_set("diagnosis")  # the quickstart's: few-shot label "Case:"
    rows = [{"id": f"p{i}", "presentation": "A 58-year-old woman has crushing chest pain radiating to the jaw.",
             "diagnosis": "Acute myocardial infarction"} for i in range(6)]
    recs = _template_records(tset, rows)
    assert all(r["provenance"]["variant"] == "few_shot" for r in recs)
    assert all(schema_errors(r) == [] for r in recs)
    stage = _stage(phi_detector)  # the source is not declared phi: false: anonymize runs
    out = list(stage.process(recs))
    for before, after in zip(recs, out):
        assert "[NAME]" not in after["instruction"] and "Case:" in after["instruction"]
        assert after["instruction"] == before["instruction"]
        assert after["messages"][0]["content"].startswith(after["instruction"])
    held = stage.summary()["anonymization"]["held_apart"]["template_text"]
    assert held["records"] == len(recs) and held["chars"] > 0


def test_literal_text_that_looks_like_phi_is_kept_and_only_the_row_is_scanned(phi_detector):
    tset = _labels_tset()
    rows = [{"id": "r1", "presentation": "Chest pain since this morning.", "diagnosis": "Angina"}]
    recs = _template_records(tset, rows)
    rec = recs[0]
    ranges = template_text_ranges(rec)
    assert set(ranges) >= {"instruction", "input", "output"}
    out = list(_stage(phi_detector).process(recs))[0]
    # names and places of the template and of its shipped few-shot turns are the project's
    assert "Mrs. Chen" in out["instruction"] and "Jack Hale" in out["instruction"]
    assert "Boston General" in out["instruction"]
    assert out["input"].endswith("Referred by: Mercy General")
    assert out["instruction"] == rec["instruction"] and out["input"] == rec["input"]


# -- (b) a PHI source's text inside a template is still scanned ----------------------------------
def test_a_name_filled_in_from_a_phi_source_is_replaced_and_the_template_text_is_not(phi_detector):
    tset = _labels_tset()
    rows = [{"id": "r1", "presentation": f"{NAME} was seen on 03/14/2021 with chest pain; MRN 4478812.",
             "diagnosis": "Angina"}]
    rec = _template_records(tset, rows)[0]
    stage = _stage(phi_detector)
    out = list(stage.process([rec]))[0]
    assert NAME not in json.dumps(out) and "Oduya" not in json.dumps(out)
    assert "[NAME]" in out["input"] and "[NAME]" in out["instruction"]
    assert out["input"].startswith("Case: [NAME]") and out["input"].endswith("Referred by: Mercy General")
    assert "Mrs. Chen" in out["instruction"] and "Boston General" in out["instruction"]
    assert stage.summary()["anonymization"]["replaced"].get("NAME", 0) >= 2


def test_a_claim_that_does_not_check_out_leaves_the_whole_field_scanned(phi_detector):
    tset = _labels_tset()
    rows = [{"id": "r1", "presentation": "Chest pain.", "diagnosis": "Angina"}]
    rec = _template_records(tset, rows)[0]
    # a record read from a file claims its row text is template text: the row holds a name
    forged = json.loads(json.dumps(rec))
    forged["input"] = f"Case: {NAME} has chest pain\nReferred by: Mercy General"
    claim = forged["provenance"]["template_text"]["input"]
    from instructkit.recordbuilders.template import field_hash
    claim["sha"], claim["filled"] = field_hash(forged["input"]), [[6, 7]]
    assert "input" not in template_text_ranges(forged)  # "Margaret Oduya has ..." is no template text
    out = list(_stage(phi_detector).process([forged]))[0]
    assert NAME not in out["input"]
    # text changed after rendering: the hash no longer agrees, the field is scanned whole
    edited = json.loads(json.dumps(rec))
    edited["input"] += " Seen by Dr. Case."
    assert "input" not in template_text_ranges(edited)
    # a template set nobody knows (or another hash): no template text at all
    unknown = json.loads(json.dumps(rec))
    unknown["provenance"]["template_hash"] = "f" * 16
    assert template_text_ranges(unknown) == {}


# -- (c) RAG records from phi: false documents ---------------------------------------------------
def _rag_record(source_name: str, *, rid: str = "k1") -> dict:
    title = "Foreword Thomas R. Frieden, MD, MPH"
    passage = ("Data from the National Hospital Ambulatory Medical Care Survey show that visits "
               "for influenza-like illness rose in January.")
    return make_record(
        task="guideline_qa", method="rag",
        instruction=f"According to the CDC document \"{title}\", what do the survey data show?",
        input="", output=passage + " [P1]",
        source={"name": source_name, "license": "LicenseRef-US-Public-Domain", "record_id": f"{rid}:guideline_qa",
                "url": "https://www.cdc.gov/mmwr/x.htm", "location": "x.htm@0-200",
                "citation": f"{title} (2011-01-01)"},
        provenance={"builder": "rag", "builder_name": "cdc-guideline-qa", "seed": 11,
                    "prompt_id": "rag/guideline_qa", "prompt_hash": "0" * 16, "model": "stub", "provider": "stub"},
        context=[{"chunk_id": "c1", "doc_id": "d1", "text": passage, "title": title,
                  "url": "https://www.cdc.gov/mmwr/x.htm"}],
        meta={"documents": [{"doc_id": "d1", "title": "National Hospital Ambulatory Medical Care Survey",
                             "date": "2011-01-01", "url": "https://www.cdc.gov/mmwr/x.htm"}]})


def test_rag_record_of_phi_free_documents_is_not_rewritten(phi_detector):
    rec = _rag_record("cdc-mmwr-supplements")
    assert schema_errors(rec) == []
    stage = _stage(phi_detector, skip_sources=["cdc-mmwr-supplements"],
                   copy_free_sources={"cdc-mmwr-supplements"})
    out = list(stage.process([rec]))[0]
    assert out == rec
    assert "[NAME]" not in json.dumps(out) and "[HOSPITAL]" not in json.dumps(out)
    held = stage.summary()["anonymization"]["held_apart"]
    assert held["phi_free_llm_output"]["records"] == 1 and held["phi_free_llm_output"]["chars"] > 0
    assert "model-written records" in stage.card_section(_stats(stage))


def test_the_guideline_recipe_declares_its_documents_phi_free():
    from instructkit._yaml import safe_load as load_yaml
    from instructkit._resources import builders_dir
    from instructkit.recordbuilders.rag.builder import _documents_from_sources
    from instructkit.recordbuilders.rag.documents import all_phi_free

    recipe = load_yaml((builders_dir() / "guideline_qa.yaml").read_text())
    assert all(s.get("phi") is False for s in recipe["sources"])
    b = recipe["builders"][0]
    docs = _documents_from_sources(b["sources"], None, RunContext(seed=0, recipe=recipe))
    assert all_phi_free(docs)


def _stats(stage):
    class S:
        extra = stage.summary()
    return S()


# -- (d) what a model wrote: from PHI-free inputs only, or from a PHI source ----------------------
_WORDS = ("fever cough rash dose taper renal hepatic screening vaccine asthma insulin statin "
          "anemia biopsy stroke sepsis migraine gout").split()


def _writer(req: dict) -> str:
    rng = random.Random(req.get("seed"))
    props = req["response_format"]["schema"]["properties"]
    return json.dumps({k: (f"Ask Dr. Thomas Frieden at Riverside Methodist about {' '.join(rng.sample(_WORDS, 8))}.")
                       for k in props})


def _self_instruct(base_url: str, **cfg):
    from instructkit.recordbuilders.synthetic import SyntheticBuilder
    from instructkit.steps.base import Quarantine

    ctx = RunContext(seed=3, recipe={"llm": {"base_url": base_url, "model": "stub-model",
                                             "structured_output": "json_object"}})
    b = SyntheticBuilder.from_config({"type": "synthetic", "name": "synth", "batch_size": 2,
                                      "self_instruct": {"n": 3, "k": 3}, **cfg}, {}, ctx)
    b.bind(Quarantine())
    return list(b.build()), ctx


def test_llm_output_from_phi_free_inputs_is_kept_and_from_a_phi_source_is_scanned(phi_detector):
    from fixtures_llm import StubOpenAI

    with StubOpenAI(_writer) as stub:
        free, ctx = _self_instruct(stub.base_url)  # the project's seed pool: phi-free
        assert free and ctx.phi_free_copies >= {"instructkit-seed-tasks"}
        stage = _stage(phi_detector, skip_sources=ctx.phi_free_sources, copy_free_sources=ctx.phi_free_copies)
        out = list(stage.process(free))
        assert out == free and all("Thomas Frieden" in r["output"] for r in out)
        assert stage.summary()["anonymization"]["held_apart"]["phi_free_llm_output"]["records"] == len(free)

        # the same seed pool declared to hold PHI: what the model wrote from it is scanned
        phi, ctx2 = _self_instruct(stub.base_url, seed_tasks_phi=True)
        assert phi and "instructkit-seed-tasks" not in ctx2.phi_free_copies
        stage2 = _stage(phi_detector, skip_sources=ctx2.phi_free_sources, copy_free_sources=ctx2.phi_free_copies)
        out2 = list(stage2.process(phi))
    assert all("Frieden" not in r["output"] and "[NAME]" in r["output"] for r in out2)
    assert not stage2.summary()["anonymization"].get("held_apart", {}).get("phi_free_llm_output")


def test_llm_record_named_after_a_phi_source_is_scanned(phi_detector):
    rec = _rag_record("clinic-notes")  # documents that may hold PHI
    stage = _stage(phi_detector, skip_sources=["cdc-mmwr-supplements"], copy_free_sources={"cdc-mmwr-supplements"})
    out = list(stage.process([rec]))[0]
    assert "Frieden" not in out["instruction"]


def test_template_record_of_a_phi_free_source_is_counted_apart(phi_detector):
    tset = _labels_tset()
    rows = [{"id": "r1", "presentation": f"{NAME} (a public case report).", "diagnosis": "Angina"}]
    recs = _template_records(tset, rows, source="public-cases")
    stage = _stage(phi_detector, skip_sources=["public-cases"])
    assert list(stage.process(recs)) == recs
    held = stage.summary()["anonymization"]["held_apart"]
    assert held["phi_free_source"]["records"] == 1
    assert stage.summary()["anonymization"]["records_skipped_phi_free"] == 1
