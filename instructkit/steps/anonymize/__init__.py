"""Anonymization: Presidio with clinical recognizers, consistent surrogates, a residual audit.

``AnonymizeStep`` (stage ``anonymize``) replaces PHI in every text of a record;
``AuditStep`` (stage ``audit``, in ``instructkit.steps.audit``) checks the finished
records with an independent detector. Heavy dependencies (presidio, spaCy, Faker) are
imported when a stage is made, not when this package is imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AnonymizeStep", "AuditStep", "PhiDetector", "audit_dataset"]


def __getattr__(name: str) -> Any:
    if name == "AnonymizeStep":
        from instructkit.steps.anonymize.step import AnonymizeStep

        return AnonymizeStep
    if name == "PhiDetector":
        from instructkit.steps.anonymize.detect import PhiDetector

        return PhiDetector
    if name in ("AuditStep", "audit_dataset"):
        from instructkit.steps import audit

        return getattr(audit, name)
    raise AttributeError(name)
