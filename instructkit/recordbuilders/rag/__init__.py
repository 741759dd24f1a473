"""Retrieval-augmented building: guideline documents -> chunks -> FAISS index -> grounded,
citation-checked instruction records (``RagBuilder``, recipe builder type ``rag``).

Heavy dependencies (LangChain splitters, FAISS, sentence-transformers, pypdf, bs4; extra
``rag``) are imported only when used.
"""

from __future__ import annotations

from instructkit.recordbuilders.rag.builder import RagBuilder
from instructkit.recordbuilders.rag.chunking import Chunk, ChunkSettings, chunk_document, chunk_documents
from instructkit.recordbuilders.rag.documents import Document, load_documents
from instructkit.recordbuilders.rag.grounding import CitationChecker, GroundingResult
from instructkit.recordbuilders.rag.index import Hit, RagIndex, UpdateReport

__all__ = [
    "Chunk",
    "ChunkSettings",
    "CitationChecker",
    "Document",
    "GroundingResult",
    "Hit",
    "RagBuilder",
    "RagIndex",
    "UpdateReport",
    "chunk_document",
    "chunk_documents",
    "load_documents",
]
