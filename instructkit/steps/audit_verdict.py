"""One verdict from one audit: which suspect kinds block, which only report, with counts.

``instructkit audit``, publish gate 1 and the report page print this, so a folder gets the
same answer in all three places (they used to disagree: the gate looked for no names and
said "suspects: none" where the command counted NAME 44). A kind *blocks* when the policy
gives it a limit (the package's: zero for every structured identifier; a folder may lower a
limit or add one, never raise it: ``hub.policy``) and the audit found more than that; a kind
without a limit is only *reported*. The limits are an argument, never read here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditVerdict", "audit_verdict"]


@dataclass(frozen=True)
class AuditVerdict:
    """The audit's answer for one folder under one set of limits."""

    records_scanned: int
    #: suspects held to the limits, by kind
    found: dict[str, int]
    #: kind -> limit (None: reported only)
    limits: dict[str, int | None]
    #: whether names were looked for (spaCy NER); when not, NAME 0 means "not checked"
    names_checked: bool
    #: suspects in text declared free of PHI (never held to the limits)
    phi_free: dict[str, int] = field(default_factory=dict)

    @property
    def blocking_kinds(self) -> dict[str, int]:
        """Kinds that block when found over their limit: kind -> limit."""
        return {t: n for t, n in sorted(self.limits.items()) if n is not None}

    @property
    def report_only_kinds(self) -> list[str]:
        """Kinds that are counted and shown, never block (and found kinds the limits do not name)."""
        return sorted({t for t, n in self.limits.items() if n is None}
                      | {t for t in self.found if t not in self.limits})

    @property
    def over(self) -> dict[str, int]:
        """Blocking kinds found over their limit: kind -> count."""
        return {t: n for t, n in sorted(self.found.items())
                if self.limits.get(t) is not None and n > self.limits[t]}

    @property
    def passed(self) -> bool:
        return not self.over

    def blocking_found(self) -> dict[str, int]:
        return {t: n for t, n in sorted(self.found.items()) if self.limits.get(t) is not None and n}

    def reported_found(self) -> dict[str, int]:
        return {t: n for t, n in sorted(self.found.items()) if self.limits.get(t) is None and n}

    def lines(self, with_phi_free: bool = True) -> list[str]:
        """The verdict as a few lines of text (kinds and counts, never a value)."""
        by_limit: dict[int, list[str]] = defaultdict(list)
        for t, n in self.blocking_kinds.items():
            by_limit[n].append(t)
        rules = "; ".join(f"{', '.join(ts)} (limit {n})" for n, ts in sorted(by_limit.items())) or "none"
        over = self.over
        out = [f"{'FAILED' if over else 'passed'} over {self.records_scanned} records"
               + (f": over the limit: {_listed({t: f'{n} > {self.limits[t]}' for t, n in over.items()})}"
                  if over else ""),
               f"blocking: {_listed(self.blocking_found())} (kinds that block: {rules})",
               f"report only: {_listed(self.reported_found())} "
               f"(kinds that never block: {', '.join(self.report_only_kinds) or 'none'}"
               + ("" if self.names_checked else "; names were not looked for") + ")"]
        if self.phi_free and with_phi_free:
            out.append(f"in text declared free of PHI (reported, not held to the limits): "
                       f"{_listed(self.phi_free)}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "records_scanned": self.records_scanned,
                "blocking": {t: {"count": self.found.get(t, 0), "limit": n}
                             for t, n in self.blocking_kinds.items()},
                "report_only": {t: self.found.get(t, 0) for t in self.report_only_kinds},
                "over_limit": self.over, "names_checked": self.names_checked,
                "phi_free": dict(sorted(self.phi_free.items()))}


def audit_verdict(report: Mapping[str, Any], limits: Mapping[str, int | None]) -> AuditVerdict:
    """The verdict of an audit ``report`` (``suspects_by_type``, ``records_scanned``,
    ``names_checked``, ``phi_free_suspects_by_type``: what ``audit_dataset``, the audit stage
    and ``hub.upload_audit`` write) under ``limits``."""
    found = {str(t): int(n) for t, n in (report.get("suspects_by_type") or {}).items() if n}
    return AuditVerdict(records_scanned=int(report.get("records_scanned") or 0), found=found,
                        limits=dict(limits), names_checked=bool(report.get("names_checked")),
                        phi_free={str(t): int(n) for t, n in
                                  (report.get("phi_free_suspects_by_type") or {}).items() if n})


def _listed(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
