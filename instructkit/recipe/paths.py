"""Where a recipe may read from and write to: the one path resolver.

A recipe is untrusted input (a colleague's file): it must not read ``~/.ssh`` or ``/etc``
into a dataset, nor write over a user's files. Every path-valued field of every schema is
marked ``"x-instructkit-path"`` (``read``, ``write``, ``read-or-hub-id``,
``read-or-prompt-id``); ``recipe/path_fields.py`` finds them from the schemas and checks
each with ``checked_path`` before a build starts, and the code that opens them resolves
them with ``resolve_path``, the same function.

How a value becomes a path (``resolve_path``):

- ``${VAR}`` and ``${VAR:-default}`` are expanded (an unset ``VAR`` gives the default, which
  is then checked like any other path); ``~`` is the home folder; a relative path is read
  from the current directory.
- ``pkg://samples/...`` names the sample inputs shipped in the package. It is normalised
  for everyone, shipped recipes too: after following symlinks it must stay inside the
  samples folder.
- A ``..`` written encoded (``%2e%2e``) or with look-alike characters (fullwidth dots, which
  NFKC folds to ``..``) is refused everywhere: a path is not a URL, and such a name is only
  ever written to slip past a check.

Where a recipe may read (``read`` fields), after following symlinks:

- the current directory, or the recipe's own folder;
- a folder in ``INSTRUCTKIT_ALLOW_PATHS`` (``os.pathsep``-separated), or one given with
  ``instructkit build --allow-path DIR``;
- a *data root*: the value of ``INSTRUCTKIT_SHARED_DATA``, or of a variable named in
  ``INSTRUCTKIT_DATA_VARS`` (comma- or ``os.pathsep``-separated names, e.g.
  ``INSTRUCTKIT_DATA_VARS=MIMIC_III_DIR,MIMIC_IV_DIR``). Any other variable (``${HOME}``) is
  expanded but widens nothing: the path it gives must still lie under an allowed folder;
- the shipped samples (``pkg://samples/...``).

Never, even inside those: a credential store (``.ssh``, ``.aws``, ``.gnupg``, ``.netrc``, ...:
``CREDENTIAL_STORES``), so a build run from the home folder still cannot read ``~/.ssh``.

Where a recipe may write (``write`` fields: a RAG ``index_dir``, ``llm.cache_dir``): under
the current directory, the recipe's folder, an allowed folder, or instructkit's cache folder
(``INSTRUCTKIT_CACHE_DIR``, else the user cache folder); never the package. A folder that
exists and is not empty must be one instructkit wrote (it holds ``.instructkit-folder``, or
is a RAG index or response cache instructkit wrote before the marker existed): a recipe
cannot point a build at a user's folder and overwrite its ``documents.json``.

The recipes that ship with instructkit (``builders/``) are the product's own: their folders
are not checked against the allowed ones. Python code that builds a ``Source`` itself is
the user's own code and is not checked either.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Any

from instructkit._exceptions import SourceError

__all__ = ["resolve_path", "checked_path", "checked_source_path", "allowed_roots",
           "data_roots", "write_roots", "mark_owned_folder", "OWNED_MARKER", "PKG_SAMPLES",
           "DATA_VARS_ENV", "SHARED_DATA_ENV", "ALLOW_PATHS_ENV"]

PKG_SAMPLES = "pkg://samples/"
SHARED_DATA_ENV = "INSTRUCTKIT_SHARED_DATA"
DATA_VARS_ENV = "INSTRUCTKIT_DATA_VARS"
ALLOW_PATHS_ENV = "INSTRUCTKIT_ALLOW_PATHS"
#: the file instructkit puts in a folder it writes, so a later run may write there again
OWNED_MARKER = ".instructkit-folder"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: names of the places tools keep credentials in; a recipe never reads under one, even inside
#: an allowed folder (a build run from the home folder must not reach ``~/.ssh``)
CREDENTIAL_STORES = frozenset({".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker",
                               ".password-store", ".netrc", ".pgpass", ".git-credentials",
                               ".huggingface", "gcloud", ".npmrc", ".pypirc"})
_HOW_TO_ALLOW = ("if you trust this recipe, allow the folder with --allow-path DIR or "
                 f"{ALLOW_PATHS_ENV}, or name it as a data root ({SHARED_DATA_ENV}, or a "
                 f"variable listed in {DATA_VARS_ENV})")


# -- resolving -----------------------------------------------------------------------------------
def expand_vars(value: str) -> str:
    """``${VAR}`` -> its value; ``${VAR:-default}`` -> the default when VAR is unset or empty."""
    return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)


def _disguised_parent(part: str) -> bool:
    """A path part that is not ``..`` but reads as ``..`` once URL-decoded or NFKC-folded."""
    if part == "..":
        return False
    decoded = urllib.parse.unquote(part)
    return ".." in {decoded, unicodedata.normalize("NFKC", decoded),
                    unicodedata.normalize("NFKC", part)}


def _refuse_disguised_parents(value: str) -> None:
    parts = re.split(r"[/\\]", value)
    if any(_disguised_parent(p) for p in parts):
        raise SourceError(f"'{_short(value)}' holds an encoded or look-alike '..'; write plain "
                          "folder names")


def _sample_path(rest: str) -> Path:
    """``pkg://samples/<rest>``: a file inside the shipped samples folder, never outside."""
    from instructkit._resources import samples_dir

    root = samples_dir()
    if rest.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", rest):
        raise SourceError(f"'{PKG_SAMPLES}{_short(rest)}' leaves the shipped samples folder; "
                          f"{PKG_SAMPLES} names files inside it only")
    path = root / rest
    real, real_root = path.resolve(), root.resolve()
    if real != real_root and real_root not in real.parents:
        raise SourceError(f"'{PKG_SAMPLES}{_short(rest)}' leaves the shipped samples folder "
                          "(through a symlink)")
    return path


