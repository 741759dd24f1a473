"""Issue 25, part B: the publish gate reads every byte it uploads, and no folder edit makes it
more lenient. One table: each row builds (or reuses) a dataset through the installed console
script, tampers with the folder as a careless colleague or a hostile one would, and runs
``instructkit publish DIR --dry-run --repo-id x/y``: exit code, a line naming the file, no
traceback, and the planted value never printed (messages name files and kinds, never values).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import yaml

SCRIPT = Path(sys.executable).with_name("instructkit")

SSN, PHONE, MRN, EMAIL = "219-09-9999", "617-555-0123", "MRN 4482913", "jo.doe@mailhost.net"
HF_TOKEN = "hf_" + "Qx7bVt2LmN9pRs4WkZ8yHc3DfJ6gAe1U"
OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
GH_TOKEN = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"
SLACK = "xoxb-" + "123456789012-abcdefghijklmnop"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq3\n-----END RSA PRIVATE KEY-----"
URL_PASSWORD = "s3cr3t-Pa55word"

PUBLIC_ROWS = [{"id": f"p{i}", "question": f"What is condition number {i} and how is it treated?",
                "answer": f"Condition {i} is a made-up condition used in tests; it is treated with rest, "
                          f"fluids and a follow-up visit."} for i in range(6)]
CLINIC_ROWS = [{"id": f"c{i}", "question": f"How should wound number {i} be dressed at home?",
                "answer": f"Keep wound {i} clean and dry, change the dressing daily and watch for redness."}
               for i in range(4)]


def recipe(**over) -> dict:
    """A fast publishable recipe (no model): a public source (phi: false) and a clinic's
    source (PHI by default), anonymize, dedup, validate and audit."""
    r = {"name": "gate", "seed": 5, "description": "A small test set.",
         "sources": [{"name": "pub", "type": "inline", "license": "CC-BY-4.0", "phi": False, "id_field": "id",
                      "description": "Public questions.", "citation": "Doe J. Public questions. 2020.",
                      "rows": copy.deepcopy(PUBLIC_ROWS)},
                     {"name": "clinic", "type": "inline", "license": "CC-BY-4.0", "id_field": "id",
                      "rows": copy.deepcopy(CLINIC_ROWS)}],
         "builders": [{"type": "template", "task": "consumer_health_qa", "sources": ["pub", "clinic"]}],
         "stages": {"anonymize": True, "dedup": True, "validate": True, "audit": {"names": False}},
         "card": {"summary": "Test questions and answers.", "limitations": ["Made-up conditions."]},
         "output": {"formats": ["messages"], "report": False}}
    r.update(over)
    return r


def _with_source(r: dict, name: str, **fields) -> dict:
    r["sources"] = [{**s, **fields} if s["name"] == name else s for s in r["sources"]]
    return r


#: recipes that plant something through recipe text (built once each)
VARIANTS: dict[str, Callable[[], dict]] = {
    "clean": recipe,
    "summary_ssn": lambda: recipe(card={"summary": f"Collected for patient SSN {SSN}.", "limitations": []}),
    "limitations_email": lambda: recipe(card={"summary": "Test set.", "limitations": [f"Ask {EMAIL}."]}),
    "description_phone": lambda: _with_source(recipe(), "clinic", description=f"Call the ward on {PHONE}."),
    "citation_mrn": lambda: _with_source(recipe(), "pub", citation=f"Chart of {MRN}, 2020."),
    "phi_false_rows": lambda: _with_source(recipe(), "pub", rows=[
        *PUBLIC_ROWS[:3], {"id": "p9", "question": "Who was seen?",
                           "answer": f"The patient, SSN {SSN}, phone {PHONE}, {MRN}, was seen."}]),
    "phi_rows": lambda: _with_source(recipe(), "clinic", rows=[
        *CLINIC_ROWS, {"id": "c9", "question": "Who was seen on the ward?",
                       "answer": f"Patient with SSN {SSN} was seen and sent home."}]),
    "card_tokens": lambda: recipe(card={"summary": f"Built with {HF_TOKEN} and {OPENAI_KEY}.",
                                        "limitations": [f"keys {AWS_KEY} {GH_TOKEN} {SLACK}", PRIVATE_KEY]}),
    "description_token": lambda: _with_source(recipe(), "pub", description=f"Mirror key {HF_TOKEN}."),
    "base_url_password": lambda: recipe(llm={"base_url": f"http://admin:{URL_PASSWORD}@llm.internal:8080/v1",
                                             "model": "m"}),
}


def run_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    assert SCRIPT.exists(), f"the console script is not installed next to {sys.executable}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TOKEN", None)
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """variant -> its built dataset folder (built on first use, through the console script)."""
    root = tmp_path_factory.mktemp("gate")
    cache: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in cache:
            (root / f"{variant}.yaml").write_text(yaml.safe_dump(VARIANTS[variant](), sort_keys=False),
                                                  encoding="utf-8")
            r = run_cli("build", f"{variant}.yaml", "--out", variant, cwd=root)
            assert r.returncode == 0, (variant, r.stdout, r.stderr)
            cache[variant] = root / variant
        return cache[variant]
    return get


# -- folder tampering ------------------------------------------------------------------------
def _data_file(folder: Path) -> Path:
    return next((folder / "data").glob("*.parquet"))


def _rehash(folder: Path, rel: str) -> None:
    """Record a file's new sha256 in manifest.json, as a careful forger would."""
    m = json.loads((folder / "manifest.json").read_text())
    m["data_files"][rel] = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))


