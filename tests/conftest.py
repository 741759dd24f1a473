"""Shared fixtures. Each area keeps its fixtures in ``tests/fixtures_<area>.py``; they are
imported here so every test module can use them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))

# Recipes read only under the current directory, their own folder and folders the user allows:
# the tests allow the real-data folder and the temporary folders they write recipes' sources in.
import tempfile as _tempfile

os.environ.setdefault("INSTRUCTKIT_ALLOW_PATHS", os.pathsep.join([str(SHARED_DATA), _tempfile.gettempdir()]))

# Nothing may download weights or data at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public datasets in ../shared/data; tests that need them skip without them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see ../shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _isolated_llm_cache(tmp_path_factory):
    """Tests never read or fill the user's LLM response cache (a build's default): every run
    asks the real model afresh, and subprocesses inherit the setting."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INSTRUCTKIT_CACHE_DIR", str(tmp_path_factory.mktemp("llm-cache")))
        # ONNX exports and the static distillation are made once per session, whatever cache
        # folder a test's run uses (they hold nothing of the run's data)
        mp.setenv("INSTRUCTKIT_EMBEDDER_CACHE_DIR", str(tmp_path_factory.mktemp("embedder-exports")))
        yield


def shared_file(rel: str) -> Path:
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"{p} is absent (real data from ../shared/data)")
    return p


def figures(step) -> dict:
    """A step's manifest row as a run writes it: merged figures, finalized, with its settings
    and the card markdown rendered from them."""
    from instructkit.dataset.manifest import step_entry

    return step_entry(step, step.collect())


def card_of(step) -> str:
    return figures(step).get("card_section") or ""


def template_quickstart() -> dict:
    """The quickstart without its language-model parts (those are tested through the real model
    in the llm-marked tests), for tests of the template path and the stages after it."""
    import copy

    from instructkit.recipe.load import load_recipe

    data = copy.deepcopy(load_recipe("quickstart").data)
    data["builders"] = [b for b in data["builders"] if b["type"] == "template"]
    data.pop("llm", None)
    return data


# area fixtures (each module is optional until its area lands)
for _mod in ("fixtures_llm", "fixtures_rag", "fixtures_anonymize", "fixtures_report"):
    try:
        exec(f"from {_mod} import *")  # noqa: S102 - star-import fixtures by name
    except ModuleNotFoundError as _exc:
        if _exc.name != _mod:
            raise
