"""Publishing: the five gates on real builds, and the push path over real HTTP to a loopback
server that implements the Hub endpoints ``create_repo`` and ``create_commit`` call."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from instructkit import GateError, PublishError
from instructkit.api import build
from instructkit.hub import publish, publish_dataset

ROWS = [
    {"id": "q1", "question": "What is high blood pressure?",
     "answer": "It is a condition in which the pressure in the arteries stays raised. It often has no symptoms."},
    {"id": "q2", "question": "How can I lower my cholesterol?",
     "answer": "Eat more vegetables and whole grains, be active most days and do not smoke."},
]
PHONE = "617-555-0123"


def _recipe(sources, stages=None, **extra):
    return {"name": "publish-test", "seed": 1, "sources": sources,
            "builders": [{"type": "template", "task": "consumer_health_qa",
                          "sources": [s["name"] for s in sources]}],
            "stages": stages if stages is not None else {"dedup": True, "validate": True,
                                                         "audit": {"names": False}},
            **extra}


def _inline(name="inline-qa", license="CC-BY-4.0", rows=ROWS, **kw):
    return {"name": name, "type": "inline", "rows": rows, "id_field": "id", "license": license, **kw}


def _gates(result):
    return {g.number: g for g in result.gates}


# -- gate 1: the residual-PHI audit --------------------------------------------------------
def test_planted_phone_number_fails_gate_1(tmp_path):
    from instructkit.steps.audit import audit_dataset

    rows = [{**ROWS[0], "answer": ROWS[0]["answer"] + f" Call our clinic at {PHONE}."}, ROWS[1]]
    out = tmp_path / "phone"
    # anonymize off: the audit is the net for what an anonymizer misses (or a recipe skipped)
    build(_recipe([_inline(rows=rows)], stages={"anonymize": False, "dedup": True, "validate": True,
                                                "audit": {"names": False}}), out, quiet=True)
    # the audit helper finds it on the folder, and the manifest carries the same verdict
    report = audit_dataset(out, {"names": False})
    assert report["passed"] is False and report["suspects_by_type"].get("PHONE")
    res = publish(out, "org/phone", dry_run=True)
    g1 = _gates(res)[1]
    assert not g1.passed and "PHONE" in " ".join(g1.details)
    assert PHONE not in str(g1)  # types and counts, never the value
    with pytest.raises(GateError) as exc:  # refused before any token or network is needed
        publish(out, "org/phone")
    assert "gate 1" in str(exc.value) and PHONE not in str(exc.value)


def test_gate_1_audits_the_files_not_the_manifest(tmp_path):
    """Gate 1 audits what it will upload: a build without the audit stage passes when its
    files are clean, and a phone number written into the parquet after the build fails it,
    for the changed file and for the identifier, though the record count is the same."""
    import pyarrow.parquet as pq

    out = tmp_path / "noaudit"
    build(_recipe([_inline()], stages={"dedup": True, "validate": True, "audit": False}), out, quiet=True)
    g1 = _gates(publish(out, "org/x", dry_run=True))[1]
    assert g1.passed, g1.details
    data = next((out / "data").glob("*.parquet"))
    table = pq.read_table(data)
    rows = table.to_pylist()
    rows[0]["output"] += " Call the clinic at (617) 724-3188."
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), data)
    g1 = _gates(publish(out, "org/x", dry_run=True))[1]
    assert not g1.passed
    text = " ".join(g1.details)
    assert "data/train-00000-of-00001.parquet changed since the build" in text
    assert "PHONE" in text and "(617) 724-3188" not in text


def test_gate_1_checks_reordered_and_phase_exports(tmp_path):
    """A curriculum reorders the exports and phases split them: both still match the audited
    records; a line added to a phase export fails gate 1."""
    out = tmp_path / "phased"
    build(_recipe([_inline()], output={"formats": ["messages", "alpaca"], "curriculum": "length",
                                       "phases": [{"name": "short", "length": {"max": 40}},
                                                  {"name": "rest"}]}), out, quiet=True)
    phase_files = sorted((out / "exports").rglob("phase-*/*.jsonl"))
    assert phase_files
    res = publish(out, "org/x", dry_run=True)
    assert _gates(res)[1].passed, _gates(res)[1].details
    assert {f.path for f in res.files} >= {p.relative_to(out).as_posix() for p in phase_files}
    with phase_files[0].open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "x", "messages": [{"role": "user", "content": "Call 617-724-3188"}]}) + "\n")
    g1 = _gates(publish(out, "org/x", dry_run=True))[1]
    assert not g1.passed and phase_files[0].relative_to(out).as_posix() in " ".join(g1.details)


# -- gate 2: licences ----------------------------------------------------------------------
def test_iu_xray_source_fails_gate_2(tmp_path, shared_data):
    csv = shared_data / "iu_xray" / "indiana_reports.csv"
    if not csv.exists():
        pytest.skip(f"{csv} is absent")
    recipe = {"name": "iu", "sources": [{"name": "iu-xray", "type": "csv", "path": str(csv), "id_field": "uid",
                                         "license": "CC-BY-NC-ND-4.0", "limit": 5}],
              "builders": [{"type": "template", "task": "impression_generation", "sources": ["iu-xray"]}],
              "stages": {"validate": True}}
    out = tmp_path / "iu"
    build(recipe, out, quiet=True)
    g2 = _gates(publish(out, "org/iu", dry_run=True))[2]
    assert not g2.passed and "no derivatives" in " ".join(g2.details)


@pytest.mark.parametrize("source, why", [
    (_inline(name="mimic-notes", license="PhysioNet-Credentialed-Health-Data-1.5.0"), "data use agreement"),
    # DUA-bound data can never be published, even with a licence declaration
    (_inline(name="mimic-iv-notes", license="CC-BY-4.0",
             license_declaration="We are credentialed PhysioNet users"), "data use agreement"),
    (_inline(name="mystery", license="unknown"), "unknown licence"),
    (_inline(name="hospital", license="LicenseRef-Internal"), "license_declaration"),
])
def test_blocked_sources_fail_gate_2(tmp_path, source, why):
    out = tmp_path / "blocked"
    build(_recipe([source]), out, quiet=True)
    res = publish(out, "org/blocked", dry_run=True)
    g2 = _gates(res)[2]
    assert not g2.passed and why in " ".join(g2.details)
    assert "Licence problems" in res.card


def test_non_commercial_source_needs_a_non_commercial_card(tmp_path):
    out = tmp_path / "nc"
    build(_recipe([_inline(license="CC-BY-NC-4.0")]), out, quiet=True)
    res = publish(out, "org/nc", dry_run=True)
    assert _gates(res)[2].passed and "license: cc-by-nc-4.0" in res.card
    out2 = tmp_path / "nc-apache"
    build(_recipe([_inline(license="CC-BY-NC-4.0")], card={"license": "apache-2.0"}), out2, quiet=True)
    g2 = _gates(publish(out2, "org/nc", dry_run=True))[2]
    assert not g2.passed and "non-commercial" in " ".join(g2.details)


def test_rights_holder_declaration_passes_and_is_printed(tmp_path):
    decl = "St Example Hospital owns these notes; released by its data board, decision 2024-7"
    out = tmp_path / "declared"
    build(_recipe([_inline(name="hospital", license="LicenseRef-StExample", license_declaration=decl)]),
          out, quiet=True)
    res = publish(out, "org/declared", dry_run=True)
    g2 = _gates(res)[2]
    assert g2.passed and any(decl in w for w in g2.warnings)
    assert decl in res.card and "license: other" in res.card


# -- gate 3: hosted-model terms --------------------------------------------------------------
def test_hosted_model_records_are_flagged(tmp_path):
    import datasets

    from instructkit.dataset.counts import DatasetCounts
    from instructkit.hub.gates import gate_hosted_models
    from instructkit.hub.publisher import publish_dataset
    from instructkit.records import make_record

    recs = [make_record(task="consumer_health_qa", method="synthetic", instruction=f"Question {i}?",
                        input="", output=f"Answer number {i}.",
                        source={"name": "seed", "license": "CC-BY-4.0", "record_id": str(i)},
                        provenance={"builder": "synthetic:qa", "seed": 1, "prompt_id": "synthetic/qa",
                                    "prompt_hash": "abc", "model": model, "provider": provider})
            for i, (model, provider) in enumerate([("gpt-4o-mini", "api.openai.com"),
                                                   ("SmolLM2-135M-Instruct", "llama.cpp")])]
    res = publish_dataset(datasets.Dataset.from_list(recs), "org/hosted", dry_run=True)
    g3 = _gates(res)[3]
    assert g3.passed and len(g3.warnings) == 1 and "gpt-4o-mini" in g3.warnings[0]
    assert "SmolLM2" not in " ".join(g3.warnings)  # a local model is not flagged
    # a card that does not flag them fails the gate
    unflagged = res.card.replace("**Flagged:**", "")
    counts = DatasetCounts()
    for r in recs:
        counts.observe(r)
    assert not gate_hosted_models(counts, unflagged).passed


# -- gate 4 and the clean build ------------------------------------------------------------
@pytest.fixture(scope="module")
def medquad_build(tmp_path_factory, shared_data):
    folder = shared_data / "medquad" / "1_CancerGov_QA"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    recipe = {"name": "medquad-clean", "seed": 3,
              "sources": [{"name": "medquad-cancergov", "type": "medquad", "path": str(folder),
                           "license": "CC-BY-4.0", "url": "https://github.com/abachaa/MedQuAD",
                           "citation": "Ben Abacha A, Demner-Fushman D. BMC Bioinformatics. 2019;20:511.",
                           "limit": 12}],
              "builders": [{"type": "template", "task": "consumer_health_qa", "sources": ["medquad-cancergov"]}],
              "stages": {"anonymize": True, "dedup": True, "validate": True, "audit": {"names": False}}}
    out = tmp_path_factory.mktemp("medquad") / "out"
    build(recipe, out, quiet=True)
    return out


def test_clean_medquad_build_passes_every_gate(medquad_build):
    res = publish(medquad_build, "org/medquad", dry_run=True)
    assert res.passed, res.gates_report()
    assert [g.number for g in res.gates] == [1, 2, 3, 4, 5]
    paths = [f.path for f in res.files]
    assert paths[:3] == ["README.md", "manifest.json", "recipe.yaml"]
    assert "data/train-00000-of-00001.parquet" in paths and "quarantine.jsonl" not in paths
    assert "license: cc-by-4.0" in res.card and "Ben Abacha" in res.card
    # local absolute paths do not travel in the published manifest
    published = json.loads(next(f for f in res.files if f.path == "manifest.json").read())
    assert not any(str(s.get("location", "")).startswith("/") for s in published["sources"])


def test_missing_manifest_fails_gate_4(medquad_build, tmp_path):
    import shutil

    copy = tmp_path / "nomanifest"
    shutil.copytree(medquad_build, copy)
    (copy / "manifest.json").unlink()
    res = publish(copy, "org/medquad", dry_run=True)
    g = _gates(res)
    assert not g[4].passed and "manifest.json is missing" in g[4].details[0]
    assert not g[1].passed
    assert "manifest.json" not in [f.path for f in res.files]


def test_publish_dataset_in_memory_takes_the_same_path(medquad_build):
    datasets = pytest.importorskip("datasets")

    ds = datasets.Dataset.from_parquet(str(medquad_build / "data" / "train-00000-of-00001.parquet"))
    manifest = json.loads((medquad_build / "manifest.json").read_text())
    res = publish_dataset(ds, "org/mem", manifest=manifest, dry_run=True)
    assert res.passed, res.gates_report()
    assert "data/train-00000-of-00001.parquet" in res.files_report()  # valid after the temp folder went
    bare = publish_dataset(ds, "org/mem", dry_run=True)  # nothing shows the stages ran
    assert {g.number for g in bare.failed_gates} == {4}


def test_cli_dry_run_prints_gates_files_and_card(medquad_build):
    from typer.testing import CliRunner

    from instructkit.cli.app import app

    r = CliRunner().invoke(app, ["publish", str(medquad_build), "--repo-id", "org/medquad", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "gate 5 (dataset card complete): PASS" in r.output
    assert "data/train-00000-of-00001.parquet" in r.output and "## Anonymization" in r.output
    assert "(private)" in r.output


# -- the push path over real HTTP ------------------------------------------------------------
class FakeHub(ThreadingHTTPServer):
    """The Hub endpoints create_repo, dataset_info and create_commit use; records everything."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[dict] = []
        self.repos: dict[str, dict] = {}
        self.commits: list[dict] = []
        self.fail_commits = 0  # answer the next N commits with 503 (transient)
        self.echo_auth_error = False  # answer create with 400 quoting the Authorization header


