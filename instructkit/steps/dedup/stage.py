"""The dedup step: exact, near (MinHash LSH) and semantic (embeddings + FAISS) duplicates.

It must see every record before it can decide, so it works in two passes with bounded
memory:

1. Stream the records in batches. Each record goes to a ``RecordBuffer`` (in memory
   for small runs, a temporary pickle file past ``spill_after`` records) and only what
   the decision needs is kept in numpy arrays: the exact hash (8 bytes), the MinHash
   signature (4 bytes x num_perm), the embedding (float16, 2 bytes x dim), output
   length, method rank, judge score and relevance. 1M records with 128 permutations need ~0.6 GB
   for near dedup, plus ~0.8 GB with semantic dedup on.
2. Find duplicate pairs (sorting exact hashes; LSH band keys sorted per band, candidates
   verified on the signatures; FAISS range search). Exact duplicates are grouped; near and
   semantic pairs are resolved either greedily in keep-rule order (``clustering: star``,
   the default: a record is dropped only if it is similar to a record already kept, so
   similarity never chains) or as union-find components (``clustering: union_find``).
   Then the buffer is replayed in input order: kept records are yielded, the others
   quarantined with ``duplicate_of`` (the kept record's id) and ``similarity``.

Synthetic records are also compared with their own seed tasks
(``provenance.seed_task_ids``, texts from ``prompts/synthetic/seed_tasks.yaml``); a
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
from instructkit.steps.dedup.keep import KeepRule, judge_score, relevance
from instructkit.steps.dedup.minhash import (MinHasher, band_keys, lsh_candidate_pairs, optimal_bands,
                      signature_similarity)
from instructkit.steps.dedup.text import exact_hash, hash_words, normalize, record_text

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
            pickler = pickle.Pickler(self._fh, protocol=pickle.HIGHEST_PROTOCOL)
            for rec in self._items:
                pickler.dump(rec)
            self._items = []
        pickle.dump(record, self._fh, protocol=pickle.HIGHEST_PROTOCOL)

    def __iter__(self) -> Iterator[Record]:
        if self._fh is None:
            yield from self._items
            return
        self._fh.flush()
        self._fh.seek(0)
        unpickler = pickle.Unpickler(self._fh)
        for _ in range(self.count):
            yield unpickler.load()

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


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union_pairs(self, pairs: np.ndarray) -> None:
        find, parent = self.find, self.parent
        for a, b in pairs.tolist():
            ra, rb = find(a), find(b)
            if ra != rb:
                # the smaller index becomes the root: deterministic
                if ra < rb:
                    parent[rb] = ra
                else:
                    parent[ra] = rb

    def roots(self) -> np.ndarray:
        find = self.find
        return np.fromiter((find(i) for i in range(len(self.parent))), np.int64,
                           count=len(self.parent))


class _Chunks:
    """Append-only rows stored as a list of numpy blocks (no repeated reallocation)."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def add(self, block: np.ndarray) -> None:
        self.blocks.append(block)

    def array(self, dtype: Any = None, width: int = 0) -> np.ndarray:
        if not self.blocks:
            return np.zeros((0, width) if width else 0, dtype=dtype or np.float32)
        out = np.concatenate(self.blocks)
        self.blocks = [out]
        return out


