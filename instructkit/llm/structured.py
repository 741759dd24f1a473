"""Structured output: ask for JSON matching a schema, then parse and validate the answer."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

__all__ = ["response_format", "schema_instruction", "parse_json_answer", "validate_answer"]

_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)


def response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The ``response_format`` for ``mode`` (None for prompt-and-parse)."""
    if mode == "json_schema":
        # OpenAI, vLLM, Ollama: constrained decoding to the schema
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    if mode == "json_object":
        # llama.cpp (llama-cpp-python) and Anyscale: json_object with a schema -> grammar
        return {"type": "json_object", "schema": schema}
    return None


def schema_instruction(schema: dict[str, Any]) -> str:
    """What prompt-and-parse adds to the system message."""
    return ("Answer with one JSON object only, no prose and no code fences, matching this "
            "JSON Schema:\n" + json.dumps(schema, sort_keys=True))


def with_schema_instruction(messages: list[dict], schema: dict[str, Any]) -> list[dict]:
    note = schema_instruction(schema)
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0]['content']}\n\n{note}"
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


def parse_json_answer(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` or ``(None, reason)``; tolerates code fences and prose around the object."""
    if not text or not text.strip():
        return None, "empty answer"
    s = _FENCE.sub("", text.strip())
    # strict=False: small models put raw newlines inside JSON strings; the text is still
    # unambiguous, and the schema check decides whether the answer is usable
    try:
        return json.loads(s, strict=False), None
    except json.JSONDecodeError:
        pass
    start = s.find("{")
    if start < 0:
        return None, "no JSON object in the answer"
    try:
        value, _ = json.JSONDecoder(strict=False).raw_decode(s[start:])
        return value, None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at char {exc.pos})"


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_json))


def validate_answer(value: Any, schema: dict[str, Any]) -> str | None:
    """None when ``value`` matches ``schema``, else a reason naming the field (never the value)."""
    errors = sorted(_validator(json.dumps(schema, sort_keys=True)).iter_errors(value),
                    key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    parts = []
    for err in errors[:3]:
        path = ".".join(str(p) for p in err.absolute_path) or "(answer)"
        parts.append(f"{path}: fails '{err.validator}'")
    return "does not match the schema: " + "; ".join(parts)
