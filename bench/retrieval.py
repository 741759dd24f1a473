"""Benchmark: instructkit RAG retrieval (all-MiniLM-L6-v2 + FAISS) against BM25 (rank-bm25).

Corpus: CDC MMWR Supplements (``../shared/data/guidelines/cdc_mmwr_supplements_dev.json``),
loaded and chunked exactly as the rag builder does (1000 characters, overlap 150).

Query set, derived from the corpus: for a seeded sample of chunks, one sentence of at
least 8 words from the middle of the chunk is *held back* -- removed from every chunk
that contains it (overlapping neighbours too) before anything is indexed -- and used as
the query. The relevant passages of a query are the chunks it was removed from. recall@5
is the share of queries with a relevant chunk among the top 5.

Both methods index the same held-back chunk texts and answer the same queries in the same
run. Printed: chunks/s for embedding and for building the index, queries/s (dense: embed
the query + FAISS search; BM25: score every chunk), recall@5, for the exact (flat) and
the approximate (HNSW) FAISS index and for BM25Okapi.

    python bench/retrieval.py                      # up to 2,500 chunks (subsampled corpus)
    python bench/retrieval.py --max-chunks 0       # the whole corpus (~10.7k chunks; slow on CPU)
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def main() -> None:
    from instructkit.recipe.load import resolve_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="${INSTRUCTKIT_SHARED_DATA:-../shared/data}/guidelines/cdc_mmwr_supplements_dev.json")
    ap.add_argument("--max-chunks", type=int, default=2500,
                    help="Subsample whole documents (seeded order) up to this many chunks; 0 = all.")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--chunk-size", type=int, default=1000)
    ap.add_argument("--overlap", type=int, default=150)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import numpy as np
    from rank_bm25 import BM25Okapi

    from instructkit.embeddings import load_embedder
    from instructkit.recordbuilders.rag import ChunkSettings, RagIndex, chunk_document, load_documents
    from instructkit.recordbuilders.rag.grounding import split_sentences

    path = resolve_path(args.data)
    if not path.is_file():
        sys.exit(f"corpus not found: {path} (see ../shared/data/README.md)")
    rng = random.Random(args.seed)
    docs = load_documents(path, license="LicenseRef-US-Public-Domain")
    n_docs_all = len(docs)
    rng.shuffle(docs)
    settings = ChunkSettings(args.chunk_size, args.overlap)
    t = time.perf_counter()
    chunks, used_docs = [], 0
    for d in docs:
        if args.max_chunks and len(chunks) >= args.max_chunks:
            break
        chunks += chunk_document(d, settings)
        used_docs += 1
    chunk_seconds = time.perf_counter() - t
    texts = [c.text for c in chunks]

    # held-back sentences as queries
    queries, relevant = [], []
    for i in rng.sample(range(len(chunks)), len(chunks)):
        if len(queries) >= args.queries:
            break
        sents = [s for s in split_sentences(texts[i]) if len(s.split()) >= 8 and s in texts[i]]
        if not sents:
            continue
        q = sents[len(sents) // 2]
        if q in queries:
            continue
        # every chunk holding the sentence (overlapping neighbours, repeated boilerplate)
        holders = {j for j, tx in enumerate(texts) if q in tx}
        if not holders:
            continue
        for j in holders:
            texts[j] = texts[j].replace(q, " ")
        queries.append(q)
        relevant.append(holders)
    print(f"corpus: {used_docs}/{n_docs_all} documents, {len(chunks)} chunks "
          f"({args.chunk_size} chars, overlap {args.overlap}; chunked in {chunk_seconds:.1f}s); "
          f"{len(queries)} held-back-sentence queries; machine: {os.cpu_count()} CPUs")
    if args.max_chunks and used_docs < n_docs_all:
        print(f"note: corpus subsampled to whole documents up to {args.max_chunks} chunks "
              f"(the full corpus takes too long to embed on this CPU); --max-chunks 0 for all")

    rows = []
    emb = load_embedder()
    emb.embed(["warm up"])
    t = time.perf_counter()
    vecs = emb.embed(texts, batch_size=args.batch_size)
    embed_s = time.perf_counter() - t
    for kind in ("flat", "hnsw"):
        idx = RagIndex(emb, settings, kind)
        held_back = [c.__class__(**{**c.as_dict(), "text": tx}) for c, tx in zip(chunks, texts)]
        idx.chunks, idx.vectors = held_back, vecs
        t = time.perf_counter()
        idx.build_faiss()
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        results = idx.search_many(queries, args.k)
        query_s = time.perf_counter() - t
        pos = {c.chunk_id: j for j, c in enumerate(held_back)}
        hits = sum(any(pos[h.chunk.chunk_id] in rel for h in res) for res, rel in zip(results, relevant))
        rows.append((f"instructkit MiniLM + FAISS {kind}", len(chunks) / embed_s, len(chunks) / build_s,
                     len(queries) / query_s, hits / len(queries)))

    t = time.perf_counter()
    bm25 = BM25Okapi([tokenize(x) for x in texts])
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    hits = 0
    for q, rel in zip(queries, relevant):
        scores = bm25.get_scores(tokenize(q))
        top = np.argpartition(-scores, args.k)[: args.k]
        hits += any(int(j) in rel for j in top)
    query_s = time.perf_counter() - t
    rows.append(("baseline BM25Okapi (rank-bm25)", None, len(chunks) / build_s, len(queries) / query_s,
                 hits / len(queries)))

    print()
    print(f"{'method':38} {'embed chunks/s':>15} {'index chunks/s':>15} {'queries/s':>10} {'recall@' + str(args.k):>9}")
    for name, e, b, q, r in rows:
        print(f"{name:38} {('%.1f' % e) if e else '-':>15} {b:>15.0f} {q:>10.1f} {r:>9.3f}")


if __name__ == "__main__":
    main()