def _edit_records(folder: Path, source: str, text: str) -> None:
    """Append ``text`` to the output of the first record of ``source`` and re-record the hash."""
    import pyarrow.parquet as pq

    path = _data_file(folder)
    table = pq.read_table(path)
    rows = table.to_pylist()
    row = next(r for r in rows if (r.get("source") or {}).get("name") == source)
    row["output"] = f"{row['output']} {text}"
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), path)
    _rehash(folder, path.relative_to(folder).as_posix())


def _edit_manifest(folder: Path, fn: Callable[[dict], None]) -> None:
    m = json.loads((folder / "manifest.json").read_text())
    fn(m)
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))


def _edit_recipe(folder: Path, fn: Callable[[dict], None]) -> None:
    r = yaml.safe_load((folder / "recipe.yaml").read_text())
    fn(r)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(r, sort_keys=False))


def _phi_free(name: str) -> Callable[[dict], None]:
    def add(m: dict) -> None:
        m.setdefault("phi_free", {"sources": [], "copies": []})["sources"].append(name)
    return add


def _limits(**limits) -> Callable[[dict], None]:
    def set_limits(r: dict) -> None:
        r.setdefault("stages", {})["audit"] = {"names": False, "limits": limits}
    return set_limits


def _private_false(r: dict) -> None:
    r["publish"] = {"private": False}


def _plant_url_password(r: dict) -> None:
    r["llm"] = {"base_url": f"http://admin:{URL_PASSWORD}@llm.internal/v1", "model": "m"}


PARQUET = r"data/train-00000-of-00001\.parquet"

