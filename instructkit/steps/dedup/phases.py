"""Dedup as phases that any executor runs: the same functions decide under local and Ray.

1. **signatures** (a map over batches of records, ``features``): per record its position,
   id, task, the keep-rule columns, the exact hash, the MinHash signature and its LSH band
   keys, the embedding, and whether it repeats its own seed task.
2. **exact groups** (group by exact hash, ``exact_representatives``): each group's
   best-ranked record represents it; the others are exact duplicates of it.
3. **band buckets** (group by (band, key), ``band_rows`` then ``bucket_pairs``): candidate
   pairs of representatives that share a band key.
4. **verify** (join the pairs with the signatures, ``verify_pairs``): estimated Jaccard at
   least the threshold, and the same task unless ``scope: all``.
5. **clusters** over the verified edges (``star_clusters``, or ``union_find_clusters``).
6. **filter** (join the decisions back onto the records): ``DedupStep.filter``.

A phase works on a *block*: a dict of equal-length numpy columns. Phases 2 and 3 need
blocks holding whole groups: the local executor passes one block with every record, the
Ray executor hash-partitions by the key first. Ranks are compared only inside a group, from
the keep-rule columns, so a block's ranks order its rows as the global ranks would.

Star clustering visits nodes in keep-rule order and drops a node only when it has an edge
to an already *kept* node; only nodes with an edge take part, so running it over the
verified edges alone gives the same kept set as running it over every record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from instructkit.records import Record
from instructkit.steps.dedup.keep import KeepRule, judge_score, relevance
from instructkit.steps.dedup.minhash import band_keys, bucket_run_pairs
from instructkit.steps.dedup.text import exact_hash, hash_words, normalize, record_text

if TYPE_CHECKING:
    from instructkit.steps.dedup.stage import DedupStep

__all__ = ["Block", "Edges", "features", "exact_representatives", "band_rows", "bucket_pairs", "band_pairs",
           "verify_pairs", "star_clusters", "union_find_clusters", "decide_in_memory",
           "concat_blocks", "take", "KINDS", "KEEP_COLUMNS"]

Block = dict[str, np.ndarray]

POS, ID, TASK, METHOD, OUT_LEN, SCORE = "pos", "id", "task", "method_rank", "out_len", "score"
EXACT, SIG, WORDS, BANDS, VEC = "exact", "sig", "has_words", "band_keys", "vec"
SEED_KIND, SEED_ID, SEED_SIM = "seed_kind", "seed_id", "seed_sim"
#: what the keep rule compares (position breaks the last ties)
KEEP_COLUMNS = (POS, ID, METHOD, OUT_LEN, SCORE)
#: edge kinds: 0 near, 1 semantic (near edges are preferred when a node has both)
KINDS = ("near", "semantic")

#: candidate pairs verified at a time (their two signatures gathered: ~64 MB at 128 values)
VERIFY_CHUNK = 65536

Edges = tuple[np.ndarray, np.ndarray, int]  # (pairs of positions (m, 2), similarities, kind)


def take(block: Block, rows: np.ndarray | slice) -> Block:
    return {k: v[rows] for k, v in block.items()}


def concat_blocks(blocks: Sequence[Block]) -> Block:
    """One block of the blocks' rows. The parts' columns are released as each column is
    joined, so a column (the signatures: 0.5 GB at 1M records) is never held twice over."""
    if not blocks:
        return {}
    out: Block = {}
    for k in list(blocks[0]):
        out[k] = np.concatenate([b.pop(k) for b in blocks])
    return out


# -- 1. signatures ------------------------------------------------------------------------------
def features(step: "DedupStep", records: Sequence[Record], positions: Sequence[int]) -> Block:
    """Everything the later phases need about each record (never the record itself)."""
    pos = np.asarray(positions, np.int64)
    block: Block = {
        POS: pos,
        ID: np.array([str(r["id"]) if r.get("id") else f"#{p}" for r, p in zip(records, pos.tolist())],
                     dtype=object),
        TASK: np.array([str(r.get("task")) for r in records], dtype=object),
        METHOD: np.array([step.keep.method_rank(r.get("method")) for r in records], np.int8),
        OUT_LEN: np.array([len(r.get("output") or "") for r in records], np.int32),
        SCORE: np.array([(judge_score(r), relevance(r)) for r in records], np.float32).reshape(-1, 2),
    }
    norm_cache: dict[tuple[str, ...], list[str]] = {}

    def normalized(fields: tuple[str, ...]) -> list[str]:
        if fields not in norm_cache:
            norm_cache[fields] = [normalize(record_text(r, fields)) for r in records]
        return norm_cache[fields]

    if step.exact:
        block[EXACT] = np.array([exact_hash(t) for t in normalized(step.exact_fields)], np.int64)
    if step.near:
        texts = normalized(step.near_fields)
        sig, has = step.signatures(texts)
        if step.near_min_words > 1:
            # normalised text: words are separated by exactly one space
            has = has & np.array([t.count(" ") + 1 >= step.near_min_words for t in texts], bool)
        block[SIG] = sig
        block[WORDS] = has
        block[BANDS] = band_keys(sig, step.bands, step.rows)
    if step.semantic:
        texts = [record_text(r, step.semantic_fields) for r in records]
        block[VEC] = step.embed_texts(texts).astype(np.float16)
    kinds, sids, sims = [""] * len(records), [""] * len(records), np.zeros(len(records))
    if step.seed_tasks:
        for k, rec in enumerate(records):
            hit = step.seeds.repeated_seed(rec)
            if hit:
                kinds[k], sids[k], sims[k] = hit
    block[SEED_KIND] = np.array(kinds, dtype=object)
    block[SEED_ID] = np.array(sids, dtype=object)
    block[SEED_SIM] = sims
    return block


def ranks_of(block: Block, keep: KeepRule) -> np.ndarray:
    """Keep-rule rank of each row among the block's rows (0 = kept first)."""
    order = np.argsort(block[POS], kind="stable")
    rank_sorted = keep.ranks(block[METHOD][order], block[OUT_LEN][order], block[SCORE][order],
                             [str(i) for i in block[ID][order]])
    rank = np.empty(len(order), np.int64)
    rank[order] = rank_sorted
    return rank


