"""The rag builder: loaders, chunking, FAISS retrieval, incremental indexing, the citation
check, the builder with a fake LLM (orchestration) and with the real local LLM."""

from __future__ import annotations

import json
import re

import pytest

from conftest import card_of, figures, shared_file
from instructkit import Quarantine, RunContext
from instructkit.records import schema_errors

pytest.importorskip("langchain_text_splitters", reason="needs instructkit[rag]")
pytest.importorskip("faiss", reason="needs instructkit[rag]")

from instructkit.recordbuilders.rag import (ChunkSettings, CitationChecker, RagBuilder, RagIndex,  # noqa: E402
                             chunk_document, load_documents)
from instructkit.recordbuilders.rag.grounding import split_sentences  # noqa: E402


# -- loaders --------------------------------------------------------------------------------

def _tiny_pdf(text: str, title: str) -> bytes:
    """A one-page PDF with one line of Helvetica text (xref offsets computed)."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Title (" + title.encode() + b") /CreationDate (D:20230415000000) >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def test_loaders_keep_title_url_license_date_and_hash(sample_guidelines, tmp_path):
    md = load_documents(sample_guidelines / "influenza_vaccination.md", license="unknown")[0]
    assert md.title.startswith("Seasonal Influenza Vaccination")
    assert md.url.startswith("https://example.org/") and md.date == "2024-08-20"
    assert md.license == "Apache-2.0" and len(md.content_hash) == 64
    assert not md.text.startswith("---")  # front matter is metadata, not text

    (tmp_path / "g.html").write_text(
        "<html><head><title>Sharps Safety</title><meta name='citation_publication_date' content='2022-05-01'>"
        "<script>var x=1;</script></head><body><nav>menu</nav><h1>Sharps Safety</h1><p>Intro.</p>"
        "<h2>Disposal</h2><p>Used needles go into a puncture-resistant container straight after use.</p>"
        "</body></html>", encoding="utf-8")
    html = load_documents(tmp_path / "g.html", license="CC0-1.0")[0]
    assert html.title == "Sharps Safety" and html.date == "2022-05-01" and html.license == "CC0-1.0"
    assert "## Disposal" in html.text and "var x" not in html.text and "menu" not in html.text
    chunks = chunk_document(html, ChunkSettings(200, 20, min_chars=5))
    assert any(c.section == "Sharps Safety > Disposal" for c in chunks)

    (tmp_path / "g.pdf").write_bytes(_tiny_pdf("Wear eye protection during aerosol procedures.", "Eye Protection"))
    pdf = load_documents(tmp_path / "g.pdf", license="CC-BY-4.0", url="https://example.org/eye")[0]
    assert "eye protection" in pdf.text.lower() and pdf.title == "Eye Protection"
    assert pdf.date == "2023-04-15" and pdf.url == "https://example.org/eye"

    (tmp_path / "note.txt").write_text("Cold chain\n\nKeep vaccines between 2 and 8 degrees.\n", encoding="utf-8")
    txt = load_documents(tmp_path / "note.txt")[0]
    assert txt.title == "Cold chain" and txt.license == "unknown"

    edited = load_documents(sample_guidelines / "influenza_vaccination.md")[0]
    assert edited.content_hash == md.content_hash and edited.doc_id == md.doc_id


def test_json_url_text_loader_on_cdc_corpus():
    path = shared_file("guidelines/cdc_mmwr_supplements_dev.json")
    docs = load_documents(path, license="LicenseRef-US-Public-Domain")
    assert len(docs) == 205
    raw = json.loads(path.read_text(encoding="utf-8"))
    for d in docs:
        assert d.url in raw and d.text and d.text in raw[d.url]  # chrome cut, text verbatim
        assert d.title and d.license == "LicenseRef-US-Public-Domain"
    assert sum(d.date is not None for d in docs) >= 180  # old articles: no date given


def test_chunks_keep_doc_section_and_exact_offsets(sample_guidelines):
    docs = load_documents(sample_guidelines)
    for doc in docs:
        chunks = chunk_document(doc, ChunkSettings(300, 50))
        assert chunks
        for c in chunks:
            assert doc.text[c.start:c.end] == c.text and len(c.text) <= 300
            assert c.doc_id == doc.doc_id and c.section and c.url == doc.url
    hyg = next(d for d in docs if "Hand Hygiene" in d.title)
    sections = {c.section for c in chunk_document(hyg, ChunkSettings(300, 50))}
    assert "Hand Hygiene in Outpatient Care > Recommendations > How to clean hands" in sections


# -- retrieval and the index ------------------------------------------------------------

def test_retrieves_the_known_passage_for_a_question_built_from_it(sample_index):
    hits = sample_index.search("What alcohol concentration should a hand rub contain?", k=3)
    assert hits[0].chunk.section.endswith("How to clean hands")
    assert "60% alcohol" in hits[0].chunk.text and hits[0].score > hits[1].score
    hits = sample_index.search("Which vaccine is preferred for people over 65 against flu?", k=3)
    assert hits[0].chunk.section.endswith("Choice of vaccine")


def test_a_sentence_finds_its_cdc_chunk(embedder):
    path = shared_file("guidelines/cdc_mmwr_supplements_dev.json")
    # the three shortest of the first 30 articles keep this test quick on a small machine
    docs = sorted(load_documents(path, license="LicenseRef-US-Public-Domain", limit=30),
                  key=lambda d: len(d.text))[:3]
    index = RagIndex(embedder, ChunkSettings(1000, 150), "flat")
    index.update(docs)
    found = tried = 0
    for c in index.chunks:
        sents = [s for s in split_sentences(c.text) if len(s.split()) >= 10 and s in c.text]
        if not sents:
            continue
        query = sents[len(sents) // 2]
        tried += 1
        # with overlapping chunks a sentence may sit in two of them; either is the right passage
        found += any(query in h.chunk.text for h in index.search(query, k=5))
    assert tried >= 5 and found / tried >= 0.8


class CountingEmbedder:
    """The real embedder, counting what it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.texts = inner, inner.name, inner.dim, []

    def embed(self, texts, batch_size=64):
        self.texts += list(texts)
        return self.inner.embed(texts, batch_size=batch_size)