#: (case, variant built, folder tamper, expected exit, regexes the output must match, planted values)
CASES = [
    # item 4: recipe text reaches README.md, manifest.json, recipe.yaml and the parquet rows
    ("card summary with an SSN", "summary_ssn", None, 1,
     [r"README\.md: suspected identifiers over the limits \(.*SSN", r"recipe\.yaml: suspected identifiers.*SSN"], [SSN]),
    ("card limitation with an email", "limitations_email", None, 1,
     [r"README\.md: suspected identifiers over the limits \(EMAIL: 1\)", r"recipe\.yaml: .*EMAIL"], [EMAIL]),
    ("source description with a phone number", "description_phone", None, 1,
     [r"manifest\.json: suspected identifiers over the limits \(PHONE", r"recipe\.yaml: .*PHONE"], [PHONE]),
    ("source citation with an MRN (copied into every parquet row)", "citation_mrn", None, 1,
     [r"manifest\.json: suspected identifiers over the limits \(RECORD_NUMBER", r"README\.md: .*RECORD_NUMBER"],
     ["4482913"]),
    ("inline rows of a PHI source never travel raw", "phi_rows", None, 0,
     [r"^dry run: would publish to .*\(private\)", r"gate 1 \(residual-PHI audit\): PASS"], [SSN]),
    # item 5: a label or a folder cannot switch the gate off
    ("phi: false source rows hold SSN, phone and MRN", "phi_false_rows", None, 1,
     [PARQUET + r": suspected identifiers over the limits \(.*PHONE: \d.*RECORD_NUMBER: \d.*SSN: \d"],
     [SSN, PHONE, "4482913"]),
    ("SSN edited into a phi: false source's records", "clean", lambda f: _edit_records(f, "pub", f"SSN {SSN}."), 1,
     [PARQUET + r": suspected identifiers over the limits \(SSN: 1\)"], [SSN]),
    ("manifest phi_free lists the PHI source", "clean",
     lambda f: (_edit_records(f, "clinic", f"Call {PHONE}."), _edit_manifest(f, _phi_free("clinic"))), 1,
     [PARQUET + r": suspected identifiers over the limits \(PHONE: 1\)",
      r"manifest\.json lists 'clinic' as free of PHI but recipe\.yaml does not declare it"], [PHONE]),
    ("recipe.yaml raises stages.audit.limits", "clean",
     lambda f: (_edit_records(f, "clinic", f"SSN {SSN}."), _edit_recipe(f, _limits(SSN=5, PHONE=None))), 1,
     [PARQUET + r": suspected identifiers over the limits \(SSN: 1\)",
      r"stages\.audit\.limits\.SSN would loosen the package's limit \(0\): ignored"], [SSN]),
    ("recipe.yaml lowers a limit: the folder may make the gate stricter", "clean",
     lambda f: (_edit_records(f, "clinic", "Batch 98765432 today"), _edit_recipe(f, _limits(LONG_NUMBER=0))), 1,
     [PARQUET + r": suspected identifiers over the limits \(LONG_NUMBER: 1\)"], ["98765432"]),
    ("recipe.yaml publish.private: false", "clean", lambda f: _edit_recipe(f, _private_false), 0,
     [r"^dry run: would publish to \S+ \(private\)", r"publish\.private: false: ignored"], []),
    # item 6: secrets
    ("tokens in the card", "card_tokens", None, 1,
     [r"README\.md: holds credentials \(.*AWS access key: \d.*GitHub token: \d.*Hugging Face token: \d"
      r".*OpenAI/Anthropic API key: \d.*Slack token: \d.*private key: \d",
      r"recipe\.yaml: holds credentials"], [HF_TOKEN, OPENAI_KEY, AWS_KEY, GH_TOKEN, SLACK, "MIIEowIBAAKCAQEA7bq3"]),
    ("token in a source description", "description_token", None, 1,
     [r"manifest\.json: holds credentials \(Hugging Face token", r"recipe\.yaml: holds credentials"], [HF_TOKEN]),
    ("token edited into the records", "clean", lambda f: _edit_records(f, "pub", f"key {OPENAI_KEY}"), 1,
     [PARQUET + r": holds credentials \(OpenAI/Anthropic API key: 1\)"], [OPENAI_KEY]),
    ("token appended to an export", "clean",
     lambda f: (f / "exports" / "messages.jsonl").open("a").write(json.dumps({"k": HF_TOKEN}) + "\n"), 1,
     [r"exports/messages\.jsonl: holds credentials \(Hugging Face token: 1\)",
      r"exports/messages\.jsonl do not match the audited records"], [HF_TOKEN]),
    ("llm.base_url password is never written into the folder", "base_url_password", None, 0,
     [r"gate 1 \(residual-PHI audit\): PASS"], [URL_PASSWORD]),
    ("llm.base_url password put back into the recipe copy", "base_url_password",
     lambda f: _edit_recipe(f, _plant_url_password), 1,
     [r"recipe\.yaml: holds credentials \(password in a URL: 1\)"], [URL_PASSWORD]),
    # lows
    ("SSN written into manifest.json", "clean", lambda f: _edit_manifest(f, lambda m: m.update(note=f"ssn {SSN}")), 1,
     [r"manifest\.json: suspected identifiers over the limits \(SSN: 1\)"], [SSN]),
]


