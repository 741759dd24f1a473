"""A FAISS index over chunks, persisted with its chunk store and updated incrementally.

On disk (``INDEX_DIR``)::

    meta.json      model and embedder backend, dimension, chunk settings, index type, counts
    documents.json one entry per document: id, title, url, license, date, content hash
    chunks.jsonl   one chunk per line, in FAISS id order
    vectors.npy    float32 unit vectors, one row per chunk (the truth the FAISS index is built from)
    index.faiss    the FAISS index (exact inner product, or HNSW / IVF for large corpora)

``update(documents)`` embeds only what changed: a document with the same content hash
keeps its chunks and vectors, a changed one has its chunks replaced, and (with
``prune=True``) a document no longer given is removed. The FAISS structure itself is
rebuilt from the stored vectors, which costs little next to embedding. Vectors depend on
the model *and* the backend (``torch`` and ``onnx`` agree to float precision, int8 and static
do not), so a change of either re-embeds everything.

Retrieval modes (``RETRIEVAL_MODES``; the rag builder's default is ``two_stage``):

- ``two_stage`` (needs a ``reranker``): the stored vectors are cheap first-stage ones
  (static); the hybrid ranking's top ``candidates`` are re-ranked by the reranker's
  (MiniLM) vectors, computed lazily per chunk (``rag.rerank``). Recall of stock MiniLM
  or better at the indexing cost of static vectors (bench/retrieval.py).
- ``hybrid``: the dense ranking of the stored vectors fused with BM25 (``rag.lexical``).
- ``dense``: the FAISS ranking alone.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from instructkit._exceptions import InstructkitError, SourceError
from instructkit._resources import load_schema, require
from instructkit.recordbuilders.rag.chunking import Chunk, ChunkSettings, chunk_document
from instructkit.recordbuilders.rag.documents import Document

logger = logging.getLogger("instructkit")

__all__ = ["Hit", "RagIndex", "UpdateReport", "INDEX_TYPES", "RETRIEVAL_MODES", "DEFAULT_RETRIEVAL"]

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf")
RETRIEVAL_MODES = ("two_stage", "hybrid", "dense")
#: the rag builder schema's default (one place); an index without a reranker uses ``hybrid``
DEFAULT_RETRIEVAL: str = load_schema("builders/rag.schema.json")["properties"]["retrieval"]["default"]
#: with index_type auto, corpora from this many chunks up get an approximate (HNSW) index
APPROXIMATE_FROM = 50_000
FORMAT_VERSION = 1


@dataclass
class Hit:
    """One retrieved chunk. ``score`` is the cosine (dense, seed neighbours) or the fused RRF
    score (hybrid, two_stage)."""

    rank: int
    score: float
    chunk: Chunk


@dataclass
class UpdateReport:
    """What an update did: documents by fate and how many chunks had to be embedded."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_total: int = 0
    embed_seconds: float = 0.0
    index_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("added", "changed", "unchanged", "removed"):
            d[k] = len(d[k])
        return d


