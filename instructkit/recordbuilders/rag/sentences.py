"""Sentences of a passage with their exact character offsets, for extractive answers.

Guideline text is often hard-wrapped (Markdown, text dumps of PDFs), so a sentence may span
several lines; headings, block quotes and list bullets are not sentences an answer can be
made of. A sentence's ``text`` is its span with runs of whitespace folded to one space:
an extractive answer is verbatim up to line wrapping, and ``is_verbatim`` checks exactly
that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sentence", "passage_sentences", "is_verbatim", "fold_space", "RECOMMENDATION"]

# a sentence ends at . ! ? followed by space and a capital, digit, quote or bracket; the
# abbreviations below do not end one
_END = re.compile(r"[.!?](?:[\"'”’)\]]*)(?=\s+[\"'“‘(\[]?[A-Z0-9])")
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|et al|vs|etc|approx|no|nos|fig|figs|dr|mr|mrs|ms|st|"
                     r"u\.s|u\.k|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|ref|refs|"
                     r"incl|min|max|mg|ml|kg)|\b[A-Z])\.$", re.IGNORECASE)
_BLOCK_BREAK = re.compile(r"\n[ \t]*\n|\n(?=[ \t]*(?:#|>|[-*•]\s|\d+[.)]\s|\|))")
_SPACE = re.compile(r"\s+")
#: words of a recommendation ("should", "is recommended", "must not")
RECOMMENDATION = re.compile(r"\b(should|must|recommend(?:s|ed)?|is (?:preferred|advised|indicated|"
                            r"contraindicated)|are (?:preferred|advised|indicated)|offer(?:ed)?|"
                            r"avoid|do not|need(?:s)? to)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Sentence:
    """A sentence of a chunk: ``chunk_text[start:end]`` holds it; ``text`` is that span with
    whitespace folded."""

    chunk_id: str
    start: int
    end: int
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())

    @property
    def recommends(self) -> bool:
        return bool(RECOMMENDATION.search(self.text))


def fold_space(text: str) -> str:
    return _SPACE.sub(" ", text or "").strip()


def passage_sentences(chunk_id: str, text: str, *, min_words: int = 6,
                      max_words: int = 80) -> list[Sentence]:
    """The answerable sentences of a passage, in order: prose of ``min_words`` to
    ``max_words`` words that ends like a sentence (headings, quotes, table rows, list
    bullets and fragments cut by the chunk boundary are left out)."""
    out: list[Sentence] = []
    pos = 0
    for block in _blocks(text):
        b_start = text.index(block, pos)
        pos = b_start + len(block)
        stripped = block.lstrip()
        if stripped.startswith(("#", ">", "|")):
            continue
        cut = 0
        for m in _END.finditer(block):
            head = block[cut:m.start() + 1]
            if _ABBREV.search(head.rstrip()):
                continue
            _add(out, chunk_id, text, b_start + cut, b_start + m.end(), min_words, max_words)
            cut = m.end()
        tail = block[cut:]
        if re.search(r"[.!?][\"'”’)\]]*\s*$", tail):
            _add(out, chunk_id, text, b_start + cut, b_start + len(block.rstrip()), min_words, max_words)
    return out


def _blocks(text: str) -> list[str]:
    return [b for b in _BLOCK_BREAK.split(text) if b.strip()]


def _add(out: list[Sentence], chunk_id: str, text: str, start: int, end: int,
         min_words: int, max_words: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    span = text[start:end]
    folded = fold_space(span)
    n = len(folded.split())
    if not (min_words <= n <= max_words) or not (folded[0].isupper() or folded[0].isdigit()):
        return
    if folded.count("(") != folded.count(")"):
        return
    out.append(Sentence(chunk_id, start, start + len(span), folded))


def is_verbatim(sentence: str, passage: str) -> bool:
    """Whether ``sentence`` occurs in ``passage`` word for word (whitespace folded)."""
    return fold_space(sentence) in fold_space(passage)
