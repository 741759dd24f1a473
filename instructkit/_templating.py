"""The one Jinja environment every template, prompt and rubric is rendered in.

Templates come from recipes and prompt files a user may have been handed: they are
untrusted. ``sandboxed_env`` is Jinja's ``ImmutableSandboxedEnvironment`` (no access to
``__globals__``, ``__class__`` and the like, no mutating calls, bounded ``range``) with
``StrictUndefined`` (a variable the template uses but is not given is an error, not "").
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["sandboxed_env"]


@functools.cache
def _cached(trim: bool, keep_trailing_newline: bool, filters: tuple[tuple[str, Any], ...]):
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                        trim_blocks=trim, lstrip_blocks=trim,
                                        keep_trailing_newline=keep_trailing_newline)
    env.filters.update(dict(filters))
    return env


def sandboxed_env(*, trim: bool = True, keep_trailing_newline: bool = False,
                  filters: dict[str, Any] | None = None):
    """A shared sandboxed environment with these options (one per combination)."""
    return _cached(trim, keep_trailing_newline, tuple(sorted((filters or {}).items())))
