"""The synthetic builder: seed pool and prompts as data, Self-Instruct and Evol-Instruct
orchestration (fake client), then the real model through a fault-injecting proxy, and a
run killed with SIGKILL that resumes to the same records."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from fixtures_llm import FaultProxy
from instructkit import BudgetExceeded, RecipeError, RunContext
from instructkit.llm import JsonResult
from instructkit.records import schema_errors
from instructkit.steps.base import Quarantine
from instructkit.recordbuilders.synthetic import (NoveltyFilter, SyntheticBuilder, load_prompt_set,
                                                  load_seed_pool)
from conftest import card_of, figures

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = {"patient_question", "note_summary", "report_labeling", "impression_writing",
              "medication_question", "triage", "differential_diagnosis", "guideline_question"}
WORDS = ("assess explain summarise list compare rank outline describe justify estimate "
         "anaemia asthma angina sepsis stroke gout migraine eczema pneumonia colitis "
         "elderly child pregnant athlete smoker renal hepatic cardiac dose risk plan "
         "follow-up imaging referral warning diet exercise sleep fluid infection").split()


# -- data ------------------------------------------------------------------------------------------------
def test_seed_pool_is_project_written_and_covers_the_tasks():
    pool = load_seed_pool()
    assert len(pool.tasks) >= 60
    assert {t.task for t in pool.tasks} == CATEGORIES
    assert min(Counter(t.task for t in pool.tasks).values()) >= 6
    assert pool.name == "instructkit-seed-tasks" and pool.license == "Apache-2.0"
    assert len({t.id for t in pool.tasks}) == len(pool.tasks)
    # the pool itself passes the novelty filter's threshold against itself (no near-copies)
    nf = NoveltyFilter(0.7)
    for t in pool.tasks:
        assert nf.check(t.instruction) is None, t.id
        nf.add(t.id, t.instruction)


def test_prompt_sets_are_data_with_stable_hashes():
    si = load_prompt_set("synthetic/self_instruct")
    ev = load_prompt_set("synthetic/evol_instruct")
    assert {"new_task", "instance"} <= set(si.prompts)
    assert {"evolve", "breadth", "respond"} <= set(ev.prompts)
    assert set(ev.data["operations"]) == {"add_constraints", "deepen", "concretise",
                                          "increase_reasoning", "complicate_input", "breadth"}
    assert si.hash == load_prompt_set("synthetic/self_instruct").hash and len(si.hash) == 16
    msgs = si["new_task"].messages(category_label="triage", examples=load_seed_pool().tasks[:2])
    assert msgs[0]["role"] == "system" and "Task 3" in msgs[1]["content"]


def test_config_schema_accepts_the_documented_settings():
    from jsonschema import Draft202012Validator

    schema = json.loads((ROOT / "schemas/builders/synthetic.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    good = {"type": "synthetic", "name": "synth", "categories": ["triage"], "batch_size": 4,
            "params": {"max_tokens": 64}, "self_instruct": {"n": 4, "k": 2, "rouge_threshold": 0.7},
            "evol_instruct": {"n": 2, "operations": ["deepen", "breadth"], "rounds": 2}}
    assert not list(Draft202012Validator(schema).iter_errors(good))
    bad = {"type": "synthetic", "evol_instruct": {"operations": ["make_it_up"]}}
    assert list(Draft202012Validator(schema).iter_errors(bad))
    llm_schema = json.loads((ROOT / "schemas/llm.schema.json").read_text())
    Draft202012Validator.check_schema(llm_schema)


# -- orchestration with a fake client ----------------------------------------------------------------------
class FakeLedger:
    def as_dict(self):
        return {}


class FakeClient:
    """Deterministic answers by prompt id and seed; ``budget`` calls before BudgetExceeded."""

    model, provider = "fake-model", "fake"

    def __init__(self, budget: int | None = None) -> None:
        self.calls = 0
        self.budget = budget
        self.ledger = FakeLedger()

    def _answer(self, req) -> JsonResult:
        rng = random.Random(req.seed)
        user = req.messages[-1]["content"]
        words = " ".join(rng.sample(WORDS, 9))
        pid = req.prompt_id
        if pid.endswith("new_task"):
            if req.seed % 4 == 0:  # a copy of a shown example: must be dropped as too similar
                first = user.split("Task 1: ", 1)[1].split("\n", 1)[0]
                data = {"instruction": first}
            else:
                data = {"instruction": f"Please {words}."}
        elif pid.endswith("instance"):
            data = {"input": f"Case: {words}", "output": f"Answer: {words[::-1]}"}
        elif pid.endswith("evolve") or pid.endswith("breadth"):
            task = user.split("Task: ", 1)[1].split("\n", 1)[0]
            given_input = user.split("Input: ", 1)[1] if "Input: " in user else ""
            if "more depth" in user:
                data = {"instruction": task, "input": given_input}              # adds nothing
            elif pid.endswith("breadth"):
                data = {"instruction": f"#Rewritten Prompt#: {words}", "input": ""}  # copies prompt
            elif "several steps" in user:
                return JsonResult(ok=False, raw="{oops", error="invalid structured output",
                                  model=self.model, provider=self.provider)
            elif "specific clinical concepts" in user:
                data = {"instruction": f"{task} Be concrete: {words}.", "input": "Fictional case."}
            else:
                data = {"instruction": f"{task} Also {words}.", "input": "Fictional case."}
        elif pid.endswith("respond"):
            data = {"output": "Sorry, I cannot help." if "Be concrete" in user else f"Reasoned: {words}"}
        else:  # pragma: no cover
            raise AssertionError(pid)
        return JsonResult(ok=True, data=data, raw=json.dumps(data), model=self.model,
                          provider=self.provider, params={**req.params, "seed": req.seed})

    def complete_json_many(self, requests):
        out = []
        for r in requests:
            if self.budget is not None and self.calls >= self.budget:
                exc = BudgetExceeded("LLM budget exhausted: max_requests reached")
                exc.results = out + [None] * (len(requests) - len(out))
                raise exc
            self.calls += 1
            out.append(self._answer(r))
        return out


def run_builder(config: dict, client=None, seed: int = 5, limit=None):
    ctx = RunContext(seed=seed, limit=limit)
    b = SyntheticBuilder.from_config({"type": "synthetic", **config}, {}, ctx)
    b._client = client or FakeClient()
    q = Quarantine()
    b.bind(q)
    return list(b.build(limit)), q, b


def test_self_instruct_records_are_valid_novel_and_traceable():
    recs, q, b = run_builder({"self_instruct": {"n": 10, "k": 3}, "batch_size": 4})
    assert len(recs) == 10
    for r in recs:
        assert schema_errors(r) == []
        p = r["provenance"]
        assert p["builder"] == "synthetic" and p["prompt_id"] == "synthetic/self_instruct"
        assert len(p["prompt_hash"]) == 16 and p["model"] == "fake-model" and p["provider"] == "fake"
        assert len(p["seed_task_ids"]) >= 3 and set(p["request_seeds"]) == {"new_task", "instance"}
        assert [c["prompt_id"] for c in p["prompt_chain"]] == ["synthetic/self_instruct/new_task",
                                                              "synthetic/self_instruct/instance"]
        assert r["source"]["name"] == "instructkit-seed-tasks" and r["source"]["license"] == "Apache-2.0"
        assert r["task"] in CATEGORIES and r["method"] == "synthetic"
        assert r["meta"]["synthetic"]["rouge_l_max"] < 0.7
    assert len({r["id"] for r in recs}) == 10
    # the copies were quarantined with the seed they copy
    copies = [e for e in q.entries if e["reason"] == "too_similar"]
    assert copies and all(e["rouge_l"] >= 0.7 and e["similar_to"] for e in copies)
    # every attempt is a record or a quarantine line
    attempts = b.counts["self_instruct_attempts"]
    assert attempts == len(recs) + len(q.entries)
    assert b.summary()["self_instruct_records"] == 10 and "Self-Instruct" in card_of(b)


def test_same_seed_same_records_other_seed_other_records():
    a, _, _ = run_builder({"self_instruct": {"n": 6}, "evol_instruct": {"n": 6}})
    b, _, _ = run_builder({"self_instruct": {"n": 6}, "evol_instruct": {"n": 6}})
    c, _, _ = run_builder({"self_instruct": {"n": 6}, "evol_instruct": {"n": 6}}, seed=6)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert [r["id"] for r in a] != [r["id"] for r in c]


def test_evol_instruct_elimination_step():
    recs, q, b = run_builder({"self_instruct": False, "evol_instruct": {"n": 12}})
    reasons = Counter(e["reason"] for e in q.entries)
    # deepen -> no change; breadth -> copies the prompt; increase_reasoning -> failed;
    # concretise -> refusal as the answer
    assert reasons["no_change"] == 2 and reasons["copies_prompt"] == 2
    assert reasons["invalid_llm_output"] == 2 and reasons["refusal"] == 2
    assert len(recs) == 4 and len(recs) + len(q.entries) == 12
    for r in recs:
        assert schema_errors(r) == []
        assert r["provenance"]["prompt_id"] == "synthetic/evol_instruct"
        assert r["meta"]["synthetic"]["evolutions"][0] in ("add_constraints", "complicate_input")
        assert len(r["provenance"]["seed_task_ids"]) == 1
    failed = next(e for e in q.entries if e["reason"] == "invalid_llm_output")
    assert failed["raw"] == "{oops" and failed["step"].startswith("evolve:")


def test_budget_stop_keeps_what_was_made():
    recs, q, b = run_builder({"self_instruct": {"n": 10}, "batch_size": 2}, client=FakeClient(budget=7))
    assert 1 <= len(recs) < 10
    assert b.stopped and "budget" in b.summary()["stopped_early"]
    assert any(e["reason"] == "budget_exceeded" for e in q.entries)
    assert "Stopped early" in card_of(b)


def test_limit_caps_the_plan_before_any_request():
    client = FakeClient()
    recs, _, b = run_builder({"self_instruct": {"n": 20}, "evol_instruct": {"n": 20}}, client=client, limit=4)
    assert len(recs) <= 4 and b.si.n + b.evol.n == 4
    assert client.calls <= 3 * 4 * 2


def test_bad_config_is_a_recipe_error():
    with pytest.raises(RecipeError, match="categories"):
        run_builder({"categories": ["astrology"]})
    with pytest.raises(RecipeError, match="operations"):
        run_builder({"evol_instruct": {"operations": ["shout"]}})


# -- the real model --------------------------------------------------------------------------------------
SMALL = {"max_tokens": 48, "temperature": 0.7}


@pytest.mark.llm
def test_real_model_through_faults_every_attempt_accounted(llm_server, tmp_path):
    # few, short requests: the real model is slow on a shared 2-core machine; concurrency 1
    # so that no request waits in the server's queue into the client timeout
    # every kind of fault once, first (a timeout costs a full client timeout), then a share
    script = ["429", "500", "cut", "malformed", "timeout"]
    with FaultProxy(llm_server.base_url, share=0.25, hang=21.0, max_faults=1, script=script) as proxy:
        ctx = RunContext(seed=11, cache_dir=tmp_path / "cache", recipe={"llm": {
            "base_url": proxy.base_url, "model": llm_server.model, "structured_output": "json_object",
            "timeout": 20, "backoff_initial": 0.05, "backoff_max": 0.2, "concurrency": 1,
            "json_retries": 0}})
        b = SyntheticBuilder.from_config({"type": "synthetic", "params": SMALL, "batch_size": 2,
                                          "self_instruct": {"n": 1, "max_attempts": 2},
                                          "evol_instruct": {"n": 1}}, {}, ctx)
        q = Quarantine()
        b.bind(q)
        recs = list(b.build())
        ledger = b.client.ledger.as_dict()
        ctx.close()
    attempts = b.counts["self_instruct_attempts"] + b.counts["evol_instruct_attempts"]
    assert len(recs) + len(q.entries) == attempts
    assert all(e.get("reason") for e in q.entries)
    assert len({r["id"] for r in recs}) == len(recs)
    assert all(schema_errors(r) == [] for r in recs)
    assert set(proxy.faults) == {"429", "500", "cut", "malformed", "timeout"}
    assert ledger["retries"] >= sum(proxy.faults.values())
    assert ledger["failures"] == sum(1 for e in q.entries if e["reason"] in ("llm_request_failed", "invalid_llm_output"))
    for r in recs:
        assert r["provenance"]["model"] == llm_server.model


RESUME_SCRIPT = textwrap.dedent("""
    import json, sys
    from instructkit import RunContext
    from instructkit.steps.base import Quarantine
    from instructkit.recordbuilders.synthetic import SyntheticBuilder
    base_url, model, cache, out = sys.argv[1:5]
    ctx = RunContext(seed=3, cache_dir=cache, recipe={"llm": {
        "base_url": base_url, "model": model, "structured_output": "json_object", "concurrency": 1,
        "json_retries": 0}})
    b = SyntheticBuilder.from_config({"type": "synthetic", "batch_size": 1,
        "params": {"max_tokens": 48, "temperature": 0.7},
        "self_instruct": {"n": 2, "max_attempts": 3}}, {}, ctx)
    b.bind(Quarantine())
    with open(out, "w") as fh:
        for rec in b.build():
            fh.write(json.dumps(rec["id"]) + "\\n")
            fh.flush()
    print(json.dumps(b.client.ledger.as_dict()))
    ctx.close()
