"""Language models for instructkit: one client over any OpenAI-compatible endpoint, with
the embedded llama.cpp server (SmolLM2-135M-Instruct) as the default.

    from instructkit.llm import llm_from_context, JsonRequest
    client = llm_from_context(ctx)
    results = client.complete_json_many([JsonRequest(messages=[...], schema={...})])
"""

from __future__ import annotations

from instructkit.llm.cache import ResponseCache, request_key
from instructkit.llm.client import LLMClient, llm_from_context
from instructkit.llm.ledger import UsageLedger
from instructkit.llm.server import EmbeddedServer, find_default_gguf
from instructkit.llm.settings import LLMSettings, resolve_cache_dir
from instructkit.llm.types import ChatRequest, ChatResult, JsonRequest, JsonResult

__all__ = [
    "ChatRequest",
    "ChatResult",
    "EmbeddedServer",
    "JsonRequest",
    "JsonResult",
    "LLMClient",
    "LLMSettings",
    "ResponseCache",
    "UsageLedger",
    "find_default_gguf",
    "llm_from_context",
    "request_key",
    "resolve_cache_dir",
]
