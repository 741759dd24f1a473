"""Benchmark: RAG retrieval with every embedder backend, dense and hybrid, against stock.

Stock (the baseline the issue names) is sentence-transformers all-MiniLM-L6-v2 on torch
CPU with a flat FAISS index: ``backend torch, dense``. Every other row runs on the same
chunks and queries in the same run, each backend in its own subprocess (so its peak RSS is
its own), after a separate preparation process has built and cached its exports.

Corpus: CDC MMWR Supplements (``../shared/data/guidelines/cdc_mmwr_supplements_dev.json``),
chunked as the rag builder does (1000 characters, overlap 150); by default a seeded sample
of whole documents up to ``--max-chunks``.

Queries: held-back sentences. For a seeded sample of chunks, one sentence of at least 8
words from the middle of the chunk is removed from every chunk that contains it
(overlapping neighbours too) before anything is indexed, and used as the query; its
relevant chunks are the ones it was removed from. The documents are split in two seeded
halves: queries from one half are the TUNING set (used to choose the fusion settings and
the ``auto`` backend), queries from the other the HELD-OUT set (never used to choose
anything). Both are reported.

Printed per row: chunks/s embedding the corpus (and the ratio to stock), queries/s (embed
the queries + search; hybrid adds BM25 and the fusion), recall@5 and MRR@10 on both query
sets, and the worker's peak RSS. Then the fusion grid on the tuning set, and which backend
``auto`` should be.

    python bench/retrieval.py                       # up to 2,000 chunks
    python bench/retrieval.py --max-chunks 0        # the whole corpus (~10.7k chunks)
    python bench/retrieval.py --backends torch static
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BACKENDS = ("torch", "onnx", "onnx-int8", "static")
STOCK = "torch"
DEPTH = 50  # how many results each worker returns per query (for MRR and the fusion grid)


# -- corpus and queries ------------------------------------------------------------------------
def build_corpus(args: argparse.Namespace) -> dict:
    from instructkit.recordbuilders.rag import ChunkSettings, chunk_document, load_documents
    from instructkit.recordbuilders.rag.grounding import split_sentences
    from instructkit.recipe.load import resolve_path

    path = resolve_path(args.data)
    if not path.is_file():
        sys.exit(f"corpus not found: {path} (see ../shared/data/README.md)")
    rng = random.Random(args.seed)
    docs = load_documents(path, license="LicenseRef-US-Public-Domain")
    n_docs_all = len(docs)
    rng.shuffle(docs)
    settings = ChunkSettings(args.chunk_size, args.overlap)
    chunks, used = [], []
    for d in docs:
        if args.max_chunks and len(chunks) >= args.max_chunks:
            break
        chunks += chunk_document(d, settings)
        used.append(d.doc_id)
    texts = [c.text for c in chunks]
    half = {doc_id: i % 2 for i, doc_id in enumerate(used)}  # seeded order: two halves
    sets: dict[str, tuple[list[str], list[list[int]]]] = {"tune": ([], []), "held_out": ([], [])}
    per_set = args.queries // 2
    for i in rng.sample(range(len(chunks)), len(chunks)):
        name = "tune" if half[chunks[i].doc_id] == 0 else "held_out"
        queries, relevant = sets[name]
        if len(queries) >= per_set:
            if all(len(q) >= per_set for q, _ in sets.values()):
                break
            continue
        sents = [s for s in split_sentences(texts[i]) if len(s.split()) >= 8 and s in texts[i]]
        if not sents:
            continue
        q = sents[len(sents) // 2]
        if any(q in qs for qs, _ in sets.values()):
            continue
        holders = [j for j, tx in enumerate(texts) if q in tx]
        for j in holders:
            texts[j] = texts[j].replace(q, " ")
        queries.append(q)
        relevant.append(holders)
    return {"texts": texts, "chunk_ids": [c.chunk_id for c in chunks], "sets": sets,
            "n_docs": len(used), "n_docs_all": n_docs_all}


# -- workers -----------------------------------------------------------------------------------
def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(backend: str, corpus_path: str, k: int) -> dict:
    from instructkit.embeddings import load_embedder
    from instructkit.recordbuilders.rag import ChunkSettings, RagIndex
    from instructkit.recordbuilders.rag.chunking import Chunk

    with open(corpus_path, "rb") as fh:
        corpus = pickle.load(fh)
    texts = corpus["texts"]
    t = time.perf_counter()
    emb = load_embedder(backend=backend)
    load_s = time.perf_counter() - t
    emb.embed(texts[:8])  # first-call set-up is not throughput
    t = time.perf_counter()
    vecs = emb.embed(texts)
    embed_s = time.perf_counter() - t
    idx = RagIndex(emb, ChunkSettings(), "flat")
    idx.chunks = [Chunk(chunk_id=cid, doc_id="d", text=tx, start=0, end=len(tx))
                  for cid, tx in zip(corpus["chunk_ids"], texts)]
    idx.vectors = vecs
    idx._by_id = {c.chunk_id: i for i, c in enumerate(idx.chunks)}
    idx.build_faiss()
    t = time.perf_counter()
    _ = idx.lexical  # BM25 is built on first hybrid search; time it apart
    bm25_build_s = time.perf_counter() - t
    out: dict = {"backend": emb.backend, "dim": emb.dim, "load_s": load_s, "embed_s": embed_s,
                 "n_chunks": len(texts), "bm25_build_s": bm25_build_s, "runs": {}}
    row = idx._by_id
    for mode in ("dense", "hybrid"):
        for name, (queries, _rel) in corpus["sets"].items():
            t = time.perf_counter()
            hits = idx.search_many(queries, k, retrieval=mode)
            query_s = time.perf_counter() - t
            out["runs"][f"{mode}/{name}"] = {"query_s": query_s,
                                            "ranked": [[row[h.chunk.chunk_id] for h in hs] for hs in hits]}
    # deeper dense lists for the fusion grid (not timed)
    for name, (queries, _rel) in corpus["sets"].items():
        hits = idx.search_vectors(emb.embed(queries), DEPTH)
        out["runs"][f"dense{DEPTH}/{name}"] = {"ranked": [[row[h.chunk.chunk_id] for h in hs] for hs in hits]}
    out["peak_mb"] = _peak_mb()
    return out


def rerank_worker(corpus_path: str, k: int, first: str = "static", second: str = "onnx-int8",
                  candidates: int = 20) -> dict:
    """Two stages: ``first`` (hybrid) indexes every chunk; per query its top ``candidates``
    are embedded with ``second`` on demand (each chunk once) and ranked by the fusion of
    ``second``'s cosine ranking and BM25. Query time includes those embeddings."""
    import numpy as np

    from instructkit.embeddings import load_embedder
    from instructkit.recordbuilders.rag import ChunkSettings, RagIndex
    from instructkit.recordbuilders.rag.chunking import Chunk
    from instructkit.recordbuilders.rag.lexical import reciprocal_rank_fusion

    with open(corpus_path, "rb") as fh:
        corpus = pickle.load(fh)
    texts = corpus["texts"]
    t = time.perf_counter()
    emb, rer = load_embedder(backend=first), load_embedder(backend=second)
    load_s = time.perf_counter() - t
    emb.embed(texts[:8]), rer.embed(texts[:8])
    t = time.perf_counter()
    vecs = emb.embed(texts)
    embed_s = time.perf_counter() - t
    idx = RagIndex(emb, ChunkSettings(), "flat")
    idx.chunks = [Chunk(chunk_id=cid, doc_id="d", text=tx, start=0, end=len(tx))
                  for cid, tx in zip(corpus["chunk_ids"], texts)]
    idx.vectors = vecs
    idx._by_id = {c.chunk_id: i for i, c in enumerate(idx.chunks)}
    idx.build_faiss()
    _ = idx.lexical
    row = idx._by_id
    cache: dict[int, np.ndarray] = {}
    out: dict = {"backend": f"{first} > {second}", "load_s": load_s, "embed_s": embed_s,
                 "n_chunks": len(texts), "runs": {}, "second_embedded": 0}
    for name, (queries, _rel) in corpus["sets"].items():
        t = time.perf_counter()
        first_hits = idx.search_many(queries, candidates, retrieval="hybrid")
        lexical = idx.lexical.search_many(queries, candidates)
        qv = rer.embed(queries)
        need = sorted({row[h.chunk.chunk_id] for hs in first_hits for h in hs} - set(cache))
        if need:
            for i, v in zip(need, rer.embed([texts[i] for i in need])):
                cache[i] = v
        ranked = []
        for q, hs, lx in zip(qv, first_hits, lexical):
            cand = [row[h.chunk.chunk_id] for h in hs]
            by_cos = sorted(cand, key=lambda i: -float(cache[i] @ q))
            in_cand = set(cand)
            ranked.append([i for i, _ in reciprocal_rank_fusion([by_cos, [r for r, _ in lx if r in in_cand]])][:k])
        out["runs"][f"hybrid/{name}"] = {"query_s": time.perf_counter() - t, "ranked": ranked}
        out["runs"][f"dense/{name}"] = out["runs"][f"hybrid/{name}"]
    out["second_embedded"] = len(cache)
    out["peak_mb"] = _peak_mb()
    return out


