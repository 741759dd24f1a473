"""Research prose: text about a cohort, with no individual in it.

HIPAA Safe Harbor's identifiers are those *of the individual* (or of the individual's
relatives, employers or household members). A research abstract reports on a cohort:
"From January 2006 to December 2008, 220 patients undergoing ... at Seoul National
University Hospital were reviewed retrospectively". Its dates are study periods, its
hospitals and towns are study sites, its ages bound a population ("aged 92 or 93"), its
capitalised words are eponyms, cited authors, brands and groups ("Cox regression",
"Weathers, Litz, Herman, 1993", "Sami"). None of them is an individual's.

A text is *research prose* when it shows at least ``min_groups`` kinds of cohort evidence
(a count of people or cases, a study design, statistics, a study's own framing) and not a
single sign of an individual (he/she, "a 45-year-old", a title before a name, "I"/"my", a
record label, a case report). A person named by a common noun ("the patient", "a child")
is such a sign too unless the cohort evidence is strong (``strong_groups`` kinds): research
prose says "should a patient with ... be anticoagulated?" as well. Clinical notes, clinician questions,
patient messages and case reports are about one person and always have such a sign, so
they are never research prose; a research text that mentions one patient is not either.

In research prose the findings of ``drop_types`` (names, places, facilities, dates, ages,
URLs) are not PHI; fixed-shape identifiers (phone, e-mail, record and plan numbers, SSN,
street addresses, ZIP codes ...) still are. The cue patterns are data
(``recognizers.yaml``, ``research_prose``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["GENERAL", "RESEARCH", "ProseScope"]

#: the scope of a text where every recognizer counts
GENERAL = "general"
#: research prose about a cohort, with no individual in it
RESEARCH = "research"


class ProseScope:
    """Tells research prose (about a cohort, no individual) from everything else."""

    def __init__(self, cfg: dict[str, Any] | None) -> None:
        cfg = cfg or {}
        self.enabled = bool(cfg.get("enabled", bool(cfg)))
        self.cohort = [re.compile(rx) for rx in (cfg.get("cohort") or {}).values()]
        self.individual = [re.compile(rx) for rx in cfg.get("individual") or ()]
        self.generic_individual = [re.compile(rx) for rx in cfg.get("generic_individual") or ()]
        self.strong_groups = int(cfg.get("strong_groups", len(self.cohort) + 1))
        self.min_groups = int(cfg.get("min_groups", 2))
        self.drop_types = frozenset(cfg.get("drop_types") or ())

    def mentions_individual(self, text: str) -> bool:
        """Whether ``text`` shows a sign of one person (he/she, an age, a title before a name, ...)."""
        return any(rx.search(text) for rx in self.individual)

    def of(self, text: str) -> str:
        """``RESEARCH`` or ``GENERAL`` for one text (or the running texts of one record)."""
        if not self.enabled or not text or not self.cohort:
            return GENERAL
        if self.mentions_individual(text):
            return GENERAL
        groups = sum(1 for rx in self.cohort if rx.search(text))
        if groups < self.min_groups:
            return GENERAL
        if groups < self.strong_groups and any(rx.search(text) for rx in self.generic_individual):
            return GENERAL
        return RESEARCH

    def is_phi(self, scope: str, typ: str) -> bool:
        """Whether a finding of type ``typ`` is PHI in a text of ``scope``."""
        return scope != RESEARCH or typ not in self.drop_types
