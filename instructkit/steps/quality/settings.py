"""Quality-filter settings: shipped defaults (``defaults.yaml``) layered with a recipe.

``QualitySettings(config).for_task(filter_key, task)`` gives the merged settings of one
filter for one task, or ``None`` when the filter is off for that task.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

from instructkit._exceptions import RecipeError

__all__ = ["QualitySettings", "load_defaults", "FILTER_KEYS"]

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")


@functools.cache
def _defaults_cached() -> dict[str, Any]:
    return yaml.safe_load(DEFAULTS_PATH.read_text(encoding="utf-8"))


def load_defaults() -> dict[str, Any]:
    """A fresh copy of the shipped defaults."""
    return copy.deepcopy(_defaults_cached())


#: filter keys in run order (the order of ``defaults.yaml``)
FILTER_KEYS: list[str] = list(_defaults_cached()["filters"])


def _merge(base: dict[str, Any], layer: Any) -> dict[str, Any]:
    if layer is None:
        return base
    if layer is False:
        return {**base, "enabled": False}
    if layer is True:
        return {**base, "enabled": True}
    out = dict(base)
    for k, v in layer.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class QualitySettings:
    """The validate stage's quality settings: ``{"filters": {...}, "tasks": {...}}``."""

    def __init__(self, config: dict[str, Any] | None = None,
                 defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults if defaults is not None else load_defaults()
        self.config = dict(config or {})
        self._check()
        self._cache: dict[tuple[str, str], dict[str, Any] | None] = {}

    def _check(self) -> None:
        known = set(self.defaults["filters"])
        errors = []
        for key in (self.config.get("filters") or {}):
            if key not in known:
                errors.append(f"stages.validate.filters.{key}: unknown filter (known: {', '.join(FILTER_KEYS)})")
        for task, layer in (self.config.get("tasks") or {}).items():
            for key in (layer or {}):
                if key not in known:
                    errors.append(f"stages.validate.tasks.{task}.{key}: unknown filter")
        if errors:
            raise RecipeError(errors)

    def for_task(self, key: str, task: str | None) -> dict[str, Any] | None:
        """Merged settings of filter ``key`` for ``task``; None when it is off."""
        ck = (key, task or "")
        if ck not in self._cache:
            merged: dict[str, Any] = {"enabled": True}
            layers = [self.defaults["filters"].get(key),
                      (self.defaults.get("tasks") or {}).get(task, {}).get(key),
                      (self.config.get("filters") or {}).get(key),
                      ((self.config.get("tasks") or {}).get(task) or {}).get(key)]
            for layer in layers:
                merged = _merge(merged, layer)
            self._cache[ck] = merged if merged.get("enabled", True) else None
        return self._cache[ck]

    def enabled_anywhere(self, key: str) -> bool:
        """Whether the filter could apply to some task (so the stage includes it)."""
        tasks = set((self.defaults.get("tasks") or {})) | set((self.config.get("tasks") or {}))
        return any(self.for_task(key, t) is not None for t in (None, *tasks))
