"""Every path a recipe names, found from the schemas, checked before a build starts.

A schema marks a path-valued field with ``"x-instructkit-path": KIND``:

- ``read``: always a path the build reads;
- ``write``: a folder the build writes into (``index_dir``, ``llm.cache_dir``);
- ``read-or-hub-id``: a Hugging Face id, or a local path when the value starts with
  ``/ . ~ $ pkg://`` or names something that exists (``datasets`` would load it from disk);
  ``hf:owner/name`` is always an id;
- ``read-or-prompt-id``: an id under ``prompts/`` (confined there by ``prompt_file``), or a
  path when it ends in ``.yaml``/``.yml`` or starts like one.

``recipe_path_fields`` walks the recipe's data alongside the schema (following ``$ref``,
``items``, ``if``/``then``, ``anyOf``...) so a field added to a schema is checked as soon as
it is marked; ``tests/test_hostile_sandbox.py`` fails when a path-like field is not marked.
"""

from __future__ import annotations

import json
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructkit._exceptions import RecipeError, SourceError

__all__ = ["PATH_KEYWORD", "PathField", "recipe_path_fields", "check_recipe_paths", "is_local_path"]

PATH_KEYWORD = "x-instructkit-path"
_PATH_STARTS = ("/", ".", "~", "$", "pkg://", "\\")
_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool,
               "integer": int, "number": (int, float), "null": type(None)}


@dataclass(frozen=True)
class PathField:
    field: str   # dotted location in the recipe: builders.0.index_dir
    value: str   # as written in the recipe
    kind: str    # the schema's x-instructkit-path


def is_local_path(value: str, kind: str) -> bool:
    """Whether a value of a ``read-or-*`` field names a local path (else it is an id)."""
    if kind in ("read", "write") or _disguised(value):
        return True
    if kind == "read-or-hub-id":
        if value.startswith("hf:"):
            return False
        return value.startswith(_PATH_STARTS) or Path(value).expanduser().exists()
    if kind == "read-or-prompt-id":
        return value.startswith(_PATH_STARTS) or value.endswith((".yaml", ".yml"))
    raise ValueError(f"unknown {PATH_KEYWORD} kind '{kind}'")


def _disguised(value: str) -> bool:
    """Percent escapes or look-alike characters: never an id, checked (and refused) as a path."""
    return value != unicodedata.normalize("NFKC", urllib.parse.unquote(value))


def _registry():
    from instructkit.recipe.load import schema_registry

    return schema_registry()


def _type_fits(schema: dict[str, Any], instance: Any) -> bool:
    """A branch whose ``type`` cannot hold the instance is not the one the recipe means."""
    types = schema.get("type")
    if types is None:
        return True
    kinds = tuple(_JSON_TYPES[t] for t in ([types] if isinstance(types, str) else types))
    if isinstance(instance, bool) and bool not in kinds:
        return False
    return isinstance(instance, kinds)


def _valid(schema: dict[str, Any], instance: Any) -> bool:
    """``if`` and ``anyOf`` branches: validated alone (they hold no ``$ref`` in our schemas;
    one that does is judged by its type only)."""
    if "$ref" in json.dumps(schema):
        return _type_fits(schema, instance)
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema).is_valid(instance)


def _walk(instance: Any, schema: Any, where: tuple, resolver) -> Iterator[PathField]:
    if not isinstance(schema, dict) or not _type_fits(schema, instance):
        return
    if "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        yield from _walk(instance, resolved.contents, where, resolved.resolver)
    kind = schema.get(PATH_KEYWORD)
    if kind and isinstance(instance, str) and is_local_path(instance, kind):
        yield PathField(".".join(map(str, where)), instance, kind)
    for sub in schema.get("allOf", []):
        yield from _walk(instance, sub, where, resolver)
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, []):
            if _valid(sub, instance):
                yield from _walk(instance, sub, where, resolver)
    if "if" in schema:
        branch = schema.get("then") if _valid(schema["if"], instance) else schema.get("else")
        yield from _walk(instance, branch, where, resolver)
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in instance.items():
            yield from _walk(v, props.get(k, extra if k not in props else None), (*where, k), resolver)
    elif isinstance(instance, list) and "items" in schema:
        for i, v in enumerate(instance):
            yield from _walk(v, schema["items"], (*where, i), resolver)


def recipe_path_fields(data: dict[str, Any]) -> list[PathField]:
    """Every local path a (schema-valid) recipe names, once each, in recipe order."""
    from instructkit.recipe.load import SCHEMA_BASE

    resolver = _registry().resolver(base_uri=SCHEMA_BASE)
    root = resolver.lookup("recipe.schema.json")
    seen: dict[str, PathField] = {}
    for f in _walk(data, root.contents, (), root.resolver):
        seen.setdefault(f.field, f)
    return list(seen.values())


def check_recipe_paths(data: dict[str, Any], ctx: Any = None, label: str | None = None) -> None:
    """Check every path field with the one resolver: one refusal is a ``SourceError`` (one
    line), several a ``RecipeError`` listing each as ``field: message`` (both exit 2)."""
    from instructkit.recipe.paths import checked_path

    errors = []
    for f in recipe_path_fields(data):
        try:
            checked_path(f.value, ctx, f.field, "write" if f.kind == "write" else "read")
        except SourceError as exc:
            errors.append(str(exc))
    if len(errors) == 1:
        raise SourceError(errors[0])
    if errors:
        raise RecipeError(errors, recipe=label)
