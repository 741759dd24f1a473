"""The residual-PHI audit: its own detector, the pipeline stage, ``instructkit audit DIR``."""

from __future__ import annotations

import json

import pytest

from fixtures_anonymize import make_phi_record

RAW = ("Call (617) 555-0143 or write to jo.doe@gmail.com; SSN 219-09-9999, seen 03/14/2021 "
       "at https://portal.example.net from 10.2.3.4, Springfield, IL 62704; MRN: 00123456. "
       "Dr. Alvarez saw Maria Lopez, a 95-year-old.")


def test_audit_detector_finds_structured_identifiers_and_names(audit_detector):
    counts = audit_detector.scan_many([(RAW, [])])[0]
    for typ in ("PHONE", "EMAIL", "SSN", "DATE", "URL", "IP", "ZIP", "RECORD_NUMBER", "AGE_OVER_89", "NAME"):
        assert counts[typ] >= 1, (typ, counts)


def test_audit_ignores_placeholders_masks_and_surrogate_spans(audit_detector):
    text = "Call [PHONE] on [DATE], MRN [MRN:1a2b3c4d5e]. XXXX XXXX. Seen [**2118-6-2**]."
    assert audit_detector.scan_many([(text, [])])[0] == {}
    fake = "Seen on 04/17/2020."
    assert audit_detector.scan_many([(fake, [])])[0]["DATE"] == 1
    assert audit_detector.scan_many([(fake, [[8, 18]])])[0] == {}


def _run(tmp_path, records, stages, name="ds"):
    from instructkit.recordbuilders.base import Builder
    from instructkit.pipeline import Pipeline

    class ListBuilder(Builder):
        method = "template"

        def inputs(self):
            return records

        def process(self, inputs):
            yield from inputs

    out = tmp_path / name
    result = Pipeline([ListBuilder()], stages).run(out, quiet=True, allow_empty=True)
    return out, result


def test_audit_stage_fails_raw_phi_and_passes_after_anonymization(phi_detector, audit_detector, tmp_path):
    from instructkit.steps.audit import AuditStep
    from instructkit.steps.anonymize.step import AnonymizeStep

    recs = [make_phi_record("Summarize.", RAW, "Stable.", record_id=str(i)) for i in range(2)]
    out_raw, res = _run(tmp_path, recs, [AuditStep(detector=audit_detector)], "raw")
    audit = [s for s in res.manifest["stages"] if s["stage"] == "audit"][0]["extra"]["audit"]
    assert audit["passed"] is False
    assert audit["suspects_by_type"]["SSN"] >= 2  # in input and in the user message, both records
    assert sorted(audit["record_ids_by_type"]["SSN"]) == sorted(r["id"] for r in recs)
    assert "219-09-9999" not in json.dumps(audit)

    for op in ("placeholder", "surrogate"):
        out, res = _run(tmp_path, recs, [AnonymizeStep(op, detector=phi_detector, canary=False),
                                         AuditStep(detector=audit_detector)], op)
        audit = [s for s in res.manifest["stages"] if s["stage"] == "audit"][0]["extra"]["audit"]
        assert audit["passed"] is True, (op, audit)
        # the same verdict from the folder on disk
        from instructkit.steps.audit import audit_dataset

        report = audit_dataset(out, names=False)
        assert report["passed"] is True and report["records_scanned"] == 2


def test_audit_limits_from_config(audit_detector, tmp_path):
    from instructkit.steps.audit import AuditStep, _limits

    recs = [make_phi_record("Summarize.", "Seen 03/14/2021.", "Stable.")]
    stage = AuditStep(limits=_limits({"limits": {"DATE": 5}}), detector=audit_detector)
    _, res = _run(tmp_path, recs, [stage])
    audit = res.manifest["stages"][-1]["extra"]["audit"]
    assert audit["passed"] is True and audit["suspects_by_type"]["DATE"] == 2

    dropping = AuditStep(drop_suspects=True, detector=audit_detector)
    _, res = _run(tmp_path, recs, [dropping], "drop")
    assert res.records == 0 and res.quarantined == 1


