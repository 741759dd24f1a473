"""Prompt sets as data: ``prompts/<id>.yaml`` with Jinja2 templates and answer schemas."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit._exceptions import TemplateError
from instructkit._resources import load_prompt_yaml
from instructkit.records import content_hash

__all__ = ["Prompt", "PromptSet", "load_prompt_set"]

HASH_LENGTH = 16


@functools.cache
def _env():
    import jinja2

    # StrictUndefined: a template that uses a variable we do not pass is an error, not ""
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


@dataclass(frozen=True)
class Prompt:
    id: str
    system: str
    user: str
    schema: dict[str, Any]
    file: str

    @property
    def hash(self) -> str:
        """Changes whenever what the model is asked changes (texts or schema)."""
        return content_hash({"system": self.system, "user": self.user, "schema": self.schema},
                            length=HASH_LENGTH)

    def messages(self, **variables: Any) -> list[dict[str, str]]:
        import jinja2

        try:
            user = _env().from_string(self.user).render(**variables)
            system = _env().from_string(self.system).render(**variables)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{self.file}: prompt '{self.id}': {exc}") from None
        return [{"role": "system", "content": system.strip()},
                {"role": "user", "content": _squeeze_blank_lines(user)}]


def _squeeze_blank_lines(text: str) -> str:
    out: list[str] = []
    for line in text.strip().splitlines():
        if line.strip() or (out and out[-1].strip()):
            out.append(line.rstrip())
    return "\n".join(out).strip()


@dataclass
class PromptSet:
    """One YAML file: its prompts by key, plus any other data it holds (operations...)."""

    id: str
    file: str
    prompts: dict[str, Prompt]
    data: dict[str, Any]

    @property
    def hash(self) -> str:
        return content_hash({k: p.hash for k, p in sorted(self.prompts.items())},
                            {k: v for k, v in self.data.items() if k not in ("prompts", "version")},
                            length=HASH_LENGTH)

    def __getitem__(self, key: str) -> Prompt:
        return self.prompts[key]


def load_prompt_set(name_or_path: str | Path) -> PromptSet:
    """``synthetic/self_instruct`` (under ``prompts/``) or a path to a YAML file."""
    path, data = load_prompt_yaml(name_or_path, "prompt set")
    data = data or {}
    prompts = {}
    for key, p in (data.get("prompts") or {}).items():
        missing = [f for f in ("id", "user", "schema") if f not in p]
        if missing:
            raise TemplateError(f"{path}: prompt '{key}' lacks {', '.join(missing)}")
        prompts[key] = Prompt(id=p["id"], system=p.get("system", ""), user=p["user"],
                              schema=p["schema"], file=str(path))
    return PromptSet(id=data.get("id", path.stem), file=str(path), prompts=prompts, data=data)
