"""RAG prompts are data: ``prompts/rag/<task>.yaml`` (system text, Jinja2 user template, the
JSON schema the model must answer with, default params, and how record fields are made).
Each prompt's id and hash go into every record's provenance."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from instructkit._exceptions import TemplateError
from instructkit._resources import load_prompt_yaml
from instructkit.records import content_hash

__all__ = ["RagPrompt", "load_prompt", "TASK_PROMPTS"]

#: task type -> the prompt it uses by default
TASK_PROMPTS = {
    "guideline_qa": "rag/guideline_qa",
    "recommendation_summary": "rag/recommendation_summary",
    "guideline_adherence": "rag/guideline_adherence",
}

_REQUIRED = ("id", "task", "system", "user", "output_schema", "record")


@dataclass
class RagPrompt:
    id: str
    task: str
    system: str
    user: str
    output_schema: dict[str, Any]
    record: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    answer_field: str = "answer"
    hash: str = ""
    path: Path | None = None

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system.strip()},
                {"role": "user", "content": _render(self.user, variables, self.id).strip()}]

    def schema(self, labels: list[str]) -> dict[str, Any]:
        """The output schema, with citations restricted to the labels of the shown passages."""
        schema = yaml.safe_load(yaml.safe_dump(self.output_schema))  # deep copy
        cit = schema.get("properties", {}).get("citations")
        if cit is not None and labels:
            cit.setdefault("items", {})["enum"] = list(labels)
        return schema

    def record_fields(self, data: dict[str, Any], extra: dict[str, Any]) -> dict[str, str]:
        """instruction / input / output of the record, from the model's JSON."""
        variables = {**extra, **data}
        return {k: " ".join(_render(v, variables, self.id).split()) if k != "output"
                else _render(v, variables, self.id).strip() for k, v in self.record.items()}


@functools.cache
def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                                lstrip_blocks=True, keep_trailing_newline=True)


def _render(template: str, variables: dict[str, Any], prompt_id: str) -> str:
    from jinja2 import TemplateError as JinjaError

    try:
        return _env().from_string(template).render(**variables)
    except JinjaError as exc:
        raise TemplateError(f"prompt {prompt_id}: {type(exc).__name__}: {exc}") from None


@functools.cache
def load_prompt(prompt_id: str) -> RagPrompt:
    """Load ``prompts/<prompt_id>.yaml`` (e.g. ``rag/guideline_qa``), or a YAML file path."""
    path, data = load_prompt_yaml(prompt_id, "prompt")
    missing = [k for k in _REQUIRED if k not in (data or {})]
    if missing:
        raise TemplateError(f"prompt {path}: missing field(s) {', '.join(missing)}")
    return RagPrompt(id=data["id"], task=data["task"], system=data["system"], user=data["user"],
                     output_schema=data["output_schema"], record=dict(data["record"]),
                     params=dict(data.get("params") or {}),
                     answer_field=data.get("answer_field", "answer"),
                     hash=content_hash(data), path=path)
