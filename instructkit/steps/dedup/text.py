"""Text normalisation and vectorised word / n-gram hashing shared by dedup and decontamination.

Normalised text is Unicode NFKC, case-folded, with punctuation turned into spaces and
runs of whitespace collapsed to one space: what "the same text" means for exact dedup.

Word hashing works on a whole batch at once: the batch's normalised texts are joined
with newlines into one UTF-8 byte buffer and every word gets a 64-bit polynomial hash
from prefix sums (numpy, wrapping uint64 arithmetic), then a splitmix64 finaliser. This
is stable across processes (unlike ``hash(str)``), so dedup decisions are reproducible.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["normalize", "exact_hash", "record_text", "hash_words", "ngram_hashes", "mix64"]

# every Unicode punctuation character (categories P*) -> space; symbols such as < > % +
# are kept because they change meaning in clinical text ("BP < 90" vs "BP > 90")
@functools.cache
def _punct_table() -> dict[int, str]:
    # planes 0-1 hold all punctuation that occurs in practice; scanning all 17 planes
    # would cost seconds at first use
    return {cp: " " for cp in range(0x20000) if unicodedata.category(chr(cp))[0] == "P"}


# ASCII fast path: one C-level byte table does case-folding and punctuation at once
# (NFKC leaves ASCII unchanged, and ASCII case-folding is lower-casing)
_ASCII_TABLE = bytes(
    (ord(" ") if unicodedata.category(chr(b)).startswith("P") else ord(chr(b).lower()))
    for b in range(128)) + bytes(range(128, 256))


def normalize(text: str) -> str:
    """NFKC, case-fold, punctuation to spaces, whitespace collapsed (one space, stripped)."""
    if not text:
        return ""
    if text.isascii():
        return " ".join(text.encode("ascii").translate(_ASCII_TABLE).decode("ascii").split())
    text = unicodedata.normalize("NFKC", text).casefold().translate(_punct_table())
    return " ".join(text.split())


def exact_hash(normalized: str) -> int:
    """64-bit stable hash of an already normalised text (as a signed int64 value)."""
    return int.from_bytes(hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).digest(),
                          "little", signed=True)


def record_text(record: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The record's ``fields`` (top-level strings) joined by newlines, for hashing/embedding."""
    parts = []
    for f in fields:
        v = record.get(f)
        if isinstance(v, str) and v:
            parts.append(v)
        elif isinstance(v, list):  # e.g. context: [{text: ...}]
            parts.extend(str(c.get("text", "")) if isinstance(c, Mapping) else str(c) for c in v)
    return "\n".join(parts)


_M30 = np.uint64(30)
_M27 = np.uint64(27)
_M31 = np.uint64(31)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_BASE = 0x100000001B3  # odd, so it is invertible modulo 2**64
_BASE_INV = pow(_BASE, -1, 2 ** 64)
_powers = np.ones(1, dtype=np.uint64)
_inv_powers = np.ones(1, dtype=np.uint64)


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _M30)) * _C1
        z = (z ^ (z >> _M27)) * _C2
        return z ^ (z >> _M31)


def _pow_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    global _powers, _inv_powers
    if len(_powers) < n:
        size = max(n, 2 * len(_powers))
        with np.errstate(over="ignore"):
            p = np.full(size, _BASE, dtype=np.uint64)
            p[0] = 1
            q = np.full(size, _BASE_INV, dtype=np.uint64)
            q[0] = 1
            _powers, _inv_powers = np.cumprod(p, dtype=np.uint64), np.cumprod(q, dtype=np.uint64)
    return _powers, _inv_powers


def hash_words(normalized_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Hash every word of a batch of normalised texts.

    Returns ``(hashes, text_index)``: uint64 word hashes in reading order and, for each
    word, the index of the text it came from (int64, non-decreasing).
    """
    if not normalized_texts:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    blob = "\n".join(normalized_texts).encode("utf-8")
    buf = np.frombuffer(blob, dtype=np.uint8)
    n = len(buf)
    if n == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    newline = buf == 10
    sep = newline | (buf == 32)
    word = ~sep
    prev_sep = np.empty(n, bool)
    prev_sep[0] = True
    prev_sep[1:] = sep[:-1]
    next_sep = np.empty(n, bool)
    next_sep[-1] = True
    next_sep[:-1] = sep[1:]
    starts = np.flatnonzero(word & prev_sep)
    ends = np.flatnonzero(word & next_sep) + 1
    powers, inv_powers = _pow_tables(n + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((buf.astype(np.uint64) + np.uint64(1)) * powers[:n], dtype=np.uint64,
                  out=prefix[1:])
        h = (prefix[ends] - prefix[starts]) * inv_powers[starts]
        h = mix64(h + (ends - starts).astype(np.uint64) * _GOLD)
    text_index = np.searchsorted(np.flatnonzero(newline), starts).astype(np.int64)
    return h, text_index


def ngram_hashes(word_hashes: np.ndarray, text_index: np.ndarray, n: int,
                 fallback_unigrams: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of ``n`` consecutive words inside one text.

    The hash of an n-gram depends only on its words (not on ``n`` separately or position),
    so an n-gram hashed here equals the same words hashed in another batch. With
    ``fallback_unigrams``, texts shorter than ``n`` words contribute their words instead,
    so that short texts still get a MinHash signature. Returns (hashes, text_index) sorted
    by text index.
    """
    m = len(word_hashes) - n + 1
    if n <= 1 or m <= 0:
        if n <= 1:
            return word_hashes, text_index
        grams, gidx = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    else:
        with np.errstate(over="ignore"):
            acc = word_hashes[:m].copy()
            for j in range(1, n):
                acc = acc * _C1 + word_hashes[j:j + m]
            acc = mix64(acc)
        valid = text_index[:m] == text_index[n - 1:n - 1 + m]
        grams, gidx = acc[valid], text_index[:m][valid]
    if not fallback_unigrams or len(word_hashes) == 0:
        return grams, gidx
    size = int(text_index[-1]) + 1
    has_gram = np.zeros(size, bool)
    has_gram[gidx] = True
    short = ~has_gram[text_index]
    if not short.any():
        return grams, gidx
    hashes = np.concatenate([grams, word_hashes[short]])
    index = np.concatenate([gidx, text_index[short]])
    order = np.argsort(index, kind="stable")
    return hashes[order], index[order]
