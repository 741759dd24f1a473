"""Benchmark: RAG retrieval with every embedder backend, dense, hybrid and two-stage, against stock.

Stock (the baseline the issue names) is sentence-transformers all-MiniLM-L6-v2 on torch
CPU with a flat FAISS index: ``backend torch, dense``. Every other row runs on the same
chunks and queries in the same run, each in its own subprocess (so its peak RSS is its
own), after a separate preparation process has built and cached the exports.

Rows: each backend indexes every chunk and is searched ``dense`` and ``hybrid`` (+ BM25,
reciprocal rank fusion); ``two_stage`` is the library's default RAG retrieval: static
vectors indexed, each query's top-N hybrid candidates re-ranked by onnx-int8 (MiniLM)
vectors computed on first use (a cold start: query time includes embedding them), one row
per ``--candidates`` value.

Corpus: CDC MMWR Supplements (``../shared/data/guidelines/cdc_mmwr_supplements_dev.json``),
chunked as the rag builder does (1000 characters, overlap 150); by default a seeded sample
of whole documents up to ``--max-chunks``.

Queries: held-back sentences. For a seeded sample of chunks, one sentence of at least 8
words from the middle of the chunk is removed from every chunk that contains it
(overlapping neighbours too) before anything is indexed, and used as the query; its
relevant chunks are the ones it was removed from. The documents are split in two seeded
halves: queries from one half are the TUNING set (used to choose the fusion settings, the
two-stage candidate count and the ``auto`` backend), queries from the other the HELD-OUT
set (never used to choose anything). Both are reported. Queries are searched ``--batch`` at
a time (the rag builder's batch size): int8 activations are quantized per batch, so an
int8 query vector depends a little on its batch.

Printed per row: chunks/s embedding the corpus (and the ratio to stock), queries/s, wall
seconds for index + the first 60 / 200 / all queries (the cost of a RAG build's retrieval),
recall@5 and MRR@10 on both query sets, and the worker's peak RSS. Then the fusion grid and
the two-stage grid on the tuning set (held-out shown alongside), and whether the issue's
targets are met.

    python bench/retrieval.py                       # up to 2,000 chunks
    python bench/retrieval.py --max-chunks 0        # the whole corpus (~10.7k chunks)
    python bench/retrieval.py --backends torch onnx-int8 static --candidates 10 20 30
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


def _flat_index(emb, corpus: dict, **kw):
    """A flat RagIndex over the corpus chunks (texts as given), vectors not yet set."""
    from instructkit.recordbuilders.rag import ChunkSettings, RagIndex
    from instructkit.recordbuilders.rag.chunking import Chunk

    idx = RagIndex(emb, ChunkSettings(), "flat", **kw)
    idx.chunks = [Chunk(chunk_id=cid, doc_id="d", text=tx, start=0, end=len(tx))
                  for cid, tx in zip(corpus["chunk_ids"], corpus["texts"])]
    idx._by_id = {c.chunk_id: i for i, c in enumerate(idx.chunks)}
    return idx


def _timed_searches(idx, corpus: dict, k: int, batch: int, mode: str, out: dict) -> None:
    """Search every query set in batches of ``batch`` (as the rag builder does), timed."""
    row = idx._by_id
    for name, (queries, _rel) in corpus["sets"].items():
        ranked, cum = [], []
        t = time.perf_counter()
        for s in range(0, len(queries), batch):
            hits = idx.search_many(queries[s:s + batch], k, retrieval=mode)
            ranked += [[row[h.chunk.chunk_id] for h in hs] for hs in hits]
            cum.append((len(ranked), time.perf_counter() - t))
        out["runs"][f"{mode}/{name}"] = {"query_s": time.perf_counter() - t, "ranked": ranked, "cum": cum}


def worker(backend: str, corpus_path: str, k: int, batch: int, vectors_out: str | None) -> dict:
    """One backend indexes every chunk; dense and hybrid searches over its vectors."""
    import numpy as np

    from instructkit.embeddings import load_embedder

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
    idx = _flat_index(emb, corpus, retrieval="hybrid")
    idx.vectors = vecs
    t = time.perf_counter()
    idx.build_faiss()
    faiss_s = time.perf_counter() - t
    t = time.perf_counter()
    _ = idx.lexical  # BM25 is built on first hybrid search; time it apart
    bm25_build_s = time.perf_counter() - t
    out: dict = {"backend": emb.backend, "dim": emb.dim, "load_s": load_s, "embed_s": embed_s,
                 "faiss_s": faiss_s, "n_chunks": len(texts), "bm25_build_s": bm25_build_s, "runs": {}}
    for mode in ("dense", "hybrid"):
        _timed_searches(idx, corpus, k, batch, mode, out)
    # deeper dense lists for the fusion and two-stage grids (not timed)
    row = idx._by_id
    for name, (queries, _rel) in corpus["sets"].items():
        hits = idx.search_vectors(emb.embed(queries), DEPTH)
        out["runs"][f"dense{DEPTH}/{name}"] = {"ranked": [[row[h.chunk.chunk_id] for h in hs] for hs in hits]}
    if vectors_out:  # the re-ranker's vectors of every chunk and query, for the two-stage grid
        np.save(vectors_out, vecs)
        np.save(vectors_out + ".queries.npy", np.vstack([emb.embed(q) for q, _ in corpus["sets"].values()]))
    out["peak_mb"] = _peak_mb()
    return out


def two_stage_worker(corpus_path: str, k: int, batch: int, candidates: int,
                     first: str = "static", second: str = "onnx-int8") -> dict:
    """The library's two_stage retrieval: ``first`` indexes every chunk, ``second`` re-ranks
    each query's top ``candidates`` with chunk vectors computed on first use (each chunk
    once, kept in memory: a cold start, as in a fresh build). Query time includes them."""
    from instructkit.embeddings import load_embedder

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
    idx = _flat_index(emb, corpus, retrieval="two_stage", reranker=rer, candidates=candidates)
    idx.vectors = vecs
    t = time.perf_counter()
    idx.build_faiss()
    faiss_s = time.perf_counter() - t
    t = time.perf_counter()
    _ = idx.lexical
    bm25_build_s = time.perf_counter() - t
    out: dict = {"backend": f"{first}>{second}", "load_s": load_s, "embed_s": embed_s, "faiss_s": faiss_s,
                 "bm25_build_s": bm25_build_s, "n_chunks": len(texts), "runs": {}, "candidates": candidates}
    _timed_searches(idx, corpus, k, batch, "two_stage", out)
    out["second_embedded"] = idx.rerank_vectors.embedded
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


def two_stage_grid(results: dict, bm25: dict, sets: dict, vectors_dir: str, k: int,
                   widths=(5, 10, 15, 20, 30, 50)) -> dict:
    """Recall/MRR of two-stage settings from the static run's first stage and the int8 run's
    vectors (the re-ranker's), without timing: candidate count x what the cosine is fused with."""
    import numpy as np

    from instructkit.recordbuilders.rag.lexical import FUSION_DEPTH, RRF_K, reciprocal_rank_fusion
    from instructkit.recordbuilders.rag.rerank import rerank

    chunk_vecs = np.load(os.path.join(vectors_dir, "int8.npy"))
    query_vecs = np.load(os.path.join(vectors_dir, "int8.npy.queries.npy"))
    offsets = {}
    o = 0
    for name, (queries, _rel) in sets.items():
        offsets[name] = (o, o + len(queries))
        o += len(queries)
    grid = {}
    for n in widths:
        for fusion in ("none", "bm25", "first"):
            entry = {}
            for name in sets:
                dense = results["static"]["runs"][f"dense{DEPTH}/{name}"]["ranked"]
                lex = bm25["runs"][name]["ranked"]
                depth = max(FUSION_DEPTH, n)
                cand = [[i for i, _ in reciprocal_rank_fusion([d[:depth], l[:depth]], RRF_K)][:n]
                        for d, l in zip(dense, lex)]
                qv = query_vecs[offsets[name][0]:offsets[name][1]]
                lexical = [[(r, 0.0) for r in l[:depth]] for l in lex]
                ranked = rerank(qv, cand, chunk_vecs, lexical, 10, "none" if fusion == "first" else fusion)
                ranked = [[i for i, _ in r] for r in ranked]
                if fusion == "first":  # the cosine order fused with the first-stage order
                    ranked = [[i for i, _ in reciprocal_rank_fusion([r, c], RRF_K)] for r, c in zip(ranked, cand)]
                entry[name] = metrics(ranked, sets[name][1], k)
                entry[name + "_chunks"] = len({i for c in cand for i in c})
            grid[(n, fusion)] = entry
    return grid


def _first_queries_s(r: dict, mode: str, sets: dict, q: int) -> float:
    """Seconds a worker spent searching its first ``q`` queries (the sets in order)."""
    total = 0.0
    for name in sets:
        cum = r["runs"][f"{mode}/{name}"]["cum"]
        if q <= cum[-1][0]:
            return total + next(t for n, t in cum if n >= q)
        total += cum[-1][1]
        q -= cum[-1][0]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="${INSTRUCTKIT_SHARED_DATA:-../shared/data}/guidelines/cdc_mmwr_supplements_dev.json")
    ap.add_argument("--max-chunks", type=int, default=2000,
                    help="Subsample whole documents (seeded order) up to this many chunks; 0 = all.")
    ap.add_argument("--queries", type=int, default=400, help="Queries in all (half tuning, half held-out).")
    ap.add_argument("--chunk-size", type=int, default=1000)
    ap.add_argument("--overlap", type=int, default=150)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4,
                    help="Queries per search call (the rag builder's default batch_size).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--candidates", type=int, nargs="+", default=None,
                    help="two_stage rows to time, by candidate count (default: the library's).")
    ap.add_argument("--_worker", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--_prepare", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._prepare:
        prepare(args._prepare)
        return
    if args._worker:
        backend, path, k, batch, extra = args._worker
        if backend == "two_stage":
            res = two_stage_worker(path, int(k), int(batch), int(extra))
        else:
            res = worker(backend, path, int(k), int(batch), extra if extra != "-" else None)
        print(json.dumps(res))
        return

    from instructkit.recordbuilders.rag.lexical import FUSION_DEPTH, RRF_K, reciprocal_rank_fusion
    from instructkit.recordbuilders.rag.rerank import DEFAULT_CANDIDATES, RERANK_FUSION

    corpus = build_corpus(args)
    sets = corpus["sets"]
    nq = sum(len(sets[s][0]) for s in sets)
    print(f"corpus: {corpus['n_docs']}/{corpus['n_docs_all']} documents, {len(corpus['texts'])} chunks "
          f"({args.chunk_size} chars, overlap {args.overlap}); queries: {len(sets['tune'][0])} tuning, "
          f"{len(sets['held_out'][0])} held-out (held-back sentences, disjoint document halves), "
          f"searched {args.batch} at a time; machine: {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    two_stage_ok = {"static", "onnx-int8"} <= set(args.backends)
    widths = args.candidates or [DEFAULT_CANDIDATES]
    tmpdir = tempfile.mkdtemp(prefix="bench-retrieval-")
    path = os.path.join(tmpdir, "corpus.pkl")
    with open(path, "wb") as fh:
        pickle.dump(corpus, fh)
    results: dict[str, dict] = {}
    kk = max(args.k, 10)  # ten results per query: recall@k on the first k, MRR@10
    try:
        for b in args.backends:
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--_prepare", b], capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"preparing backend {b} failed")
            print(f"prepared {b} in {time.perf_counter() - t:.1f}s (export/distillation, cached)", flush=True)
        jobs = [(b, "-" if b != "onnx-int8" else os.path.join(tmpdir, "int8.npy")) for b in args.backends]
        jobs += [(f"two_stage@{n}", str(n)) for n in widths] if two_stage_ok else []
        for b, extra in jobs:
            name = b.split("@")[0]
            proc = subprocess.run([sys.executable, __file__, "--_worker", name, path, str(kk), str(args.batch), extra],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"backend {b} failed")
            results[b] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[b]
            more = f", {r['second_embedded']} chunks embedded by the re-ranker" if name == "two_stage" else ""
            print(f"  {b}: {r['n_chunks'] / r['embed_s']:.1f} chunks/s, load {r['load_s']:.1f}s, "
                  f"peak {r['peak_mb']:.0f} MB{more}", flush=True)
        bm25 = bm25_runs(corpus, args.k)
        grid = two_stage_grid(results, bm25, sets, tmpdir, args.k) if two_stage_ok else {}
    finally:
        for f in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, f))
        os.rmdir(tmpdir)

    k = args.k
    e2e_points = sorted({q for q in (60, 200) if q < nq} | {nq})
    stock_rate = (results[STOCK]["n_chunks"] / results[STOCK]["embed_s"]) if STOCK in results else None
    rows = []
    for b, r in results.items():
        rate = r["n_chunks"] / r["embed_s"]
        two = b.startswith("two_stage")
        for mode in (("two_stage",) if two else ("dense", "hybrid")):
            query_s = sum(r["runs"][f"{mode}/{s}"]["query_s"] for s in sets)
            build_s = r["load_s"] + r["embed_s"] + r["faiss_s"] + (r["bm25_build_s"] if mode != "dense" else 0.0)
            m = {s: metrics(r["runs"][f"{mode}/{s}"]["ranked"], sets[s][1], k) for s in sets}
            label = f"static>int8 two_stage N={max(r['candidates'], kk)}" if two else f"{b}, {mode}"
            rows.append({"label": label + ("  [stock]" if b == STOCK and mode == "dense" else ""),
                         "rate": rate, "ratio": rate / stock_rate if stock_rate else None, "qs": nq / query_s,
                         "e2e": {q: build_s + _first_queries_s(r, mode, sets, q) for q in e2e_points},
                         "m": m, "peak": r["peak_mb"], "backend": b, "mode": mode})
    m = {s: metrics(bm25["runs"][s]["ranked"], sets[s][1], k) for s in sets}
    bm25_qs = nq / sum(bm25["runs"][s]["query_s"] for s in sets)
    rows.append({"label": "BM25 alone (bm25s)", "rate": None, "ratio": None, "qs": bm25_qs,
                 "e2e": {q: bm25["build_s"] + q / bm25_qs for q in e2e_points}, "m": m, "peak": None,
                 "backend": "bm25", "mode": "lexical"})
    stock = next((row for row in rows if row["backend"] == STOCK and row["mode"] == "dense"), None)

    print()
    head = (f"{'backend, retrieval':32} {'chunks/s':>9} {'x stock':>8} {'queries/s':>10} "
            + "".join(f"{'idx+' + str(q) + 'q s':>11}" for q in e2e_points) + f" {'x stock':>8} "
            f"{'R@' + str(k) + ' tune':>9} {'MRR tune':>9} {'R@' + str(k) + ' held':>9} {'MRR held':>9} {'peak MB':>8}")
    print(head)
    print("-" * len(head))
    for row in rows:
        m = row["m"]
        e2e_ratio = stock["e2e"][nq] / row["e2e"][nq] if stock else None
        print(f"{row['label']:32} {('%.1f' % row['rate']) if row['rate'] else '-':>9} "
              f"{('%.1fx' % row['ratio']) if row['ratio'] else '-':>8} {row['qs']:>10.1f} "
              + "".join(f"{row['e2e'][q]:>11.1f}" for q in e2e_points)
              + f" {('%.1fx' % e2e_ratio) if e2e_ratio else '-':>8} "
              f"{m['tune'][0]:>9.3f} {m['tune'][1]:>9.3f} {m['held_out'][0]:>9.3f} "
              f"{m['held_out'][1]:>9.3f} {('%.0f' % row['peak']) if row['peak'] else '-':>8}")
    print(f"(idx+Qq: wall seconds for model load + embedding every chunk + FAISS (+ BM25) + searching the "
          f"first Q queries, tuning set first; 'x stock': stock's idx+{nq}q time / this row's)")

    # fusion settings, chosen on the tuning queries only
    print(f"\nfusion grid on the TUNING queries (recall@{k} / MRR@10, mean over backends; "
          f"library: RRF k={RRF_K}, depth {FUSION_DEPTH}):")
    fgrid = {}
    for rrf_k in (10, 30, 60, 100):
        for depth in (10, 20, 50):
            vals = []
            for b, r in results.items():
                if b.startswith("two_stage"):
                    continue
                dense = r["runs"][f"dense{DEPTH}/tune"]["ranked"]
                lex = bm25["runs"]["tune"]["ranked"]
                fused = [[i for i, _ in reciprocal_rank_fusion([d[:depth], l[:depth]], rrf_k)] for d, l in zip(dense, lex)]
                vals.append(metrics(fused, sets["tune"][1], k))
            fgrid[(rrf_k, depth)] = (sum(v[0] for v in vals) / len(vals), sum(v[1] for v in vals) / len(vals))
    print("  " + "  ".join(f"k={a}/d={b}: {rec:.3f}/{mrr:.3f}" for (a, b), (rec, mrr) in fgrid.items()))
    best = max(fgrid, key=lambda g: (round(fgrid[g][0], 3), fgrid[g][1]))
    print(f"  best on tuning: k={best[0]}, depth={best[1]}")

    if grid:
        print(f"\ntwo-stage grid (static hybrid top-N re-ranked by onnx-int8 cosine; fused with: none, "
              f"BM25 of the candidates, or the first-stage order); recall@{k} / MRR@10; 'chunks' = distinct "
              f"candidates the re-ranker must embed for the set (library: N={DEFAULT_CANDIDATES}, {RERANK_FUSION}):")
        print(f"  {'N':>3} {'fusion':7} {'tune':>13} {'chunks':>7}   {'held-out':>13} {'chunks':>7}")
        for (n, fusion), e in grid.items():
            print(f"  {n:>3} {fusion:7} {e['tune'][0]:.3f} / {e['tune'][1]:.3f} {e['tune_chunks']:>7}   "
                  f"{e['held_out'][0]:.3f} / {e['held_out'][1]:.3f} {e['held_out_chunks']:>7}")
        top = max(e["tune"][0] for e in grid.values())
        # the cheapest setting within 0.005 of the best tuning recall (then the better MRR)
        choice = min((g for g, e in grid.items() if e["tune"][0] >= top - 0.005),
                     key=lambda g: (g[0], -grid[g]["tune"][1]))
        e = grid[choice]
        print(f"  chosen on TUNING (fewest candidates within 0.005 of the best tuning recall {top:.3f}): "
              f"N={choice[0]}, fusion {choice[1]}: tuning {e['tune'][0]:.3f}, held-out {e['held_out'][0]:.3f}")

    if stock is not None:
        print("\ntargets (the issue's): >= 5x stock chunks/s with recall@5 >= stock on BOTH query sets")
        s_t, s_h = stock["m"]["tune"][0], stock["m"]["held_out"][0]
        for row in rows:
            if row["rate"] is None or row is stock:
                continue
            fast = row["ratio"] >= 5
            good = row["m"]["tune"][0] >= s_t and row["m"]["held_out"][0] >= s_h
            print(f"  {row['label']:32} {row['ratio']:.1f}x {'>= 5x' if fast else '< 5x '}; recall "
                  f"{row['m']['tune'][0]:.3f}/{row['m']['held_out'][0]:.3f} vs stock {s_t:.3f}/{s_h:.3f}: "
                  f"{'met' if fast and good else 'NOT met'}")


if __name__ == "__main__":
    main()
