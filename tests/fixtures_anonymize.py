"""Fixtures of the anonymize area: one real PHI detector (Presidio + spaCy) per test session.

Loading spaCy and building the analyzer takes seconds, so every test shares one detector;
stages made in tests get it through ``detector=``.
"""

from __future__ import annotations

import pytest

__all__ = ["phi_detector", "audit_detector", "make_phi_record"]


@pytest.fixture(scope="session")
def phi_detector():
    pytest.importorskip("presidio_analyzer", reason="needs instructkit[anonymize]")
    from instructkit.steps.anonymize.detect import PhiDetector

    return PhiDetector()


@pytest.fixture(scope="session")
def audit_detector(phi_detector):
    # after phi_detector so the spaCy model is loaded once and shared
    from instructkit.steps.audit import AuditDetector

    return AuditDetector(names=True)


def make_phi_record(instruction: str, input: str, output: str, *, record_id: str = "r1",
                    context: list[str] | None = None) -> dict:
    """A schema-valid record with the given texts (for anonymize/audit tests)."""
    from instructkit.records import make_record

    ctx = None if context is None else [{"chunk_id": f"c{i}", "doc_id": "d", "text": t}
                                        for i, t in enumerate(context)]
    return make_record(task="summarize", method="template", instruction=instruction, input=input,
                       output=output, source={"name": "test", "license": "MIT", "record_id": record_id},
                       provenance={"builder": "template", "seed": 0, "template_id": "t",
                                   "template_hash": "0" * 16}, context=ctx)