def test_incremental_reindex_touches_only_changed_documents(embedder, sample_guidelines, tmp_path):
    counting = CountingEmbedder(embedder)
    settings = ChunkSettings(400, 50)
    out = tmp_path / "index"
    index = RagIndex(counting, settings, "flat", out)
    first = index.update(load_documents(sample_guidelines))
    index.save()
    assert len(first.added) == 3 and first.chunks_embedded == len(index) == len(counting.texts)

    # reopen from disk; edit one document, delete another
    hyg = sample_guidelines / "hand_hygiene.md"
    hyg.write_text(hyg.read_text(encoding="utf-8").replace("at least once a quarter", "every month"),
                   encoding="utf-8")
    (sample_guidelines / "influenza_vaccination.md").unlink()
    counting.texts.clear()
    index = RagIndex.open(out, counting)
    report = index.update(load_documents(sample_guidelines))
    index.save()
    docs = {d.title.split(" (")[0]: d.doc_id for d in index.documents.values()}
    assert report.changed == [docs["Hand Hygiene in Outpatient Care"]]
    assert report.unchanged == [docs["Follow-up of Adults with Raised Blood Pressure"]]
    assert len(report.removed) == 1 and not report.added
    hyg_chunks = [c for c in index.chunks if c.doc_id == docs["Hand Hygiene in Outpatient Care"]]
    assert report.chunks_embedded == len(hyg_chunks) == len(counting.texts)
    assert all("Influenza" not in (c.title or "") for c in index.chunks)

    # the saved index answers like the in-memory one, and nothing is re-embedded when unchanged
    reopened = RagIndex.open(out, counting)
    assert len(reopened) == len(index)
    assert reopened.search("how often is hand hygiene observed", 1)[0].chunk.text.count("every month") == 1
    counting.texts.clear()
    again = reopened.update(load_documents(sample_guidelines))
    assert again.chunks_embedded == 0 and len(again.unchanged) == 2


