"""The Ray executor through real Ray (a local 2-CPU cluster, one per module): the same recipe
gives the same record ids, per-stage counts and quarantine under ``local`` and ``ray``.

Deselect with ``-m 'not ray'``; the default test command runs them."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ray = pytest.importorskip("ray", reason="the Ray executor needs instructkit[ray]")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture(scope="module")
def ray_cluster():
    """One local cluster for the module (starting one takes several seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _recipe(tmp: Path, n: int, shared: Path) -> Path:
    from scale_corpus import write_rows

    rows = write_rows(tmp / "rows.jsonl", n, seed=3)
    # a few rows that must be dropped by validate (empty answer) and decontaminate (a benchmark
    # question word for word), and a name and phone number for the anonymizer
    decontam = shared / "decontam" / "medqa_usmle_4opt_test.jsonl"
    bench_q = json.loads(decontam.read_text().splitlines()[0])["question"]
    with rows.open("a") as fh:
        fh.write(json.dumps({"id": "bad-empty", "question": "What is it?", "answer": " "}) + "\n")
        fh.write(json.dumps({"id": "bench-copy", "question": bench_q,
                             "answer": "The most likely answer follows from the history and the examination "
                                       "findings described, together with the laboratory results given."}) + "\n")
        fh.write(json.dumps({"id": "phi", "question": "Can Mr. John Whitaker (555-201-3344) take ibuprofen daily?",
                             "answer": "Call Dr. Maria Hernandez at 555-201-3344 before taking ibuprofen every day "
                                       "for more than ten days, since it can harm the stomach and the kidneys."}) + "\n")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(f"""
name: ray-equivalence
seed: 5
sources: [{{name: rows, type: jsonl, path: "{rows}", id_field: id, license: CC-BY-4.0}}]
builders: [{{type: template, task: consumer_health_qa, sources: [rows]}}]
stages:
  anonymize: true
  dedup:
    exact: true
    near: true
    decontaminate: [{{path: "{decontam}", name: medqa_usmle_test}}]
  validate: true
  audit: false
  bias_report: false
output: {{formats: [messages, alpaca]}}
""")
    return recipe


def _folder(out: Path) -> tuple[list[str], dict, Counter]:
    import pyarrow.parquet as pq

    files = sorted((out / "data").glob("*.parquet"))
    ids = sorted(i for f in files for i in pq.read_table(f, columns=["id"])["id"].to_pylist())
    manifest = json.loads((out / "manifest.json").read_text())
    q = Counter((e.get("stage"), e.get("reason"))
                for e in map(json.loads, (out / "quarantine.jsonl").read_text().splitlines()))
    return ids, manifest, q


def _stage_counts(manifest: dict) -> list[tuple]:
    return [(s["stage"], s["in"], s["out"], s["dropped"], json.dumps(s.get("dropped_by_reason"), sort_keys=True))
            for s in manifest["stages"]]


def test_local_and_ray_give_the_same_records_counts_and_quarantine(ray_cluster, shared_data, tmp_path):
    from instructkit.executors import LocalExecutor
    from instructkit.executors.ray import RayExecutor
    from instructkit.pipeline import Pipeline

    recipe = _recipe(tmp_path, 600, shared_data)
    Pipeline.from_recipe(str(recipe)).run(tmp_path / "local", quiet=True, executor=LocalExecutor())
    Pipeline.from_recipe(str(recipe)).run(tmp_path / "ray", quiet=True, executor=RayExecutor(workers=2))
    ids_l, man_l, q_l = _folder(tmp_path / "local")
    ids_r, man_r, q_r = _folder(tmp_path / "ray")

    assert ids_r == ids_l and len(ids_l) > 400
    assert _stage_counts(man_r) == _stage_counts(man_l)
    assert q_r == q_l
    dedup = {s["stage"]: s for s in man_l["stages"]}["dedup"]
    assert dedup["dropped_by_reason"].get("duplicate_exact") and dedup["dropped_by_reason"].get("duplicate_near")
    assert {s["stage"]: s for s in man_l["stages"]}["decontaminate"]["dropped"] >= 1
    # the writers' merged figures, not one worker's (the sample record shown per task is the
    # first one a writer saw, so it depends on the order the records arrive in)
    counts_l, counts_r = dict(man_l["counts"]), dict(man_r["counts"])
    assert set(counts_r.pop("samples")) == set(counts_l.pop("samples"))
    assert counts_r == counts_l
    assert man_r["executor"]["name"] == "ray" and man_r["executor"]["workers"] == 2
    # the dataset folder is written the same way: sharded, in the hub layout
    shards = sorted(p.name for p in (tmp_path / "ray" / "data").glob("*.parquet"))
    assert shards and all(s.startswith("train-") and f"-of-{len(shards):05d}" in s for s in shards)
    # the anonymizer ran in the workers: the planted phone number is nowhere in the folder
    for f in (tmp_path / "ray").rglob("*"):
        if f.is_file() and f.suffix in (".jsonl", ".json", ".md", ".parquet"):
            assert b"555-201-3344" not in f.read_bytes(), f


def test_rate_limits_hold_across_workers(ray_cluster):
    """One limiter actor grants every worker's requests: 4 workers asking 3 times each at
    6 requests a minute get 6 grants at once, not 6 each."""
    import asyncio

    from instructkit.executors.ray_limiter import SharedRateLimiter, start_limiter

    actor = start_limiter(rpm=6, tpm=None)

    @ray.remote(num_cpus=0)
    def worker(limiter) -> int:
        async def go() -> int:
            lim, granted = SharedRateLimiter(limiter), 0
            for _ in range(3):
                try:
                    await asyncio.wait_for(lim.acquire(1), timeout=3)
                    granted += 1
                except asyncio.TimeoutError:
                    break
            return granted

        return asyncio.run(go())

    granted = ray.get([worker.remote(actor) for _ in range(4)])
    assert sum(granted) <= 7 and ray.get(actor.count.remote()) <= 7
    ray.kill(actor)


def test_ray_executor_refuses_a_pipeline_not_made_from_a_recipe(ray_cluster):
    from instructkit._exceptions import RecipeError
    from instructkit.executors.ray import RayExecutor
    from instructkit.pipeline import Pipeline

    with pytest.raises(RecipeError, match="recipe"):
        RayExecutor().run(Pipeline([]), None, quiet=True)


def test_execution_settings_choose_the_executor():
    from instructkit.executors import LocalExecutor, executor_from_config
    from instructkit.executors.ray import RayExecutor

    assert isinstance(executor_from_config(None), LocalExecutor)
    ex = executor_from_config({"executor": "ray", "address": "auto", "workers": 3})
    assert isinstance(ex, RayExecutor) and ex.address == "auto" and ex.workers == 3
    assert os.environ.get("INSTRUCTKIT_ALLOW_PATHS")  # workers inherit the allowed paths
