"""Semantic near-duplicates: FAISS range search over unit embeddings at a cosine threshold.

Up to ``approximate_after`` vectors an exact inner-product index (``IndexFlatIP``) is
used; past it an IVF index with 8-bit scalar quantisation (``IndexIVFScalarQuantizer``,
~4x smaller than the float vectors) searched with ``nprobe`` lists, trained on a seeded
sample. Both support ``range_search``, which returns every neighbour above the radius.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from instructkit._resources import require

logger = logging.getLogger("instructkit")

__all__ = ["semantic_pairs"]


def semantic_pairs(vectors: np.ndarray, members: np.ndarray, threshold: float, *,
                   approximate_after: int = 100_000, nlist: int | None = None,
                   nprobe: int = 16, seed: int = 0,
                   query_chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of ``members`` whose cosine similarity is at least ``threshold``.

    ``vectors`` must be L2-normalised float32 rows (indexed by record number). Returns
    ``(pairs (m, 2) int64, similarities (m,) float32)``.
    """
    faiss = require("faiss", "dedup", "semantic deduplication")
    n = len(members)
    if n < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    dim = vectors.shape[1]
    approximate = n > approximate_after
    if approximate:
        lists = nlist or max(16, int(4 * math.sqrt(n)))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, lists,
                                              faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, max(lists * 40, 10_000)), replace=False))
        index.train(np.ascontiguousarray(vectors[members[sample]], dtype=np.float32))
        index.nprobe = min(nprobe, lists)
        logger.info("semantic dedup: approximate IVF-SQ8 index (%d lists, nprobe %d) over %d vectors",
                    lists, index.nprobe, n)
    else:
        index = faiss.IndexFlatIP(dim)
    for s in range(0, n, 65536):
        index.add(np.ascontiguousarray(vectors[members[s:s + 65536]], dtype=np.float32))
    # a small margin below the threshold: quantised scores are approximate; exact
    # cosines are recomputed below from the stored vectors and filtered at the threshold
    radius = float(threshold) - (0.02 if approximate else 1e-6)
    found_pairs = []
    for s in range(0, n, query_chunk):
        q = np.ascontiguousarray(vectors[members[s:s + query_chunk]], dtype=np.float32)
        lims, _dist, labels = index.range_search(q, radius)
        counts = np.diff(lims).astype(np.int64)  # faiss returns uint64 limits
        rows = np.repeat(np.arange(s, s + len(q)), counts)
        keep = labels > rows  # each unordered pair once, no self matches
        if keep.any():
            found_pairs.append(np.stack([rows[keep], labels[keep]], axis=1))
    if not found_pairs:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    local = np.concatenate(found_pairs).astype(np.int64)
    pairs = members[local]
    sims = np.empty(len(pairs), np.float32)
    for s in range(0, len(pairs), 65536):
        p = pairs[s:s + 65536]
        sims[s:s + 65536] = np.einsum("ij,ij->i", vectors[p[:, 0]], vectors[p[:, 1]])
    ok = sims >= threshold
    pairs, sims = np.sort(pairs[ok], axis=1), sims[ok]
    return pairs, sims
