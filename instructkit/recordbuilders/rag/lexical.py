"""BM25 over chunk texts, and reciprocal rank fusion of BM25 with the dense ranking.

Guideline questions often hinge on exact terms (drug names, doses, abbreviations) that a
small sentence embedder blurs; BM25 matches them exactly. ``hybrid`` retrieval fuses the
two rankings with reciprocal rank fusion (Cormack et al. 2009): a chunk's score is
``sum(1 / (RRF_K + rank))`` over the rankings it appears in (each cut at ``depth``).
The settings were chosen on the tuning queries of ``bench/retrieval.py`` and checked on its
held-out queries.

BM25 is bm25s (the Lucene variant, sparse matrices); the index is built from the chunk
texts when first needed (about a second per 10,000 chunks) and not stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from instructkit._resources import require

__all__ = ["LexicalIndex", "reciprocal_rank_fusion", "RRF_K", "FUSION_DEPTH"]

#: the usual RRF constant; it damps the weight of the first few ranks
RRF_K = 60
#: how deep each ranking goes into the fusion
FUSION_DEPTH = 50
#: words of one or more letters/digits (doses like "5 mg" and one-letter terms count)
TOKEN_PATTERN = r"(?u)\b\w+\b"


class LexicalIndex:
    """BM25 over a fixed list of texts; ``search`` returns (row, score) lists, best first."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.bm25s = require("bm25s", "rag", "hybrid (BM25 + dense) retrieval")
        self.size = len(texts)
        self.retriever = self.bm25s.BM25()
        if self.size:
            tokens = self.bm25s.tokenize(list(texts), stopwords="en", token_pattern=TOKEN_PATTERN,
                                         show_progress=False)
            self.retriever.index(tokens, show_progress=False)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        if not self.size or not queries:
            return [[] for _ in queries]
        k = min(k, self.size)
        tokens = self.bm25s.tokenize(list(queries), stopwords="en", token_pattern=TOKEN_PATTERN,
                                     return_ids=False, show_progress=False)
        out: list[list[tuple[int, float]]] = [[] for _ in queries]
        # bm25s cannot score a query with no known word: leave those empty
        vocab = self.retriever.vocab_dict
        todo = [i for i, t in enumerate(tokens) if any(w in vocab for w in t)]
        if not todo:
            return out
        docs, scores = self.retriever.retrieve([tokens[i] for i in todo], k=k, show_progress=False)
        for i, row_d, row_s in zip(todo, docs, scores):
            out[i] = [(int(d), float(s)) for d, s in zip(row_d, row_s) if s > 0]
        return out


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse rankings (lists of ids, best first) into one: ``[(id, score)]``, best first.

    Ties keep the order of first appearance (the first ranking wins).
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def fuse_hits(dense: Sequence[Any], lexical: Sequence[tuple[int, float]], k: int,
              rrf_k: int = RRF_K) -> list[tuple[int, float]]:
    """Top ``k`` of the fusion of a dense ranking (row ids) and a BM25 ranking."""
    return reciprocal_rank_fusion([list(dense), [row for row, _ in lexical]], rrf_k)[:k]