def load_seed_tasks(path: str | Path | None) -> dict[str, dict[str, str]]:
    """Seed tasks by id from a YAML list (or ``{tasks: [...]}``); {} when absent or unreadable."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("dedup: seed tasks %s unreadable (%s); not comparing with seeds",
                       p, type(exc).__name__)
        return {}
    if isinstance(data, Mapping):
        data = data.get("tasks") or data.get("seed_tasks") or []
    tasks: dict[str, dict[str, str]] = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or "id" not in item:
            continue
        texts = {k: str(v) for k, v in item.items()
                 if k in ("instruction", "input", "output") and isinstance(v, (str, int, float)) and str(v).strip()}
        if "instruction" in texts:
            tasks[str(item["id"])] = texts
    return tasks


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
        self._task_codes: dict[str, int] = {}
        self._tasks: list[int] = []
        self.seed_tasks = dict(seed_tasks or {})
        self.batch_size = batch_size
        self.spill_after = spill_after
        self.spill_dir = spill_dir
        self.seed = seed
        self.counts: Counter[str] = Counter()
        self.clusters = 0  # kept records that had at least one duplicate dropped
        self._seed_cache: dict[tuple[str, tuple[str, ...], str], Any] = {}

    # -- shared helpers --------------------------------------------------------------------
    @property
    def embedder(self) -> Any:
        if callable(self._embedder) and not hasattr(self._embedder, "embed"):
            self._embedder = self._embedder()
        return self._embedder

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        from instructkit.vector_cache import VectorCache, embed_cached

        if self.cache_vectors and self._vector_cache is None:
            self._vector_cache = VectorCache.for_embedder(self.embedder, self.cache_dir)
        return embed_cached(self.embedder, texts, self._vector_cache, batch_size=self.embed_batch_size)

    def _signatures(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        h, idx = hash_words(texts)
        return self.minhasher.signatures(h, idx, len(texts))

    # -- pass 1 ----------------------------------------------------------------------------
    def process(self, records: Iterable[Record]) -> Iterator[Record]:
        self.counts, self.clusters = Counter(), 0
        self._task_codes, self._tasks = {}, []
        buffer = RecordBuffer(self.spill_after, self.spill_dir)
        ids: list[str] = []
        method_rank, out_len, scores, exact_h = _Chunks(), _Chunks(), _Chunks(), _Chunks()
        sigs, has_words, vecs = _Chunks(), _Chunks(), _Chunks()
        seed_dups: dict[int, tuple[str, str, float]] = {}
        try:
            batch: list[Record] = []
            for rec in records:
                batch.append(rec)
                if len(batch) >= self.batch_size:
                    self._take(batch, buffer, ids, method_rank, out_len, scores, exact_h,
                               sigs, has_words, vecs, seed_dups)
                    batch = []
            if batch:
                self._take(batch, buffer, ids, method_rank, out_len, scores, exact_h,
                           sigs, has_words, vecs, seed_dups)
            n = buffer.count
            decisions = self._decide(n, ids, method_rank.array(np.int8), out_len.array(np.int32),
                                     scores.array(np.float32, 2), exact_h.array(np.int64),
                                     sigs.array(np.uint32, self.minhasher.num_perm if self.near else 0),
                                     has_words.array(bool), vecs, seed_dups)
            for i, rec in enumerate(buffer):
                verdict = decisions.get(i)
                if verdict is None:
                    yield rec
                else:
                    reason, details = verdict
                    self.drop(rec, reason, **details)
        finally:
            buffer.close()
            if self._vector_cache is not None:
                self.stats.extra["semantic_vectors_reused"] = self._vector_cache.hits
                self.stats.extra["semantic_vectors_embedded"] = self._vector_cache.misses
                self._vector_cache.close()
                self._vector_cache = None

    def _take(self, batch: list[Record], buffer: RecordBuffer, ids: list[str], method_rank: _Chunks,
              out_len: _Chunks, scores: _Chunks, exact_h: _Chunks, sigs: _Chunks,
              has_words: _Chunks, vecs: _Chunks, seed_dups: dict[int, tuple[str, str, float]]) -> None:
        base = buffer.count
        for k, rec in enumerate(batch):
            buffer.append(rec)
            self._tasks.append(self._task_codes.setdefault(str(rec.get("task")), len(self._task_codes)))
            rid = rec.get("id")
            ids.append(str(rid) if rid else f"#{base + k}")
        method_rank.add(np.array([self.keep.method_rank(r.get("method")) for r in batch], np.int8))
        out_len.add(np.array([len(r.get("output") or "") for r in batch], np.int32))
        scores.add(np.array([(judge_score(r), relevance(r)) for r in batch], np.float32).reshape(-1, 2))
        norm_cache: dict[tuple[str, ...], list[str]] = {}

        def normalized(fields: tuple[str, ...]) -> list[str]:
            if fields not in norm_cache:
                norm_cache[fields] = [normalize(record_text(r, fields)) for r in batch]
            return norm_cache[fields]

        if self.exact:
            exact_h.add(np.array([exact_hash(t) for t in normalized(self.exact_fields)], np.int64))
        if self.near:
            texts = normalized(self.near_fields)
            sig, has = self._signatures(texts)
            if self.near_min_words > 1:
                # normalised text: words are separated by exactly one space
                has = has & np.array([t.count(" ") + 1 >= self.near_min_words for t in texts], bool)
            sigs.add(sig)
            has_words.add(has)
        if self.semantic:
            texts = [record_text(r, self.semantic_fields) for r in batch]
            vecs.add(self._embed_texts(texts).astype(np.float16))
        if self.seed_tasks:
            self._check_seeds(batch, base, seed_dups)

    # -- synthetic records against their own seed tasks ------------------------------------
    def _seed_repr(self, seed_id: str, fields: tuple[str, ...], kind: str) -> Any:
        key = (seed_id, fields, kind)
        if key not in self._seed_cache:
            text = record_text(self.seed_tasks[seed_id], fields)
            if kind == "exact":
                self._seed_cache[key] = exact_hash(normalize(text))
            elif kind == "near":
                self._seed_cache[key] = self._signatures([normalize(text)])[0][0]
            else:
                self._seed_cache[key] = self.embedder.embed([text])[0]
        return self._seed_cache[key]

    def _check_seeds(self, batch: list[Record], base: int,
                     seed_dups: dict[int, tuple[str, str, float]]) -> None:
        for k, rec in enumerate(batch):
            prov = rec.get("provenance") or {}
            seed_ids = [str(s) for s in (prov.get("seed_task_ids") or []) if str(s) in self.seed_tasks]
            for sid in seed_ids:
                hit = self._compare_with_seed(rec, sid)
                if hit:
                    seed_dups[base + k] = (hit[0], sid, hit[1])
                    break

    def _compare_with_seed(self, rec: Record, sid: str) -> tuple[str, float] | None:
        present = self.seed_tasks[sid]
        kinds = [("exact", self.exact, self.exact_fields), ("near", self.near, self.near_fields),
                 ("semantic", self.semantic, self.semantic_fields)]
        for kind, on, fields in kinds:
            if not on:
                continue
            # compare only the fields the seed task has (seeds may lack input/output)
            sub = tuple(f for f in fields if f in present)
            if not sub:
                continue
            text = record_text(rec, sub)
            if kind == "exact":
                if exact_hash(normalize(text)) == self._seed_repr(sid, sub, kind):
                    return kind, 1.0
            elif kind == "near":
                sig = self._signatures([normalize(text)])[0][0]
                sim = float((sig == self._seed_repr(sid, sub, kind)).mean())
                if sim >= self.near_threshold:
                    return kind, sim
            else:
                vec = self.embedder.embed([text])[0]
                sim = float(vec @ self._seed_repr(sid, sub, kind))
                if sim >= self.semantic_threshold:
                    return kind, sim
        return None

    # -- pass 2: pairs -> keep / drop ---------------------------------------------------------
    def _decide(self, n: int, ids: list[str], method_rank: np.ndarray, out_len: np.ndarray,
                scores: np.ndarray, exact_h: np.ndarray, sig: np.ndarray, has_words: np.ndarray,
                vec_chunks: _Chunks, seed_dups: dict[int, tuple[str, str, float]]) -> dict[int, tuple[str, dict]]:
        """Which records to drop, and why.

        Exact duplicates form groups (an equivalence); each group is represented by its
        best-ranked record. Near and semantic similarity are not transitive, so they are
        not chained: representatives are visited in keep-rule order and one is dropped
        only when it is similar to an already *kept* record, so every ``duplicate_of``
        names a kept record at least ``threshold`` similar to the dropped one.
        """
        decisions: dict[int, tuple[str, dict]] = {}
        for i, (kind, sid, sim) in seed_dups.items():
            decisions[i] = (f"duplicate_{kind}", {"duplicate_of": f"seed_task:{sid}",
                                                   "similarity": round(sim, 4), "seed_task": True})
            self.counts[f"seed_{kind}"] += 1
        if n == 0:
            return decisions
        rank = self.keep.ranks(method_rank, out_len, scores, ids)
        alive = np.ones(n, bool)
        if seed_dups:
            alive[list(seed_dups)] = False
        members = np.flatnonzero(alive)
        rep = np.arange(n)  # exact-group representative of each record
        if self.exact and len(members):
            order = members[np.lexsort((rank[members], exact_h[members]))]
            new_group = np.r_[True, exact_h[order][1:] != exact_h[order][:-1]]
            group_first = order[np.flatnonzero(new_group)]
            rep[order] = group_first[np.cumsum(new_group) - 1]
            members = group_first
        # edges between representatives: (u, v, similarity, kind 0=near 1=semantic)
        edges: list[tuple[np.ndarray, np.ndarray, int]] = []
        if self.near and len(members) > 1:
            near_members = members[has_words[members]]
            keys = band_keys(sig, self.bands, self.rows)
            cand = lsh_candidate_pairs(keys, near_members)
            del keys
            sims = signature_similarity(sig, cand)
            ok = sims >= self.near_threshold
            self.stats.extra["near_candidate_pairs"] = int(len(cand))
            edges.append(self._in_scope(cand[ok], sims[ok], 0))
        vectors = None
        if self.semantic and len(members) > 1:
            from instructkit.steps.dedup.semantic import semantic_pairs

            vectors = vec_chunks.array(np.float16, 1)
            pairs, sims = semantic_pairs(vectors, members, self.semantic_threshold,
                                         approximate_after=self.approximate_after,
                                         nlist=self.nlist, nprobe=self.nprobe, seed=self.seed)
            edges.append(self._in_scope(pairs, sims, 1))
        if self.clustering == "union_find":
            verdict = self._components(n, rank, members, edges, sig, vectors)
        else:
            verdict = self._greedy(n, rank, edges)  # rep index -> (kind, keeper, sim)
        names = ("near", "semantic")
        for i in np.flatnonzero(alive).tolist():
            r = int(rep[i])
            if r in verdict:
                kind, k, sim = verdict[r]
                kind_name = names[kind]
            elif r != i:
                kind_name, k, sim = "exact", r, 1.0
            else:
                continue
            self.counts[kind_name] += 1
            decisions[i] = (f"duplicate_{kind_name}", {"duplicate_of": ids[k], "similarity": round(float(sim), 4)})
        kept_targets = {d[1]["duplicate_of"] for i, d in decisions.items() if i not in seed_dups}
        self.clusters = len(kept_targets)
        return decisions

    def _in_scope(self, pairs: np.ndarray, sims: np.ndarray, kind: int) -> tuple[np.ndarray, np.ndarray, int]:
        if self.scope == "all" or len(pairs) == 0:
            return pairs, sims, kind
        task = np.asarray(self._tasks, np.int32)
        same = task[pairs[:, 0]] == task[pairs[:, 1]]
        return pairs[same], sims[same], kind

    def _components(self, n: int, rank: np.ndarray, members: np.ndarray,
                    edges: list[tuple[np.ndarray, np.ndarray, int]], sig: np.ndarray,
                    vectors: np.ndarray | None) -> dict[int, tuple[int, int, float]]:
        """``clustering: union_find``: connected components over all edges, best rank kept.

        Chains (A~B, B~C) put A and C together even when they are not similar; the
        similarity reported is the dropped record's own similarity to the kept one.
        """
        uf_near, uf_all = _UnionFind(n), _UnionFind(n)
        for pairs, _sims, kind in edges:
            uf_all.union_pairs(pairs)
            if kind == 0:
                uf_near.union_pairs(pairs)
        roots = uf_all.roots()[members]
        order = np.lexsort((rank[members], roots))
        first = np.r_[True, roots[order][1:] != roots[order][:-1]]
        keeper_of_root = dict(zip(roots[order][first].tolist(), members[order][first].tolist()))
        verdict: dict[int, tuple[int, int, float]] = {}
        for m, root in zip(members.tolist(), roots.tolist()):
            k = keeper_of_root[root]
            if k == m:
                continue
            if self.near and uf_near.find(m) == uf_near.find(k):
                verdict[m] = (0, k, float((sig[m] == sig[k]).mean()))
            else:
                verdict[m] = (1, k, float(vectors[m].astype(np.float32) @ vectors[k].astype(np.float32)))
        return verdict

    @staticmethod
    def _greedy(n: int, rank: np.ndarray, edges: list[tuple[np.ndarray, np.ndarray, int]]
                ) -> dict[int, tuple[int, int, float]]:
        if not edges or not any(len(e[0]) for e in edges):
            return {}
        u = np.concatenate([e[0][:, 0] for e in edges] + [e[0][:, 1] for e in edges])
        v = np.concatenate([e[0][:, 1] for e in edges] + [e[0][:, 0] for e in edges])
        sim = np.concatenate([e[1] for e in edges] * 2).astype(np.float64)
        kind = np.concatenate([np.full(len(e[0]), e[2], np.int64) for e in edges] * 2)
        # per node: neighbours sorted by preference (near before semantic, then similarity)
        order = np.lexsort((-sim, kind, u))
        u, v, sim, kind = u[order], v[order], sim[order], kind[order]
        nodes, starts = np.unique(u, return_index=True)
        ends = np.r_[starts[1:], len(u)]
        kept = np.zeros(n, bool)
        verdict: dict[int, tuple[int, int, float]] = {}
        for j in np.argsort(rank[nodes], kind="stable").tolist():
            node, s, e = int(nodes[j]), int(starts[j]), int(ends[j])
            hits = np.flatnonzero(kept[v[s:e]])
            if len(hits):
                h = s + int(hits[0])
                verdict[node] = (int(kind[h]), int(v[h]), float(sim[h]))
            else:
                kept[node] = True
        return verdict

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
