"""Anonymization: Presidio with clinical recognizers, consistent surrogates, a residual audit.

``AnonymizeStage`` (stage ``anonymize``) replaces PHI in every text of a record;
``AuditStage`` (stage ``audit``, in ``instructkit.anonymize.audit``) checks the finished
records with an independent detector. Heavy dependencies (presidio, spaCy, Faker) are
imported when a stage is made, not when this package is imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AnonymizeStage", "AuditStage", "PhiDetector", "audit_dataset"]


def __getattr__(name: str) -> Any:
    if name == "AnonymizeStage":
        from .stage import AnonymizeStage

        return AnonymizeStage
    if name == "PhiDetector":
        from .detect import PhiDetector

        return PhiDetector
    if name in ("AuditStage", "audit_dataset"):
        from . import audit

        return getattr(audit, name)
    raise AttributeError(name)