@pytest.mark.parametrize("case, variant, tamper, code, patterns, planted", CASES, ids=[c[0] for c in CASES])
def test_gate_reads_every_file_and_no_folder_edit_loosens_it(built, tmp_path, case, variant, tamper, code,
                                                            patterns, planted):
    folder = tmp_path / "ds"
    shutil.copytree(built(variant), folder)
    if tamper is not None:
        tamper(folder)
    r = run_cli("publish", "ds", "--dry-run", "--repo-id", "x/y", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == code, out
    assert "Traceback" not in out
    for pattern in patterns:
        assert re.search(pattern, out, re.MULTILINE), (pattern, out)
    for value in planted:
        assert value not in out, f"{value!r} was printed"
    if code:
        assert r.stdout.startswith("dry run: publishing would be REFUSED: gate(s) 1"), r.stdout[:300]


def test_uploaded_recipe_and_manifest_hold_no_phi_rows_no_password_and_no_local_path(built):
    from instructkit.hub import publish

    folder = built("phi_rows")
    local = (folder / "recipe.yaml").read_text()
    assert SSN in local  # the local copy keeps its rows, so the folder can be rebuilt
    res = publish(folder, "x/y", dry_run=True)
    files = {f.path: f.read().decode("utf-8", "replace") for f in res.files if not f.path.endswith(".parquet")}
    uploaded = yaml.safe_load(files["recipe.yaml"])
    by_name = {s["name"]: s for s in uploaded["sources"]}
    assert re.fullmatch(r"<5 inline rows withheld: sha256 [0-9a-f]{64}>", by_name["clinic"]["rows"])
    assert by_name["pub"]["rows"] == PUBLIC_ROWS  # a phi: false source's rows are public
    assert SSN not in "".join(files.values())
    home = str(Path(folder).resolve().parent)
    assert home not in files["manifest.json"] and str(folder) not in files["manifest.json"]

    pw = built("base_url_password")
    for name in ("recipe.yaml", "manifest.json", "README.md"):
        assert URL_PASSWORD not in (pw / name).read_text(), name
    assert "http://llm.internal:8080/v1" in (pw / "recipe.yaml").read_text()


def test_public_manifest_cuts_every_absolute_path():
    from instructkit.hub.public_files import public_manifest

    m = {"sources": [{"location": "/home/jo/private/notes.csv"}],
         "stages": [{"settings": {"index_dir": "C:\\Users\\jo\\idx", "cache": "~/cache/x.db"}}],
         "note": "read /srv/team/jo/a.csv at https://huggingface.co/datasets/org/name",
         "extra": ["file:///mnt/share/b.jsonl", "data/train-00000-of-00001.parquet"]}
    out = json.dumps(public_manifest(m))
    for leaked in ("/home/jo", "Users", "~/cache", "/srv/team", "/mnt/share"):
        assert leaked not in out, out
    assert "notes.csv" in out and "https://huggingface.co/datasets/org/name" in out
    assert "data/train-00000-of-00001.parquet" in out


def test_dry_run_without_a_repo_id_is_a_usage_error(built, tmp_path):
    shutil.copytree(built("clean"), tmp_path / "ds")
    r = run_cli("publish", "ds", "--dry-run", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "repo id" in r.stderr and "Traceback" not in r.stderr


def test_secret_shapes_and_url_credentials():
    from instructkit._secrets import find_secrets, redact_url_credentials, scrub_secrets

    text = " ".join([HF_TOKEN, OPENAI_KEY, AWS_KEY, GH_TOKEN, SLACK, PRIVATE_KEY,
                     f"https://bob:{URL_PASSWORD}@db.internal/x"])
    found = find_secrets(text)
    assert set(found) >= {"Hugging Face token", "OpenAI/Anthropic API key", "AWS access key", "GitHub token",
                          "Slack token", "private key", "password in a URL"}, found
    scrubbed = scrub_secrets(text, [])
    for value in (HF_TOKEN, OPENAI_KEY, AWS_KEY, GH_TOKEN, SLACK, URL_PASSWORD, "MIIEowIBAAKCAQEA7bq3"):
        assert value not in scrubbed, scrubbed
    assert redact_url_credentials("http://admin:pw@host:1/v1 and ssh://git@github.com") == \
        "http://host:1/v1 and ssh://git@github.com"
    assert not find_secrets("See https://www.cdc.gov/flu and email-like a@b or the sk- prefix.")