""")


def _cache_rows(cache: Path) -> int:
    db = cache / "llm-responses.sqlite3"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


@pytest.mark.llm
def test_killed_run_resumes_to_the_same_records_without_asking_again(llm_server, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(cache: Path, out: Path, proxy: FaultProxy):
        p = subprocess.run([sys.executable, str(script), proxy.base_url, llm_server.model, str(cache), str(out)],
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout.strip().splitlines()[-1])

    # replay: one request, one answer, whatever was asked before it (see FaultProxy)
    with FaultProxy(llm_server.base_url, replay=True) as proxy:
        # 1. uninterrupted reference run
        ref_ledger = run(tmp_path / "c1", tmp_path / "ref.jsonl", proxy)
        ref = (tmp_path / "ref.jsonl").read_text().split()
        total = len(proxy.answered)
        assert ref and ref_ledger["requests"] == total
        # 2. the same run in a new cache, killed with SIGKILL after the first answers
        proxy.reset()
        cache = tmp_path / "c2"
        p = subprocess.Popen([sys.executable, str(script), proxy.base_url, llm_server.model, str(cache),
                              str(tmp_path / "killed.jsonl")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while len(proxy.answered) < min(2, total - 1) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # let the client commit the answer it just got
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL
        done = _cache_rows(cache)
        assert 1 <= done < total
        # 3. restart: same records, and only what was not done is requested
        proxy.reset()
        ledger = run(cache, tmp_path / "resumed.jsonl", proxy)
        resumed = (tmp_path / "resumed.jsonl").read_text().split()
    assert resumed == ref
    assert ledger["cached"] == done
    assert ledger["requests"] == total - done == len(proxy.answered)


# -- a recipe end to end (stub endpoint: checks the wiring, not the model) ------------------------------
def schema_shaped_answer(req: dict) -> str:
    """Fill the requested schema's fields with words drawn from the request's seed."""
    rng = random.Random(req.get("seed"))
    props = req["response_format"]["schema"]["properties"]
    return json.dumps({k: ("Please " + " ".join(rng.sample(WORDS, 9)) + ".") for k in props})


def test_recipe_build_with_budget_cap_keeps_records_and_reports_usage(tmp_path):
    from fixtures_llm import StubOpenAI
    from instructkit.api import build

    recipe = {"name": "synthetic-demo", "seed": 4, "sources": [],
              "llm": {"base_url": "STUB", "model": "stub-model", "structured_output": "json_object"},
              "builders": [{"type": "synthetic", "name": "synth", "batch_size": 2,
                            "self_instruct": {"n": 6}, "evol_instruct": {"n": 2}}],
              # only what this test is about (the anonymizer's model load is tested elsewhere)
              "stages": {"anonymize": False, "audit": False}}
    with StubOpenAI(schema_shaped_answer) as stub:
        recipe["llm"]["base_url"] = stub.base_url
        full = build(recipe, tmp_path / "full", cache_dir=tmp_path / "cache", quiet=True)
        n_full = len(stub.requests)
        assert full.records == 8
        assert full.manifest["llm_usage"]["requests"] == n_full
        # the same recipe into another folder: zero requests, same records
        again = build(recipe, tmp_path / "again", cache_dir=tmp_path / "cache", quiet=True)
        assert len(stub.requests) == n_full and again.manifest["llm_usage"]["cached"] == n_full
        assert again.records == 8
        # a cap stops cleanly: what was made is kept, the rest is accounted for
        capped = build(recipe, tmp_path / "capped", cache_dir=tmp_path / "cache2", quiet=True,
                       max_requests=5)
    assert 0 < capped.records < 8
    assert capped.manifest["llm_usage"]["budget_exhausted"].startswith("max_requests=5")
    lines = [json.loads(x) for x in (tmp_path / "capped" / "quarantine.jsonl").read_text().splitlines()]
    assert any(e["reason"] == "budget_exceeded" for e in lines)
