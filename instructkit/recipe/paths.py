"""Where a recipe may read from.

A recipe is untrusted input (a colleague's file): it must not read ``~/.ssh`` or ``/etc``
into a dataset unnoticed. A source path from a recipe is read only when it lies, after
following symlinks, under one of:

- the current directory, or the recipe's own folder;
- a folder the *user* named: the value of an environment variable the path starts with
  (``${INSTRUCTKIT_SHARED_DATA}/medquad``: the variable is set, so its value is the user's
  choice; a ``${VAR:-default}`` whose variable is unset falls back to the recipe's default,
  which is checked like any other path), a folder in ``INSTRUCTKIT_ALLOW_PATHS``
  (``os.pathsep``-separated), or one given with ``instructkit build --allow-path DIR``;
- the sample inputs shipped in the package (``pkg://samples/...``).

The recipes that ship with instructkit (``builders/``) are the product's own and are not
checked.

Anything else is refused with one message naming the recipe field and how to allow it.
Python code that builds a ``Source`` itself is the user's own code and is not checked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from instructkit._exceptions import SourceError

__all__ = ["checked_source_path", "allowed_roots"]

_LEADING_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def allowed_roots(ctx: Any = None) -> list[Path]:
    roots = [Path.cwd()]
    recipe_dir = getattr(ctx, "recipe_dir", None)
    if recipe_dir is not None:
        roots.append(Path(recipe_dir))
    for p in os.environ.get("INSTRUCTKIT_ALLOW_PATHS", "").split(os.pathsep):
        if p.strip():
            roots.append(Path(p).expanduser())
    roots += [Path(p) for p in getattr(ctx, "allowed_paths", None) or ()]
    return [r.resolve() for r in roots]


def checked_source_path(value: str, ctx: Any, field: str) -> Path:
    """Resolve a recipe's source path and check it against the allowed roots."""
    from instructkit.recipe.load import resolve_path

    path = resolve_path(value)
    if value.startswith("pkg://samples/") or getattr(ctx, "trusted_recipe", False):
        return path
    roots = allowed_roots(ctx)
    m = _LEADING_VAR.match(value)
    if m and os.environ.get(m.group(1)):
        roots.append(Path(os.environ[m.group(1)]).expanduser().resolve())
    real = path.resolve()
    if any(real == r or r in real.parents for r in roots):
        return path
    raise SourceError(f"{field}: {path} is outside the current directory and the recipe's folder; "
                      "a recipe may read only there. If you trust this recipe, allow the folder "
                      "with --allow-path DIR or INSTRUCTKIT_ALLOW_PATHS, or start the path with an "
                      "environment variable you set (e.g. ${INSTRUCTKIT_SHARED_DATA}/...)")