def resolve_path(value: str, base: Path | None = None) -> Path:
    """The path a recipe value names: variables expanded, ``pkg://samples/`` kept inside the
    samples folder, encoded ``..`` refused; relative to ``base`` (default: the current
    directory). Raises ``SourceError`` for a value that tries to escape by its form alone."""
    _refuse_disguised_parents(value)
    expanded = expand_vars(value)
    _refuse_disguised_parents(expanded)
    if expanded.startswith(PKG_SAMPLES):
        return _sample_path(expanded[len(PKG_SAMPLES):])
    if expanded.startswith("pkg://"):
        raise SourceError(f"'{_short(value)}': only {PKG_SAMPLES}... names packaged files")
    p = Path(expanded).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


# -- the folders a recipe may use ----------------------------------------------------------------
def _env_folders(name: str) -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(name, "").split(os.pathsep) if p.strip()]


def data_var_names() -> list[str]:
    """``INSTRUCTKIT_SHARED_DATA`` and the variables the user named in ``INSTRUCTKIT_DATA_VARS``."""
    named = re.split(rf"[,{re.escape(os.pathsep)}\s]+", os.environ.get(DATA_VARS_ENV, ""))
    return [SHARED_DATA_ENV, *(n for n in named if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n))]


def data_roots() -> list[Path]:
    """The folders (or files) the user named as data through a data variable that is set."""
    return [Path(os.environ[n]).expanduser() for n in data_var_names() if os.environ.get(n)]


def _base_roots(ctx: Any) -> list[Path]:
    roots = [Path.cwd()]
    recipe_dir = getattr(ctx, "recipe_dir", None)
    if recipe_dir is not None:
        roots.append(Path(recipe_dir))
    roots += _env_folders(ALLOW_PATHS_ENV)
    roots += [Path(p) for p in getattr(ctx, "allowed_paths", None) or ()]
    return roots


def allowed_roots(ctx: Any = None) -> list[Path]:
    """Where a recipe may read: see the module docstring."""
    return [r.resolve() for r in [*_base_roots(ctx), *data_roots()]]


