"""Two-stage retrieval: cheap candidates for every chunk, MiniLM only where it decides.

Embedding every chunk with all-MiniLM-L6-v2 is what made indexing slow; static embeddings
(model2vec, distilled from the same model) index a corpus ~100x faster but rank worse.
``two_stage`` retrieval keeps both strengths:

1. indexing embeds every chunk with the **static** model only (and BM25 is built over the
   texts when first needed);
2. a query takes the top ``candidates`` of the hybrid first stage (static dense + BM25,
   reciprocal rank fusion);
3. the candidates are re-ranked by the cosine of the **re-ranker's** vectors (the run's
   MiniLM embedder, ``onnx-int8`` by default) of the query and of each candidate chunk, and
   that ranking is fused with BM25 again (``RERANK_FUSION``).

A chunk's re-ranker vector is computed the first time the chunk is a candidate and then kept:
in memory by content hash for the run, and (``embedder.cache_vectors``) in the
``VectorCache`` of the re-ranker, so a later run over the same text reuses it. A builder
asking many questions of one corpus pays each chunk at most once. The candidate count (20)
and the BM25 fusion were compared on the tuning queries of ``bench/retrieval.py`` (its timed
two_stage rows: 20 and 30 candidates within one query of each other, 20 the cheaper) and
checked on its held-out queries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from instructkit._resources import load_schema
from instructkit.recordbuilders.rag.lexical import RRF_K, reciprocal_rank_fusion

logger = logging.getLogger("instructkit")

__all__ = ["DEFAULT_CANDIDATES", "RERANK_FUSION", "LazyChunkVectors", "index_embedders", "rerank"]

#: how many first-stage candidates the re-ranker sees per query (the rag schema's default)
DEFAULT_CANDIDATES: int = load_schema("builders/rag.schema.json")["properties"]["rerank_candidates"]["default"]
#: what the re-ranker's cosine ranking is fused with: "bm25" (BM25's ranking of the same
#: candidates, by RRF) or "none" (the cosine alone)
RERANK_FUSION = "bm25"


def index_embedders(run_embedder: Any, retrieval: str,
                    load_static: Callable[[], Any]) -> tuple[Any, Any, str]:
    """``(index embedder, reranker or None, retrieval)`` for a retrieval setting.

    two_stage indexes with ``load_static()`` and re-ranks with ``run_embedder``; it falls
    back to hybrid over ``run_embedder`` when the run's embedder is itself static (nothing to
    re-rank with) or the static backend cannot load (no ``fast`` extra).
    """
    from instructkit._exceptions import MissingExtraError

    if retrieval != "two_stage":
        return run_embedder, None, retrieval
    if getattr(run_embedder, "backend", None) == "static":
        logger.info("two_stage retrieval: the run's embedder is static; using hybrid retrieval")
        return run_embedder, None, "hybrid"
    try:
        first = load_static()
    except MissingExtraError as exc:
        logger.warning("two_stage retrieval needs the static embedder (%s); using hybrid retrieval "
                       "over %s vectors (slower to index)", exc, getattr(run_embedder, "backend", "?"))
        return run_embedder, None, "hybrid"
    return first, run_embedder, "two_stage"


class LazyChunkVectors:
    """Re-ranker vectors of chunk texts, embedded on first request and kept by content hash."""

    def __init__(self, embedder: Any, cache: Any = None) -> None:
        import numpy as np

        self.np = np
        self.embedder = embedder
        self.cache = cache  # a VectorCache, or None: memory only
        self._mem: dict[bytes, Any] = {}
        self.embedded = 0  # texts this object had embedded
        self.reused = 0    # texts found in the persistent cache

    def __len__(self) -> int:
        return len(self._mem)

    def vectors(self, texts: Sequence[str]) -> Any:
        """float32 rows, one per text, in order."""
        from instructkit.vector_cache import embed_cached, text_key

        np = self.np
        keys = [text_key(t) for t in texts]
        todo: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._mem and k not in todo:
                todo[k] = t
        if todo:
            before = self.cache.misses if self.cache is not None else 0
            vecs = embed_cached(self.embedder, list(todo.values()), self.cache)
            missed = (self.cache.misses - before) if self.cache is not None else len(todo)
            self.embedded += missed
            self.reused += len(todo) - missed
            for k, v in zip(todo, vecs):
                self._mem[k] = v
        if not keys:
            return np.zeros((0, self.embedder.dim), np.float32)
        return np.stack([self._mem[k] for k in keys])

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()


def rerank(query_vectors: Any, candidates: Sequence[Sequence[int]], chunk_vectors: Any,
           lexical: Sequence[Sequence[tuple[int, float]]] | None, k: int,
           fusion: str = RERANK_FUSION) -> list[list[tuple[int, float]]]:
    """Order each query's candidate rows by re-ranker cosine (fused with BM25 when
    ``fusion == "bm25"`` and BM25 rankings are given); top ``k`` as ``[(row, score)]``.

    ``chunk_vectors`` maps a row to its re-ranker vector (a dict or an array). The score is
    the cosine, or the fused RRF score.
    """
    np = __import__("numpy")
    out: list[list[tuple[int, float]]] = []
    for i, (q, cand) in enumerate(zip(query_vectors, candidates)):
        cand = list(cand)
        if not cand:
            out.append([])
            continue
        cos = np.stack([chunk_vectors[r] for r in cand]) @ np.asarray(q, np.float32)
        order = np.argsort(-cos, kind="stable")
        by_cos = [cand[j] for j in order]
        if fusion == "bm25" and lexical is not None:
            in_cand = set(cand)
            bm25 = [r for r, _ in lexical[i] if r in in_cand]
            out.append(reciprocal_rank_fusion([by_cos, bm25], RRF_K)[:k])
        else:
            out.append([(cand[j], float(cos[j])) for j in order[:k]])
    return out