def test_approximate_index_types_find_the_same_top_hit(sample_index):
    q = sample_index.embedder.embed(["When should blood pressure be reviewed after a new medicine?"])
    exact = sample_index.search_vectors(q, 1)[0][0].chunk.chunk_id
    for kind in ("hnsw", "ivf"):
        idx = RagIndex(sample_index.embedder, sample_index.settings, kind)
        idx.chunks, idx.vectors = sample_index.chunks, sample_index.vectors  # same vectors, no re-embedding
        idx.build_faiss()
        assert idx.search_vectors(q, 1)[0][0].chunk.chunk_id == exact


# -- the citation check -------------------------------------------------------------------

PASSAGE = ("Adults aged 65 years and older should preferably receive a high-dose or adjuvanted "
           "vaccine. Vaccination should be offered by the end of October.")


def test_citation_check(embedder):
    check = CitationChecker(embedder)
    ok = check.check("Older adults should preferably get a high-dose or adjuvanted flu vaccine.",
                     ["c1"], {"c1": PASSAGE, "c2": "Unrelated."})
    assert ok.ok and ok.sentences[0]["embedding"] >= 0.65 and ok.sentences[0]["chunk_id"] == "c1"
    assert check.check("Give a high-dose vaccine.", [], {"c1": PASSAGE}).problem == "no_citation"
    bad = check.check("Give a high-dose vaccine.", ["c9"], {"c1": PASSAGE})
    assert bad.problem == "cited_not_retrieved" and bad.not_retrieved == ["c9"]
    off = check.check("Older adults should get a high-dose vaccine. Antibiotics cure influenza in "
                      "children within two days.", ["c1"], {"c1": PASSAGE})
    assert not off.ok and off.problem == "unsupported_sentence"
    assert [s["supported"] for s in off.sentences] == [True, False]
    lexical = CitationChecker(method="lexical")
    assert lexical.check("Offer vaccination by the end of October.", ["c1"], {"c1": PASSAGE}).ok


# -- the builder with a fake LLM (orchestration) -----------------------------------------

class FakeLLM:
    """Answers each request with ``reply(request, passages)`` -> data dict, or None = failure."""

    def __init__(self, reply):
        self.reply, self.requests = reply, []

    def complete_json_many(self, requests):
        from instructkit.llm import JsonResult

        out = []
        for r in requests:
            self.requests.append(r)
            passages = dict(re.findall(r"\[(P\d+)\] \([^\n]*\)\n(.*?)(?=\n\[P\d+\] \(|\n\s*(?:Topic:|Write |Name ))",
                                       r.messages[1]["content"], re.S))
            data = self.reply(r, passages)
            if data is None:
                out.append(JsonResult(ok=False, raw="{not json", error="invalid JSON", model="fake"))
            else:
                out.append(JsonResult(ok=True, data=data, raw=json.dumps(data), model="fake-model",
                                      provider="fake", params=dict(r.params, seed=r.seed)))
        return out


def _first_sentence(text: str) -> str:
    body = " ".join(ln for ln in text.splitlines() if not ln.lstrip().startswith(("#", ">")))
    return split_sentences(body)[0]


def _builder(sample_index, reply, **kw):
    ctx = RunContext(seed=3)
    kw.setdefault("tasks", ["guideline_qa"])
    # orchestration with a fake model that asks generic questions ("What is advised?"): the
    # round-trip check would rightly drop them; it is tested in test_llm_yield.py
    kw.setdefault("roundtrip", False)
    b = RagBuilder(ctx=ctx, index=sample_index, llm=FakeLLM(reply), min_chunk_chars=200, **kw)
    q = Quarantine()
    b.bind(q)
    return b, q


