"""One detector factory (issue 26, item 1): the anonymize stage, the LLM guard and the
detector-based checks get the same detector for the same recipe settings."""

from __future__ import annotations

import pytest

pytest.importorskip("presidio_analyzer", reason="needs instructkit[anonymize]")

SETTINGS = {"deny_terms": ["Kasabach", "Whitaker"], "score_threshold": 0.7, "name_model": None}
TEXTS = ["Kasabach reviewed the chart with Maria Lopez on 03/14/2021.",
         "Whitaker, MRN 00123456, called from (617) 555-0143; his wife Ana Souza answered.",
         "Seen at Riverside Methodist for chest pain; follow up with Dr. Alvarez.",
         "No identifiers: metformin 500 mg twice daily for type 2 diabetes."]


def test_settings_are_one_key_whatever_the_order():
    from instructkit.steps.anonymize.detectors import DetectorSettings, recipe_detector_settings

    a = DetectorSettings.from_stage({"deny_terms": ["b", "a", "a"], "entities": ["NAME", "DATE"]})
    b = DetectorSettings.from_stage({"deny_terms": ["a", "b"], "entities": ["DATE", "NAME"]})
    assert a == b and a.key() == b.key() and hash(a) == hash(b)
    assert DetectorSettings.from_stage(None) == DetectorSettings.from_stage(True) == DetectorSettings()
    assert recipe_detector_settings({"stages": {"anonymize": False}}) == DetectorSettings()
    assert recipe_detector_settings({"stages": {"anonymize": SETTINGS}}).deny_terms == ("Kasabach", "Whitaker")


@pytest.fixture(scope="module")
def run():
    from instructkit.context import RunContext

    with RunContext(recipe={"stages": {"anonymize": SETTINGS}}) as ctx:
        yield ctx


def test_guard_stage_and_factory_find_the_same_spans(run, phi_detector):
    from instructkit.steps.anonymize.detectors import detector_for
    from instructkit.steps.anonymize.guard import phi_guard
    from instructkit.steps.anonymize.operators import apply_findings
    from instructkit.steps.anonymize.step import AnonymizeStep

    stage = AnonymizeStep.from_config(SETTINGS, run)
    guard = phi_guard(run)
    assert guard.detector is stage.detector is detector_for(SETTINGS, run)
    det = stage.detector
    assert det.score_threshold == 0.7 and {"kasabach", "whitaker"} <= det.deny_terms

    stage_found = det.detect_many(TEXTS)
    assert stage_found == guard.detector.detect_many(TEXTS) == detector_for(SETTINGS, run).detect_many(TEXTS)
    # what a model is sent is exactly the stage's placeholder redaction
    scrubbed = guard.scrub_many(TEXTS)
    assert scrubbed == [apply_findings(t, f, lambda _o, x: f"[{x.type}]")[0] for t, f in zip(TEXTS, stage_found)]
    assert scrubbed == [stage.scrub_text(t) for t in TEXTS]
    # the recipe's deny terms reach the guard: the defaults' detector replaces them
    assert "Kasabach" in scrubbed[0] and "Whitaker" in scrubbed[1]
    default = [apply_findings(t, f, lambda _o, x: f"[{x.type}]")[0] for t, f in zip(TEXTS, phi_detector.detect_many(TEXTS))]
    assert "Whitaker" not in default[1]
    assert "Maria Lopez" not in scrubbed[0] and "00123456" not in scrubbed[1] and "Ana Souza" not in scrubbed[1]


def test_findings_module_is_what_the_detector_uses():
    from instructkit.steps.anonymize import detect, findings

    assert detect.Finding is findings.Finding and detect.PHI_TYPES == findings.PHI_TYPES
    assert findings.STRUCTURED_TYPES | findings.NAME_PLACE_TYPES == frozenset(findings.PHI_TYPES)
