"""Where the shipped data folders are, and how optional dependencies are imported.

``prompts/``, ``schemas/`` and ``builders/`` sit at the top of the repository and are
copied into the wheel as ``instructkit/_data/<name>``; this module finds whichever exists,
so a checkout and an installed wheel behave the same.
"""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from instructkit._exceptions import MissingExtraError

_PKG = Path(__file__).resolve().parent


@functools.cache
def data_dir(name: str) -> Path:
    """Return the folder ``prompts``, ``schemas`` or ``builders`` (wheel first, then checkout)."""
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"instructkit data folder '{name}' is missing from the installation")


def prompts_dir() -> Path:
    return data_dir("prompts")


def schemas_dir() -> Path:
    return data_dir("schemas")


def builders_dir() -> Path:
    return data_dir("builders")


def samples_dir() -> Path:
    """Small sample inputs the project writes itself (used by ``quickstart.yaml``)."""
    return builders_dir() / "samples"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Load ``schemas/<name>`` (e.g. ``record.schema.json``)."""
    return json.loads((schemas_dir() / name).read_text(encoding="utf-8"))


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import an optional dependency, or raise an error that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(extra, module.split(".")[0], purpose) from exc


def load_prompt_yaml(name: str | Path, kind: str, folder: str = "") -> tuple[Path, Any]:
    """Read a prompt file: ``name`` under ``prompts/<folder>/`` (``.yaml`` added), or a path
    to a YAML file. Errors name the ``kind`` of file and the path, never a traceback."""
    import yaml

    from instructkit._exceptions import TemplateError

    name = str(name)
    path = Path(name) if name.endswith((".yaml", ".yml")) else prompts_dir() / folder / f"{name}.yaml"
    if not path.is_file():
        raise TemplateError(f"no {kind} '{name}' (looked for {path})")
    try:
        return path, yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TemplateError(f"{kind} '{path.name}': not valid YAML ({exc})") from None