# -- 2. exact groups ------------------------------------------------------------------------------
def exact_representatives(block: Block, keep: KeepRule) -> np.ndarray:
    """Each row's representative position: the best-ranked row with its exact hash.

    ``block`` must hold whole groups (every row sharing a hash)."""
    n = len(block[POS])
    if n == 0:
        return np.zeros(0, np.int64)
    rank = ranks_of(block, keep)
    order = np.lexsort((rank, block[EXACT]))
    h = block[EXACT][order]
    new_group = np.r_[True, h[1:] != h[:-1]]
    first = order[np.flatnonzero(new_group)]
    rep_row = np.empty(n, np.int64)
    rep_row[order] = first[np.cumsum(new_group) - 1]
    return block[POS][rep_row]


# -- 3. band buckets ----------------------------------------------------------------------------
def band_rows(pos: np.ndarray, keys: np.ndarray, order: np.ndarray | None = None) -> Block:
    """One row per (record, band): ``band``, ``key``, ``pos`` and ``order``, the record's
    place in its buckets (its exact hash when exact dedup ran, else its position: the order
    in which the step has always listed a bucket's members, which decides the pairs of
    buckets over the size limit)."""
    n, bands = keys.shape
    order = pos if order is None else order
    return {"band": np.tile(np.arange(bands, dtype=np.int16), n),
            "key": np.ascontiguousarray(keys).reshape(-1), POS: np.repeat(pos, bands),
            "order": np.repeat(np.asarray(order, np.int64), bands)}


def bucket_pairs(band: np.ndarray, key: np.ndarray, pos: np.ndarray, order: np.ndarray | None = None,
                 max_bucket: int = 64) -> np.ndarray:
    """Candidate pairs (u < v positions, unique, sorted) of rows sharing a (band, key) bucket.

    A bucket's members are listed by ``order`` (then position); buckets up to ``max_bucket``
    give all their pairs and larger ones a star plus a chain in that order
    (``minhash.lsh_candidate_pairs``). ``band``/``key`` must hold whole buckets."""
    if len(pos) < 2:
        return np.zeros((0, 2), np.int64)
    order = pos if order is None else order
    pairs = _PairSet()
    for b in np.unique(band):
        rows = np.flatnonzero(band == b)
        pairs.add(_band_pairs(key[rows], pos[rows], order[rows], max_bucket))
    return pairs.array()