def test_builder_keeps_grounded_answers_with_context_and_scores(sample_index):
    reply = lambda r, p: {"question": "What does the guideline recommend here?",  # noqa: E731
                          "answer": _first_sentence(p["P1"]), "citations": ["P1"]}
    b, q = _builder(sample_index, reply, n=3, tasks=["guideline_qa", "guideline_adherence"])
    # the adherence prompt needs a case too
    b._llm.reply = lambda r, p: {**reply(r, p), "case": "A 70-year-old man attends the clinic for a routine review."}
    recs = list(b.build())
    assert len(recs) == 3 and len(q) == 0
    for rec in recs:
        assert schema_errors(rec) == []
        assert rec["method"] == "rag" and rec["provenance"]["prompt_id"].startswith("rag/")
        assert len(rec["provenance"]["prompt_hash"]) == 64 and rec["provenance"]["chunk_ids"]
        assert rec["provenance"]["model"] == "fake-model"
        ctx0 = rec["context"][0]
        assert {"chunk_id", "doc_id", "text", "title", "url", "section", "start", "end", "score"} <= set(ctx0)
        assert rec["meta"]["cited_chunk_ids"] == [ctx0["chunk_id"]]
        assert rec["meta"]["support"]["ok"] and rec["meta"]["support"]["min_embedding"] >= 0.65
        assert rec["source"]["license"] == "Apache-2.0"
    assert {r["task"] for r in recs} == {"guideline_qa", "guideline_adherence"}
    adherence = next(r for r in recs if r["task"] == "guideline_adherence")
    assert adherence["input"].startswith("A 70-year-old")
    # the request restricted citations to the labels shown
    schema = b._llm.requests[0].schema
    assert schema["properties"]["citations"]["items"]["enum"][0] == "P1"
    card = card_of(b)
    assert "Guideline documents cited" in card and "sample guideline" in card
    assert re.search(r"\| 20\d\d-\d\d-\d\d \|", card)


def test_uncited_misquoted_and_failed_answers_go_to_quarantine(sample_index):
    replies = iter([
        lambda p: {"question": "What is advised?", "answer": _first_sentence(p["P1"]), "citations": ["P9"]},
        lambda p: {"question": "What is advised?", "answer": "Antibiotics should be given to every "
                   "patient with a cold for ten days.", "citations": ["P1"]},
        lambda p: {"question": "What is advised?", "answer": _first_sentence(p["P1"]), "citations": []},
        lambda p: None,
    ])
    b, q = _builder(sample_index, lambda r, p: next(replies)(p), n=4, batch_size=2)
    assert list(b.build()) == []
    reasons = [(e["reason"], e.get("problem")) for e in q.entries]
    assert reasons == [("ungrounded", "cited_not_retrieved"), ("ungrounded", "unsupported_sentence"),
                       ("ungrounded", "no_citation"), ("llm_error", None)]
    assert q.entries[0]["not_retrieved"] == ["P9"] and q.entries[1]["unsupported"] == [0]
    assert q.entries[1]["record"]["meta"]["support"]["sentences"][0]["supported"] is False
    assert q.entries[3]["raw"] == "{not json"
    assert b.stats.dropped == {"ungrounded": 3, "llm_error": 1}


def test_request_budget_stop_keeps_answers_and_accounts_for_the_rest(sample_index):
    from instructkit import BudgetExceeded

    class CappedLLM(FakeLLM):
        def complete_json_many(self, requests):
            exc = BudgetExceeded("request cap reached")
            exc.results = super().complete_json_many(requests[:1]) + [None] * (len(requests) - 1)
            raise exc

    b, q = _builder(sample_index, None, n=3, batch_size=3)
    b._llm = CappedLLM(lambda r, p: {"question": "What is advised?", "answer": _first_sentence(p["P1"]),
                                     "citations": ["P1"]})
    got = []
    with pytest.raises(BudgetExceeded):
        for rec in b.build():
            got.append(rec)
    assert len(got) == 1 and b.stats.dropped == {"not_generated": 2}


