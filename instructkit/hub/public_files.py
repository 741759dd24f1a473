"""The public copies of the folder's manifest and recipe: what ``publish`` uploads in their place.

- Every absolute local path, anywhere (a source's location, a stage's settings, a path
  inside a sentence), is cut to its last part: a path names a user and a folder layout.
- The inline ``rows`` of a source that may hold PHI (``phi: true``, or unsaid) never travel:
  the uploaded recipe holds their count and sha256 instead (the local copy keeps them, so
  the folder can still be rebuilt). Rows of a ``phi: false`` source stay.

The gate audits these copies, the exact bytes uploaded, not the folder's files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

__all__ = ["public_manifest", "public_recipe", "strip_local_paths", "withheld_rows"]

#: one part of a path (no separators, spaces, quotes or brackets)
_SEG = r"[^\s/\\\"'<>|,;()\[\]{}]+"
#: an absolute local path inside a text: a ``file://`` URL, POSIX with two parts or more
#: (``/home/jo/x.csv``; not a URL's path, not ``and/or``), home (``~/x``), a Windows drive or share
_LOCAL_PATH = re.compile("|".join([
    rf"\bfile://(?:localhost)?(?:/{_SEG})+/?",
    rf"(?<![\w:/.~$}}-])/{_SEG}(?:/{_SEG})+/?",
    rf"(?<![\w/])~/{_SEG}(?:/{_SEG})*/?",
    rf"\b[A-Za-z]:[\\/]{_SEG}(?:[\\/]{_SEG})*[\\/]?",
    rf"(?<![\w\\])\\\\{_SEG}(?:\\{_SEG})+",
]))


def _last_part(match: re.Match) -> str:
    path = match.group(0)
    name = PurePosixPath(path.replace("\\", "/").rstrip("/")).name
    return name or "."


def strip_local_paths(text: str) -> str:
    """``text`` with every absolute local path cut to its last part (``/home/jo/a.csv`` ->
    ``a.csv``); URLs are left as they are."""
    if not isinstance(text, str) or not any(c in text for c in "/\\~"):
        return text
    return _LOCAL_PATH.sub(_last_part, text)


def _strip_paths_in(value: Any) -> Any:
    if isinstance(value, str):
        return strip_local_paths(value)
    if isinstance(value, Mapping):
        return {strip_local_paths(str(k)): _strip_paths_in(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strip_paths_in(v) for v in value]
    return value


def public_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest as published: every absolute local path, in any value, cut to its name."""
    return _strip_paths_in(json.loads(json.dumps(manifest, default=str)))


def withheld_rows(rows: Any) -> str:
    """What stands for a PHI source's inline rows in the uploaded recipe."""
    blob = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    n = len(rows) if isinstance(rows, list) else 1
    return f"<{n} inline rows withheld: sha256 {hashlib.sha256(blob).hexdigest()}>"


def _phi_inline_sources(recipe: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in recipe.get("sources") or []
            if isinstance(s, Mapping) and "rows" in s and s.get("phi", True) is not False]


def public_recipe(raw: bytes) -> bytes:
    """The recipe copy as published: local paths cut to names and the inline rows of PHI
    sources withheld. Unchanged bytes when there is nothing to change (comments kept)."""
    import yaml

    from instructkit._yaml import safe_load

    text = raw.decode("utf-8", errors="replace")
    try:
        data = safe_load(text)
    except Exception:  # noqa: BLE001 - not YAML: sent as read (the gate audits it as text)
        data = None
    if isinstance(data, dict) and _phi_inline_sources(data):
        data = dict(data)
        data["sources"] = [({**s, "rows": withheld_rows(s["rows"])} if s in _phi_inline_sources(data) else s)
                           for s in data.get("sources") or []]
        text = ("# recipe copy as published by instructkit: the inline rows of sources that may hold "
                "PHI are withheld\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return strip_local_paths(text).encode("utf-8")