def write_roots(ctx: Any = None) -> list[Path]:
    """Where a recipe may write: the read roots without the data roots, plus the cache."""
    roots = _base_roots(ctx)
    if getattr(ctx, "cache_dir", None):
        roots.append(Path(ctx.cache_dir))
    if os.environ.get("INSTRUCTKIT_CACHE_DIR"):
        roots.append(Path(os.environ["INSTRUCTKIT_CACHE_DIR"]).expanduser())
    from platformdirs import user_cache_dir

    roots.append(Path(user_cache_dir("instructkit")))
    return [r.resolve() for r in roots]


def _inside(real: Path, roots: list[Path]) -> bool:
    return any(real == r or r in real.parents for r in roots)


# -- checking --------------------------------------------------------------------------------------
def checked_path(value: str, ctx: Any, field: str, mode: str = "read") -> Path:
    """Resolve a recipe's path (``mode`` ``read`` or ``write``) and check it against the
    folders the recipe may use; ``SourceError`` naming ``field`` and how to allow it."""
    try:
        path = resolve_path(value)
    except SourceError as exc:
        raise SourceError(f"{field}: {exc}") from None
    if mode == "write":
        return _checked_write(value, path, ctx, field)
    if value.startswith(PKG_SAMPLES) or getattr(ctx, "trusted_recipe", False):
        return path
    real = path.resolve()
    store = next((p for p in real.parts if p in CREDENTIAL_STORES), None)
    if store is not None:
        raise SourceError(f"{field}: '{_short(value)}' is inside a credential store ({store}); "
                          "a recipe never reads there")
    if not _inside(real, allowed_roots(ctx)):
        raise SourceError(f"{field}: '{_short(value)}' is outside the current directory, the "
                          f"recipe's folder and the folders you allowed; {_HOW_TO_ALLOW}")
    return path


def checked_source_path(value: str, ctx: Any, field: str) -> Path:
    """A ``read`` path (kept for the callers that read sources and documents)."""
    return checked_path(value, ctx, field, "read")


def _checked_write(value: str, path: Path, ctx: Any, field: str) -> Path:
    real = path.resolve()
    if value.strip().startswith("pkg://") or _inside(real, _package_folders()):
        raise SourceError(f"{field}: '{_short(value)}' is inside the installed package; "
                          "write elsewhere")
    if not getattr(ctx, "trusted_recipe", False) and not _inside(real, write_roots(ctx)):
        raise SourceError(f"{field}: '{_short(value)}' is outside the current directory, the "
                          "recipe's folder, the folders you allowed and the cache, where a recipe "
                          "may write; if you trust this recipe, allow the folder with "
                          f"--allow-path DIR or {ALLOW_PATHS_ENV}")
    if real.exists() and not real.is_dir():
        raise SourceError(f"{field}: '{_short(value)}' is a file, not a folder")
    if real.is_dir() and any(real.iterdir()) and not owned_folder(real):
        raise SourceError(f"{field}: '{_short(value)}' holds files instructkit did not write "
                          f"(no {OWNED_MARKER}); name an empty or new folder")
    return path


def _package_folders() -> list[Path]:
    """The installed package and its data folders (a recipe never writes there)."""
    import instructkit
    from instructkit._resources import builders_dir, prompts_dir, schemas_dir

    folders = [Path(instructkit.__file__).parent]
    for data in (builders_dir, prompts_dir, schemas_dir):
        try:
            folders.append(data())
        except FileNotFoundError:
            pass
    return [f.resolve() for f in folders]


def owned_folder(folder: Path) -> bool:
    """A folder instructkit wrote: its marker, or a RAG index or response cache from before
    the marker existed (``meta.json`` with the index's ``format_version``)."""
    if (folder / OWNED_MARKER).is_file() or (folder / "llm-responses.sqlite3").is_file():
        return True
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and {"format_version", "chunks", "dim"} <= meta.keys()


def mark_owned_folder(folder: Path) -> None:
    """Leave the marker that lets a later run write ``folder`` again."""
    marker = Path(folder) / OWNED_MARKER
    if not marker.exists():
        marker.write_text("written by instructkit; a run may replace its files\n", encoding="utf-8")


def _short(value: str, n: int = 120) -> str:
    value = str(value).replace("\n", " ")
    return value if len(value) <= n else value[:n] + "..."
