"""The LLM judge: orchestration with a fake client, then the real local model."""

from __future__ import annotations

import itertools
import json

import pytest
import yaml

from instructkit._exceptions import BudgetExceeded, RecipeError
from instructkit.context import RunContext
from instructkit.llm.types import JsonResult
from instructkit.pipeline import stages_from_config
from instructkit.steps.quality.judge import JudgeStep, load_rubric
from instructkit.records import make_record
from instructkit.steps.base import Quarantine

_ids = itertools.count()
CRITERIA = ["medical_correctness", "helpfulness", "faithfulness", "safety", "escalation"]


def rec(output="Common symptoms include thirst, frequent urination and tiredness.", **meta):
    return make_record(task="consumer_health_qa", method="template",
                       instruction="Answer the following health question in plain language.",
                       input="What are the symptoms of type 2 diabetes?", output=output,
                       source={"name": "test", "license": "MIT", "record_id": str(next(_ids))},
                       provenance={"builder": "template", "seed": 0, "template_id": "t",
                                   "template_hash": "0" * 16}, meta=meta)


class FakeClient:
    """Answers each request with the next scores in ``answers`` (None: a failed answer)."""

    def __init__(self, answers, raise_budget_after=None):
        self.answers = list(answers)
        self.requests = []
        self.calls = 0
        self.raise_budget_after = raise_budget_after

    def complete_json_many(self, requests):
        self.calls += 1
        out = []
        for r in requests:
            self.requests.append(r)
            if self.raise_budget_after is not None and len(self.requests) > self.raise_budget_after:
                exc = BudgetExceeded("max_requests reached")
                exc.results = out
                raise exc
            a = self.answers.pop(0)
            out.append(JsonResult(ok=False, error="invalid structured output") if a is None else
                       JsonResult(ok=True, data=dict(zip(CRITERIA, a)) if isinstance(a, tuple) else a,
                                  model="fake-judge", provider="fake"))
        return out


def run(stage, records):
    q = Quarantine()
    stage.bind(q)
    return list(stage(records)), q.entries