class _HubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, body=b""):
        self.server.requests.append({"method": self.command, "path": self.path,
                                     "auth": self.headers.get("Authorization"), "body": body})

    def do_GET(self):
        self._record()
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:2] == ["api", "datasets"] and len(parts) == 4:
            repo = "/".join(parts[2:4])
            if repo in self.server.repos:
                return self._send(200, {"id": repo, "private": self.server.repos[repo]["private"],
                                        "sha": "0" * 40})
        self._send(404, {"error": "not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            if self.server.echo_auth_error:
                return self._send(400, {"error": f"bad credentials {self.headers.get('Authorization')}"})
            p = json.loads(body)
            repo = f"{p['organization']}/{p['name']}"
            if repo in self.server.repos:
                return self._send(409, {"error": "You already created this dataset repo",
                                        "url": f"{self.server.url}/datasets/{repo}"})
            self.server.repos[repo] = {"private": p.get("visibility") == "private", "type": p.get("type"),
                                       "payload": p}
            return self._send(200, {"url": f"{self.server.url}/datasets/{repo}"})
        if path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] == "preupload":
            files = json.loads(body)["files"]
            return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                               "shouldIgnore": False, "oid": None} for f in files]})
        if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] == "commit":
            if self.server.fail_commits > 0:
                self.server.fail_commits -= 1
                return self._send(503, {"error": "try again"})
            lines = [json.loads(x) for x in body.splitlines() if x.strip()]
            files = {x["value"]["path"]: base64.b64decode(x["value"]["content"])
                     for x in lines if x["key"] == "file"}
            self.server.commits.append({"repo": "/".join(parts[2:4]), "header": lines[0]["value"],
                                        "files": files, "other": [x["key"] for x in lines[1:] if x["key"] != "file"]})
            repo = "/".join(parts[2:4])
            return self._send(200, {"commitUrl": f"{self.server.url}/datasets/{repo}/commit/{'a' * 40}",
                                    "commitOid": "a" * 40, "pullRequestUrl": None})
        self._send(404, {"error": f"no route {path}"})


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # tests run offline; this is loopback
    server = FakeHub()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


