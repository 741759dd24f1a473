"""End to end: recipes -> dataset folders that load, with a card, manifest and quarantine."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from instructkit import Pipeline
from instructkit.api import build
from instructkit.dataset.reader import read_dataset
from instructkit.pipeline import stages_from_config
from instructkit.recipe.load import load_recipe
from instructkit.recipe.sources import sources_from_recipe
from instructkit.recordbuilders.template import TemplateBuilder

from conftest import template_quickstart

ROOT = Path(__file__).resolve().parent.parent

# recipes of builders/ that the template builder runs alone on ../shared/data
REAL_RECIPES = {
    "consumer_health_qa.yaml": "consumer_health_qa",
    "research_qa.yaml": "research_qa",
    "multiple_choice_qa.yaml": "multiple_choice_qa",
    "report_labeling.yaml": "report_labeling",
    "impression_generation.yaml": "impression_generation",
    "series_description_harmonization.yaml": "series_description_harmonization",
    "diagnosis.yaml": "diagnosis",
}


def _check_folder(out: Path, task: str | None = None) -> dict:
    import datasets
    from huggingface_hub import DatasetCard

    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(out.parent / "hf-cache"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(ds) == manifest["records"] > 0
    if task:
        assert set(ds["task"]) == {task}
    card = DatasetCard.load(out / "README.md")
    assert card.data.license and card.data.size_categories and card.data.configs
    for section in ("## Sources", "## How it was built", "## Processing stages", "## Limitations",
                    "## Intended use", "Not for clinical use"):
        assert section in card.text
    assert (out / "recipe.yaml").exists() and (out / "quarantine.jsonl").exists()
    # nothing lost: every row a builder read became a record or a quarantine line
    q = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    for b in manifest["builders"]:
        assert b["in"] == b["out"] + b["dropped"], b["stage"]
        assert b["dropped"] == sum(1 for e in q if e["stage"] == b["stage"])
    assert manifest["records"] + sum(s["dropped"] for s in manifest["stages"]) == sum(b["out"] for b in manifest["builders"])
    return manifest


@pytest.mark.parametrize("recipe,task", sorted(REAL_RECIPES.items()))
def test_each_recipe_builds_a_loadable_dataset_on_real_data(recipe, task, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTKIT_SHARED_DATA", str(shared_data))
    out = tmp_path / "out"
    result = build(ROOT / "builders" / recipe, out, limit=40, quiet=True)
    manifest = _check_folder(out, task)
    assert result.records == manifest["records"]
    recs = list(read_dataset(out))
    assert all(r["source"]["license"] != "unknown" for r in recs)
    assert all(r["provenance"]["template_id"] == task for r in recs)


def test_full_iu_xray_labeling_quarantines_rows_without_findings(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTKIT_SHARED_DATA", str(shared_data))
    out = tmp_path / "iu"
    build(ROOT / "builders" / "report_labeling.yaml", out, quiet=True)
    m = _check_folder(out, "report_labeling")
    b = m["builders"][0]
    assert b["in"] == 3851
    assert b["dropped_by_reason"].get("missing_field", 0) >= 500  # 514 reports have no findings
    rec = next(read_dataset(out))
    assert isinstance(rec["meta"]["labels"], list)


@pytest.mark.llm
def test_quickstart_runs_from_the_cli_with_every_task(tmp_path):
    out = tmp_path / "qs"
    r = subprocess.run([sys.executable, "-m", "instructkit", "--quiet", "build", "quickstart", "--out", str(out)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = _check_folder(out)
    assert set(m["counts"]["task"]) >= set(REAL_RECIPES.values())
    # issue 14: the embedded model makes records worth keeping in both LLM builders
    assert m["counts"]["method"].get("synthetic", 0) >= 10, "the embedded model made synthetic records"
    assert m["counts"]["method"].get("rag", 0) >= 10, "the embedded model made RAG records"
    assert {b["method"] for b in m["builders"]} == {"template", "synthetic", "rag"}
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "data" / "train-00000-of-00001.parquet").to_pylist()
    for row in (r for r in rows if r["method"] == "rag"):
        meta, ctx = json.loads(row["meta"]), json.loads(row["context"])
        passages = {c["chunk_id"]: " ".join(c["text"].split()) for c in ctx}
        sentences = meta["answer"]["sentences"]
        assert sentences and all(s["chunk_id"] in meta["cited_chunk_ids"] for s in sentences)
        for s in sentences:  # every answer sentence is word for word in the passage it cites
            text = " ".join(next(c["text"] for c in ctx if c["chunk_id"] == s["chunk_id"])[s["start"]:s["end"]].split())
            assert text in row["output"] and text in passages[s["chunk_id"]]
    card = (out / "README.md").read_text()
    assert "extractive" in card and "Back-translation" in card
    assert m["llm_usage"]["model"].startswith("SmolLM2-135M")
    for f in ("alpaca", "sharegpt", "messages"):
        lines = (out / "exports" / f"{f}.jsonl").read_text().splitlines()
        assert len(lines) == m["records"]
    first = json.loads((out / "exports" / "sharegpt.jsonl").read_text().splitlines()[0])
    assert first["conversations"][0]["from"] == "human"


def test_build_is_reproducible_and_seed_changes_phrasings(tmp_path):
    recipe = template_quickstart()
    a = build(recipe, tmp_path / "a", quiet=True)
    b = build(recipe, tmp_path / "b", quiet=True)
    c = build(recipe, tmp_path / "c", quiet=True, seed=99)
    ra, rb, rc = (list(read_dataset(r.out_dir)) for r in (a, b, c))
    assert [r["id"] for r in ra] == [r["id"] for r in rb]
    assert [r["instruction"] for r in ra] != [r["instruction"] for r in rc]


def test_recipe_and_equivalent_python_give_the_same_records(tmp_path):
    recipe = load_recipe(template_quickstart())
    from_recipe = list(Pipeline.from_recipe(recipe).records())

    from instructkit import RunContext

    sources = sources_from_recipe(recipe.data)
    ctx = RunContext(seed=recipe.data["seed"])
    builders = [TemplateBuilder.from_config(b, sources, ctx) for b in recipe.data["builders"]]
    stages = stages_from_config(recipe.data.get("stages"), ctx)
    by_hand = list(Pipeline(builders, stages, context=ctx).records())
    assert [r["id"] for r in by_hand] == [r["id"] for r in from_recipe]
    assert by_hand == from_recipe


def test_validate_command_quarantines_bad_lines_and_invalid_records(tmp_path):
    good = next(Pipeline.from_recipe(template_quickstart()).records())
    bad = dict(good, method="handwritten")
    inp = tmp_path / "in.jsonl"
    inp.write_bytes((json.dumps(good) + "\n" + json.dumps(bad) + "\n{oops\n").encode())
    out = tmp_path / "out.jsonl"
    r = subprocess.run([sys.executable, "-m", "instructkit", "validate", str(inp), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [good["id"]]
    q = [json.loads(line) for line in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert {(e["stage"], e["reason"]) for e in q} == {("validate", "schema"), ("read", "unreadable_line")}


def test_inspect_prints_counts(tmp_path):
    build(template_quickstart(), tmp_path / "qs", quiet=True)
    r = subprocess.run([sys.executable, "-m", "instructkit", "inspect", str(tmp_path / "qs"), "-n", "1"],
                       capture_output=True, text=True, cwd=ROOT, env={**__import__("os").environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "records by task" in r.stdout and "consumer_health_qa" in r.stdout


def test_bad_source_row_types_reach_quarantine_through_the_cli(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_bytes(b'{"id": "1", "question": "What is asthma?", "answer": "Asthma is a long-term disease of the airways that causes wheezing and shortness of breath."}\n'
                     b'{"id": "2", "question": "What is gout?"}\n'
                     b'{"id": "3", "question": "What is anemia?", "answer": ["list"]}\n'
                     b'\xff\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
name: rows
sources: [{{name: rows, type: jsonl, path: "{data}", id_field: id, license: CC0-1.0}}]
builders: [{{type: template, task: consumer_health_qa, sources: [rows]}}]
""")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "instructkit", "-q", "build", str(recipe), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    q = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert sorted((e["source"]["location"], e["reason"]) for e in q) == [
        ("rows.jsonl:2", "missing_field"), ("rows.jsonl:3", "wrong_type"), ("rows.jsonl:4", "unreadable_row")]


def test_missing_source_file_is_exit_2_without_traceback(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("""
name: nofile
sources: [{name: rows, type: csv, path: does/not/exist.csv, license: MIT}]
builders: [{type: template, task: consumer_health_qa, sources: [rows]}]
""")
    r = subprocess.run([sys.executable, "-m", "instructkit", "build", str(recipe), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "does/not/exist.csv" in r.stderr
