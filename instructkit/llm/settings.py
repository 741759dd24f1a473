"""The recipe's ``llm:`` section (``schemas/llm.schema.json``) as typed settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import RecipeError

__all__ = ["LLMSettings", "EmbeddedSettings", "resolve_cache_dir"]

STRUCTURED_MODES = ("auto", "json_schema", "json_object", "prompt")


@dataclass
class EmbeddedSettings:
    """How the embedded llama.cpp server is started when no ``base_url`` is configured."""

    model_path: str | None = None
    n_ctx: int = 2048
    n_threads: int = 2
    startup_timeout: float = 180.0


@dataclass
class LLMSettings:
    base_url: str | None = None
    model: str | None = None
    #: the *name* of the environment variable that holds the key, never the key
    api_key_env: str | None = None
    provider: str | None = None
    timeout: float = 120.0
    max_retries: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    concurrency: int = 8
    #: HTTP transport under the openai client: aiohttp (from the llm extra) costs far less
    #: CPU per request than httpx, which bounds throughput at high concurrency
    transport: str = "auto"
    rpm: int | None = None
    tpm: int | None = None
    structured_output: str = "auto"
    json_retries: int = 2
    params: dict[str, Any] = field(default_factory=dict)
    allow_non_llm_key: bool = False
    send_phi: bool = False
    cache: bool = True
    cache_dir: str | None = None
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    max_requests: int | None = None
    max_cost: float | None = None
    embedded: EmbeddedSettings = field(default_factory=EmbeddedSettings)

    @property
    def is_embedded(self) -> bool:
        return not self.base_url

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> "LLMSettings":
        """Settings from a recipe's ``llm`` section (already schema-checked by the recipe loader;
        checked again here for the Python API, with errors naming the field)."""
        config = dict(config or {})
        errors = _schema_errors(config)
        if errors:
            raise RecipeError([f"llm.{e}" for e in errors])
        emb = EmbeddedSettings(**config.pop("embedded", {}) or {})
        known = {f for f in cls.__dataclass_fields__ if f != "embedded"}
        kwargs = {k: v for k, v in config.items() if k in known}
        s = cls(embedded=emb, **kwargs)
        from instructkit._secrets import is_non_llm_secret

        if s.api_key_env and is_non_llm_secret(s.api_key_env) and not s.allow_non_llm_key:
            raise RecipeError([f"llm.api_key_env: {s.api_key_env} holds a credential that is not a "
                               "language-model key; a recipe naming it would send it to the endpoint "
                               "in llm.base_url. Name the model's own key variable, or set "
                               "llm.allow_non_llm_key: true if you mean it"])
        if s.is_embedded:
            # llama.cpp's server answers one request at a time: more in flight only queue
            # (and run into the per-request timeout), so keep a small window by default.
            if "concurrency" not in config:
                s.concurrency = 2
        return s


def _schema_errors(config: dict[str, Any]) -> list[str]:
    from jsonschema import Draft202012Validator

    from instructkit._resources import load_schema

    v = Draft202012Validator(load_schema("llm.schema.json"))
    out = []
    for err in sorted(v.iter_errors(config), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in err.absolute_path) or "(section)"
        out.append(f"{path}: {err.message}")
    return out


def resolve_cache_dir(ctx_cache_dir: str | Path | None, settings: LLMSettings) -> Path:
    """Where responses are cached: the run's ``cache_dir``, else ``INSTRUCTKIT_CACHE_DIR``,
    else the recipe's ``llm.cache_dir``, else the user cache directory (so a rerun of the
    same recipe into any output folder is answered from the cache)."""
    if ctx_cache_dir:
        return Path(ctx_cache_dir).expanduser()
    env = os.environ.get("INSTRUCTKIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if settings.cache_dir:
        from instructkit.recipe.paths import resolve_path  # the one resolver (recipe checks it)

        return resolve_path(settings.cache_dir)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("instructkit"))
