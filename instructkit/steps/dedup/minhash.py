"""MinHash signatures and LSH banding, vectorised over batches with numpy.

Permutations are multiply-add hashes modulo 2**32 of the (already mixed) shingle hashes:
one multiply and one add per shingle and permutation, in place, for a whole batch at
once, reduced per record with ``np.minimum.reduceat``.
The benchmark (bench/dedup.py) compares this with datasketch on the same corpus.
"""

from __future__ import annotations

import functools

import numpy as np

from instructkit.steps.dedup.text import mix64, ngram_hashes

__all__ = ["MinHasher", "optimal_bands", "band_keys", "lsh_candidate_pairs", "signature_similarity"]

_MAX32 = np.uint32(0xFFFFFFFF)
_SHIFT = np.uint64(32)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 spells it trapz


@functools.cache
def optimal_bands(threshold: float, num_perm: int,
                  false_positive_weight: float = 0.5,
                  false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive / negative areas of the
    LSH S-curve around ``threshold`` (the same criterion datasketch uses)."""
    xs_low = np.linspace(0.0, threshold, 400)
    xs_high = np.linspace(threshold, 1.0, 400)
    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _trapezoid(1 - (1 - xs_low ** r) ** b, xs_low)
            fn = _trapezoid(1 - (1 - (1 - xs_high ** r) ** b), xs_high)
            err = false_positive_weight * fp + false_negative_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


class MinHasher:
    """MinHash signatures of word n-gram shingles for batches of normalised texts.

    Permutation ``p`` maps a shingle's 32-bit hash ``x`` to ``a_p * x + b_p`` modulo 2**32
    (``a_p`` odd, so a bijection), computed in place on uint32 arrays: 4x faster than
    64-bit arithmetic, and on mixed hashes the Jaccard estimate is unbiased with the
    binomial spread (checked in the benchmark's accuracy figures).
    """

    def __init__(self, num_perm: int = 128, shingle_size: int = 2, seed: int = 1) -> None:
        self.num_perm = int(num_perm)
        self.shingle_size = int(shingle_size)
        rng = np.random.default_rng(seed)
        self._a = (rng.integers(0, 2 ** 32, size=self.num_perm, dtype=np.uint64)
                   | np.uint64(1)).astype(np.uint32)
        self._b = rng.integers(0, 2 ** 32, size=self.num_perm, dtype=np.uint64).astype(np.uint32)

    def signatures(self, word_hashes: np.ndarray, text_index: np.ndarray,
                   n_texts: int) -> tuple[np.ndarray, np.ndarray]:
        """Signatures (n_texts, num_perm) uint32 and a mask of texts that had any word."""
        sig = np.full((n_texts, self.num_perm), _MAX32, dtype=np.uint32)
        shingles, idx = ngram_hashes(word_hashes, text_index, self.shingle_size,
                                     fallback_unigrams=True)
        has_words = np.zeros(n_texts, bool)
        if len(shingles) == 0:
            return sig, has_words
        starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
        owners = idx[starts]
        has_words[owners] = True
        x = (shingles >> _SHIFT).astype(np.uint32)
        tmp = np.empty_like(x)
        mins = np.empty((self.num_perm, len(starts)), dtype=np.uint32)
        for p in range(self.num_perm):
            np.multiply(x, self._a[p], out=tmp)
            tmp += self._b[p]
            np.minimum.reduceat(tmp, starts, out=mins[p])
        sig[owners] = mins.T
        return sig, has_words


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per (record, band): a hash of the band's ``rows`` signature values."""
    n = sig.shape[0]
    keys = np.empty((n, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for bi in range(bands):
            acc = np.full(n, np.uint64(bi + 1), dtype=np.uint64)
            for c in sig[:, bi * rows:(bi + 1) * rows].T:
                acc = mix64(acc ^ c.astype(np.uint64))
            keys[:, bi] = acc
    return keys


def lsh_candidate_pairs(keys: np.ndarray, members: np.ndarray, max_bucket: int = 64) -> np.ndarray:
    """Candidate pairs (i < j, as an (m, 2) int64 array) from records sharing a band key.

    Buckets up to ``max_bucket`` members yield all their pairs (what a query against an
    LSH index returns); larger buckets, which only very repetitive data produce, yield a
    star (each member with the first) plus a chain (each with its predecessor), linear in
    the bucket size. Pairs are verified against the signatures afterwards.
    """
    out = []
    for bi in range(keys.shape[1]):
        col = keys[members, bi]
        order = np.argsort(col, kind="stable")
        sk = col[order]
        same = sk[1:] == sk[:-1]
        if not same.any():
            continue
        ids = members[order]
        pos = np.arange(len(sk))
        new_run = np.r_[True, ~same]
        run_start = np.maximum.accumulate(np.where(new_run, pos, 0))
        run_id = np.cumsum(new_run) - 1
        run_len = np.bincount(run_id)[run_id]
        before = pos - run_start  # members earlier in the same bucket
        small = (run_len <= max_bucket) & (before > 0)
        k = before[small]
        if len(k):
            right = np.repeat(ids[small], k)
            offset = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
            left = ids[np.repeat(run_start[small], k) + offset]
            out.append(np.stack([left, right], axis=1))
        big = (run_len > max_bucket) & (before > 0)
        if big.any():
            p = pos[big]
            out.append(np.stack([ids[p - 1], ids[p]], axis=1))
            star = before[big] > 1
            out.append(np.stack([ids[run_start[p[star]]], ids[p[star]]], axis=1))
    if not out:
        return np.zeros((0, 2), np.int64)
    pairs = np.sort(np.concatenate(out).astype(np.int64), axis=1)
    return np.unique(pairs, axis=0)


def signature_similarity(sig: np.ndarray, pairs: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Estimated Jaccard similarity (fraction of equal signature values) for each pair."""
    sims = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        sims[s:s + chunk] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return sims
