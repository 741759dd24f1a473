"""The dedup step's phases on Ray Data (the functions of ``steps/dedup/phases.py``).

- signatures: ``map_batches`` with a ``FeatureWorker`` actor (the step made once per worker);
- exact groups: hash-partition by exact hash (``repartition(keys=...)``: every row of a
  group in one block), ``exact_representatives`` per block;
- band buckets: one row per (representative, band), hash-partitioned by (band, key),
  ``bucket_pairs`` per block; duplicate pairs removed after partitioning by ``u``;
- verify: the pairs joined with the signatures (``Dataset.join``, twice: ``u`` then ``v``);
- clusters: the verified edges (O(duplicates), not O(records)) on the driver, in keep-rule
  order; semantic pairs, when on, from the representatives' vectors gathered to the driver;
- decisions: one row per dropped record (``pos, reason, duplicate_of, similarity,
  seed_task``), left-joined onto the records by position; the next segment's workers run
  the dedup filter (``DedupStep.filter_decided``) on them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from instructkit.executors.ray_workers import POS, RECORD, WorkerSpec, build_steps, decode_records, worker_context
from instructkit.steps.base import StepStats
from instructkit.steps.dedup import phases as ph

logger = logging.getLogger("instructkit")

__all__ = ["FeatureWorker", "run_dedup"]

#: fixed-width columns stored as fixed-size binary (dtype)
_WIDE = {ph.SIG: np.uint32, ph.BANDS: np.uint64, ph.VEC: np.float16, ph.SCORE: np.float32}


def to_table(block: ph.Block) -> Any:
    import pyarrow as pa

    cols = {}
    for k, v in block.items():
        if k in _WIDE:
            v = np.ascontiguousarray(v)
            cols[k] = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(v.shape[1] * v.itemsize), len(v), [None, pa.py_buffer(v.tobytes())])
        elif v.dtype == object:
            cols[k] = pa.array(v.tolist(), pa.string())
        else:
            cols[k] = pa.array(v)
    return pa.table(cols)


def to_block(table: Any, columns: list[str] | None = None) -> ph.Block:
    out: ph.Block = {}
    for k in columns or table.column_names:
        col = table[k].combine_chunks() if hasattr(table[k], "combine_chunks") else table[k]
        base = k[:-2] if k[-2:] in ("_u", "_v") and k[:-2] in _WIDE else k
        if base in _WIDE:
            out[k] = _wide(col, _WIDE[base])
        elif str(col.type) in ("string", "large_string"):
            out[k] = np.array(col.to_pylist(), dtype=object)
        else:
            out[k] = col.to_numpy(zero_copy_only=False)
    return out


def _wide(col: Any, dtype: Any) -> np.ndarray:
    """Rows of equal-width bytes (fixed-size binary, or binary after a join) as a 2-D array."""
    import pyarrow as pa

    n = len(col)
    if n == 0:
        return np.zeros((0, 1), dtype)
    if pa.types.is_fixed_size_binary(col.type):
        width = col.type.byte_width
        raw = np.frombuffer(col.buffers()[1], np.uint8)[col.offset * width:(col.offset + n) * width]
    else:
        off_type = np.int64 if pa.types.is_large_binary(col.type) else np.int32
        offsets = np.frombuffer(col.buffers()[1], off_type)[col.offset:col.offset + n + 1]
        raw = np.frombuffer(col.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    return raw.view(dtype).reshape(n, -1)


class FeatureWorker:
    """The signatures phase in a Ray actor: the dedup step made from the recipe, once."""

    def __init__(self, spec: WorkerSpec) -> None:
        import os

        if spec.cwd and os.path.isdir(spec.cwd):
            os.chdir(spec.cwd)
        self.step = build_steps(spec, [spec.dedup], worker_context(spec))[0]

    def __call__(self, batch: Any) -> Any:
        records = decode_records(batch[RECORD])
        return to_table(ph.features(self.step, records, batch[POS].to_pylist()))


# -- per-block functions (run in Ray tasks) ----------------------------------------------------
def _alive(t: Any, columns: list[str]) -> Any:
    import pyarrow.compute as pc

    return t.filter(pc.equal(t[ph.SEED_KIND], "")).select(columns)


def _seed_decisions(t: Any) -> Any:
    import pyarrow.compute as pc

    rows = t.filter(pc.not_equal(t[ph.SEED_KIND], ""))
    out = [(p, *ph.seed_decision(k, s, sim)) for p, k, s, sim in zip(
        rows[POS].to_pylist(), rows[ph.SEED_KIND].to_pylist(), rows[ph.SEED_ID].to_pylist(),
        rows[ph.SEED_SIM].to_pylist())]
    return _decision_table(out)


def _decision_table(rows: list[tuple[int, str, dict]]) -> Any:
    import pyarrow as pa

    return pa.table({POS: pa.array([r[0] for r in rows], pa.int64()),
                     "reason": pa.array([r[1] for r in rows], pa.string()),
                     "duplicate_of": pa.array([r[2]["duplicate_of"] for r in rows], pa.string()),
                     "similarity": pa.array([float(r[2]["similarity"]) for r in rows], pa.float64()),
                     "seed_task": pa.array([bool(r[2].get("seed_task")) for r in rows], pa.bool_())})


def _exact_block(t: Any, keep: Any) -> Any:
    import pyarrow as pa

    block = to_block(t)
    rep = ph.exact_representatives(block, keep)
    ids = dict(zip(block[POS].tolist(), block[ph.ID].tolist()))
    return t.append_column("rep", pa.array(rep, pa.int64())).append_column(
        "rep_id", pa.array([ids[r] for r in rep.tolist()], pa.string()))


def _reps_only(t: Any) -> Any:
    import pyarrow.compute as pc

    return t.filter(pc.equal(t["rep"], t[POS]))


def _exact_dups(t: Any) -> Any:
    import pyarrow.compute as pc

    return t.filter(pc.not_equal(t["rep"], t[POS])).select([POS, "rep", "rep_id"])


def _band_rows(t: Any, use_exact: bool) -> Any:
    import pyarrow as pa

    t = t.filter(t[ph.WORDS]) if t.num_rows else t
    cols = [POS, ph.BANDS] + ([ph.EXACT] if use_exact else [])
    b = to_block(t, cols)
    rows = ph.band_rows(b[POS], b[ph.BANDS].reshape(len(b[POS]), -1) if len(b[POS]) else
                        np.zeros((0, 1), np.uint64), b[ph.EXACT] if use_exact else None)
    return pa.table({k: pa.array(v) for k, v in rows.items()})


def _bucket_block(t: Any) -> Any:
    import pyarrow as pa

    pairs = ph.bucket_pairs(t["band"].to_numpy(), t["key"].to_numpy(), t[POS].to_numpy(),
                            t["order"].to_numpy())
    return pa.table({"u": pa.array(pairs[:, 0], pa.int64()), "v": pa.array(pairs[:, 1], pa.int64())})


def _unique_pairs(t: Any) -> Any:
    """A pair that shares several bands once (the block holds every row of its ``u``)."""
    import pyarrow as pa

    if t.num_rows == 0:
        return t
    pairs = np.unique(np.stack([t["u"].to_numpy(), t["v"].to_numpy()], axis=1), axis=0)
    return pa.table({"u": pa.array(pairs[:, 0], pa.int64()), "v": pa.array(pairs[:, 1], pa.int64())})


def _verify_block(t: Any, threshold: float, scoped: bool) -> Any:
    import pyarrow as pa

    b = to_block(t, [ph.SIG + "_u", ph.SIG + "_v", ph.TASK + "_u", ph.TASK + "_v"])
    ok, sims = ph.verify_pairs(b[ph.SIG + "_u"], b[ph.SIG + "_v"], b[ph.TASK + "_u"] if scoped else None,
                               b[ph.TASK + "_v"] if scoped else None, threshold)
    out = t.drop_columns([ph.SIG + "_u", ph.SIG + "_v"]).append_column("sim", pa.array(sims, pa.float32()))
    return out.filter(pa.array(ok, pa.bool_()))


def _cluster_keepers(t: Any) -> Any:
    """The kept record of each dropped (non seed-task) record: one per cluster, repeated."""
    import pyarrow.compute as pc

    return t.filter(pc.invert(t["seed_task"])).select(["duplicate_of"])


def _resolve(ref: Any) -> Any:
    """A broadcast value (Ray may already have resolved the reference)."""
    import ray

    return ray.get(ref) if isinstance(ref, ray.ObjectRef) else ref


def _dup_decisions(t: Any, ref: Any) -> Any:
    verdict, keeper_ids = _resolve(ref)
    rows = []
    ids = dict(zip(t["rep"].to_pylist(), t["rep_id"].to_pylist()))
    ids.update(keeper_ids)
    for p, r in zip(t[POS].to_pylist(), t["rep"].to_pylist()):
        d = ph.dup_decision(p, r, verdict, ids)
        if d is not None:
            rows.append((p, *d))
    return _decision_table(rows)


# -- the plan ---------------------------------------------------------------------------------
def run_dedup(records: Any, spec: WorkerSpec, step: Any, *, workers: int, partitions: int,
              batch_size: int, pool: dict[str, Any]) -> tuple[Any, StepStats]:
    """Decide over ``records`` (rows ``pos, record``); returns the records left-joined with
    their decisions, and the driver's share of the step's figures."""
    import ray

    started = time.perf_counter()
    P = max(1, int(partitions))
    feats = records.map_batches(FeatureWorker, fn_constructor_kwargs={"spec": spec}, **pool,
                                batch_size=batch_size, batch_format="pyarrow").materialize()
    _t("signatures", started)
    keep_cols = list(ph.KEEP_COLUMNS) + [ph.TASK]
    near_cols = [ph.WORDS, ph.BANDS] if step.near else []
    cols = keep_cols + ([ph.EXACT] if step.exact else []) + near_cols
    alive = feats.map_batches(_alive, fn_kwargs={"columns": cols}, batch_format="pyarrow")
    decision_parts = [feats.map_batches(_seed_decisions, batch_format="pyarrow")]
    if step.exact:
        grouped = alive.repartition(P, keys=[ph.EXACT]).map_batches(
            _exact_block, fn_kwargs={"keep": step.keep}, batch_size=None, batch_format="pyarrow").materialize()
        reps = grouped.map_batches(_reps_only, batch_format="pyarrow")
        dups = grouped.map_batches(_exact_dups, batch_format="pyarrow")
    else:
        reps, dups = alive, None
    n_reps = reps.count()
    _t("exact groups", started)
    edges: list[ph.Edges] = []
    nodes: list[ph.Block] = []
    figures: dict[str, int] = {}
    if step.near and n_reps > 1:
        rows = reps.map_batches(_band_rows, fn_kwargs={"use_exact": step.exact}, batch_format="pyarrow")
        cand = (rows.repartition(P, keys=["band", "key"])
                .map_batches(_bucket_block, batch_size=None, batch_format="pyarrow")
                .repartition(P, keys=["u"])
                .map_batches(_unique_pairs, batch_size=None, batch_format="pyarrow")).materialize()
        figures["candidate_pairs"] = cand.count()
        _t("band buckets", started)
        sigs = feats.select_columns([POS, ph.SIG, ph.TASK, *ph.KEEP_COLUMNS[1:]])
        joined = (cand.join(sigs, "inner", P, on=("u",), right_on=(POS,))
                  .join(sigs, "inner", P, on=("v",), right_on=(POS,), left_suffix="_u", right_suffix="_v"))
        verified = joined.map_batches(_verify_block, fn_kwargs={"threshold": step.near_threshold,
                                                                "scoped": step.scope == "task"},
                                      batch_format="pyarrow")
        table = _gather(verified)
        _t("verify", started)
        if table is not None and table.num_rows:
            b = to_block(table)
            pairs = np.stack([b["u"], b["v"]], axis=1)
            order = np.lexsort((pairs[:, 1], pairs[:, 0]))  # the order the in-memory plan has
            edges.append((pairs[order], b["sim"][order].astype(np.float32), 0))
            for side in ("u", "v"):
                nodes.append({POS: b[side], **{c: b[f"{c}_{side}"] for c in ph.KEEP_COLUMNS[1:]}})
    if step.semantic and n_reps > 1:
        vec_cols = [*ph.KEEP_COLUMNS, ph.TASK, ph.VEC]
        if step.exact:
            vecs = reps.select_columns([POS]).join(feats.select_columns(vec_cols), "inner", P, on=(POS,))
        else:
            vecs = feats.map_batches(_alive, fn_kwargs={"columns": vec_cols}, batch_format="pyarrow")
        rb = to_block(_gather(vecs))
        edges.append(ph.semantic_edges(step, rb))
        nodes.append({c: rb[c] for c in ph.KEEP_COLUMNS})
    node_block = _unique_nodes(nodes)
    if step.clustering == "union_find":
        verdict = ph.union_find_clusters(node_block, edges, step.keep, near=step.near,
                                         similarity=lambda kind, pairs: _similarities(feats, pairs, kind, P))
    else:
        verdict = ph.star_clusters(node_block, edges, step.keep)
    keeper_ids = dict(zip(node_block[POS].tolist(), node_block[ph.ID].tolist())) if len(node_block) else {}
    verdict_ref = ray.put((verdict, keeper_ids))
    decision_parts.append(reps.select_columns([POS]).map_batches(
        _rep_decisions, fn_kwargs={"ref": verdict_ref}, batch_format="pyarrow"))
    if dups is not None:
        decision_parts.append(dups.map_batches(_dup_decisions, fn_kwargs={"ref": verdict_ref},
                                               batch_format="pyarrow"))
    _t("clusters", started)
    decisions = decision_parts[0].union(*decision_parts[1:]).materialize()
    _t("decisions", started)
    kept_of = _gather(decisions.map_batches(_cluster_keepers, batch_format="pyarrow"))
    figures["clusters"] = len(set(kept_of["duplicate_of"].to_pylist())) if kept_of is not None else 0
    joined_records = records.join(decisions, "left_outer", P, on=(POS,))
    driver = StepStats(step.name, seconds=time.perf_counter() - started,
                       extra={"clusters_with_duplicates": figures["clusters"],
                              **({"near_candidate_pairs": figures["candidate_pairs"]}
                                 if "candidate_pairs" in figures else {})})
    return joined_records, driver


def _t(phase: str, started: float) -> None:
    logger.debug("dedup on ray: %s done at %.1fs", phase, time.perf_counter() - started)


def _rep_decisions(t: Any, ref: Any) -> Any:
    verdict, ids = _resolve(ref)
    rows = []
    for p in t[POS].to_pylist():
        d = ph.dup_decision(p, p, verdict, ids)
        if d is not None:
            rows.append((p, *d))
    return _decision_table(rows)


def _gather(ds: Any) -> Any:
    import pyarrow as pa
    import ray

    tables = [ray.get(r) for r in ds.to_arrow_refs()]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else None


def _unique_nodes(nodes: list[ph.Block]) -> ph.Block:
    if not nodes:
        return {}
    block = ph.concat_blocks(nodes)
    _, first = np.unique(block[POS], return_index=True)
    return ph.take(block, first)


def _similarities(feats: Any, pairs: np.ndarray, kind: int, P: int) -> np.ndarray:
    """Similarity of arbitrary pairs (union-find keepers), from the features by a join."""
    import pyarrow as pa
    import ray.data

    col = ph.SIG if kind == 0 else ph.VEC
    want = ray.data.from_arrow(pa.table({"u": pairs[:, 0], "v": pairs[:, 1], "i": np.arange(len(pairs))}))
    side = feats.select_columns([POS, col])
    joined = (want.join(side, "inner", P, on=("u",), right_on=(POS,))
              .join(side, "inner", P, on=("v",), right_on=(POS,), left_suffix="_u", right_suffix="_v"))
    b = to_block(_gather(joined))
    out = np.empty(len(pairs))
    a, c = b[col + "_u"], b[col + "_v"]
    if kind == 0:
        out[b["i"]] = (a == c).mean(axis=1)
    else:
        out[b["i"]] = np.einsum("ij,ij->i", a.astype(np.float32), c.astype(np.float32))
    return out
