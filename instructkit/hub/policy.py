"""The publish gate's policy: it comes from the installed package and the ``publish`` command,
never from the folder being judged.

Whoever hands over a dataset folder can edit every file in it (``manifest.json`` and the
``recipe.yaml`` copy are covered by no hash anyone else holds). So a folder may make the gate
stricter, never more lenient:

- **limits**: the package's defaults (zero for every structured identifier). The folder's
  ``stages.audit.limits`` may lower a limit or set one for a report-only type (``NAME: 0``);
  a higher limit, or ``null`` (report only), is ignored and said so in a gate note.
- **text declared free of PHI**: a source's text is held apart only when ``manifest.json``
  lists it under ``phi_free`` *and* the recipe copy declares it ``phi: false`` (two
  declarations that must agree, and the second is published with the data). Even then the
  relaxation covers names, places, dates and URLs only: direct identifiers (SSN, phone,
  email, IP, record numbers, ages over 89) are held to the limits wherever they are
  (``steps.audit.direct_types``).
- **visibility**: private unless the command says ``--public``; ``publish.private`` in the
  folder's recipe is ignored (``private: false`` there made a repo public without asking).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit.steps.audit import PhiFreeScope, default_limits
from instructkit.records import recipe_texts

__all__ = ["GatePolicy", "gate_policy", "read_folder_recipe", "tightened_limits"]

logger = logging.getLogger("instructkit")


@dataclass
class GatePolicy:
    """What gate 1 holds the upload to, and which folder settings it did not honour."""

    limits: dict[str, int | None]
    phi_free: PhiFreeScope
    #: folder settings that would have loosened the gate (shown as gate notes)
    ignored: list[str] = field(default_factory=list)

    #: whether names are looked for with NER: always at the gate, so gate 1 counts what
    #: ``instructkit audit`` counts (a report-only kind is still shown: ``steps.audit_verdict``)
    names: bool = True


def read_folder_recipe(folder: str | Path) -> dict[str, Any]:
    """The folder's ``recipe.yaml`` copy as a dict ({} when absent or unreadable)."""
    from instructkit._yaml import safe_load

    p = Path(folder) / "recipe.yaml"
    if not p.is_file():
        return {}
    try:
        data = safe_load(p.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - an unreadable copy gives no settings (it cannot loosen)
        return {}
    return data if isinstance(data, dict) else {}


def tightened_limits(requested: Mapping[str, Any] | None) -> tuple[dict[str, int | None], list[str]]:
    """The package's limits, lowered where ``requested`` (a folder's ``stages.audit.limits``)
    is stricter; (limits, what was ignored because it would loosen them)."""
    limits = default_limits()
    ignored = []
    for typ, value in (requested or {}).items() if isinstance(requested, Mapping) else ():
        if typ not in limits:
            continue
        current = limits[typ]
        n = _as_limit(value)
        if n is not None and (current is None or n < current):
            limits[typ] = n
        elif n != current:
            ignored.append(f"recipe.yaml stages.audit.limits.{typ} would loosen the package's limit "
                           f"({'report only' if current is None else current}): ignored")
    return limits, ignored


def _as_limit(value: Any) -> int | None:
    """A limit as given (None: report only); anything not a count is ignored as None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value)


def _declared_phi_free_sources(recipe: Mapping[str, Any]) -> set[str]:
    """Sources the recipe copy declares ``phi: false`` (unsaid means PHI)."""
    return {str(s.get("name")) for s in recipe.get("sources") or []
            if isinstance(s, Mapping) and s.get("phi", True) is False}


def _declares_phi_free_documents(recipe: Mapping[str, Any]) -> bool:
    """Whether a builder of the recipe copy reads documents all declared ``phi: false``."""
    for b in recipe.get("builders") or []:
        docs = b.get("documents") if isinstance(b, Mapping) else None
        if docs and all(isinstance(d, Mapping) and d.get("phi", True) is False for d in docs):
            return True
    return False


def phi_free_scope(manifest: Mapping[str, Any], recipe: Mapping[str, Any]) -> tuple[PhiFreeScope, list[str]]:
    """The text held apart at the gate: what ``manifest.json`` and the recipe copy both declare."""
    listed = PhiFreeScope.from_manifest(manifest)
    declared = _declared_phi_free_sources(recipe)
    sources = {s for s in listed.sources if s in declared}
    copies = set(listed.copies) if _declares_phi_free_documents(recipe) else set()
    ignored = [f"manifest.json lists '{s}' as free of PHI but recipe.yaml does not declare it "
               "phi: false: its text is held to the limits" for s in sorted(set(listed.sources) - sources)]
    ignored += [f"manifest.json lists '{c}' as copying PHI-free documents but recipe.yaml declares "
                "none: its text is held to the limits" for c in sorted(set(listed.copies) - copies)]
    return PhiFreeScope(sources, copies, recipe_texts(manifest.get("sources") or ())), ignored


def gate_policy(manifest: Mapping[str, Any] | None, recipe: Mapping[str, Any]) -> GatePolicy:
    """Gate 1's policy for a folder with this ``manifest`` and recipe copy."""
    stages = recipe.get("stages") if isinstance(recipe.get("stages"), Mapping) else {}
    audit_cfg = stages.get("audit") if isinstance(stages.get("audit"), Mapping) else {}
    limits, ignored = tightened_limits(audit_cfg.get("limits"))
    scope, scope_ignored = phi_free_scope(manifest or {}, recipe)
    for note in (*ignored, *scope_ignored):
        logger.warning("publish: %s", note)
    return GatePolicy(limits, scope, [*ignored, *scope_ignored])