def prepare(backend: str) -> None:
    """Build and cache a backend's exports (timed separately, not part of the rows)."""
    from instructkit.embeddings import load_embedder

    load_embedder(backend=backend).embed(["warm up"])


# -- evaluation --------------------------------------------------------------------------------
def metrics(ranked: list[list[int]], relevant: list[list[int]], k: int) -> tuple[float, float]:
    recall = mrr = 0.0
    for r, rel in zip(ranked, relevant):
        rel = set(rel)
        recall += any(x in rel for x in r[:k])
        mrr += next((1.0 / (i + 1) for i, x in enumerate(r[:10]) if x in rel), 0.0)
    n = max(1, len(ranked))
    return recall / n, mrr / n


def bm25_runs(corpus: dict, k: int) -> dict:
    from instructkit.recordbuilders.rag.lexical import LexicalIndex

    t = time.perf_counter()
    lex = LexicalIndex(corpus["texts"])
    build_s = time.perf_counter() - t
    runs = {}
    for name, (queries, _rel) in corpus["sets"].items():
        t = time.perf_counter()
        res = lex.search_many(queries, DEPTH)
        runs[name] = {"query_s": time.perf_counter() - t, "ranked": [[r for r, _ in x] for x in res]}
    return {"build_s": build_s, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="${INSTRUCTKIT_SHARED_DATA:-../shared/data}/guidelines/cdc_mmwr_supplements_dev.json")
    ap.add_argument("--max-chunks", type=int, default=2000,
                    help="Subsample whole documents (seeded order) up to this many chunks; 0 = all.")
    ap.add_argument("--queries", type=int, default=400, help="Queries in all (half tuning, half held-out).")
    ap.add_argument("--chunk-size", type=int, default=1000)
    ap.add_argument("--overlap", type=int, default=150)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--no-rerank", action="store_true",
                    help="Skip the two-stage row (static hybrid top-20, re-ranked with onnx-int8 + BM25).")
    ap.add_argument("--_worker", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--_prepare", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._prepare:
        prepare(args._prepare)
        return
    if args._worker:
        backend, path, k = args._worker
        fn = rerank_worker if backend == "rerank" else (lambda p, kk: worker(backend, p, kk))
        print(json.dumps(fn(path, int(k))))
        return

    from instructkit.recordbuilders.rag.lexical import FUSION_DEPTH, RRF_K, reciprocal_rank_fusion

    corpus = build_corpus(args)
    sets = corpus["sets"]
    print(f"corpus: {corpus['n_docs']}/{corpus['n_docs_all']} documents, {len(corpus['texts'])} chunks "
          f"({args.chunk_size} chars, overlap {args.overlap}); queries: {len(sets['tune'][0])} tuning, "
          f"{len(sets['held_out'][0])} held-out (held-back sentences, disjoint document halves); "
          f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as fh:
        pickle.dump(corpus, fh)
        path = fh.name
    results: dict[str, dict] = {}
    try:
        for b in args.backends:
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--_prepare", b], capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"preparing backend {b} failed")
            print(f"prepared {b} in {time.perf_counter() - t:.1f}s (export/distillation, cached)", flush=True)
        two_stage = [] if args.no_rerank or not {"static", "onnx-int8"} <= set(args.backends) else ["rerank"]
        for b in [*args.backends, *two_stage]:
            proc = subprocess.run([sys.executable, __file__, "--_worker", b, path, str(args.k)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"backend {b} failed")
            results[b] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[b]
            extra = f", {r['second_embedded']} chunks embedded by the re-ranker" if b == "rerank" else ""
            print(f"  {b}: {r['n_chunks'] / r['embed_s']:.1f} chunks/s, load {r['load_s']:.1f}s, "
                  f"peak {r['peak_mb']:.0f} MB{extra}", flush=True)
    finally:
        os.unlink(path)
    bm25 = bm25_runs(corpus, args.k)

    k = args.k
    stock_rate = (results[STOCK]["n_chunks"] / results[STOCK]["embed_s"]) if STOCK in results else None
    rows = []
    for b, r in results.items():
        rate = r["n_chunks"] / r["embed_s"]
        for mode in (("hybrid",) if b == "rerank" else ("dense", "hybrid")):
            nq = sum(len(sets[s][0]) for s in sets)
            qs = nq / sum(r["runs"][f"{mode}/{s}"]["query_s"] for s in sets)
            m = {s: metrics(r["runs"][f"{mode}/{s}"]["ranked"], sets[s][1], k) for s in sets}
            label = (f"static>int8 rerank top-20" if b == "rerank" else f"{b}, {mode}")
            rows.append((label + ("  [stock]" if b == STOCK and mode == "dense" else ""),
                         rate, rate / stock_rate if stock_rate else None, qs, m, r["peak_mb"], b, mode))
    nq = sum(len(sets[s][0]) for s in sets)
    m = {s: metrics(bm25["runs"][s]["ranked"], sets[s][1], k) for s in sets}
    rows.append(("BM25 alone (bm25s)", None, None, nq / sum(bm25["runs"][s]["query_s"] for s in sets), m,
                 None, "bm25", "lexical"))

    print()
    head = (f"{'backend, retrieval':28} {'chunks/s':>9} {'x stock':>8} {'queries/s':>10} "
            f"{'R@' + str(k) + ' tune':>9} {'MRR tune':>9} {'R@' + str(k) + ' held':>9} {'MRR held':>9} {'peak MB':>8}")
    print(head)
    print("-" * len(head))
    for name, rate, ratio, qs, m, peak, *_ in rows:
        print(f"{name:28} {('%.1f' % rate) if rate else '-':>9} {('%.1fx' % ratio) if ratio else '-':>8} "
              f"{qs:>10.1f} {m['tune'][0]:>9.3f} {m['tune'][1]:>9.3f} {m['held_out'][0]:>9.3f} "
              f"{m['held_out'][1]:>9.3f} {('%.0f' % peak) if peak else '-':>8}")

    # fusion settings, chosen on the tuning queries only
    print(f"\nfusion grid on the TUNING queries (recall@{k} / MRR@10, mean over backends; "
          f"library: RRF k={RRF_K}, depth {FUSION_DEPTH}):")
    grid = {}
    for rrf_k in (10, 30, 60, 100):
        for depth in (10, 20, 50):
            vals = []
            for b, r in results.items():
                if b == "rerank":
                    continue
                dense = r["runs"][f"dense{DEPTH}/tune"]["ranked"]
                lex = bm25["runs"]["tune"]["ranked"]
                fused = [[i for i, _ in reciprocal_rank_fusion([d[:depth], l[:depth]], rrf_k)] for d, l in zip(dense, lex)]
                vals.append(metrics(fused, sets["tune"][1], k))
            grid[(rrf_k, depth)] = (sum(v[0] for v in vals) / len(vals), sum(v[1] for v in vals) / len(vals))
    for (rrf_k, depth), (rec, mrr) in grid.items():
        print(f"  k={rrf_k:<4} depth={depth:<3} recall {rec:.3f}  MRR {mrr:.3f}")
    best = max(grid, key=lambda g: (round(grid[g][0], 3), grid[g][1]))
    print(f"  best on tuning: k={best[0]}, depth={best[1]}")
    if "static" in results:
        print(f"static hybrid with the dense ranking down-weighted (RRF k={RRF_K}, depth {FUSION_DEPTH}; "
              f"tuning / held-out recall@{k}):")
        for w in (1.0, 0.5, 0.25):
            res = []
            for name in ("tune", "held_out"):
                dense = results["static"]["runs"][f"dense{DEPTH}/{name}"]["ranked"]
                lex = bm25["runs"][name]["ranked"]
                fused = []
                for d, l in zip(dense, lex):
                    sc: dict[int, float] = {}
                    for rank, i in enumerate(d[:FUSION_DEPTH], 1):
                        sc[i] = sc.get(i, 0) + w / (RRF_K + rank)
                    for rank, i in enumerate(l[:FUSION_DEPTH], 1):
                        sc[i] = sc.get(i, 0) + 1 / (RRF_K + rank)
                    fused.append(sorted(sc, key=lambda i: -sc[i]))
                res.append(metrics(fused, sets[name][1], k)[0])
            print(f"  dense weight {w:<4}: {res[0]:.3f} / {res[1]:.3f}")

    # auto: the fastest backend whose recall on the TUNING queries is at least stock's
    if STOCK in results:
        stock_tune = next(row[4]["tune"][0] for row in rows if row[6] == STOCK and row[7] == "dense")
        print(f"\nauto (fastest backend with tuning recall@{k} >= stock dense {stock_tune:.3f}):")
        for mode in ("dense", "hybrid"):
            ok = [(row[1], row[6]) for row in rows
                  if row[7] == mode and row[6] in BACKENDS and row[4]["tune"][0] >= stock_tune]
            if ok:
                rate, b = max(ok)
                held = next(row[4]["held_out"][0] for row in rows if row[6] == b and row[7] == mode)
                stock_held = next(row[4]["held_out"][0] for row in rows if row[6] == STOCK and row[7] == "dense")
                verdict = "confirmed" if held >= stock_held else f"NOT confirmed (stock {stock_held:.3f})"
                print(f"  {mode:6}: {b} ({rate:.1f} chunks/s); held-out recall@{k} {held:.3f}: {verdict}")
            else:
                print(f"  {mode:6}: none")


if __name__ == "__main__":
    main()
