"""The requests and results of the LLM client (plain dataclasses, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["JsonRequest", "JsonResult", "ChatRequest", "ChatResult"]


@dataclass
class ChatRequest:
    """One chat completion: ``messages`` in OpenAI form, sampling ``params`` and a ``seed``."""

    messages: list[dict[str, str]]
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    prompt_id: str | None = None
    prompt_hash: str | None = None


@dataclass
class JsonRequest(ChatRequest):
    """A chat completion whose answer must be a JSON object matching ``schema``."""

    schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass
class ChatResult:
    ok: bool
    text: str = ""
    finish_reason: str | None = None
    error: str | None = None
    model: str = ""
    provider: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    #: answered from the response cache (no request sent)
    cached: bool = False


@dataclass
class JsonResult:
    ok: bool
    data: dict[str, Any] | None = None
    #: the model's last raw answer (kept for the quarantine when it is not valid)
    raw: str = ""
    error: str | None = None
    model: str = ""
    provider: str = ""
    #: what was sent: the sampling params plus ``seed`` of the answer that was used
    params: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    #: answers asked for (1 + structured-output retries)
    attempts: int = 0
