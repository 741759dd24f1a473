"""The sandbox against a hostile recipe (issue 25, part A), as tables run through the installed
console script: a recipe reads only where the user allowed, writes only where it may, and a
hostile input (a FIFO, a runaway pattern or template, a corrupt or odd file) costs a row, not
the build.

The path fields come from the schemas (``x-instructkit-path``), not from a list kept here:
a field marked in a schema without a recipe snippet below fails ``test_every_marked_field_has_a_snippet``,
and a path-like field left unmarked fails ``test_path_like_fields_are_marked``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from hostile_common import SCRIPT, _recipe, _write

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
KEYWORD = "x-instructkit-path"
SECRET = "root:x:0:0:planted-secret-line"
#: schemas a recipe never reaches (a record, the licence and model-term tables)
NOT_RECIPE = {"record.schema.json", "licenses.schema.json", "model_terms.schema.json"}
PATH_LIKE = re.compile(r"path|_dir$|dir_|file|templates|seed_tasks|dataset|test_ids|rubric|prompts|embedder|^model$")
#: string-valued properties whose name looks path-like but that hold no path (and why)
NOT_PATHS = {
    "publish.schema.json#/properties/repo_id": "a Hub repo id, never read from disk",
    "llm.schema.json#/properties/model": "the model name sent to the endpoint (the file is embedded.model_path)",
}


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """The console script with nothing allowed but the current directory (conftest allows /tmp)."""
    e = {k: v for k, v in os.environ.items() if k not in ("INSTRUCTKIT_SHARED_DATA", "INSTRUCTKIT_DATA_VARS")}
    e.update({"INSTRUCTKIT_ALLOW_PATHS": "", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
              "INSTRUCTKIT_CACHE_DIR": str(cwd / ".cache")}, **(env or {}))
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)


# -- the schemas -------------------------------------------------------------------------------------
def _schema_nodes():
    """(location, node) for every dict in every recipe schema."""
    for f in sorted(SCHEMAS.rglob("*.schema.json")):
        name = f.relative_to(SCHEMAS).as_posix()
        if name in NOT_RECIPE:
            continue
        stack = [("", json.loads(f.read_text(encoding="utf-8")))]
        while stack:
            ptr, node = stack.pop()
            if isinstance(node, dict):
                yield f"{name}#{ptr}", node
                stack.extend((f"{ptr}/{k}", v) for k, v in node.items())
            elif isinstance(node, list):
                stack.extend((f"{ptr}/{i}", v) for i, v in enumerate(node))


def marked_fields() -> dict[str, str]:
    return {loc: node[KEYWORD] for loc, node in _schema_nodes() if KEYWORD in node}


def _holds_string(node: dict) -> bool:
    t = node.get("type")
    branches = node.get("anyOf", []) + node.get("oneOf", [])
    return t == "string" or (isinstance(t, list) and "string" in t) or any(
        isinstance(b, dict) and b.get("type") == "string" for b in branches)


def _marked_inside(node: dict) -> bool:
    return KEYWORD in node or any(isinstance(b, dict) and KEYWORD in b
                                  for b in node.get("anyOf", []) + node.get("oneOf", []))


def test_path_like_fields_are_marked():
    """A new path field cannot be forgotten: every string property named like a path is marked."""
    unmarked = []
    for loc, node in _schema_nodes():
        for name, prop in (node.get("properties") or {}).items():
            where = f"{loc}/properties/{name}"
            if (isinstance(prop, dict) and PATH_LIKE.search(name) and _holds_string(prop)
                    and not _marked_inside(prop) and where not in NOT_PATHS):
                unmarked.append(where)
    assert not unmarked, f"path-like schema fields without {KEYWORD}: {unmarked}"


def test_known_path_fields_are_marked():
    kinds = marked_fields()
    for loc, kind in {
        "source.schema.json#/properties/path": "read",
        "source.schema.json#/properties/dataset": "read-or-hub-id",
        "builders/template.schema.json#/properties/templates": "read-or-prompt-id",
        "builders/rag.schema.json#/properties/documents/items/properties/path": "read",
        "builders/rag.schema.json#/properties/index_dir": "write",
        "builders/synthetic.schema.json#/properties/seed_tasks": "read",
        "stages/dedup.schema.json#/$defs/benchmark/anyOf/1/properties/path": "read",
        "stages/dedup.schema.json#/$defs/benchmark/anyOf/1/properties/test_ids": "read",
        "stages/dedup.schema.json#/properties/seed_tasks/anyOf/1": "read",
    }.items():
        assert kinds.get(loc) == kind, loc


# -- a recipe that puts a value in each marked field ------------------------------------------------
def _with_source(v):
    return {"sources": [*_recipe()["sources"], {"name": "evil", "type": "csv", "license": "MIT", "path": v}]}


def _with_builder(b):
    return {"builders": [*_recipe()["builders"], b]}


def _with_stage(name, cfg):
    return {"stages": {**_recipe()["stages"], name: cfg}}


_DOCS = [{"path": "docs", "license": "MIT"}]
SNIPPETS = {
    "source.schema.json#/properties/path": _with_source,
    "source.schema.json#/properties/dataset": lambda v: {"sources": [*_recipe()["sources"], {
        "name": "evil", "type": "hf", "license": "MIT", "dataset": v}]},
    "builders/template.schema.json#/properties/templates": lambda v: _with_builder(
        {"type": "template", "task": "consumer_health_qa", "sources": ["q"], "templates": v}),
    "builders/rag.schema.json#/properties/documents/items/properties/path": lambda v: _with_builder(
        {"type": "rag", "documents": [{"path": v, "license": "MIT"}]}),
    "builders/rag.schema.json#/properties/index_dir": lambda v: _with_builder(
        {"type": "rag", "documents": _DOCS, "index_dir": v}),
    "builders/rag.schema.json#/properties/embedder": lambda v: _with_builder(
        {"type": "rag", "documents": _DOCS, "embedder": v}),
    "builders/rag.schema.json#/properties/prompts/properties/guideline_qa": lambda v: _with_builder(
        {"type": "rag", "documents": _DOCS, "prompts": {"guideline_qa": v}}),
    "builders/rag.schema.json#/properties/prompts/properties/recommendation_summary": lambda v: _with_builder(
        {"type": "rag", "documents": _DOCS, "prompts": {"recommendation_summary": v}}),
    "builders/rag.schema.json#/properties/prompts/properties/guideline_adherence": lambda v: _with_builder(
        {"type": "rag", "documents": _DOCS, "prompts": {"guideline_adherence": v}}),
    "builders/rag.schema.json#/properties/extractive/properties/prompts": lambda v: _with_builder(
        {"type": "rag", "documents": _DOCS, "extractive": {"prompts": v}}),
    "builders/synthetic.schema.json#/properties/seed_tasks": lambda v: _with_builder(
        {"type": "synthetic", "seed_tasks": v}),
    "builders/synthetic.schema.json#/properties/backtranslate/anyOf/1/properties/documents/items/properties/path":
        lambda v: _with_builder({"type": "synthetic", "backtranslate": {"documents": [{"path": v, "license": "MIT"}]}}),
    "builders/synthetic.schema.json#/properties/backtranslate/anyOf/1/properties/prompts": lambda v: _with_builder(
        {"type": "synthetic", "backtranslate": {"documents": _DOCS, "prompts": v}}),
    "embedder.schema.json#/anyOf/0": lambda v: {"embedder": v},
    "embedder.schema.json#/anyOf/1/properties/model": lambda v: {"embedder": {"model": v}},
    "llm.schema.json#/properties/cache_dir": lambda v: {"llm": {"cache_dir": v}},
    "llm.schema.json#/properties/embedded/properties/model_path": lambda v: {"llm": {"embedded": {"model_path": v}}},
    "stages/dedup.schema.json#/$defs/benchmark/anyOf/0": lambda v: _with_stage("dedup", {"decontaminate": [v]}),
    "stages/dedup.schema.json#/$defs/benchmark/anyOf/1/properties/path": lambda v: _with_stage(
        "dedup", {"decontaminate": [{"path": v}]}),
    "stages/dedup.schema.json#/$defs/benchmark/anyOf/1/properties/dataset": lambda v: _with_stage(
        "dedup", {"decontaminate": [{"dataset": v}]}),
    "stages/dedup.schema.json#/$defs/benchmark/anyOf/1/properties/test_ids": lambda v: _with_stage(
        "dedup", {"decontaminate": [{"path": "bench.jsonl", "test_ids": v}]}),
    "stages/dedup.schema.json#/properties/semantic/anyOf/2/properties/model": lambda v: _with_stage(
        "dedup", {"semantic": {"model": v}}),
    "stages/dedup.schema.json#/properties/seed_tasks/anyOf/1": lambda v: _with_stage("dedup", {"seed_tasks": v}),
    "stages/judge.schema.json#/properties/rubric": lambda v: _with_stage("judge", {"rubric": v}),
}


def test_every_marked_field_has_a_snippet():
    assert set(marked_fields()) == set(SNIPPETS)


# -- the escapes, on every marked field -------------------------------------------------------------
def _attacks(tmp: Path) -> dict[str, tuple[str, dict]]:
    """attack id -> (value naming the planted secret outside the work folder, extra env)."""
    outside = tmp / "outside"
    up = "../" * (len(Path("/").resolve().parts) + len(tmp.parts) + 4)
    return {
        "traversal": ("../outside/secret.yaml", {}),
        "pkg-traversal": (f"pkg://samples/{up}{str(outside).lstrip('/')}/secret.yaml", {}),
        "pkg-encoded-dots": ("pkg://samples/%2e%2e/%2e%2e/%2e%2e/secret.yaml", {}),
        "encoded-dots": ("%2e%2e/outside/secret.yaml", {}),
        "fullwidth-dots": ("\uff0e\uff0e/outside/secret.yaml", {}),
        "home-variable": ("${HOME}/secret.yaml", {"HOME": str(outside)}),
        "other-variable": ("${SOME_FOLDER}/secret.yaml", {"SOME_FOLDER": str(outside)}),
        "unset-variable-default": ("${NOT_SET_ANYWHERE:-" + str(outside) + "}/secret.yaml", {}),
        "symlink-inside": ("data/link/secret.yaml", {}),
    }


ATTACK_IDS = ["traversal", "pkg-traversal", "pkg-encoded-dots", "encoded-dots", "fullwidth-dots",
              "home-variable", "other-variable", "unset-variable-default", "symlink-inside"]


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    """work/ (the current directory, with a symlink to outside/) and outside/ with secrets."""
    tmp = tmp_path_factory.mktemp("arena")
    outside, work = tmp / "outside", tmp / "work"
    (work / "data").mkdir(parents=True)
    (work / "docs").mkdir()
    (work / "docs" / "guide.md").write_text("# Guide\n\nRest and fluids help most fevers.\n")
    outside.mkdir()
    for name in ("secret.yaml", "secret.csv"):
        (outside / name).write_text(f"question,answer\n{SECRET},{SECRET}\n")
    (work / "data" / "link").symlink_to(outside, target_is_directory=True)
    return tmp


def _assert_refused(r: subprocess.CompletedProcess, work: Path, field_hint: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 3, lines
    assert SECRET not in r.stdout + r.stderr
    assert re.search(field_hint, r.stderr), r.stderr
    for p in work.rglob("*"):
        if p.is_file() and not p.is_symlink() and "outside" not in p.resolve().as_posix():
            assert SECRET not in p.read_text(errors="replace"), p


@pytest.mark.parametrize("attack", ATTACK_IDS)
@pytest.mark.parametrize("field", sorted(SNIPPETS))
def test_escape_is_refused(arena, field, attack):
    work = arena / "work"
    value, env = _attacks(arena)[attack]
    recipe = _recipe(**SNIPPETS[field](value))
    name = f"r-{abs(hash((field, attack)))}.yaml"
    _write(work / name, recipe)
    r = run("build", name, "--out", "out-escape", cwd=work, env=env)
    # the message names the recipe field
    _assert_refused(r, work, r"\b(sources|builders|stages|llm|embedder)[.\w]*: ")
    assert not (work / "out-escape").exists()


# -- what the user allows ---------------------------------------------------------------------------
@pytest.mark.parametrize("case, env, extra_args, code", [
    ("not-allowed", {}, [], 2),
    ("allow-path", {}, ["--allow-path", "{outside}"], 0),
    ("allow-paths-env", {"INSTRUCTKIT_ALLOW_PATHS": "{outside}"}, [], 0),
    ("shared-data", {"INSTRUCTKIT_SHARED_DATA": "{outside}"}, [], 0),
    ("named-data-var", {"INSTRUCTKIT_DATA_VARS": "MIMIC_III_DIR", "MIMIC_III_DIR": "{outside}"}, [], 0),
    ("unnamed-var", {"MIMIC_III_DIR": "{outside}"}, [], 2),
])
def test_data_roots(tmp_path, case, env, extra_args, code):
    outside, work = tmp_path / "outside", tmp_path / "work"
    outside.mkdir()
    work.mkdir()
    (outside / "qa.csv").write_text("question,answer\n" + "".join(
        f"What is condition {i} and how is it treated?,Condition {i} is treated with rest and fluids.\n"
        for i in range(5)))
    var = "${MIMIC_III_DIR}" if "MIMIC" in json.dumps(env) else "${INSTRUCTKIT_SHARED_DATA}" \
        if case == "shared-data" else str(outside)
    recipe = _recipe(sources=[{"name": "q", "type": "csv", "license": "MIT", "path": f"{var}/qa.csv"}])
    _write(work / "r.yaml", recipe)
    fill = {k: v.replace("{outside}", str(outside)) for k, v in env.items()}
    r = run("build", "r.yaml", "--out", "out", *[a.replace("{outside}", str(outside)) for a in extra_args],
            cwd=work, env=fill)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    if code == 2:
        assert "sources.0.path" in r.stderr and "--allow-path" in r.stderr


def test_shipped_sample_still_reads(tmp_path):
    recipe = _recipe(sources=[{"name": "q", "type": "csv", "license": "MIT",
                               "path": "pkg://samples/series_descriptions.csv"}],
                     builders=[{"type": "template", "task": "series_description_harmonization",
                                "sources": ["q"]}])
    _write(tmp_path / "r.yaml", recipe)
    r = run("build", "r.yaml", "--out", "out", cwd=tmp_path)
    assert "outside" not in r.stderr and "leaves" not in r.stderr, r.stderr


@pytest.mark.parametrize("store", [".ssh", ".aws"])
def test_credential_store_is_refused_even_under_the_current_directory(tmp_path, store):
    """A build run from the home folder: ``~/.ssh`` is under the current directory, and still refused."""
    (tmp_path / store).mkdir()
    (tmp_path / store / "keys.csv").write_text(f"question,answer\n{SECRET},{SECRET}\n")
    _write(tmp_path / "r.yaml", _recipe(sources=[{"name": "q", "type": "csv", "license": "MIT",
                                                  "path": f"{store}/keys.csv"}]))
    r = run("build", "r.yaml", "--out", "out", cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert r.returncode == 2, r.stderr
    assert re.search(r"sources\.0\.path: .*credential store", r.stderr), r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


# -- index_dir: never a user's folder --------------------------------------------------------------
@pytest.mark.parametrize("case, setup, code, message", [
    ("user-folder", lambda d: (d / "documents.json").write_text("[\"mine\"]"), 2, r"builders\.1\.index_dir: .*did not write"),
    ("a-file", lambda d: None, 2, r"builders\.1\.index_dir: .*is a file"),
    ("package", None, 2, r"builders\.1\.index_dir: .*installed package"),
])
def test_index_dir_is_not_a_users_folder(tmp_path, case, setup, code, message):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\nRest and fluids help most fevers.\n")
    target = "mine"
    if case == "user-folder":
        (tmp_path / "mine").mkdir()
        setup(tmp_path / "mine")
        (tmp_path / "mine" / "chunks.jsonl").write_text("{\"mine\": 1}\n")
    elif case == "a-file":
        (tmp_path / "mine").write_text("a file of mine")
    else:
        target = "pkg://samples/idx"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    _write(tmp_path / "r.yaml", _recipe(**_with_builder({"type": "rag", "documents": _DOCS, "index_dir": target})))
    r = run("build", "r.yaml", "--out", "out", cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert re.search(message, r.stderr), r.stderr
    assert "Traceback" not in r.stderr
    for p, data in before.items():
        assert p.read_bytes() == data, p


# -- hostile inputs: each costs a row (or one clear line), never the build --------------------------
def _qa_rows(n=6):
    return [{"question": f"What is condition number {i} and how is it treated?",
             "answer": f"Condition {i} is a made-up condition; it is treated with rest and fluids."}
            for i in range(n)]


def _csv(rows, extra="") -> str:
    return "question,answer\n" + "".join(f"\"{r['question']}\",\"{r['answer']}\"\n" for r in rows) + extra


def _setup_fifo(d: Path) -> dict:
    os.mkfifo(d / "pipe.csv")
    return {"sources": [{"name": "q", "type": "csv", "license": "MIT", "path": "pipe.csv"}]}


def _setup_fifo_in_folder(d: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (d / "pq").mkdir()
    pq.write_table(pa.Table.from_pylist(_qa_rows()), d / "pq" / "a.parquet")
    os.mkfifo(d / "pq" / "b.parquet")
    return {"sources": [{"name": "q", "type": "parquet", "license": "MIT", "path": "pq"}]}


def _setup_folder_as_file(d: Path) -> dict:
    (d / "folder.csv").mkdir()
    return {"sources": [{"name": "q", "type": "csv", "license": "MIT", "path": "folder.csv"}]}


def _setup_redos(d: Path) -> dict:
    rows = [{**r, "tag": "aaaa" if i % 2 else "a" * 40 + "!"} for i, r in enumerate(_qa_rows())]
    return {"sources": [{"name": "q", "type": "inline", "license": "MIT", "phi": False, "rows": rows,
                         "where": {"tag": "^(a+)+$"}}]}


def _setup_backreference(d: Path) -> dict:
    return {"sources": [{**_recipe()["sources"][0], "where": {"question": "(a)\\1"}}]}


def _setup_template_bomb(d: Path) -> dict:
    _write(d / "bomb.yaml", {
        "id": "bomb", "task": "consumer_health_qa", "description": "a runaway template",
        "variables": {"question": "str", "answer": "str"},
        "phrasings": [{"id": f"p{i}", "instruction": f"Answer the question ({i})."} for i in range(3)],
        "input": "{{ question }}",
        "output": "{% for i in range(100000) %}{% for j in range(100000) %}{{ answer }}{% endfor %}{% endfor %}"})
    return {"builders": [{"type": "template", "task": "consumer_health_qa", "templates": "bomb.yaml",
                          "sources": ["q"]}], "output": {"formats": ["messages"], "allow_empty": True}}


def _setup_template_multiply(d: Path) -> dict:
    r = _setup_template_bomb(d)
    text = (d / "bomb.yaml").read_text().replace(
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ answer }}{% endfor %}{% endfor %}",
        "{{ answer * 1000000000 }}")
    (d / "bomb.yaml").write_text(text)
    return r


def _setup_corrupt_parquet(d: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _qa_rows(30)
    pq.write_table(pa.Table.from_pylist(rows), d / "c.parquet", row_group_size=10, compression="snappy")
    pf = pq.ParquetFile(d / "c.parquet")
    middle = pf.metadata.row_group(1).column(1)
    start = middle.dictionary_page_offset or middle.data_page_offset
    raw = bytearray((d / "c.parquet").read_bytes())
    raw[start:start + middle.total_compressed_size] = os.urandom(middle.total_compressed_size)
    (d / "c.parquet").write_bytes(bytes(raw))
    return {"sources": [{"name": "q", "type": "parquet", "license": "MIT", "path": "c.parquet"}]}


def _setup_csv_nul(d: Path) -> dict:
    rows = _qa_rows()
    (d / "nul.csv").write_text(_csv(rows, "\"What is the secret\x00 nul question here?\",\"It hides a NUL\x00 byte.\"\n"))
    return {"sources": [{"name": "q", "type": "csv", "license": "MIT", "path": "nul.csv"}]}


def _setup_csv_long_cell(d: Path) -> dict:
    (d / "long.csv").write_text(_csv(_qa_rows(), f"\"What is a long one?\",\"{'word ' * 30_000}\"\n"))
    return {"sources": [{"name": "q", "type": "csv", "license": "MIT", "path": "long.csv"}]}


def _setup_csv_huge_cell(d: Path) -> dict:
    (d / "huge.csv").write_text(_csv(_qa_rows(), f"\"What is a huge one?\",\"{'x' * 1_100_000}\"\n"))
    return {"sources": [{"name": "q", "type": "csv", "license": "MIT", "path": "huge.csv"}]}


def _setup_deep_json(d: Path) -> dict:
    lines = [json.dumps(r) for r in _qa_rows()]
    lines.append('{"question": "deep?", "answer": ' + "[" * 10_000 + "]" * 10_000 + "}")
    lines.append('{"question": "deep?", "answer": "x", "extra": ' + "[" * 500 + "]" * 500 + "}")
    (d / "deep.jsonl").write_text("\n".join(lines) + "\n")
    return {"sources": [{"name": "q", "type": "jsonl", "license": "MIT", "path": "deep.jsonl"}]}


# case id -> (setup, expected exit code, regex on stderr (exit 2) or quarantine reasons (exit 0/1))
HOSTILE = {
    "fifo-source": (_setup_fifo, 2, r"pipe\.csv.*not a regular file"),
    "fifo-in-folder": (_setup_fifo_in_folder, 0, None),
    "folder-as-file": (_setup_folder_as_file, 2, r"folder\.csv.*is a folder"),
    "redos-where": (_setup_redos, 0, None),
    "backreference-where": (_setup_backreference, 2, r"sources\.0\.where\.question: .*not a supported"),
    "template-nested-range": (_setup_template_bomb, 0, r"render_(too_large|timeout)"),
    "template-multiply": (_setup_template_multiply, 0, r"render_too_large"),
    "parquet-corrupt-middle": (_setup_corrupt_parquet, 0, r"unreadable_row"),
    "csv-nul": (_setup_csv_nul, 0, r"unreadable_row"),
    "csv-cell-over-128k": (_setup_csv_long_cell, 0, r"too_long"),
    "csv-cell-over-1m": (_setup_csv_huge_cell, 0, r"too_long"),
    "json-nested-10000": (_setup_deep_json, 0, r"unreadable_row"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input(tmp_path, case):
    setup, code, expected = HOSTILE[case]
    _write(tmp_path / "r.yaml", _recipe(**setup(tmp_path)))
    r = run("build", "r.yaml", "--out", "out", cwd=tmp_path, timeout=120)
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    if code == 2:
        assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 3, r.stderr
        assert re.search(expected, r.stderr), r.stderr
        return
    exports = "".join(p.read_text(errors="replace") for p in (tmp_path / "out").rglob("*.jsonl"))
    assert "\\u0000" not in exports and "\x00" not in exports
    if expected:
        quarantine = (tmp_path / "out" / "quarantine.jsonl").read_text()
        reasons = {json.loads(line)["reason"] for line in quarantine.splitlines() if line.strip()}
        assert any(re.fullmatch(expected, x) for x in reasons), reasons
