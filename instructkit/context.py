"""What a run shares between its builders and stages.

A ``RunContext`` carries the run's settings (seed, recipe, output folder) and owns shared
heavy objects that several steps use (the LLM client, the embedder), created on first
use with ``shared(key, factory)`` and closed once when the run ends. It is passed
explicitly; there is no global pipeline state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("instructkit")

__all__ = ["RunContext"]


@dataclass
class RunContext:
    seed: int = 0
    out_dir: Path | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False
    limit: int | None = None
    max_requests: int | None = None
    cache_dir: Path | None = None
    #: the folder of the recipe file (source paths are resolved against it)
    recipe_dir: Path | None = None
    #: the recipe ships with instructkit (its source folders are not checked)
    trusted_recipe: bool = False
    #: folders a recipe may read from besides the current directory and its own folder
    allowed_paths: list[Path] = field(default_factory=list)
    #: names of sources the recipe declares free of PHI (``phi: false``)
    phi_free_sources: set[str] = field(default_factory=set)
    #: names (``source.name`` of records) of LLM builders whose every document is declared
    #: ``phi: false``: their records' fields marked ``x-source-copy`` are not anonymized
    phi_free_copies: set[str] = field(default_factory=set)
    #: executor settings from the command line (override the recipe's ``execution:``)
    execution: dict[str, Any] = field(default_factory=dict)
    #: facts a step or builder wants in the manifest (e.g. ``send_phi``), keyed by topic
    manifest_notes: dict[str, Any] = field(default_factory=dict)
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)
    _closers: list[Callable[[], Any]] = field(default_factory=list, repr=False)

    def shared(self, key: str, factory: Callable[[], Any],
               close: Callable[[Any], Any] | None = None) -> Any:
        """Return the shared object ``key``, making it with ``factory()`` the first time."""
        if key not in self._shared:
            obj = factory()
            self._shared[key] = obj
            closer = close or getattr(obj, "close", None)
            if closer is not None:
                self._closers.append(closer if close is None else (lambda o=obj: close(o)))
        return self._shared[key]

    def has(self, key: str) -> bool:
        return key in self._shared

    def get(self, key: str, default: Any = None) -> Any:
        return self._shared.get(key, default)

    def close(self) -> None:
        while self._closers:
            fn = self._closers.pop()
            try:
                fn()
            except Exception as exc:  # closing must not hide the run's own outcome
                logger.warning("while closing a shared resource: %s", type(exc).__name__)

    def __enter__(self) -> "RunContext":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