def test_topic_queries_and_recipe_wiring(sample_guidelines, embedder):
    from instructkit.pipeline import Pipeline

    recipe = {"name": "rag-sample", "seed": 5, "sources": [],
              "builders": [{"type": "rag", "name": "sample-rag",
                            "documents": [{"path": str(sample_guidelines), "license": "Apache-2.0"}],
                            "queries": ["urgent referral for very high blood pressure"],
                            "tasks": ["recommendation_summary"], "chunk_size": 500, "top_k": 2}]}
    ctx = RunContext()
    ctx.shared("embedder", lambda: embedder, close=lambda _e: None)
    fake = FakeLLM(lambda r, p: {"topic": "urgent referral for very high blood pressure", "summary": _first_sentence(p["P1"]),
                                 "citations": ["P1"]})
    ctx.shared("llm", lambda: fake, close=lambda _c: None)
    pipe = Pipeline.from_recipe(recipe, context=ctx)
    recs = list(pipe.records())
    assert len(recs) == 1 and recs[0]["task"] == "recommendation_summary"
    assert "urgent referral" in recs[0]["instruction"]
    assert recs[0]["context"][0]["section"].endswith("Urgent referral")
    assert recs[0]["provenance"]["builder_name"] == "sample-rag"


@pytest.mark.slow
def test_default_two_stage_retrieval_indexes_static_and_reranks_with_the_run_embedder(sample_guidelines, embedder):
    """The default retrieval: the index holds static vectors; the run's embedder (onnx-int8,
    calibrated with the citation check) re-ranks candidates and checks citations."""
    pytest.importorskip("model2vec", reason="needs instructkit[fast]")
    from instructkit.pipeline import Pipeline

    recipe = {"name": "rag-two-stage", "seed": 5, "sources": [],
              "builders": [{"type": "rag", "documents": [{"path": str(sample_guidelines), "license": "Apache-2.0"}],
                            "queries": ["urgent referral for very high blood pressure"],
                            "tasks": ["recommendation_summary"], "chunk_size": 500, "top_k": 2,
                            "rerank_candidates": 5}]}
    ctx = RunContext()
    ctx.shared("embedder", lambda: embedder, close=lambda _e: None)
    fake = FakeLLM(lambda r, p: {"topic": "urgent referral for very high blood pressure",
                                 "summary": _first_sentence(p["P1"]), "citations": ["P1"]})
    ctx.shared("llm", lambda: fake, close=lambda _c: None)
    pipe = Pipeline.from_recipe(recipe, context=ctx)
    recs = list(pipe.records())
    b = pipe.builders[0]
    idx = b.index
    assert (idx.retrieval, idx.backend, idx.reranker) == ("two_stage", "static", embedder)
    assert b.checker.embedder is embedder and embedder.backend != "static"
    assert len(recs) == 1 and recs[0]["context"][0]["section"].endswith("Urgent referral")
    meta = recs[0]["meta"]["retrieval"]
    assert (meta["mode"], meta["backend"], meta["reranker_backend"], meta["candidates"]) == \
        ("two_stage", "static", embedder.backend, 5)
    summary = b.summary()
    # at most the 5 candidates needed MiniLM vectors: embedded now, or reused from the
    # session's vector cache when an earlier test already embedded the same chunk texts
    assert summary["retrieval"] == "two_stage"
    assert 0 < summary["rerank_chunks_embedded"] + summary["rerank_chunks_reused"] <= 5
    # the run names both embedders (the manifest lists every shared one)
    assert {e.backend for k, e in ctx._shared.items() if k.startswith("embedder")} == {"static", embedder.backend}
    ctx.close()


# -- the CLI ----------------------------------------------------------------------------

