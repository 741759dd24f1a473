"""The dedup step: exact, near (MinHash LSH) and semantic (embeddings + FAISS) duplicates.

It must see every record before it can decide. It runs the phases of
``steps/dedup/phases.py`` (signatures, exact groups, band buckets, verification, clusters,
filter), the same functions the Ray executor runs distributed, here in one process with
bounded memory:

1. Stream the records in batches. Each record goes to a ``RecordBuffer`` (in memory
   for small runs, a temporary pickle file past ``spill_after`` records) and only what
   the decision needs is kept in numpy columns (``phases.features``): the exact hash
   (8 bytes), the MinHash signature (4 bytes x num_perm) and band keys (8 bytes x bands),
   the embedding (float16, 2 bytes x dim), output length, method rank, judge score and relevance.
   1M records with 128 permutations need ~0.8 GB for near dedup, plus ~0.8 GB with
   semantic dedup on.
2. Decide (``phases.decide_in_memory``): exact duplicates form groups represented by their
   best-ranked record; near and semantic pairs between representatives are resolved
   greedily in keep-rule order (``clustering: star``, the default: a record is dropped only
   if it is similar to a record already kept, so similarity never chains) or as union-find
   components (``clustering: union_find``). Then the buffer is replayed in input order:
   kept records are yielded, the others quarantined with ``duplicate_of`` (the kept
   record's id) and ``similarity``.

Synthetic records are also compared with their own seed tasks (``seeds.SeedMatcher``); a
record that repeats its seed is dropped with ``duplicate_of: "seed_task:<id>"``.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instructkit.records import Record
from instructkit.steps.base import Step
from instructkit.steps.dedup import phases
from instructkit.steps.dedup.keep import KeepRule
from instructkit.steps.dedup.minhash import MinHasher, optimal_bands
from instructkit.steps.dedup.seeds import SeedMatcher, load_seed_tasks
from instructkit.steps.dedup.text import hash_words

logger = logging.getLogger("instructkit")

__all__ = ["DedupStep", "RecordBuffer", "load_seed_tasks"]

DEFAULT_FIELDS = ("instruction", "input", "output")
#: near and semantic similarity compare content: template instructions are shared
#: boilerplate that would make distinct short records look alike
CONTENT_FIELDS = ("input", "output")
#: below this many words a text has too few shingles for a MinHash estimate to mean much;
#: such records are left to exact dedup
DEFAULT_NEAR_MIN_WORDS = 12


class RecordBuffer:
    """Holds the records between the two passes: a list, then a temp file past ``limit``.

    The temp file is private (mode 0600, from ``tempfile``) and deleted when the buffer
    is closed; it lives in ``directory`` (the run's cache dir) or the system temp dir.
    """

    def __init__(self, limit: int = 50_000, directory: str | Path | None = None) -> None:
        self.limit = limit
        self.directory = str(directory) if directory else None
        self._items: list[Record] = []
        self._fh: Any = None
        self._path: str | None = None
        self.count = 0

    def append(self, record: Record) -> None:
        self.count += 1
        if self._fh is None and len(self._items) < self.limit:
            self._items.append(record)
            return
        if self._fh is None:
            if self.directory:
                os.makedirs(self.directory, exist_ok=True)
            fd, self._path = tempfile.mkstemp(prefix="instructkit-dedup-", suffix=".pkl",
                                              dir=self.directory)
            self._fh = os.fdopen(fd, "w+b")
            # one pickle per record, each with its own memo: a shared Pickler or Unpickler
            # would keep every record alive through its memo (the whole dataset in memory)
            for rec in self._items:
                pickle.dump(rec, self._fh, protocol=pickle.HIGHEST_PROTOCOL)
            self._items = []
        pickle.dump(record, self._fh, protocol=pickle.HIGHEST_PROTOCOL)

    def __iter__(self) -> Iterator[Record]:
        if self._fh is None:
            yield from self._items
            return
        self._fh.flush()
        self._fh.seek(0)
        for _ in range(self.count):
            yield pickle.load(self._fh)  # a fresh memo per record (see append)

    def close(self) -> None:
        self._items = []
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._path:
            try:
                os.unlink(self._path)
            except OSError:
                pass
            self._path = None



class DedupStep(Step):
    """Drops exact, near and semantic duplicates across all builders' records."""

    name = "dedup"

    def __init__(self, *, fields: Sequence[str] = DEFAULT_FIELDS,
                 exact: bool = True, exact_fields: Sequence[str] | None = None,
                 near: bool = True, near_threshold: float = 0.7, num_perm: int = 128,
                 shingle_size: int = 1, bands: int | None = None, rows: int | None = None,
                 near_fields: Sequence[str] | None = None, near_min_words: int = DEFAULT_NEAR_MIN_WORDS,
                 semantic: bool = False, semantic_threshold: float = 0.95,
                 semantic_fields: Sequence[str] | None = None, embedder: Any = None,
                 embed_batch_size: int | None = None, approximate_after: int = 100_000,
                 cache_vectors: bool = False, cache_dir: str | Path | None = None,
                 nlist: int | None = None, nprobe: int = 16,
                 keep: KeepRule | None = None,
                 seed_tasks: Mapping[str, Mapping[str, str]] | None = None,
                 clustering: str = "star", scope: str = "task",
                 batch_size: int = 1024, spill_after: int = 50_000,
                 spill_dir: str | Path | None = None, seed: int = 0) -> None:
        super().__init__()
        self.exact = exact
        self.exact_fields = tuple(exact_fields or fields)
        self.near = near
        self.near_threshold = float(near_threshold)
        self.near_fields = tuple(near_fields or (CONTENT_FIELDS if fields == DEFAULT_FIELDS else fields))
        self.near_min_words = int(near_min_words)
        self.minhasher = MinHasher(num_perm, shingle_size, seed=1) if near else None
        if near:
            if bands and rows:
                self.bands, self.rows = int(bands), int(rows)
            else:
                self.bands, self.rows = optimal_bands(self.near_threshold, int(num_perm))
        self.semantic = semantic
        self.semantic_threshold = float(semantic_threshold)
        self.semantic_fields = tuple(semantic_fields or (CONTENT_FIELDS if fields == DEFAULT_FIELDS else fields))
        self._embedder = embedder  # an Embedder, or a zero-argument callable making one
        self.embed_batch_size = embed_batch_size
        # vectors by content hash (vector_cache): a rerun embeds only new or changed text
        self.cache_vectors = cache_vectors
        self.cache_dir = cache_dir
        self._vector_cache: Any = None
        self.approximate_after = approximate_after
        self.nlist, self.nprobe = nlist, nprobe
        self.keep = keep or KeepRule()
        if clustering not in ("star", "union_find"):
            raise ValueError("clustering must be 'star' or 'union_find'")
        self.clustering = clustering
        if scope not in ("task", "all"):
            raise ValueError("scope must be 'task' or 'all'")
        # near/semantic matches count within a task: the same findings used for labeling and
        # for impression writing are two tasks, not a duplicate
        self.scope = scope
        self.seed_tasks = dict(seed_tasks or {})
        self.batch_size = batch_size
        self.spill_after = spill_after
        self.spill_dir = spill_dir
        self.seed = seed
        self.counts: Counter[str] = Counter()
        self.clusters = 0  # kept records that had at least one duplicate dropped
        self.seeds = SeedMatcher(self)

    # -- shared helpers --------------------------------------------------------------------
    @property
    def embedder(self) -> Any:
        if callable(self._embedder) and not hasattr(self._embedder, "embed"):
            self._embedder = self._embedder()
        return self._embedder

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts``, through the vector cache when it is on."""
        from instructkit.vector_cache import VectorCache, embed_cached

        if self.cache_vectors and self._vector_cache is None:
            self._vector_cache = VectorCache.for_embedder(self.embedder, self.cache_dir)
        return embed_cached(self.embedder, texts, self._vector_cache, batch_size=self.embed_batch_size)

    def close_vector_cache(self) -> None:
        if self._vector_cache is not None:
            self.stats.extra["semantic_vectors_reused"] = self._vector_cache.hits
            self.stats.extra["semantic_vectors_embedded"] = self._vector_cache.misses
            self._vector_cache.close()
            self._vector_cache = None

    def signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """MinHash signatures of normalised texts, and which texts had any word."""
        h, idx = hash_words(texts)
        return self.minhasher.signatures(h, idx, len(texts))

    # -- the local run of the phases -------------------------------------------------------
    def reset(self) -> None:
        self.counts, self.clusters = Counter(), 0

    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        self.reset()
        buffer = RecordBuffer(self.spill_after, self.spill_dir)
        blocks: list[phases.Block] = []
        try:
            batch: list[Record] = []
            for rec in records:
                batch.append(rec)
                if len(batch) >= self.batch_size:
                    blocks.append(self._take(batch, buffer))
                    batch = []
            if batch:
                blocks.append(self._take(batch, buffer))
            block = phases.concat_blocks(blocks)
            del blocks
            decisions, figures = phases.decide_in_memory(self, block)
            del block
            self.note_figures(figures)
            for i, rec in enumerate(buffer):
                if self.filter(rec, decisions.get(i)):
                    yield rec
        finally:
            buffer.close()
            self.close_vector_cache()

    def _take(self, batch: list[Record], buffer: RecordBuffer) -> phases.Block:
        base = buffer.count
        for rec in batch:
            buffer.append(rec)
        return phases.features(self, batch, range(base, base + len(batch)))

    def note_figures(self, figures: Mapping[str, int]) -> None:
        """Run-wide figures of the deciding phases (clusters, candidate pairs)."""
        self.clusters = int(figures.get("clusters", 0))
        if "candidate_pairs" in figures:
            self.stats.extra["near_candidate_pairs"] = int(figures["candidate_pairs"])

    # -- the filter phase (both executors) ----------------------------------------------------
    def filter(self, rec: Record, decision: tuple[str, Mapping[str, Any]] | None) -> bool:
        """Keep ``rec`` (no decision), or drop it into the quarantine with its reason."""
        if decision is None:
            return True
        reason, details = decision
        kind = reason.removeprefix("duplicate_")
        self.counts[f"seed_{kind}" if details.get("seed_task") else kind] += 1
        self.drop(rec, reason, **details)
        return False

    def filter_decided(self, items: Iterable[tuple[Record, tuple[str, Mapping[str, Any]] | None]]
                       ) -> Iterator[Record]:
        """The filter over records that arrive with their decision (the Ray executor joins
        the decisions onto the records); counted like a run of the step."""
        for rec, decision in items:
            self.stats.n_in += 1
            if self.filter(rec, decision):
                self.stats.n_out += 1
                yield rec

    # -- reporting -------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        s: dict[str, Any] = {"exact": self.exact and {"fields": list(self.exact_fields)}}
        if self.near:
            s["near"] = {"threshold": self.near_threshold, "num_perm": self.minhasher.num_perm,
                         "shingle_size": self.minhasher.shingle_size, "bands": self.bands,
                         "rows": self.rows, "fields": list(self.near_fields),
                         "min_words": self.near_min_words}
        else:
            s["near"] = False
        if self.semantic:
            s["semantic"] = {"threshold": self.semantic_threshold,
                             "model": getattr(self._embedder, "name", "all-MiniLM-L6-v2"),
                             "backend": getattr(self._embedder, "backend", None),
                             "vector_cache": self.cache_vectors,
                             "approximate_after": self.approximate_after,
                             "fields": list(self.semantic_fields)}
        else:
            s["semantic"] = False
        s["keep"] = self.keep.describe()
        s["clustering"] = self.clustering
        s["seed_tasks"] = len(self.seed_tasks)
        return s

    def summary(self) -> dict[str, Any]:
        return {"duplicates": {k: self.counts.get(k, 0) for k in ("exact", "near", "semantic")},
                "seed_task_duplicates": {k[5:]: v for k, v in self.counts.items() if k.startswith("seed_")},
                "clusters_with_duplicates": self.clusters}

    def card_section(self, stats: Any) -> str:
        s = self.settings()
        dup = (stats.extra or {}).get("duplicates") or {}
        kinds = []
        if s["exact"]:
            kinds.append(f"exact (normalised text of {', '.join(self.exact_fields)})")
        if self.near:
            kinds.append(f"near (MinHash LSH, Jaccard >= {self.near_threshold} over word "
                         f"{self.minhasher.shingle_size}-grams, {self.minhasher.num_perm} "
                         f"permutations, {self.bands} bands x {self.rows} rows)")
        if self.semantic:
            backend = f" on {s['semantic']['backend']}" if s["semantic"].get("backend") else ""
            kinds.append(f"semantic ({s['semantic']['model']} embeddings{backend}, cosine >= "
                         f"{self.semantic_threshold}, FAISS range search)")
        lines = ["### Deduplication", "",
                 f"Kinds: {'; '.join(kinds) or 'none'}. Kept record of each cluster: "
                 f"{self.keep.describe()}.", "",
                 "| kind | records removed |", "|---|---|"]
        for k in ("exact", "near", "semantic"):
            lines.append(f"| {k} | {dup.get(k, 0)} |")
        if self.seed_tasks:
            seed_total = sum(((stats.extra or {}).get("seed_task_duplicates") or {}).values())
            lines.append(f"| repeats of own seed task | {seed_total} |")
        return "\n".join(lines) + "\n"
