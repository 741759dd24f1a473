"""A hostile but ordinary week for a data team, as one table: each case runs the installed
console script, and checks the exit code, the one-line message, that no traceback is printed,
and that the dataset built before it is still there, byte for byte.

Plus the cases that need more than one command: a build killed with SIGKILL and rerun, two
builds into one folder at once, template escapes, and the secrets an endpoint echoes back.

The cases of issue 25 are tables in three modules, imported at the end so they run as rows of
this file: ``hostile_sandbox.py`` (what a recipe may read and write, and hostile inputs that
cost a row, never the build), ``hostile_gate.py`` (every uploaded byte audited; no folder edit
makes the publish gate more lenient) and ``hostile_out.py`` (no command removes or overwrites a
file it did not write).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hostile_common import SCRIPT, _recipe, _tree_hash, _write, run_cli, workdir  # noqa: F401 - workdir is a fixture


def _enormous_line(tmp: Path) -> dict:
    rows = tmp / "rows.jsonl"
    with rows.open("w", encoding="utf-8") as fh:
        for i in range(5):
            fh.write(json.dumps({"question": f"What causes fever number {i} in adults?",
                                 "answer": f"Fever {i} is usually caused by an infection and passes "
                                           "within three days with rest and fluids."}) + "\n")
        fh.write(json.dumps({"question": "Why?", "answer": "word " * 300_000}) + "\n")
    return _recipe(sources=[{"name": "q", "type": "jsonl", "path": "rows.jsonl", "license": "MIT",
                             "phi": False}])


def _binary(tmp: Path) -> dict:
    (tmp / "blob.jsonl").write_bytes(bytes(range(256)) * 40)
    return _recipe(sources=[{"name": "q", "type": "jsonl", "path": "blob.jsonl", "license": "MIT"}])


def _header_only(tmp: Path) -> dict:
    (tmp / "h.csv").write_text("question,answer\n", encoding="utf-8")
    return _recipe(sources=[{"name": "q", "type": "csv", "path": "h.csv", "license": "MIT"}])


def _wrong_column(tmp: Path) -> dict:
    (tmp / "w.csv").write_text("question_text,answer\n" + "".join(
        f"What is test {i}?,It is a test.\n" for i in range(30)), encoding="utf-8")
    return _recipe(sources=[{"name": "q", "type": "csv", "path": "w.csv", "license": "MIT"}])


def _alias_bomb(tmp: Path) -> str:
    lines = ['name: bomb', 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines += ["sources: *a9", "builders: []"]
    return "\n".join(lines) + "\n"


def _template_escape(tmp: Path) -> dict:
    payload = tmp / "evil.yaml"
    marker = tmp / "PWNED"
    payload.write_text(yaml.safe_dump({
        "id": "evil", "task": "consumer_health_qa",
        "variables": {"question": {"type": "str"}, "answer": {"type": "str"}},
        "phrasings": [
            {"id": "p1", "instruction": "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"},
            {"id": "p2", "instruction": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
            {"id": "p3", "instruction": "{{ lipsum.__globals__['os'].system('touch " + str(marker) + "') }}"},
        ],
        "input": "{{ question }}", "output": "{{ answer }}"}), encoding="utf-8")
    return _recipe(builders=[{"type": "template", "task": "consumer_health_qa", "sources": ["q"],
                              "templates": str(payload)}])


def _outside_path(tmp: Path) -> dict:
    return _recipe(sources=[{"name": "q", "type": "csv", "path": "/etc/passwd", "license": "MIT"}])


# id, recipe (or recipe text) maker, extra CLI args, expected exit code, message pattern
CASES = [
    ("unknown option", None, ["build", "good.yaml", "--out", "out", "--bogus"], 2, r"No such option: --bogus"),
    ("recipe not found", None, ["build", "missing.yaml", "--out", "out"], 2, r"recipe not found"),
    ("bad command", None, ["frobnicate"], 2, r"No such command"),
    ("out is a file", None, ["build", "good.yaml", "--out", "good.yaml"], 2, r"is a file"),
    ("out cannot be written", None, ["build", "good.yaml", "--out", "/proc/instructkit-test/out"], 2,
     r"--out /proc/instructkit-test/out: "),
    ("out holds other files", None, ["build", "good.yaml", "--out", "."], 2, r"not an instructkit dataset"),
    ("alias bomb", _alias_bomb, [], 2, r"alias"),
    ("template id escapes prompts/", lambda t: _recipe(builders=[{"type": "template", "task": "consumer_health_qa",
                                                                  "sources": ["q"], "templates": "../../etc/passwd"}]),
     [], 2, r"not a plain id"),
    ("template reaches python internals", _template_escape, [], 1, r"0 records.*render_error"),
    ("binary file as a JSONL source", _binary, [], 2, r"no line is a JSON object"),
    ("header-only CSV", _header_only, [], 2, r"header row but no data rows"),
    ("every row lacks the mapped column", _wrong_column, [], 1, r"lacked column 'question' \(30 rows\)"),
    ("source outside the allowed folders", _outside_path, [], 2, r"outside the current directory"),
    ("api_key_env names the Hub token", lambda t: _recipe(llm={"base_url": "http://127.0.0.1:9/v1",
                                                               "model": "m", "api_key_env": "HF_TOKEN"}),
     [], 2, r"api_key_env: HF_TOKEN holds a credential"),
]


@pytest.mark.parametrize("name,maker,args,code,pattern", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_ends_in_one_message(workdir, name, maker, args, code, pattern):
    before = _tree_hash(workdir / "out")
    if maker is not None:
        made = maker(workdir)
        _write(workdir / "case.yaml", made)
        args = ["build", "case.yaml", "--out", "out"]
    t = time.time()
    r = run_cli(*args, cwd=workdir)
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout
    assert re.search(pattern, r.stderr, re.S), r.stderr[-2000:]
    assert len(r.stderr) < 2000, "the message must be short (no dumped values)"
    assert time.time() - t < 120
    assert _tree_hash(workdir / "out") == before, "the previous dataset changed"
    assert not (workdir / "PWNED").exists(), "a template ran a command"
    assert not list(workdir.glob(".out.lock")), "the lock was left behind"


def test_enormous_text_is_quarantined_and_the_build_goes_on(workdir):
    _write(workdir / "big.yaml", _enormous_line(workdir))
    r = run_cli("build", "big.yaml", "--out", "big", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote 5 records" in r.stdout
    q = [json.loads(x) for x in (workdir / "big" / "quarantine.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["reason"]) for e in q] == [("limits", "too_long")]


def test_kill_9_leaves_the_previous_dataset_and_a_rerun_gives_the_same_ids(workdir):
    rows = workdir / "many.jsonl"
    with rows.open("w", encoding="utf-8") as fh:
        for i in range(8_000):
            fh.write(json.dumps({"question": f"What is finding {i} on a chest film and what follows?",
                                 "answer": f"Finding {i} is an example; it is followed up with a repeat "
                                           f"film in {i % 12 + 1} weeks."}) + "\n")
    recipe = _recipe(sources=[{"name": "q", "type": "jsonl", "path": "many.jsonl", "license": "MIT",
                               "phi": False}])
    _write(workdir / "many.yaml", recipe)
    assert run_cli("build", "many.yaml", "--out", "ref", cwd=workdir).returncode == 0
    ref_ids = _ids(workdir / "ref")
    before = _tree_hash(workdir / "out")
    proc = subprocess.Popen([str(SCRIPT), "build", "many.yaml", "--out", "out"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list(workdir.glob(".out.partial-*/.parts/data-*.parquet")):
        time.sleep(0.05)
    assert list(workdir.glob(".out.partial-*")), "the build never started writing"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _tree_hash(workdir / "out") == before
    r = run_cli("inspect", "out", cwd=workdir)
    assert r.returncode == 0 and "records: 12" in r.stdout
    # the rerun takes over the dead build's lock and cleans its partial folder
    r = run_cli("build", "many.yaml", "--out", "out", cwd=workdir)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _ids(workdir / "out") == ref_ids
    assert not list(workdir.glob(".out.partial-*")) and not (workdir / ".out.lock").exists()


def _ids(folder: Path) -> list[str]:
    from instructkit.dataset.reader import read_dataset

    return sorted(r["id"] for r in read_dataset(folder))


def test_two_builds_into_one_folder_never_mix(workdir):
    rows = workdir / "many.jsonl"
    rows.write_text("".join(json.dumps({"question": f"What is item {i} about today?",
                                        "answer": f"Item {i} is about testing concurrent builds."}) + "\n"
                            for i in range(6_000)), encoding="utf-8")
    _write(workdir / "a.yaml", _recipe(name="a", sources=[{"name": "q", "type": "jsonl", "path": "many.jsonl",
                                                           "license": "MIT", "phi": False}]))
    _write(workdir / "b.yaml", _recipe(name="b"))
    first = subprocess.Popen([str(SCRIPT), "build", "a.yaml", "--out", "out"], cwd=workdir,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (workdir / ".out.lock").exists():
        time.sleep(0.02)
    second = run_cli("build", "b.yaml", "--out", "out", cwd=workdir)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 1 and "another build is writing it" in second.stderr
    assert f"on host {os.uname().nodename}" in second.stderr and "Traceback" not in second.stderr
    manifest = json.loads((workdir / "out" / "manifest.json").read_text())
    assert manifest["recipe"]["name"] == "a" and (workdir / "out" / "recipe.yaml").read_text().startswith("name: a")
    assert manifest["records"] == len(_ids(workdir / "out"))


def test_incomplete_folder_is_refused_by_inspect_and_publish(workdir):
    half = workdir / "half"
    shutil.copytree(workdir / "out", half)
    (half / ".instructkit-complete").unlink()
    for args in (["inspect", "half"], ["publish", "half", "--repo-id", "org/x", "--dry-run"], ["audit", "half"]):
        r = run_cli(*args, cwd=workdir)
        assert r.returncode == 2, (args, r.stderr)
        assert "incomplete dataset folder" in r.stderr and "Traceback" not in r.stderr


def test_allow_path_lets_a_trusted_recipe_read_elsewhere(workdir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "q.csv").write_text("question,answer\n" + "".join(
        f"What is test {i} for?,Test {i} checks that allowed folders are read.\n" for i in range(4)))
    _write(workdir / "far.yaml", _recipe(sources=[{"name": "q", "type": "csv", "license": "MIT",
                                                   "path": str(elsewhere / "q.csv"), "phi": False}]))
    strict = {"INSTRUCTKIT_ALLOW_PATHS": ""}  # the suite allows its temporary folders; not here
    assert run_cli("build", "far.yaml", "--out", "far", cwd=workdir, env=strict).returncode == 2
    r = run_cli("build", "far.yaml", "--out", "far", "--allow-path", str(elsewhere), cwd=workdir,
                env=strict)
    assert r.returncode == 0 and "wrote 4 records" in r.stdout, r.stderr


def test_empty_build_with_allow_empty_exits_0(workdir):
    _write(workdir / "w.yaml", _wrong_column(workdir))
    r = run_cli("build", "w.yaml", "--out", "empty", "--allow-empty", cwd=workdir)
    assert r.returncode == 0 and "wrote 0 records" in r.stdout


def test_verbose_shows_the_traceback(workdir):
    _write(workdir / "w.yaml", _wrong_column(workdir))
    r = run_cli("--verbose", "build", "w.yaml", "--out", "empty", cwd=workdir)
    assert r.returncode == 1 and "Traceback" in r.stderr


# -- templates: the sandbox holds against the known escapes ---------------------------------------
ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.system('id') }}",
    "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "{{ request.application.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ config.items() }}",
    "{{ [].append.__self__.__class__ }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_no_template_reaches_python_internals(payload):
    from jinja2.exceptions import SecurityError, UndefinedError

    from instructkit._templating import sandboxed_env

    with pytest.raises((SecurityError, UndefinedError)):
        sandboxed_env().from_string(payload).render(question="q")


def test_every_renderer_uses_the_sandbox():
    """Template sets, synthetic prompts, RAG prompts and the judge rubric render in the one
    sandboxed environment."""
    from jinja2.sandbox import SandboxedEnvironment

    from instructkit.recordbuilders import template
    from instructkit.recordbuilders.rag import prompts as rag_prompts
    from instructkit.recordbuilders.synthetic import prompts as syn_prompts
    from instructkit.steps.quality.judge import load_rubric

    for env in (template._env(), rag_prompts._env(), syn_prompts._env()):
        assert isinstance(env, SandboxedEnvironment)
    rubric = load_rubric("judge/rubric")
    assert isinstance(rubric._user.environment, SandboxedEnvironment)


def test_prompt_ids_resolve_only_inside_prompts():
    from instructkit._exceptions import TemplateError
    from instructkit._resources import prompt_file

    for bad in ("../secrets", "templates/../../x", "/etc/passwd", "a/../../b", "..", "x\\..\\y"):
        with pytest.raises(TemplateError):
            prompt_file(bad, "templates", "template set")
    assert prompt_file("consumer_health_qa", "templates", "template set").name == "consumer_health_qa.yaml"


# -- secrets -------------------------------------------------------------------------------------
def test_a_token_the_endpoint_echoes_is_scrubbed_from_quarantine_and_llm_check(tmp_path, monkeypatch):
    from fixtures_llm import StubOpenAI

    token = "sk-proj-" + "A1b2C3d4" * 5

    def echo(req):
        return (400, json.dumps({"error": {"message": "bad request", "type": "invalid_request_error",
                                           "code": f"Bearer {token}"}}).encode())

    with StubOpenAI(echo) as stub:
        env = {"MY_LLM_KEY": token, "INSTRUCTKIT_CACHE_DIR": str(tmp_path / "cache")}
        recipe = _recipe(llm={"base_url": stub.base_url, "model": "m", "api_key_env": "MY_LLM_KEY",
                              "max_retries": 0, "json_retries": 0},
                         builders=[{"type": "synthetic", "self_instruct": {"n": 2}}],
                         sources=[{"name": "q", "type": "inline", "license": "MIT", "rows": [{"a": "b"}]}])
        _write(tmp_path / "s.yaml", recipe)
        r = run_cli("build", "s.yaml", "--out", "o", "--allow-empty", cwd=tmp_path, env=env)
        assert token not in r.stdout + r.stderr
        blob = "".join(p.read_text() for p in tmp_path.rglob("*.jsonl")) if list(tmp_path.rglob("*.jsonl")) else ""
        assert token not in blob and "A1b2C3d4" not in blob
        r = run_cli("llm-check", "s.yaml", cwd=tmp_path, env=env)
        assert r.returncode == 1 and token not in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_llm_check_exits_1_when_structured_output_fails(tmp_path):
    from fixtures_llm import StubOpenAI

    with StubOpenAI(lambda req: "this is not JSON at all") as stub:
        _write(tmp_path / "s.yaml", _recipe(llm={"base_url": stub.base_url, "model": "m",
                                                 "json_retries": 1, "max_retries": 0}))
        r = run_cli("llm-check", "s.yaml", cwd=tmp_path, env={"INSTRUCTKIT_CACHE_DIR": str(tmp_path / "c")})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "structured output: FAILED" in r.stdout and "Traceback" not in r.stderr


def test_secret_scrubber_shapes():
    from instructkit._secrets import scrub_secrets

    text = ("Authorization: Bearer abcdefghijklmnop hf_ABCDEFGHIJKLMNOPQRST sk-ant-api03-abcdefghijklmnopqrstu "
            "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123 AKIAABCDEFGHIJKLMNOP xoxb-1234567890-abcdef")
    out = scrub_secrets(text)
    for leaked in ("abcdefghijklmnop", "ABCDEFGHIJKLMNOPQRST", "api03", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
                   "AKIAABCDEFGHIJKLMNOP", "1234567890-abcdef"):
        assert leaked not in out, out


def test_a_locked_response_cache_is_one_clear_error(tmp_path, monkeypatch):
    import sqlite3

    from instructkit._exceptions import LLMError
    from instructkit.llm import cache as cache_mod

    (tmp_path / "c").mkdir()
    db = sqlite3.connect(str(tmp_path / "c" / "llm-responses.sqlite3"), isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    db.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(cache_mod, "LOCK_TIMEOUT", 0.2)
    with pytest.raises(LLMError, match="cannot be used.*database is locked"):
        cache_mod.ResponseCache(tmp_path / "c")
    db.rollback()


# -- issue 25: the sandbox, the publish gate and the output folder, each part's table in its own
# module; imported here so that every case runs as a row of this file
from hostile_sandbox import (arena, test_credential_store_is_refused_even_under_the_current_directory,  # noqa: E402,F401
                             test_data_roots, test_escape_is_refused, test_every_marked_field_has_a_snippet,
                             test_hostile_input, test_index_dir_is_not_a_users_folder,
                             test_known_path_fields_are_marked, test_path_like_fields_are_marked,
                             test_shipped_sample_still_reads)
from hostile_gate import (built, test_dry_run_without_a_repo_id_is_a_usage_error,  # noqa: E402,F401
                          test_gate_reads_every_file_and_no_folder_edit_loosens_it,
                          test_public_manifest_cuts_every_absolute_path, test_secret_shapes_and_url_credentials,
                          test_uploaded_recipe_and_manifest_hold_no_phi_rows_no_password_and_no_local_path)
from hostile_out import (test_a_file_added_while_the_build_runs_is_kept,  # noqa: E402,F401
                         test_a_folder_an_older_version_wrote_is_still_replaced,
                         test_a_linked_out_is_built_into_its_target_and_the_link_stays,
                         test_a_rebuild_replaces_the_folder_the_previous_build_wrote,
                         test_a_report_rewritten_in_place_keeps_the_folder_rebuildable,
                         test_out_never_destroys_what_it_did_not_write)