class RagIndex:
    """Chunks of documents, their vectors and a FAISS index over them.

    ``embedder`` makes the stored vectors; ``reranker`` (two_stage) re-ranks candidates with
    its own vectors, kept in ``rerank_cache`` (a ``VectorCache``) when given.
    """

    def __init__(self, embedder: Any, settings: ChunkSettings | None = None,
                 index_type: str = "auto", path: str | Path | None = None, *,
                 retrieval: str | None = None, reranker: Any = None, candidates: int | None = None,
                 rerank_cache: Any = None, reranker_backend: str | None = None) -> None:
        if index_type not in INDEX_TYPES:
            raise InstructkitError(f"unknown index type '{index_type}' (one of {', '.join(INDEX_TYPES)})")
        retrieval = retrieval or (DEFAULT_RETRIEVAL if reranker is not None else "hybrid")
        _check_mode(retrieval)  # two_stage without a reranker can be built, not searched
        self.retrieval = retrieval
        self.reranker = reranker
        # the backend a two_stage index is re-ranked with (saved, for `instructkit search`)
        self.reranker_backend = reranker_backend or getattr(reranker, "requested_backend", None) or "auto"
        from instructkit.recordbuilders.rag.rerank import DEFAULT_CANDIDATES, LazyChunkVectors

        self.candidates = int(candidates or DEFAULT_CANDIDATES)
        self.rerank_vectors = LazyChunkVectors(reranker, rerank_cache) if reranker is not None else None
        self.np = require("numpy", "rag", "the retrieval index")
        self.faiss = require("faiss", "rag", "the retrieval index")
        self.embedder = embedder
        self.settings = settings or ChunkSettings()
        self.index_type = index_type
        self.path = Path(path) if path else None
        self.model = getattr(embedder, "name", None) if embedder is not None else None
        self.backend = getattr(embedder, "backend", None) if embedder is not None else None
        self.documents: dict[str, Document] = {}
        self.chunks: list[Chunk] = []
        self.vectors = self.np.zeros((0, getattr(embedder, "dim", 0) or 0), dtype=self.np.float32)
        self._by_id: dict[str, int] = {}
        self._faiss: Any = None
        self._lexical: Any = None
        self.built_index_type: str | None = None

    # -- building ------------------------------------------------------------------------
    def update(self, docs: Iterable[Document], *, prune: bool = True, quiet: bool = True,
               batch_size: int | None = None) -> UpdateReport:
        """Bring the index in line with ``docs`` (see the module docstring)."""
        np = self.np
        report = UpdateReport()
        docs = list(docs)
        incoming = {d.doc_id: d for d in docs}
        model = getattr(self.embedder, "name", None)
        backend = getattr(self.embedder, "backend", None)
        stale_all = bool(self.chunks) and model is not None and (
            self.model not in (None, model) or (self.backend or "torch") != (backend or "torch"))
        if stale_all:
            logger.info("index embedder changed (%s/%s -> %s/%s): re-embedding every document",
                        self.model, self.backend, model, backend)
        keep_docs: dict[str, Document] = {}
        to_embed: list[Document] = []
        for doc_id, doc in incoming.items():
            old = self.documents.get(doc_id)
            if old is not None and old.content_hash == doc.content_hash and not stale_all:
                report.unchanged.append(doc_id)
                keep_docs[doc_id] = _meta_only(doc)
            else:
                (report.changed if old is not None else report.added).append(doc_id)
                to_embed.append(doc)
        for doc_id, old in self.documents.items():
            if doc_id in incoming:
                continue
            if prune:
                report.removed.append(doc_id)
            else:
                keep_docs[doc_id] = old

        kept_rows = [i for i, c in enumerate(self.chunks) if c.doc_id in keep_docs]
        new_chunks = [c for d in to_embed for c in chunk_document(d, self.settings)]
        t = time.perf_counter()
        new_vecs = self._embed([c.text for c in new_chunks], batch_size=batch_size, quiet=quiet)
        report.embed_seconds = time.perf_counter() - t
        report.chunks_embedded = len(new_chunks)

        if stale_all and kept_rows:  # kept (not pruned) documents: their chunk texts are stored
            old_vecs = self._embed([self.chunks[i].text for i in kept_rows], batch_size=batch_size, quiet=quiet)
            report.chunks_embedded += len(kept_rows)
        elif kept_rows:
            old_vecs = self.vectors[kept_rows]
        else:
            old_vecs = np.zeros((0, new_vecs.shape[1] or self.dim), np.float32)
        self.chunks = [self.chunks[i] for i in kept_rows] + new_chunks
        self.vectors = np.ascontiguousarray(np.vstack([old_vecs, new_vecs]).astype(np.float32)) \
            if len(self.chunks) else np.zeros((0, self.dim), np.float32)
        for d in to_embed:
            keep_docs[d.doc_id] = _meta_only(d)
        self.documents = keep_docs
        self.model = model or self.model
        self.backend = backend or self.backend
        self._by_id = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        t = time.perf_counter()
        self.build_faiss()
        report.index_seconds = time.perf_counter() - t
        report.chunks_total = len(self.chunks)
        logger.info("index update: %d added, %d changed, %d unchanged, %d removed documents; "
                    "%d chunks embedded", len(report.added), len(report.changed),
                    len(report.unchanged), len(report.removed), report.chunks_embedded)
        return report

    @property
    def dim(self) -> int:
        if self.vectors.size:
            return int(self.vectors.shape[1])
        return int(getattr(self.embedder, "dim", 0) or 0)

    def _embed(self, texts: Sequence[str], *, batch_size: int | None, quiet: bool) -> Any:
        np = self.np
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.embedder is None:
            raise InstructkitError("this index was opened without an embedder")
        from instructkit.progress import progress_counter

        # one call over every text: the embedder sorts them all by length before batching
        with progress_counter("embedding chunks", total=len(texts), quiet=quiet) as advance:
            import inspect

            kwargs = {"progress": advance} if "progress" in inspect.signature(self.embedder.embed).parameters else {}
            vecs = self.embedder.embed(list(texts), batch_size=batch_size, **kwargs)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def build_faiss(self) -> None:
        """(Re)build the FAISS structure from the stored vectors (no embedding)."""
        faiss = self.faiss
        n, dim = len(self.chunks), self.dim
        kind = self.index_type
        if kind == "auto":
            kind = "hnsw" if n >= APPROXIMATE_FROM else "flat"
        nlist = int(min(4 * math.sqrt(max(n, 1)), n // 39)) if kind == "ivf" else 0
        if kind == "ivf" and nlist < 2:
            kind = "flat"  # too few chunks to train clusters: exact search is as fast
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 64
        elif kind == "ivf":
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(self.vectors)
            index.nprobe = max(1, nlist // 8)
        else:
            index = faiss.IndexFlatIP(dim)
        if n:
            index.add(self.vectors)
        self._faiss = index
        self._lexical = None  # the chunks may have changed: BM25 is rebuilt when next needed
        self.built_index_type = kind

    # -- searching -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.chunks)

    def close(self) -> None:
        """Release the reranker's vector cache (the index itself holds no open files)."""
        if self.rerank_vectors is not None:
            self.rerank_vectors.close()

    def chunk(self, chunk_id: str) -> Chunk:
        return self.chunks[self._by_id[chunk_id]]

    def vector(self, chunk_id: str) -> Any:
        return self.vectors[self._by_id[chunk_id]]

    def search(self, query: str, k: int = 5) -> list[Hit]:
        return self.search_many([query], k)[0]

    @property
    def query_embedder(self) -> Any:
        """The embedder whose query vectors decide the final ranking (``search_many``'s
        ``query_vectors``): the reranker in two_stage, else the index's own."""
        return self.reranker if self.retrieval == "two_stage" else self.embedder

    def search_many(self, queries: Sequence[str], k: int = 5, *, retrieval: str | None = None,
                    query_vectors: Any = None) -> list[list[Hit]]:
        """Top-``k`` chunks per query by ``retrieval`` (default: the index's own mode).

        ``query_vectors``: the queries already embedded by ``query_embedder`` (not embedded again).
        """
        if self.embedder is None:
            raise InstructkitError("this index was opened without an embedder")
        mode = retrieval or self.retrieval
        _check_mode(mode, self.reranker, searching=True)
        queries = list(queries)
        final = self.reranker if mode == "two_stage" else self.embedder
        if query_vectors is not None and final is not self.query_embedder:
            query_vectors = None  # another embedder's vectors: not usable for this mode
        if mode == "two_stage":
            first = self.embedder.embed(queries)
        else:
            first = query_vectors if query_vectors is not None else self.embedder.embed(queries)
        if mode == "dense" or not self.chunks:
            return self.search_vectors(first, k)
        from instructkit.recordbuilders.rag.lexical import FUSION_DEPTH, fuse_hits

        width = max(k, self.candidates) if mode == "two_stage" else k
        depth = max(FUSION_DEPTH, width)
        dense = self.search_vectors(first, depth)
        lexical = self.lexical.search_many(queries, depth)
        fused = [fuse_hits([self._by_id[h.chunk.chunk_id] for h in d_hits], l_hits, width)
                 for d_hits, l_hits in zip(dense, lexical)]
        if mode == "two_stage":
            qv = query_vectors if query_vectors is not None else self.reranker.embed(queries)
            fused = self._rerank(qv, [[i for i, _ in f] for f in fused], lexical, k)
        return [[Hit(rank=r + 1, score=round(s, 6), chunk=self.chunks[i]) for r, (i, s) in enumerate(f)]
                for f in fused]

    def neighbours(self, chunk_ids: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """The ``k`` chunks closest to each given chunk (itself included): by its stored vector,
        and in two_stage the top ``candidates`` of that re-ranked by the reranker's vectors."""
        rows = [self._by_id[c] for c in chunk_ids]
        if not rows:
            return []
        if self.retrieval != "two_stage" or self.reranker is None:
            return self.search_vectors(self.vectors[rows], k)
        first = self.search_vectors(self.vectors[rows], max(k, self.candidates))
        seeds = self.rerank_vectors.vectors([self.chunks[r].text for r in rows])
        ranked = self._rerank(seeds, [[self._by_id[h.chunk.chunk_id] for h in hs] for hs in first],
                              None, k, fusion="none")
        return [[Hit(rank=r + 1, score=round(s, 6), chunk=self.chunks[i]) for r, (i, s) in enumerate(f)]
                for f in ranked]

    def _rerank(self, query_vectors: Any, candidates: list[list[int]], lexical: Any, k: int,
                fusion: str | None = None) -> list[list[tuple[int, float]]]:
        from instructkit.recordbuilders.rag.rerank import RERANK_FUSION, rerank

        # every candidate of the batch in one call: the embedder sorts them by length
        need = list(dict.fromkeys(r for cand in candidates for r in cand))
        vecs = self.rerank_vectors.vectors([self.chunks[r].text for r in need])
        by_row = dict(zip(need, vecs))
        return rerank(query_vectors, candidates, by_row, lexical, k, fusion or RERANK_FUSION)

    @property
    def lexical(self) -> Any:
        """The BM25 index over the chunk texts (built on first use)."""
        if self._lexical is None or self._lexical.size != len(self.chunks):
            from instructkit.recordbuilders.rag.lexical import LexicalIndex

            self._lexical = LexicalIndex([c.text for c in self.chunks])
        return self._lexical

    def search_vectors(self, vectors: Any, k: int = 5) -> list[list[Hit]]:
        if self._faiss is None or not self.chunks:
            return [[] for _ in range(len(vectors))]
        k = min(k, len(self.chunks))
        scores, ids = self._faiss.search(self.np.ascontiguousarray(vectors, dtype=self.np.float32), k)
        out = []
        for row_s, row_i in zip(scores, ids):
            hits = [Hit(rank=r + 1, score=float(s), chunk=self.chunks[int(i)])
                    for r, (s, i) in enumerate(zip(row_s, row_i)) if i >= 0]
            out.append(hits)
        return out

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path or self.path or "")
        if not str(path):
            raise InstructkitError("no folder to save the index to")
        path.mkdir(parents=True, exist_ok=True)
        meta = {"format_version": FORMAT_VERSION, "model": self.model,
                "backend": self.backend or "torch", "dim": self.dim,
                "chunk_size": self.settings.size, "chunk_overlap": self.settings.overlap,
                "min_chars": self.settings.min_chars, "index_type": self.index_type,
                "built_index_type": self.built_index_type, "documents": len(self.documents),
                "chunks": len(self.chunks), "retrieval": self.retrieval}
        if self.retrieval == "two_stage":
            meta["reranker_backend"] = self.reranker_backend
        _atomic_write(path / "documents.json", json.dumps(
            [d.as_dict() for d in self.documents.values()], ensure_ascii=False, indent=1))
        _atomic_write(path / "chunks.jsonl", "".join(
            json.dumps(c.as_dict(), ensure_ascii=False) + "\n" for c in self.chunks))
        tmp = path / "vectors.npy.tmp"
        with tmp.open("wb") as fh:
            self.np.save(fh, self.vectors)
        os.replace(tmp, path / "vectors.npy")
        if self._faiss is not None:
            self.faiss.write_index(self._faiss, str(path / "index.faiss.tmp"))
            os.replace(path / "index.faiss.tmp", path / "index.faiss")
        # meta last: a folder with meta.json is a complete index
        _atomic_write(path / "meta.json", json.dumps(meta, indent=1))
        self.path = path
        return path

    @classmethod
    def exists(cls, path: str | Path) -> bool:
        return (Path(path) / "meta.json").is_file()

    @classmethod
    def open(cls, path: str | Path, embedder: Any = None, *, settings: ChunkSettings | None = None,
             index_type: str | None = None, retrieval: str | None = None, reranker: Any = None,
             candidates: int | None = None, rerank_cache: Any = None,
             reranker_backend: str | None = None) -> "RagIndex":
        """Open a saved index. ``settings``/``index_type`` that differ from the saved ones
        take effect at the next ``update`` (which then re-chunks every document)."""
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SourceError("not an index folder (no meta.json); build one with `instructkit index`",
                              file=str(path)) from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise SourceError(f"index format {meta.get('format_version')} is not supported "
                              f"(expected {FORMAT_VERSION}); rebuild it", file=str(path / "meta.json"))
        saved = ChunkSettings(meta["chunk_size"], meta["chunk_overlap"], meta.get("min_chars", 40))
        self = cls(embedder, settings or saved, index_type or meta.get("index_type", "auto"), path,
                   retrieval=retrieval or meta.get("retrieval"),
                   reranker=reranker, candidates=candidates, rerank_cache=rerank_cache,
                   reranker_backend=reranker_backend or (None if reranker is not None
                                                         else meta.get("reranker_backend")))
        # indexes written before backends existed were made with torch
        saved_backend = meta.get("backend", "torch")
        same_embedder = embedder is None or (getattr(embedder, "name", meta["model"]) == meta["model"]
                                             and getattr(embedder, "backend", saved_backend) == saved_backend)
        if same_embedder and embedder is not None and getattr(embedder, "dim", meta["dim"]) != meta["dim"]:
            raise InstructkitError(f"index {path} has {meta['dim']}-dimensional vectors from "
                                   f"'{meta['model']}'; the embedder gives {embedder.dim}")
        self.model, self.backend = meta["model"], saved_backend
        docs = json.loads((path / "documents.json").read_text(encoding="utf-8"))
        self.documents = {d["doc_id"]: Document.from_dict(d) for d in docs}
        with (path / "chunks.jsonl").open(encoding="utf-8") as fh:
            self.chunks = [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]
        self.vectors = self.np.load(path / "vectors.npy")
        self._by_id = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        if len(self.vectors) != len(self.chunks):
            raise SourceError("index is inconsistent (vectors and chunks differ); rebuild it",
                              file=str(path))
        if settings is not None and settings != saved:
            # every document is re-chunked at the next update
            self.documents = {k: _with_hash(d, "") for k, d in self.documents.items()}
        faiss_file = path / "index.faiss"
        if faiss_file.is_file():
            self._faiss = self.faiss.read_index(str(faiss_file))
            self.built_index_type = meta.get("built_index_type")
        if self._faiss is None or self._faiss.ntotal != len(self.chunks):
            self.build_faiss()
        return self


def _check_mode(mode: str, reranker: Any = None, *, searching: bool = False) -> None:
    if mode not in RETRIEVAL_MODES:
        raise InstructkitError(f"unknown retrieval '{mode}' (one of {', '.join(RETRIEVAL_MODES)})")
    if searching and mode == "two_stage" and reranker is None:
        raise InstructkitError("two_stage retrieval needs a reranker (the embedder whose vectors "
                               "re-rank the candidates)")


def _meta_only(doc: Document) -> Document:
    """What the index keeps of a document: everything but its text (chunks hold that)."""
    d = doc.as_dict()
    d["text"] = ""
    return Document.from_dict(d)


def _with_hash(doc: Document, h: str) -> Document:
    d = doc.as_dict()
    d["content_hash"] = h or "stale"
    return Document.from_dict(d)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
