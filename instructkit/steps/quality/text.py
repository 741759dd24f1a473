"""Small text measures the quality filters share: words, approximate tokens, n-grams.

Token counts are an approximation (no tokenizer download): text is split like a BPE
pre-tokenizer into words, numbers and punctuation marks; a piece counts one token per
started 4 characters (English BPE vocabularies average about 4 characters a token), a
punctuation mark one token. It is within ~15% of GPT-style tokenizers on English prose,
which is enough for length bounds.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["words", "word_count", "approx_tokens", "normalize", "ngrams", "containment",
           "sentences"]

_WORD = re.compile(r"\w+(?:['’\-]\w+)*")
_PIECE = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_NON_WORD = re.compile(r"[\W_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text or "")


def word_count(text: str) -> int:
    return len(words(text))


def approx_tokens(text: str) -> int:
    """Approximate BPE token count (see the module docstring)."""
    n = 0
    for piece in _PIECE.findall(text or ""):
        n += (len(piece) + 3) // 4 if piece[0].isalnum() or piece[0] == "_" else 1
    return n


def normalize(text: str) -> str:
    """Lowercase, punctuation and runs of whitespace folded to one space."""
    return _NON_WORD.sub(" ", (text or "").lower()).strip()


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def containment(part: str, whole: str, n: int = 3) -> float:
    """Share of ``part``'s word n-grams that also occur in ``whole`` (0..1)."""
    a = ngrams(normalize(part).split(), n)
    if not a:
        return 0.0
    b = set(ngrams(normalize(whole).split(), n))
    counts = Counter(a)
    return sum(c for g, c in counts.items() if g in b) / len(a)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s.strip()]