TOKEN = "hf_LoopbackSecret" + hashlib.sha256(b"instructkit").hexdigest()[:20]


def _all_bytes_under(*roots: Path) -> bytes:
    return b"".join(p.read_bytes() for r in roots for p in Path(r).rglob("*") if p.is_file())


def test_push_sends_exactly_the_dry_run_files_privately(hub, medquad_build, monkeypatch, caplog, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    dry = publish(medquad_build, "org/medquad", dry_run=True, endpoint=hub.url)
    assert hub.requests == []  # a dry run sends nothing
    hub.fail_commits = 1  # one transient failure: retried
    res = publish(medquad_build, "org/medquad", endpoint=hub.url, backoff=0.01)
    assert res.url == f"{hub.url}/datasets/org/medquad"
    assert hub.repos["org/medquad"]["private"] is True and hub.repos["org/medquad"]["type"] == "dataset"
    assert len(hub.commits) == 1 and hub.commits[0]["other"] == []  # one commit, files inline
    received = {p: hashlib.sha256(b).hexdigest() for p, b in hub.commits[0]["files"].items()}
    assert received == {f.path: f.sha256 for f in dry.files}
    commit_posts = [r for r in hub.requests if "/commit/" in r["path"]]
    assert len(commit_posts) == 2  # the 503, then the retry
    # the token was used ...
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in hub.requests)
    # ... and is nowhere on disk, in the logs, in the output or in the result
    assert TOKEN.encode() not in _all_bytes_under(medquad_build)
    assert TOKEN not in caplog.text
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert TOKEN not in json.dumps(res.as_dict()) + res.card


