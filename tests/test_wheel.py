"""The wheel ships prompts/, schemas/ and builders/: install it and run from elsewhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.llm
def test_wheel_install_runs_quickstart_from_another_directory(tmp_path):
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-w", str(wheels), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(wheels.glob("instructkit-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for must in ("instructkit/_data/schemas/record.schema.json", "instructkit/_data/builders/quickstart.yaml",
                 "instructkit/_data/prompts/templates/consumer_health_qa.yaml", "instructkit/py.typed",
                 "instructkit/_data/builders/samples/health_questions.jsonl",
                 "instructkit/dataset/report_assets/report.html.j2"):
        assert must in names, must
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import instructkit, sys; print(instructkit.__file__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert r.stdout.strip().startswith(str(target)), r.stdout
    r = subprocess.run([sys.executable, "-m", "instructkit", "-q", "build", "quickstart", "--out", "qs",
                        "--limit", "2"],
                       capture_output=True, text=True, cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (elsewhere / "qs" / "data" / "train-00000-of-00001.parquet").exists()
    assert (elsewhere / "qs" / "report.html").exists()  # the report's template ships in the wheel