def band_pairs(keys: np.ndarray, pos: np.ndarray, order: np.ndarray | None = None,
               max_bucket: int = 64) -> np.ndarray:
    """``bucket_pairs`` over a whole (records, bands) key matrix, one band at a time (the
    local executor). The same pairs as ``bucket_pairs(*band_rows(...))`` without the
    records x bands rows: at 1M records those rows, their sort and the pairs of every band
    before de-duplication took gigabytes."""
    if len(pos) < 2:
        return np.zeros((0, 2), np.int64)
    order = pos if order is None else np.asarray(order, np.int64)
    pairs = _PairSet()
    for b in range(keys.shape[1]):
        pairs.add(_band_pairs(keys[:, b], pos, order, max_bucket))
    return pairs.array()


def _band_pairs(key: np.ndarray, pos: np.ndarray, order: np.ndarray, max_bucket: int) -> np.ndarray:
    """The pairs of one band's buckets (rows listed by key, then ``order``, then position)."""
    idx = np.lexsort((pos, order, key))
    k = key[idx]
    same = k[1:] == k[:-1]
    if not same.any():
        return np.zeros((0, 2), np.int64)
    return bucket_run_pairs(same, pos[idx], max_bucket)


class _PairSet:
    """Unique (u < v) pairs gathered band by band: each pair one int64 (u << 32 | v), merged
    into a sorted unique array after every band, so a pair that shares many bands is held once."""

    def __init__(self) -> None:
        self._codes = np.zeros(0, np.int64)

    def add(self, pairs: np.ndarray) -> None:
        if len(pairs) == 0:
            return
        p = np.sort(pairs.astype(np.int64), axis=1)
        if p[:, 1].max() >= 1 << 32:
            raise ValueError("dedup positions past 2**32 records")
        codes = np.unique((p[:, 0] << 32) | p[:, 1])
        self._codes = np.union1d(self._codes, codes) if len(self._codes) else codes

    def array(self) -> np.ndarray:
        c = self._codes
        return np.stack([c >> 32, c & 0xFFFFFFFF], axis=1) if len(c) else np.zeros((0, 2), np.int64)