def test_cli_push_public_over_http(hub, medquad_build, monkeypatch):
    from huggingface_hub import constants
    from typer.testing import CliRunner

    from instructkit.cli.app import app

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    r = CliRunner().invoke(app, ["publish", str(medquad_build), "--repo-id", "org/pub", "--public"])
    assert r.exit_code == 0, r.output
    assert f"{hub.url}/datasets/org/pub" in r.output and TOKEN not in r.output
    assert hub.repos["org/pub"]["private"] is False


def test_existing_public_repo_is_not_used_for_a_private_publish(hub, medquad_build, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.repos["org/open"] = {"private": False, "type": "dataset"}
    with pytest.raises(PublishError, match="already exists and is public"):
        publish(medquad_build, "org/open", endpoint=hub.url, backoff=0.01)
    assert hub.commits == []


def test_token_is_scrubbed_from_errors(hub, medquad_build, monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    hub.echo_auth_error = True  # the server quotes the Authorization header back
    with pytest.raises(PublishError) as exc:
        publish(medquad_build, "org/err", endpoint=hub.url, backoff=0.01)
    assert "creating the dataset repo failed" in str(exc.value)
    assert TOKEN not in str(exc.value) and TOKEN not in caplog.text


def test_no_token_and_secret_in_files_are_refused(medquad_build, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(PublishError, match="no Hugging Face token"):
        publish(medquad_build, "org/x", endpoint="http://127.0.0.1:9")
    copy = tmp_path / "leaky"
    shutil.copytree(medquad_build, copy)
    with (copy / "recipe.yaml").open("a") as fh:
        fh.write(f"# {TOKEN}\n")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(PublishError, match="contains a credential") as exc:
        publish(copy, "org/x", dry_run=True)
    assert TOKEN not in str(exc.value)