def test_index_and_search_commands(sample_guidelines, tmp_path, embedder, monkeypatch):
    from typer.testing import CliRunner

    import instructkit.embeddings
    from instructkit.cli.app import app

    monkeypatch.setattr(instructkit.embeddings, "load_embedder", lambda *a, **k: embedder)
    out = tmp_path / "idx"
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(sample_guidelines), "--out", str(out), "--chunk-size", "400"])
    assert res.exit_code == 0, res.output
    assert "3 added" in res.output and (out / "index.faiss").is_file()
    res = runner.invoke(app, ["index", str(sample_guidelines), "--out", str(out), "--chunk-size", "400"])
    assert "3 unchanged" in res.output and "0 chunks embedded" in res.output
    res = runner.invoke(app, ["search", str(out), "when to refer high blood pressure the same day", "-k", "2"])
    assert res.exit_code == 0, res.output
    assert "Follow-up of Adults" in res.output and "Urgent referral" in res.output
    assert "https://example.org/instructkit-samples/hypertension-follow-up" in res.output.replace("\n", "").replace("│", "").replace(" ", "") or "example.org" in res.output
    res = runner.invoke(app, ["search", str(tmp_path / "nope"), "x"])
    assert res.exit_code != 0


@pytest.mark.slow
def test_index_command_defaults_to_two_stage_on_static_vectors(sample_guidelines, tmp_path):
    pytest.importorskip("model2vec", reason="needs instructkit[fast]")
    from typer.testing import CliRunner

    from instructkit.cli.app import app

    out = tmp_path / "idx"
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(sample_guidelines), "--out", str(out), "--chunk-size", "400"])
    assert res.exit_code == 0, res.output
    assert "static vectors, re-ranked by the auto backend at query time" in res.output
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["backend"], meta["retrieval"], meta["dim"]) == ("static", "two_stage", 256)
    res = runner.invoke(app, ["search", str(out), "when to refer high blood pressure the same day", "-k", "2",
                              "--json"])
    assert res.exit_code == 0, res.output
    # JSON lines only: a first search may log the one-time export of the re-ranker
    hits = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert len(hits) == 2 and "Urgent referral" in hits[0]["section"]
    res = runner.invoke(app, ["search", str(out), "when to refer high blood pressure the same day", "-k", "2",
                              "--json", "--candidates", "3"])
    assert res.exit_code == 0 and sum(line.startswith("{") for line in res.output.splitlines()) == 2, res.output
    res = runner.invoke(app, ["search", str(out), "x", "--candidates", "0"])
    assert res.exit_code == 2
    # switching the index to hybrid re-embeds every chunk with MiniLM
    res = runner.invoke(app, ["index", str(sample_guidelines), "--out", str(out), "--chunk-size", "400",
                              "--retrieval", "hybrid"])
    assert res.exit_code == 0 and "3 changed" in res.output, res.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["retrieval"] == "hybrid" and meta["dim"] == 384 and meta["backend"] != "static"


# -- through the real local LLM -----------------------------------------------------------

@pytest.mark.llm
@pytest.mark.timeout(600)
def test_builder_with_the_local_llm(request, sample_index):
    try:
        llm_server = request.getfixturevalue("llm_server")
    except pytest.FixtureLookupError:
        pytest.skip("the llm_server fixture (tests/fixtures_llm.py) is not available")
    ctx = RunContext(seed=1, recipe={"llm": {"base_url": llm_server.base_url, "model": llm_server.model}})
    b = RagBuilder(ctx=ctx, index=sample_index, n=2, min_chunk_chars=200, top_k=3,
                   tasks=["guideline_qa", "guideline_adherence"], params={"max_tokens": 256})
    q = Quarantine()
    b.bind(q)
    try:
        recs = list(b.build())
    finally:
        ctx.close()
    # every attempt is accounted for: a checked record or a quarantine line with a reason
    assert len(recs) + len(q) == 2
    for rec in recs:
        assert schema_errors(rec) == [] and rec["meta"]["support"]["ok"]
        assert rec["provenance"]["model"] and rec["provenance"]["prompt_id"].startswith("rag/")
    for e in q.entries:
        assert e["stage"] == b.name
        assert e["reason"] in {"ungrounded", "llm_error", "llm_invalid_output", "off_topic", "copies_example",
                               "roundtrip_failed", "no_answer_sentence", "case_mismatch", "no_sentence"}
