"""Recipes: YAML files that name sources, builders, stages, output formats and card metadata.

A recipe is checked against ``schemas/recipe.schema.json`` (and the per-part schemas it
refers to) before any work starts; every error is listed as ``path.to.field: message``.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from instructkit._exceptions import RecipeError
from instructkit._yaml import MAX_BYTES, YAMLLimitError, safe_load, shorten
from instructkit._resources import builders_dir, load_schema, schemas_dir

__all__ = ["Recipe", "load_recipe", "validate_recipe", "resolve_path", "find_recipe"]

SCHEMA_BASE = "https://instructkit.dev/schemas/"


@dataclass
class Recipe:
    """A loaded, validated recipe: its data, the text it came from and where."""

    data: dict[str, Any]
    text: str
    path: Path | None = None

    @property
    def shipped(self) -> bool:
        """A recipe that ships with instructkit (``builders/``): the product's own, so the
        folders it reads are not checked against the current directory."""
        if self.path is None:
            return False
        try:
            return self.path.resolve().parent == builders_dir().resolve()
        except FileNotFoundError:
            return False

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@functools.cache
def schema_registry():
    """Every shipped schema by its ``$id`` (the recipe's validator and the path-field walk
    resolve ``$ref`` through it)."""
    import json

    from referencing import Registry, Resource

    resources = []
    for path in sorted(schemas_dir().rglob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        uri = schema.get("$id") or SCHEMA_BASE + path.relative_to(schemas_dir()).as_posix()
        resources.append((uri, Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@functools.cache
def _validator():
    from jsonschema import Draft202012Validator

    registry = schema_registry()
    schema = load_schema("recipe.schema.json")
    return Draft202012Validator(schema, registry=registry)


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file path, or the name of a shipped recipe (``quickstart`` -> builders/quickstart.yaml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = builders_dir() / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
    if not p.exists() and shipped.is_file() and len(p.parts) == 1:
        return shipped
    raise RecipeError([f"(file): recipe not found: {name_or_path}"], recipe=str(name_or_path))


def load_recipe(source: str | Path | dict[str, Any]) -> Recipe:
    """Load and validate a recipe from a file, a shipped recipe name, or a dict."""
    if isinstance(source, dict):
        text = yaml.safe_dump(source, sort_keys=False)
        data, path, label = source, None, "(dict)"
    else:
        path = find_recipe(source)
        label = str(path)
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RecipeError([f"(file): the recipe is {size:,} bytes, over the {MAX_BYTES:,}-byte limit"],
                              recipe=label)
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecipeError([f"(file): not valid UTF-8 at byte {exc.start}"], recipe=label) from None
        try:
            data = safe_load(text)
        except YAMLLimitError as exc:
            raise RecipeError([f"(file): {exc}"], recipe=label) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise RecipeError([f"(file): {where}not valid YAML ({getattr(exc, 'problem', exc)})"],
                              recipe=label) from None
    if not isinstance(data, dict):
        raise RecipeError(["(recipe): must be a mapping with name, sources and builders"], recipe=label)
    validate_recipe(data, label)
    return Recipe(data=data, text=text, path=path)


def validate_recipe(data: dict[str, Any], label: str = "(recipe)") -> None:
    """Raise ``RecipeError`` listing every schema and cross-reference error."""
    errors = []
    for err in _validator().iter_errors(data):
        errors.extend(_flatten(err))
    errors = sorted(set(errors))
    if not errors:
        errors = _semantic_errors(data)
    if errors:
        raise RecipeError(errors, recipe=label)


def _flatten(err) -> list[str]:
    """Report the innermost errors of if/then, anyOf and $ref chains with their full paths."""
    if err.context and err.validator in ("anyOf", "oneOf"):
        # pick the branch that went deepest (the one the user most likely meant)
        best = max(err.context, key=lambda e: (len(e.absolute_path), -len(list(e.context or []))))
        if best.validator not in ("type",) or len(best.absolute_path) > len(err.absolute_path):
            return _flatten(best)
    path = ".".join(str(p) for p in err.absolute_path) or "(recipe)"
    return [f"{path}: {_message(err)}"]


def _message(err) -> str:
    """jsonschema's message, with the offending value cut short (a recipe value can be huge)."""
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        return "unknown field(s): " + ", ".join(str(e)[:60] for e in extra[:20])
    if err.validator == "required":
        missing = [p for p in err.validator_value if isinstance(err.instance, dict) and p not in err.instance]
        return ", ".join(repr(m) for m in missing) + " is required"
    if err.validator == "enum":
        return f"{shorten(err.instance)} is not one of {err.validator_value}"
    if err.validator == "type":
        return f"{shorten(err.instance)} is not of type {err.validator_value!r}"
    msg = err.message
    return msg if len(msg) <= 300 else msg[:280] + f"... ({len(msg):,} chars)"


def _semantic_errors(data: dict[str, Any]) -> list[str]:
    from instructkit._secrets import is_non_llm_secret

    errors = []
    llm = data.get("llm") or {}
    key_env = llm.get("api_key_env")
    if key_env and is_non_llm_secret(key_env) and not llm.get("allow_non_llm_key"):
        errors.append(f"llm.api_key_env: {key_env} holds a credential that is not a language-model "
                      "key; a recipe naming it would send it to the endpoint in llm.base_url. Name "
                      "the model's own key variable, or set llm.allow_non_llm_key: true if you mean it")
    errors.extend(_where_errors(data.get("sources", [])))
    names = [s["name"] for s in data.get("sources", [])]
    seen = set()
    for i, n in enumerate(names):
        if n in seen:
            errors.append(f"sources.{i}.name: duplicate source name '{n}'")
        seen.add(n)
    for i, b in enumerate(data.get("builders", [])):
        for j, s in enumerate(b.get("sources", []) or []):
            if s not in seen:
                errors.append(f"builders.{i}.sources.{j}: no source named '{s}' (have: {', '.join(names) or 'none'})")
        if b.get("type") == "template":
            from instructkit.recordbuilders.template import template_path

            from instructkit._exceptions import TemplateError

            tid = b.get("templates") or b.get("task")
            try:
                found = bool(tid) and template_path(tid).is_file()
            except TemplateError as exc:
                errors.append(f"builders.{i}.templates: {exc}")
                continue
            if tid and not found:
                errors.append(f"builders.{i}.templates: no template set '{tid}' in prompts/templates/")
    from instructkit.dataset.phases import phase_errors  # issue 18: output.phases

    errors.extend(phase_errors(data.get("output")))
    return errors


def _where_errors(sources: list[dict[str, Any]]) -> list[str]:
    """Each ``where`` pattern must compile in RE2 (the engine that cannot backtrack forever)."""
    from instructkit._exceptions import SourceError
    from instructkit.recipe.sources import compile_where

    errors = []
    for i, src in enumerate(sources):
        for key, pattern in (src.get("where") or {}).items():
            try:
                compile_where(pattern, f"sources.{i}.where.{key}")
            except SourceError as exc:
                errors.append(str(exc))
    return errors


def resolve_path(value: str, base: Path | None = None) -> Path:
    """Expand ``${VAR:-default}`` and ``pkg://samples/...``; relative paths use the current dir.

    The one resolver (``recipe/paths.py``): ``pkg://samples/`` stays inside the samples
    folder and an encoded ``..`` is refused (``SourceError``)."""
    from instructkit.recipe.paths import resolve_path as resolve

    return resolve(value, base)
