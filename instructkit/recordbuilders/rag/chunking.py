"""Split documents into passages with LangChain text splitters.

Markdown (and HTML, which the loader turns into Markdown-style text) is first split at
its headings (``ExperimentalMarkdownSyntaxTextSplitter``, which keeps the text verbatim so
offsets stay exact), then every section with ``RecursiveCharacterTextSplitter``; other
formats go straight to the recursive splitter. Every chunk keeps its document id, section
path and ``[start, end)`` character offsets into ``Document.text``.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from instructkit._resources import require
from instructkit.recordbuilders.rag.documents import Document

__all__ = ["Chunk", "ChunkSettings", "chunk_document", "chunk_documents"]

_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]


@dataclass(frozen=True)
class ChunkSettings:
    """How documents are cut; an index remembers these and re-chunks when they change."""

    size: int = 1000
    overlap: int = 150
    #: chunks with fewer non-heading characters are not kept (a lone heading, a page number)
    min_chars: int = 40

    def __post_init__(self) -> None:
        if self.size < 50:
            raise ValueError("chunk size must be at least 50 characters")
        if not 0 <= self.overlap < self.size:
            raise ValueError("chunk overlap must be >= 0 and smaller than the chunk size")


@dataclass
class Chunk:
    """A passage: what retrieval returns and a record's ``context`` entry is made of."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int
    section: str | None = None
    title: str | None = None
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Chunk":
        return cls(**d)


def chunk_documents(docs: Iterable[Document], settings: ChunkSettings | None = None) -> list[Chunk]:
    settings = settings or ChunkSettings()
    return [c for d in docs for c in chunk_document(d, settings)]


def chunk_document(doc: Document, settings: ChunkSettings | None = None) -> list[Chunk]:
    settings = settings or ChunkSettings()
    splitters = require("langchain_text_splitters", "rag", "chunking documents")
    recursive = splitters.RecursiveCharacterTextSplitter(
        chunk_size=settings.size, chunk_overlap=settings.overlap, add_start_index=True)
    out: list[Chunk] = []
    for sec_start, sec_text, section in _sections(doc, splitters):
        for piece in recursive.create_documents([sec_text]):
            text = piece.page_content
            start = sec_start + int(piece.metadata["start_index"])
            if start < 0 or doc.text[start:start + len(text)] != text:
                continue  # the splitter could not place it (never seen; kept safe)
            if _body_chars(text) < settings.min_chars:
                continue
            out.append(Chunk(
                chunk_id=_chunk_id(doc.doc_id, start, text), doc_id=doc.doc_id, text=text,
                start=start, end=start + len(text), section=section or _page_section(doc, start),
                title=doc.title, url=doc.url))
    return out


def _sections(doc: Document, splitters: Any) -> Iterator[tuple[int, str, str | None]]:
    """``(offset, text, section path)`` of each section of the document."""
    if doc.format not in ("markdown", "html"):
        yield 0, doc.text, None
        return
    md = splitters.ExperimentalMarkdownSyntaxTextSplitter(_HEADERS, strip_headers=False)
    cursor = 0
    for sec in md.split_text(doc.text):
        text = sec.page_content
        pos = doc.text.find(text, cursor)
        if pos < 0:  # whitespace normalised by the splitter: find the stripped form
            stripped = text.strip()
            pos = doc.text.find(stripped, cursor)
            if pos < 0:
                continue
            text = stripped
        cursor = pos + len(text)
        path = " > ".join(str(sec.metadata[k]) for _, k in _HEADERS if sec.metadata.get(k))
        yield pos, text, path or None


def _page_section(doc: Document, start: int) -> str | None:
    starts = doc.meta.get("page_starts") if doc.format == "pdf" else None
    if not starts:
        return None
    return f"page {bisect.bisect_right(starts, start)}"


def _body_chars(text: str) -> int:
    return sum(len(ln.strip()) for ln in text.splitlines() if not ln.lstrip().startswith("#"))


def _chunk_id(doc_id: str, start: int, text: str) -> str:
    h = hashlib.sha256(f"{doc_id}\x00{start}\x00{text}".encode("utf-8")).hexdigest()
    return "c-" + h[:16]