def test_cli_audit_exit_codes(audit_detector, tmp_path):
    from typer.testing import CliRunner

    from instructkit.cli.app import app

    bad, _ = _run(tmp_path, [make_phi_record("Summarize.", RAW, "Stable.")], [], "bad")
    good, _ = _run(tmp_path, [make_phi_record("Summarize.", "Stable overnight, no distress.", "Stable.")],
                   [], "good")
    runner = CliRunner()
    res = runner.invoke(app, ["audit", str(bad), "--no-names"])
    assert res.exit_code == 1 and "FAILED" in res.output and "SSN" in res.output
    assert "219-09-9999" not in res.output
    res = runner.invoke(app, ["audit", str(good), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["passed"] is True


def test_audit_of_a_folder_without_data_is_a_clear_error(tmp_path):
    from instructkit._exceptions import SourceError
    from instructkit.steps.audit import audit_dataset

    with pytest.raises(SourceError, match="data"):
        audit_dataset(tmp_path)


def test_audit_in_two_processes_and_with_its_text_cache_counts_as_one_process(audit_detector):
    """NER shared with a forked worker, each distinct text scanned once and short texts
    remembered: the same counts per text as one process scanning every text."""
    from instructkit.steps.audit import AuditDetector

    names = ["Maria Lopez", "John Whitaker", "Ana Souza", "Peter Novak", "Li Wei", "Omar Haddad"]
    texts = [" ".join(f"Patient {names[(i + k) % 6]} was seen at follow-up visit {i}, part {k}." for k in range(10))
             + " " + RAW for i in range(60)]
    texts += texts[:20] + ["No identifiers here at all, only a plain sentence about asthma."] * 5
    items = [(t, []) for t in texts]
    plain = [AuditDetector(names=True, cache_size=0).scan_many([it])[0] for it in items[:3]]
    pooled = AuditDetector(names=True, n_process=2)
    try:
        got = pooled.scan_many(items)
        assert pooled._pool is not None and pooled._pool._executor is not None  # the pool did run
        again = pooled.scan_many(items[:3])  # from the cache
    finally:
        pooled.close()
    single = audit_detector.scan_many(items)
    assert got == single and again == plain == single[:3]
    assert all(c["NAME"] >= 1 for c in single[:60])


def _llm_record(url_in_output: bool) -> dict:
    out = "Wash hands for 20 seconds." + (" See https://portal.example.net/jo" if url_in_output else "")
    return {"id": "r1", "task": "guideline_qa", "method": "rag", "instruction": "How long to wash hands?",
            "output": out,
            "source": {"name": "guideline-qa", "license": "CC0-1.0", "record_id": "c1",
                       "url": "https://intranet.example.org/hand-hygiene", "citation": "Hand Hygiene (2024-03-01)"},
            "context": [{"chunk_id": "c1", "text": "Published 2024-03-01 at https://intranet.example.org/hand-hygiene.",
                         "url": "https://intranet.example.org/hand-hygiene"}],
            "meta": {"documents": [{"doc_id": "d1", "date": "2024-03-01", "url": "https://intranet.example.org/hand-hygiene"}]}}


def test_audit_holds_phi_free_sources_apart_but_never_what_a_model_wrote(audit_detector):
    """Public sources (phi: false) keep their URLs and dates, reported apart; a model's own
    text is held to the limits whatever its sources declared."""
    from instructkit.steps.audit import AuditReport, PhiFreeScope, audit_records, default_limits

    scope = PhiFreeScope(sources={"medquad"}, copies={"guideline-qa"})
    template = {"id": "t1", "task": "qa", "method": "template", "instruction": "What is flu?",
                "output": "See https://www.cdc.gov/flu (updated 2024-03-01).",
                "source": {"name": "medquad", "license": "CC-BY-4.0", "record_id": "q1",
                           "url": "https://www.cdc.gov/flu"}}
    report = AuditReport(default_limits(), names=False)
    list(audit_records([template, _llm_record(False)], audit_detector, report, phi_free=scope))
    d = report.as_dict()
    assert d["passed"] and d["suspects_by_type"] == {}
    assert d["phi_free_suspects_by_type"]["URL"] >= 4 and d["phi_free_suspects_by_type"]["DATE"] >= 2

    report = AuditReport(default_limits(), names=False)
    list(audit_records([_llm_record(True)], audit_detector, report, phi_free=scope))
    assert not report.as_dict()["passed"] and report.as_dict()["suspects_by_type"] == {"URL": 1}
    # undeclared: every field is held to the limits
    report = AuditReport(default_limits(), names=False)
    list(audit_records([_llm_record(False)], audit_detector, report))
    assert report.as_dict()["suspects_by_type"]["URL"] >= 3


def test_anonymize_keeps_citations_of_phi_free_documents_in_llm_records(phi_detector):
    """A RAG record from PHI-free documents keeps its passages and citations (x-source-copy),
    and, built from PHI-free inputs only, what the model wrote too (issue 26: text nobody's
    patient wrote is never rewritten); the same record from a PHI source is anonymized."""
    from instructkit.steps.anonymize.step import AnonymizeStep

    step = AnonymizeStep("placeholder", detector=phi_detector, canary=False, copy_free_sources={"guideline-qa"})
    rec = list(step.process([_llm_record(True)]))[0]
    assert rec["context"][0]["url"] == "https://intranet.example.org/hand-hygiene"
    assert rec["meta"]["documents"][0]["date"] == "2024-03-01"
    assert rec["source"]["citation"] == "Hand Hygiene (2024-03-01)"
    assert "portal.example.net" in rec["output"]
    other = list(AnonymizeStep("placeholder", detector=phi_detector, canary=False).process([_llm_record(False)]))[0]
    assert "intranet.example.org" not in json.dumps(other["context"])
    assert "portal.example.net" not in other["output"]


def test_the_recipes_own_source_url_and_citation_are_recipe_text(phi_detector, audit_detector):
    """A source's url and citation exactly as the recipe declares them are not source data:
    anonymize leaves them and the audit does not count them; any other value is read."""
    from instructkit.steps.anonymize.step import AnonymizeStep
    from instructkit.steps.audit import AuditReport, PhiFreeScope, audit_records, default_limits

    declared = {"url": "https://github.com/abachaa/MedQuAD", "citation": "Ben Abacha A, Demner-Fushman D. 2019."}
    rec = {"id": "r1", "task": "qa", "method": "template", "instruction": "What is flu?", "output": "A virus.",
           "source": {"name": "medquad", "license": "CC-BY-4.0", "record_id": "q1", **declared}}
    step = AnonymizeStep("placeholder", detector=phi_detector, canary=False, recipe_texts=declared.values())
    out = list(step.process([dict(rec)]))[0]
    assert out["source"]["url"] == declared["url"] and out["source"]["citation"] == declared["citation"]
    undeclared = list(AnonymizeStep("placeholder", detector=phi_detector, canary=False).process([dict(rec)]))[0]
    assert undeclared["source"]["url"] == "[URL]"

    scope = PhiFreeScope(recipe=frozenset(declared.values()))
    report = AuditReport(default_limits(), names=False)
    list(audit_records([rec], audit_detector, report, phi_free=scope))
    assert report.as_dict()["passed"]
    other = {**rec, "source": {**rec["source"], "url": "https://portal.example.net/jo"}}
    report = AuditReport(default_limits(), names=False)
    list(audit_records([other], audit_detector, report, phi_free=scope))
    assert report.as_dict()["suspects_by_type"] == {"URL": 1}


def test_audit_keeps_to_the_anonymizers_rule_for_values_of_no_individual(audit_detector):
    """An agency's URL and a toll-free number are no one's: the anonymizer keeps them
    (steps/anonymize/shapes.py) and the audit does not count them; a personal page is read."""
    text = ("See https://www.cancer.gov/types/leukemia or call 1-800-422-6237. "
            "Her page is https://portal.example.net/jo and her phone (617) 724-3188.")
    counts = audit_detector.scan_many([(text, [])])[0]
    assert counts["URL"] == 1 and counts["PHONE"] == 1, counts


def test_audit_scans_in_flight_together_count_as_scans_one_at_a_time():
    """Scans overlap (NER of one batch on the workers while the next batch starts) and share
    sentences, long ones (never remembered) too: the counts are those of scans made one at
    a time with no memory at all."""
    from instructkit.steps.audit import AuditDetector

    long_sentence = "Maria Lopez was seen " + "and followed up " * 140 + "by Dr. John Whitaker."
    assert len(long_sentence) > AuditDetector.CACHE_TEXT_CHARS
    shared = ["Patient Ana Souza was admitted.", long_sentence, "No identifiers in this sentence."]
    batches = [[(f"Visit {i}. {shared[i % 3]} Call Peter Novak at 617-555-01{i:02d}.", []),
                (f"{shared[(i + 1) % 3]} Then {shared[(i + 2) % 3]}", [])] for i in range(6)]
    alone = [AuditDetector(names=True, cache_size=0).scan_many(b) for b in batches]
    for n_process in (1, 2):
        d = AuditDetector(names=True, n_process=n_process, cache_size=4)
        try:
            got, pending = [], None
            for b in batches:
                started = d.scan_start(b)
                if pending is not None:
                    got.append(d.scan_finish(pending))
                pending = started
            got.append(d.scan_finish(pending))
            assert not d._inflight
        finally:
            d.close()
        assert got == alone, n_process
    assert sum(c["NAME"] for b in alone for c in b) >= 6 and all(c[0]["PHONE"] for c in alone)