# -- 4. verify ------------------------------------------------------------------------------------
def verify_pairs(sig_u: np.ndarray, sig_v: np.ndarray, task_u: np.ndarray | None,
                 task_v: np.ndarray | None, threshold: float,
                 chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(which pairs hold, every pair's estimated Jaccard): a pair holds when its signatures
    agree on at least ``threshold`` of their values and (when tasks are given) its tasks match."""
    sims = np.empty(len(sig_u), np.float32)
    for s in range(0, len(sig_u), chunk):
        sims[s:s + chunk] = (sig_u[s:s + chunk] == sig_v[s:s + chunk]).mean(axis=1)
    ok = sims >= threshold
    if task_u is not None and task_v is not None:
        ok &= np.asarray(task_u == task_v, bool)
    return ok, sims


# -- 5. clusters ----------------------------------------------------------------------------------
def _compact(nodes: Block, edges: Sequence[Edges]) -> tuple[Block, list[tuple[np.ndarray, np.ndarray, int]]]:
    """The nodes that have an edge, sorted by position, and the edges in their indices."""
    used = np.unique(np.concatenate([e[0].reshape(-1) for e in edges])) if edges else np.zeros(0, np.int64)
    order = np.argsort(nodes[POS], kind="stable")
    at = order[np.searchsorted(nodes[POS][order], used)]
    sub = take(nodes, at)
    return sub, [(np.searchsorted(used, p), s, kind) for p, s, kind in edges]


def star_clusters(nodes: Block, edges: Sequence[Edges], keep: KeepRule) -> dict[int, tuple[int, int, float]]:
    """Greedy star clustering in keep-rule order: {dropped position: (kind, kept position, sim)}.

    ``nodes`` holds the keep columns of (at least) every edge endpoint. A node is dropped
    when it has an edge to a node already kept (near before semantic, then the most
    similar); similarity never chains."""
    edges = [e for e in edges if len(e[0])]
    if not edges:
        return {}
    sub, local = _compact(nodes, edges)
    rank = ranks_of(sub, keep)
    u = np.concatenate([p[:, 0] for p, _, _ in local] + [p[:, 1] for p, _, _ in local])
    v = np.concatenate([p[:, 1] for p, _, _ in local] + [p[:, 0] for p, _, _ in local])
    sim = np.concatenate([s for _, s, _ in local] * 2).astype(np.float64)
    kind = np.concatenate([np.full(len(p), k, np.int64) for p, _, k in local] * 2)
    # per node: neighbours sorted by preference (near before semantic, then similarity)
    order = np.lexsort((-sim, kind, u))
    u, v, sim, kind = u[order], v[order], sim[order], kind[order]
    node_ids, starts = np.unique(u, return_index=True)
    ends = np.r_[starts[1:], len(u)]
    kept = np.zeros(len(sub[POS]), bool)
    pos = sub[POS]
    verdict: dict[int, tuple[int, int, float]] = {}
    for j in np.argsort(rank[node_ids], kind="stable").tolist():
        node, s, e = int(node_ids[j]), int(starts[j]), int(ends[j])
        hits = np.flatnonzero(kept[v[s:e]])
        if len(hits):
            h = s + int(hits[0])
            verdict[int(pos[node])] = (int(kind[h]), int(pos[v[h]]), float(sim[h]))
        else:
            kept[node] = True
    return verdict


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
            if ra != rb:  # the smaller index becomes the root: deterministic
                if ra < rb:
                    parent[rb] = ra
                else:
                    parent[ra] = rb

    def roots(self) -> np.ndarray:
        return np.fromiter((self.find(i) for i in range(len(self.parent))), np.int64,
                           count=len(self.parent))


def union_find_clusters(nodes: Block, edges: Sequence[Edges], keep: KeepRule, *, near: bool,
                        similarity: Callable[[int, np.ndarray], np.ndarray]
                        ) -> dict[int, tuple[int, int, float]]:
    """``clustering: union_find``: connected components over all edges, the best-ranked
    node kept. Chains (A~B, B~C) put A and C together even when they are not similar; the
    similarity reported is the dropped node's own similarity to the kept one, which
    ``similarity(kind, pairs of positions)`` computes."""
    edges = [e for e in edges if len(e[0])]
    if not edges:
        return {}
    sub, local = _compact(nodes, edges)
    m = len(sub[POS])
    uf_near, uf_all = _UnionFind(m), _UnionFind(m)
    for pairs, _sims, kind in local:
        uf_all.union_pairs(pairs)
        if kind == 0:
            uf_near.union_pairs(pairs)
    rank = ranks_of(sub, keep)
    roots = uf_all.roots()
    order = np.lexsort((rank, roots))
    first = np.r_[True, roots[order][1:] != roots[order][:-1]]
    keeper_of_root = dict(zip(roots[order][first].tolist(), order[first].tolist()))
    dropped: list[tuple[int, int, int]] = []  # (node, keeper, kind)
    for node, root in enumerate(roots.tolist()):
        k = keeper_of_root[root]
        if k != node:
            dropped.append((node, k, 0 if near and uf_near.find(node) == uf_near.find(k) else 1))
    pos = sub[POS]
    verdict: dict[int, tuple[int, int, float]] = {}
    for kind in (0, 1):
        group = [(a, b) for a, b, kd in dropped if kd == kind]
        if not group:
            continue
        pairs = pos[np.asarray(group, np.int64)]
        for (a, b), s in zip(pairs.tolist(), similarity(kind, pairs).tolist()):
            verdict[a] = (kind, b, float(s))
    return verdict


# -- local plan: every phase in memory over one block ---------------------------------------------
def decide_in_memory(step: "DedupStep", block: Block) -> tuple[dict[int, tuple[str, dict]], dict[str, int]]:
    """Run phases 2-5 over one block holding every record (the local executor).

    Returns ({position: (reason, details)}, figures)."""
    decisions: dict[int, tuple[str, dict]] = {}
    figures: dict[str, int] = {}
    n = len(block.get(POS, ()))
    if n and np.any(np.diff(block[POS]) <= 0):
        block = take(block, np.argsort(block[POS], kind="stable"))
    seed_rows = np.flatnonzero(block[SEED_KIND] != "") if n else np.zeros(0, np.int64)
    for r in seed_rows.tolist():
        decisions[int(block[POS][r])] = seed_decision(block[SEED_KIND][r], block[SEED_ID][r], block[SEED_SIM][r])
    if n == 0:
        figures["clusters"] = 0
        return decisions, figures
    # the copies below leave out the signatures (the largest column, read from ``block``
    # by position): at 1M records each copy of them is 0.5 GB
    light = {k: v for k, v in block.items() if k != SIG and (step.semantic or k != VEC)}
    alive = take(light, np.flatnonzero(block[SEED_KIND] == ""))
    rep = exact_representatives(alive, step.keep) if step.exact else alive[POS]
    reps = take(alive, np.flatnonzero(rep == alive[POS]))
    edges: list[Edges] = []
    if step.near and len(reps[POS]) > 1:
        members = take({k: reps[k] for k in (POS, WORDS, BANDS, EXACT) if k in reps}, np.flatnonzero(reps[WORDS]))
        cand = band_pairs(members[BANDS], members[POS], members[EXACT] if step.exact else None)
        figures["candidate_pairs"] = int(len(cand))
        ui, vi = np.searchsorted(block[POS], cand[:, 0]), np.searchsorted(block[POS], cand[:, 1])
        scoped = step.scope == "task"
        # the pairs' signatures are gathered a chunk at a time: at 1M records of recombined
        # text there were 6.7M candidate pairs, and both sides at once took 6.9 GB
        ok, sims = np.empty(len(cand), bool), np.empty(len(cand), np.float32)
        for s in range(0, len(cand), VERIFY_CHUNK):
            a, b = ui[s:s + VERIFY_CHUNK], vi[s:s + VERIFY_CHUNK]
            ok[s:s + VERIFY_CHUNK], sims[s:s + VERIFY_CHUNK] = verify_pairs(
                block[SIG][a], block[SIG][b], block[TASK][a] if scoped else None,
                block[TASK][b] if scoped else None, step.near_threshold)
        edges.append((cand[ok], sims[ok], 0))
    if step.semantic and len(reps[POS]) > 1:
        edges.append(semantic_edges(step, reps))
    if step.clustering == "union_find":
        def similarity(kind: int, pairs: np.ndarray) -> np.ndarray:
            a, b = np.searchsorted(block[POS], pairs[:, 0]), np.searchsorted(block[POS], pairs[:, 1])
            if kind == 0:
                return (block[SIG][a] == block[SIG][b]).mean(axis=1)
            return np.einsum("ij,ij->i", block[VEC][a].astype(np.float32), block[VEC][b].astype(np.float32))

        verdict = union_find_clusters(block, edges, step.keep, near=step.near, similarity=similarity)
    else:
        verdict = star_clusters(block, edges, step.keep)
    ids = dict(zip(block[POS].tolist(), block[ID].tolist()))
    for p, r in zip(alive[POS].tolist(), rep.tolist()):
        d = dup_decision(p, r, verdict, ids)
        if d is not None:
            decisions[p] = d
    figures["clusters"] = len({d[1]["duplicate_of"] for d in decisions.values() if not d[1].get("seed_task")})
    return decisions, figures


def semantic_edges(step: "DedupStep", reps: Block) -> Edges:
    """Semantic pairs among the representatives (FAISS range search over their vectors)."""
    from instructkit.steps.dedup.semantic import semantic_pairs

    order = np.argsort(reps[POS], kind="stable")
    reps = take(reps, order)
    local, sims = semantic_pairs(reps[VEC], np.arange(len(order)), step.semantic_threshold,
                                 approximate_after=step.approximate_after, nlist=step.nlist,
                                 nprobe=step.nprobe, seed=step.seed)
    if step.scope == "task" and len(local):
        same = reps[TASK][local[:, 0]] == reps[TASK][local[:, 1]]
        local, sims = local[same], sims[same]
    return reps[POS][local], sims, 1


def seed_decision(kind: str, sid: str, sim: float) -> tuple[str, dict]:
    return f"duplicate_{kind}", {"duplicate_of": f"seed_task:{sid}", "similarity": round(float(sim), 4),
                                 "seed_task": True}


def dup_decision(p: int, rep: int, verdict: dict[int, tuple[int, int, float]],
                 ids: Any) -> tuple[str, dict] | None:
    """The decision for the record at ``p`` whose exact representative is ``rep``: the
    representative's own near/semantic verdict, else an exact duplicate of it, else keep."""
    if rep in verdict:
        kind, k, sim = verdict[rep]
        name = KINDS[kind]
    elif rep != p:
        name, k, sim = "exact", rep, 1.0
    else:
        return None
    return f"duplicate_{name}", {"duplicate_of": ids[k], "similarity": round(float(sim), 4)}
