"""What the hostile tables share: the installed console script, a fast recipe (no model, no
spaCy) and a folder with a good dataset already built in it (the one no failure may touch)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

__all__ = ["SCRIPT", "run_cli", "_recipe", "_write", "_tree_hash", "workdir"]

SCRIPT = Path(sys.executable).with_name("instructkit")

# a fast recipe (no model, no spaCy): template records from an inline source
def _recipe(**over) -> dict:
    r = {"name": "hostile", "seed": 3,
         "sources": [{"name": "q", "type": "inline", "license": "CC-BY-4.0", "phi": False,
                      "rows": [{"question": f"What is condition number {i} and how is it treated?",
                                "answer": f"Condition {i} is a made-up condition used in tests; it is "
                                          f"treated with rest, fluids and a follow-up visit."}
                               for i in range(12)]}],
         "builders": [{"type": "template", "task": "consumer_health_qa", "sources": ["q"]}],
         "stages": {"anonymize": False, "audit": False, "dedup": False},
         "output": {"formats": ["messages"]}}
    r.update(over)
    return r


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data,
                    encoding="utf-8")
    return path


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    assert SCRIPT.exists(), f"the console script is not installed next to {sys.executable}"
    e = {**os.environ, **(env or {})}
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def workdir(tmp_path):
    """A folder with a good dataset built in ``out`` (the one no failure may touch)."""
    _write(tmp_path / "good.yaml", _recipe())
    r = run_cli("build", "good.yaml", "--out", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path
