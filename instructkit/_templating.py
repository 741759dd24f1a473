"""The one Jinja environment every template, prompt and rubric is rendered in.

Templates come from recipes and prompt files a user may have been handed: they are
untrusted. ``sandboxed_env`` is Jinja's ``ImmutableSandboxedEnvironment`` (no access to
``__globals__``, ``__class__`` and the like, no mutating calls, bounded ``range``) with
``StrictUndefined`` (a variable the template uses but is not given is an error, not "").

Each rendering is also bounded: nested ``range`` loops or ``'x' * 10**9`` would otherwise
grow to gigabytes. A rendering that passes ``MAX_RENDER_CHARS`` characters or runs longer
than ``MAX_RENDER_SECONDS`` raises ``RenderLimitError`` (``render_too_large`` /
``render_timeout``); the builder quarantines that one record and goes on.
"""

from __future__ import annotations

import functools
import operator
import threading
import time
from typing import Any

from instructkit._exceptions import RenderLimitError

__all__ = ["sandboxed_env", "MAX_RENDER_CHARS", "MAX_RENDER_SECONDS"]

#: far above any prompt or record text (a long discharge summary is ~30k characters)
MAX_RENDER_CHARS = 2_000_000
MAX_RENDER_SECONDS = 5.0

_budget = threading.local()  # the deadline of the rendering under way in this thread


def _check_time() -> None:
    deadline = getattr(_budget, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise RenderLimitError("render_timeout", f"a template ran longer than {MAX_RENDER_SECONDS:g} s")


def _too_large(size: int) -> RenderLimitError:
    return RenderLimitError("render_too_large",
                            f"a template rendered {size:,}+ characters, over {MAX_RENDER_CHARS:,}")


def _product_size(left: Any, right: Any) -> int:
    """The length ``left * right`` would have, for a sequence times a number (else 0)."""
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and not isinstance(n, bool):
            return len(seq) * n
    return 0


def _bounded_template_class():
    from jinja2 import Template

    class BoundedTemplate(Template):
        """``render`` streams the output and stops at the size or time bound."""

        def render(self, *args: Any, **kwargs: Any) -> str:
            outer = getattr(_budget, "deadline", None)
            _budget.deadline = outer or time.monotonic() + MAX_RENDER_SECONDS
            try:
                parts, size = [], 0
                for chunk in self.generate(*args, **kwargs):
                    size += len(chunk)
                    if size > MAX_RENDER_CHARS:
                        raise _too_large(size)
                    _check_time()
                    parts.append(chunk)
                return "".join(parts)
            finally:
                _budget.deadline = outer

    return BoundedTemplate


def _bounded_env_class():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        """Every call, attribute and operator passes a time check; ``*`` and ``**`` may not
        build a value past the size bound in one step."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
            _check_time()
            if op == "*" and _product_size(left, right) > MAX_RENDER_CHARS:
                raise _too_large(_product_size(left, right))
            if op == "**" and isinstance(right, (int, float)) and abs(right) > 1024:
                raise _too_large(MAX_RENDER_CHARS)
            return operator.mul(left, right) if op == "*" else operator.pow(left, right)

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            _check_time()
            return super().call(context, obj, *args, **kwargs)

        def getattr(self, obj: Any, attribute: str) -> Any:
            _check_time()
            return super().getattr(obj, attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            _check_time()
            return super().getitem(obj, argument)

    BoundedSandbox.template_class = _bounded_template_class()
    return BoundedSandbox


@functools.cache
def _cached(trim: bool, keep_trailing_newline: bool, filters: tuple[tuple[str, Any], ...]):
    from jinja2 import StrictUndefined

    env = _bounded_env_class()(undefined=StrictUndefined, autoescape=False,
                               trim_blocks=trim, lstrip_blocks=trim,
                               keep_trailing_newline=keep_trailing_newline)
    env.filters.update(dict(filters))
    return env


def sandboxed_env(*, trim: bool = True, keep_trailing_newline: bool = False,
                  filters: dict[str, Any] | None = None):
    """A shared sandboxed environment with these options (one per combination)."""
    return _cached(trim, keep_trailing_newline, tuple(sorted((filters or {}).items())))
