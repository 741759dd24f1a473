"""One detector per anonymize settings, shared by everything that looks for PHI in a run.

The anonymize stage, the guard in front of every language-model request and the audit's
name and place check ask ``detector_for(settings)``; the same recipe settings
(``stages.anonymize``: ``entities``, ``score_threshold``, ``deny_terms``,
``keep_states_and_countries``, ``name_model``) give the same detector object, so what is
sent to a model is scrubbed exactly as the records are. A run keeps its detectors in its
context (closed with it); outside a run a small cache in this process holds the last few
(a detector holds spaCy and the name model: hundreds of MB).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from instructkit.steps.anonymize.findings import PHI_TYPES

logger = logging.getLogger("instructkit")

__all__ = ["DetectorSettings", "detector_for", "recipe_detector_settings"]


@dataclass(frozen=True)
class DetectorSettings:
    """The anonymize settings a detector is built from (hashable: it is the cache key).
    ``n_process`` and ``batch_size`` change speed, not findings; they are part of the key
    because a detector is built with them."""

    entities: tuple[str, ...] = tuple(sorted(PHI_TYPES))
    score_threshold: float = 0.5
    keep_states_and_countries: bool = True
    deny_terms: tuple[str, ...] = ()
    name_model: str | None = "rampart"
    n_process: int = 1
    batch_size: int = 32

    @classmethod
    def from_stage(cls, config: Mapping[str, Any] | bool | None) -> "DetectorSettings":
        """From a recipe's ``stages.anonymize`` (a mapping, ``true``, or absent: the
        defaults of ``schemas/stages/anonymize.schema.json``)."""
        from instructkit._resources import schema_defaults

        given = dict(config) if isinstance(config, Mapping) else {}
        cfg = {**schema_defaults("stages/anonymize.schema.json"), **given}
        return cls(entities=tuple(sorted(cfg["entities"] or PHI_TYPES)),
                   score_threshold=float(cfg["score_threshold"]),
                   keep_states_and_countries=bool(cfg["keep_states_and_countries"]),
                   deny_terms=tuple(sorted(dict.fromkeys(str(t) for t in cfg["deny_terms"] or ()))),
                   name_model=cfg["name_model"], n_process=int(cfg["n_process"]),
                   batch_size=int(cfg["batch_size"]))

    def key(self) -> str:
        """The context key of this detector (stable across processes)."""
        return "anonymize.detector:" + repr(self)

    def make(self) -> Any:
        from instructkit.steps.anonymize.detect import PhiDetector

        return PhiDetector(entities=self.entities, score_threshold=self.score_threshold,
                           n_process=self.n_process, batch_size=self.batch_size,
                           keep_states_and_countries=self.keep_states_and_countries,
                           extra_deny=self.deny_terms, name_model=self.name_model)


def recipe_detector_settings(recipe: Mapping[str, Any] | None) -> DetectorSettings:
    """The detector settings of a recipe (its ``stages.anonymize``; the defaults when the
    stage is absent or off: whatever is sent to a model is still scrubbed)."""
    stages = (recipe or {}).get("stages")
    return DetectorSettings.from_stage(stages.get("anonymize") if isinstance(stages, Mapping) else None)


#: detectors made outside a run, most recent last
_MADE: OrderedDict[DetectorSettings, Any] = OrderedDict()
#: how many detectors outside a run are kept
KEEP_OUTSIDE_RUN = 2


def detector_for(settings: DetectorSettings | Mapping[str, Any] | None = None, ctx: Any = None) -> Any:
    """The ``PhiDetector`` for ``settings`` (a ``DetectorSettings``, or a recipe's
    ``stages.anonymize`` mapping): the run's own when ``ctx`` is given, else this process's."""
    if not isinstance(settings, DetectorSettings):
        settings = DetectorSettings.from_stage(settings)
    if ctx is not None:
        return ctx.shared(settings.key(), settings.make)
    found = _MADE.get(settings)
    if found is None:
        found = _MADE[settings] = settings.make()
        while len(_MADE) > KEEP_OUTSIDE_RUN:
            _MADE.popitem(last=False)
    _MADE.move_to_end(settings)
    return found

