import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from instructkit import RecipeError
from instructkit.recipe.load import load_recipe

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "builders").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_is_valid(path):
    assert load_recipe(path).name


BAD = """
name: bad recipe name
sources:
  - {name: s1, type: jsonl, license: MIT}
  - {name: s2, type: csv, path: x.csv}
builders:
  - {type: template, task: consumer_health_qa, sources: [s1], colums: {}}
  - {type: templat, task: x, sources: [s1]}
stages: {anonymise: true}
output: {formats: [alpaca, chatml]}
"""


def test_bad_recipe_lists_every_error_with_its_path(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    with pytest.raises(RecipeError) as exc:
        load_recipe(p)
    errs = exc.value.errors
    expected = ["name:", "sources.0: 'path' is required", "sources.1: 'license' is required",
                "builders.0: unknown field(s): colums", "builders.1.type:", "stages: unknown field(s): anonymise",
                "output.formats.1:"]
    for e in expected:
        assert any(x.startswith(e) for x in errs), (e, errs)


def test_unknown_source_reference_is_reported(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({"name": "r", "sources": [{"name": "a", "type": "inline", "rows": [], "license": "MIT"}],
                                 "builders": [{"type": "template", "task": "consumer_health_qa", "sources": ["b"]}]}))
    with pytest.raises(RecipeError, match=r"builders\.0\.sources\.0: no source named 'b'"):
        load_recipe(p)


def test_cli_rejects_bad_recipe_with_exit_2_and_no_traceback(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "instructkit", "build", str(p), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "builders.0: unknown field(s): colums" in r.stderr
    assert not out.exists(), "no work is done before the recipe is valid"


def test_invalid_yaml_says_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nsources: [\n")
    with pytest.raises(RecipeError, match="line"):
        load_recipe(p)
