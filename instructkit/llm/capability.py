"""Is a model too small to write grounded prose itself?

Used where a builder chooses its mode (``answer_mode: auto`` of the rag builder) and where
the card explains why the judge did not run. The embedded SmolLM2-135M is small by
definition; any other model is small when its name states fewer than
``SMALL_MODEL_MAX_PARAMS`` parameters ("Qwen2.5-1.5B-Instruct", "SmolLM2-360M"). A name
that states no size (a hosted model such as "gpt-4o-mini") counts as capable: a recipe
that knows better sets the builder's mode explicitly.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SMALL_MODEL_MAX_PARAMS", "model_params", "is_small_model"]

#: below this many parameters a model writes unsupported answers too often to use its prose
SMALL_MODEL_MAX_PARAMS = 3e9

_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*([mb])(?![a-z])", re.IGNORECASE)


def model_params(name: str | None) -> float | None:
    """Parameters a model name states (``135M`` -> 1.35e8, ``8x7B`` -> 5.6e10), else None."""
    if not name:
        return None
    base = name.rsplit("/", 1)[-1]
    experts = re.search(r"(\d+)x(\d+(?:\.\d+)?)b", base, re.IGNORECASE)
    if experts:
        return float(experts.group(1)) * float(experts.group(2)) * 1e9
    sizes = [float(n) * (1e6 if u.lower() == "m" else 1e9) for n, u in _SIZE.findall(base)]
    return max(sizes) if sizes else None


def is_small_model(client: Any) -> bool:
    """True for the embedded model and for models whose name states fewer than
    ``SMALL_MODEL_MAX_PARAMS`` parameters; ``client`` is an ``LLMClient`` or a model name."""
    if isinstance(client, str) or client is None:
        name, embedded = client, False
    else:
        settings = getattr(client, "settings", None)
        embedded = bool(getattr(settings, "is_embedded", False))
        name = getattr(client, "model", None)
    if embedded:
        return True
    size = model_params(name)
    return size is not None and size < SMALL_MODEL_MAX_PARAMS