def test_scores_land_on_records_and_card():
    stage = JudgeStep(client=FakeClient([(5, 4, 5, 5, 5), (3, 3, 2, 4, 5)]))
    records = [rec(), rec(output="Thirst.")]
    kept, entries = run(stage, records)
    assert not entries and len(kept) == 2
    j = kept[0]["meta"]["judge"]
    assert j["scores"] == dict(zip(CRITERIA, (5, 4, 5, 5, 5))) and j["overall"] == 4.8
    assert j["model"] == "fake-judge" and j["rubric"] == "judge/rubric"
    assert "judge" not in records[0]["meta"]  # the input record is not changed
    s = stage.summary()
    assert s["scored"] == 2 and s["criteria"]["faithfulness"]["histogram"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    card = stage.card_section()
    assert "LLM judge scores" in card and "| faithfulness | 3.50 | 0 | 1 | 0 | 0 | 1 |" in card
    assert stage.stats.extra["scored"] == 2  # summary() goes to the manifest


def test_requests_use_rubric_schema_prompt_id_and_truncate_long_fields():
    fake = FakeClient([(5, 5, 5, 5, 5)])
    stage = JudgeStep(client=fake, max_chars=200)
    run(stage, [rec(output="word " * 500)])
    req = fake.requests[0]
    rubric = load_rubric()
    assert req.prompt_id == "judge/rubric" and req.prompt_hash == rubric.hash
    assert req.schema["required"] == CRITERIA
    assert req.schema["properties"]["safety"]["enum"] == [1, 2, 3, 4, 5]
    assert req.params["temperature"] == 0.0
    user = req.messages[-1]["content"]
    assert "What are the symptoms of type 2 diabetes?" in user and len(user) < 1200 and "[...]" in user
    assert "escalation" in req.messages[0]["content"]


def test_min_score_and_per_criterion_minimum_drop_with_reason():
    stage = JudgeStep(client=FakeClient([(2, 2, 2, 2, 2), (5, 5, 5, 2, 5), (4, 4, 4, 4, 4)]),
                       min_score=3, min_scores={"safety": 3})
    records = [rec(), rec(), rec()]
    kept, entries = run(stage, records)
    assert [r["id"] for r in kept] == [records[2]["id"]]
    assert [(e["reason"], e.get("overall"), e.get("criterion")) for e in entries] == [
        ("judge_below_min", 2.0, None), ("judge_below_min", None, "safety")]
    # the quarantined record keeps its scores
    assert entries[0]["record"]["meta"]["judge"]["overall"] == 2.0
    assert stage.stats.dropped == {"judge_below_min": 2}


def test_failed_judgement_is_dropped_or_kept_unscored():
    kept, entries = run(JudgeStep(client=FakeClient([None, {"safety": 9}])), [rec(), rec()])
    assert not kept and [e["reason"] for e in entries] == ["judge_failed", "judge_failed"]
    kept, entries = run(JudgeStep(client=FakeClient([None]), on_error="keep"), [rec()])
    assert not entries and kept[0]["meta"]["judge"]["error"]


def test_batches_and_budget_stop_accounts_for_every_record():
    fake = FakeClient([(4, 4, 4, 4, 4)] * 10, raise_budget_after=3)
    stage = JudgeStep(client=fake, batch_size=2)
    q = Quarantine()
    stage.bind(q)
    out = []
    with pytest.raises(BudgetExceeded):
        for r in stage([rec() for _ in range(6)]):
            out.append(r)
    assert len(out) == 3 and [e["reason"] for e in q.entries] == ["judge_not_run"]
    assert fake.calls == 2


def test_from_config_and_settings_errors():
    ctx = RunContext(seed=7)
    stages = stages_from_config({"validate": False, "judge": {"min_score": 3.5, "batch_size": 4}}, ctx)
    (stage,) = [s for s in stages if s.name == "judge"]
    assert isinstance(stage, JudgeStep) and stage.min_score == 3.5 and stage.batch_size == 4 and stage.seed == 7
    with pytest.raises(RecipeError, match="stages.judge.min_scores.safty"):
        JudgeStep.from_config({"min_scores": {"safty": 3}}, ctx)


def test_judge_settings_schema():
    from jsonschema import Draft202012Validator

    from instructkit._resources import load_schema

    v = Draft202012Validator(load_schema("stages/judge.schema.json"))
    assert not list(v.iter_errors({"min_score": 3, "min_scores": {"safety": 4}, "on_error": "keep"}))
    assert list(v.iter_errors({"min_score": 7})) and list(v.iter_errors({"minscore": 3}))


def test_judge_cli_with_fake_client(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import instructkit.llm
    from instructkit.cli.app import app
    from instructkit.records import write_jsonl

    fake = FakeClient([(5, 5, 5, 5, 5), (1, 1, 1, 1, 1)])
    monkeypatch.setattr(instructkit.llm, "llm_from_context", lambda ctx: fake)
    write_jsonl(tmp_path / "in.jsonl", [rec(), rec()])
    res = CliRunner().invoke(app, ["judge", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"),
                                   "--min-score", "3"])
    assert res.exit_code == 0, res.output
    assert "1 records kept, 1 quarantined" in res.output and "LLM judge scores" in res.output
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out[0]["meta"]["judge"]["overall"] == 5.0
    q = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert q[0]["stage"] == "judge" and q[0]["reason"] == "judge_below_min"


# -- the real local model ------------------------------------------------------------------------
def _llm_recipe(request) -> dict:
    """The shared test server when tests/fixtures_llm.py provides it, else the embedded default."""
    try:
        server = request.getfixturevalue("llm_server")
    except pytest.FixtureLookupError:
        return {}
    return {"base_url": server.base_url, "model": server.model}


@pytest.mark.llm
@pytest.mark.timeout(600)
def test_judge_with_real_local_model_scores_records_and_card(request, tmp_path):
    from instructkit.dataset.writer import read_dataset
    from instructkit.pipeline import Pipeline

    pytest.importorskip("llama_cpp")
    recipe = yaml.safe_load(open("builders/series_description_harmonization.yaml", encoding="utf-8"))
    llm = _llm_recipe(request)
    if llm:
        recipe["llm"] = llm
    recipe["stages"] = {"judge": {"min_score": 1, "batch_size": 4, "max_chars": 300}}
    ctx = RunContext(cache_dir=tmp_path / "cache")
    pipe = Pipeline.from_recipe(recipe, limit=2, context=ctx)
    result = pipe.run(tmp_path / "out", quiet=True)
    judge = next(s for s in pipe.stages if isinstance(s, JudgeStep))
    summary = judge.summary()
    assert summary["scored"] >= 1, (summary, [json.loads(x)["reason"] for x in
                                              (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()])
    recs = list(read_dataset(tmp_path / "out"))
    assert len(recs) == result.records == summary["scored"]
    for r in recs:
        j = r["meta"]["judge"]
        assert set(j["scores"]) == set(CRITERIA) and all(1 <= v <= 5 for v in j["scores"].values())
        assert 1 <= j["overall"] <= 5 and j["model"]
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "LLM judge scores" in card and "| safety |" in card
    print(judge.card_section())
