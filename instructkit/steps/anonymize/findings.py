"""What the PHI detector finds, and the kinds it knows: the vocabulary the audit, the report
and the card share with the anonymize stage without importing the detector (Presidio, spaCy
and 1.9k lines of rules stay out of a report page)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding", "PHI_TYPES", "STRUCTURED_TYPES", "NAME_PLACE_TYPES"]

#: every type the stage replaces; placeholders are ``[TYPE]``
PHI_TYPES = ("NAME", "DATE", "AGE", "PHONE", "EMAIL", "URL", "IP", "SSN", "MRN", "ID",
             "ACCOUNT", "HEALTH_PLAN", "ACCESSION", "LICENSE", "DEVICE_ID", "VEHICLE_ID",
             "ADDRESS", "LOCATION", "ZIP", "HOSPITAL")
#: names and places: found by language, not by shape (leak target < 5%, then < 2%)
NAME_PLACE_TYPES = frozenset({"NAME", "ADDRESS", "LOCATION", "HOSPITAL"})
#: identifiers with a fixed shape (leak target < 1%); the others are names and places
STRUCTURED_TYPES = frozenset(PHI_TYPES) - NAME_PLACE_TYPES


@dataclass(frozen=True)
class Finding:
    """One PHI span in one text: ``text[start:end]`` is of ``type``."""

    start: int
    end: int
    type: str
    score: float
    recognizer: str = ""
