"""PHI never leaves (issue 12): identifiers planted in every place a hospital's data can carry
them (a source column, template meta, synthetic seed tasks, back-translation texts, RAG
documents and so the retrieved context) reach none of: the parquet data, the exports, the
card, the report, the quarantine, the response cache, or a language-model request.

The model is an OpenAI-compatible stub answering like a capable model (every request it
sees is kept); the detector, the embedder and everything else are the real parts.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fixtures_llm import StubOpenAI
from test_llm_yield import capable_model

NAME, MRN, PHONE, EMAIL, DATE = "Margaret Okonkwo-Reyes", "MRN 48213377", "(617) 724-3188", \
    "m.okonkwo@example-health.org", "03/14/2021"
PLANTED = (f"Patient {NAME} ({MRN}), seen on {DATE}, call {PHONE} or write to {EMAIL}.")
NEEDLES = ("Okonkwo", "48213377", "724-3188", "example-health.org", "03/14/2021")


def _has_phi(blob: str) -> list[str]:
    return [n for n in NEEDLES if n in blob]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    # a source with a column called `name` (PHI in a "safe-looking" key) and PHI in the answer
    rows = [{"id": f"q{i}", "name": NAME, "question": f"What is condition {i} and how is it managed?",
             "answer": f"Condition {i} is managed with rest and fluids. {PLANTED} Most people recover "
                       "within a week."} for i in range(6)]
    rows.append({"id": "broken", "name": NAME, "question": "", "answer": PLANTED})  # quarantined
    (d / "notes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # seed tasks of our own
    seeds = {"name": "hospital-seeds", "license": "Apache-2.0", "tasks": [
        {"id": f"s{i}", "task": "patient_education", "instruction": f"Explain the discharge plan. {PLANTED}",
         "input": f"Notes: {PLANTED}", "output": f"Rest at home. {PLANTED}"} for i in range(4)]}
    (d / "seeds.yaml").write_text(json.dumps(seeds), encoding="utf-8")
    # a guideline document with PHI in it (e.g. a local protocol with a contact)
    docs = d / "docs"
    docs.mkdir()
    (docs / "protocol.md").write_text(
        "# Local hypertension protocol\n\n## Follow-up\n\nAdults with a blood pressure of 140/90 mmHg "
        "or higher at two visits should start lifestyle changes and be reviewed within four weeks. "
        f"{PLANTED}\n\nHome blood pressure monitoring helps confirm the diagnosis before treatment "
        "starts. Patients should measure twice daily for one week.\n", encoding="utf-8")
    return d


def _recipe(d: Path, base_url: str) -> dict:
    return {
        "name": "phi-everywhere", "seed": 5,
        "sources": [{"name": "notes", "type": "jsonl", "path": str(d / "notes.jsonl"), "id_field": "id",
                     "license": "LicenseRef-Hospital-Internal"}],
        "builders": [
            {"type": "template", "task": "consumer_health_qa", "sources": ["notes"]},
            {"type": "synthetic", "seed_tasks": str(d / "seeds.yaml"), "batch_size": 4,
             "self_instruct": {"n": 2, "k": 2, "max_attempts": 4},
             "backtranslate": {"n": 4, "sources": ["notes"],
                               "documents": [{"path": str(d / "docs"), "license": "LicenseRef-Hospital-Internal"}]}},
            {"type": "rag", "documents": [{"path": str(d / "docs"), "license": "LicenseRef-Hospital-Internal"}],
             "tasks": ["guideline_qa"], "n": 3, "chunk_size": 400, "chunk_overlap": 50},
        ],
        "llm": {"base_url": base_url, "model": "meta-llama/Llama-3.1-8B-Instruct"},
        "stages": {"audit": {"names": False}},
        "output": {"formats": ["messages", "alpaca", "sharegpt"]},
    }


def manifest_counts(out: Path) -> dict:
    m = json.loads((out / "manifest.json").read_text())
    return {b["stage"]: (b["out"], b["dropped_by_reason"]) for b in m["builders"]}


def test_planted_phi_reaches_no_file_cache_or_request(planted, tmp_path, monkeypatch, embedder):
    from instructkit.api import build

    cache = tmp_path / "cache"
    monkeypatch.setenv("INSTRUCTKIT_CACHE_DIR", str(cache))
    with StubOpenAI(capable_model) as server:
        out = tmp_path / "out"
        result = build(_recipe(planted, server.base_url), out, quiet=True, cache_dir=cache,
                       allow_paths=[planted])
        requests = json.dumps(server.requests)
    assert result.records > 0
    # every request the model saw was already anonymized
    assert server.requests, "the LLM builders sent no request"
    assert _has_phi(requests) == [], _has_phi(requests)
    # every file the build wrote, parquet included (decompressed through the reader)
    from instructkit.dataset.reader import read_dataset

    records = list(read_dataset(out))
    # every builder made records from the planted inputs (so each path was exercised)
    assert {r["method"] for r in records} == {"template", "synthetic", "rag"}, manifest_counts(out)
    assert any(r.get("context") for r in records)  # retrieved passages travel with rag records
    assert _has_phi(json.dumps(records)) == []
    for f in out.rglob("*"):
        if f.is_file() and f.suffix != ".parquet":
            assert _has_phi(f.read_text(encoding="utf-8", errors="replace")) == [], f
    q = (out / "quarantine.jsonl").read_text(encoding="utf-8")
    assert "broken" in q or q.strip(), "the broken row is quarantined"
    # the response cache holds no raw PHI either
    dbs = list(cache.rglob("*.sqlite3"))
    assert dbs
    for db in dbs:
        rows = sqlite3.connect(str(db)).execute("SELECT * FROM responses").fetchall() \
            if "responses" in db.name else []
        assert _has_phi(json.dumps(rows, default=str)) == []
    # the manifest says the LLM saw anonymized text, and the card says so
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["llm_phi"]["send_phi"] is False and manifest["llm_phi"]["texts_anonymized_before_requests"] > 0
    assert "anonymized (placeholders) before any request" in (out / "README.md").read_text()


def test_send_phi_true_is_reported(planted, tmp_path, monkeypatch, embedder):
    from instructkit.api import build

    monkeypatch.setenv("INSTRUCTKIT_CACHE_DIR", str(tmp_path / "cache"))
    with StubOpenAI(capable_model) as server:
        recipe = _recipe(planted, server.base_url)
        recipe["llm"]["send_phi"] = True
        recipe["llm"]["cache"] = False
        recipe["builders"] = [recipe["builders"][2]]  # rag alone
        build(recipe, tmp_path / "raw", quiet=True, allow_paths=[planted], allow_empty=True)
        assert _has_phi(json.dumps(server.requests)), "send_phi: true sends the text as it is"
    card = (tmp_path / "raw" / "README.md").read_text()
    assert "llm.send_phi: true" in card
