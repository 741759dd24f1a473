"""The dedup phases (signatures, exact groups, band buckets, verify, clusters, filter) keep
the same records as the dedup step did before it was split into phases (frozen in
``tests/dedup_reference.py``), and give the same answer on any hash partitioning of their
input, which is what lets the Ray executor run them distributed."""

from __future__ import annotations

import random
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_file
from instructkit.records import make_record
from instructkit.steps.base import Quarantine
from instructkit.steps.dedup import DedupStage, DedupStep
from instructkit.steps.dedup import phases
from instructkit.steps.dedup.keep import KeepRule

sys.path.insert(0, str(Path(__file__).parent))
from dedup_reference import ReferenceDedupStep  # noqa: E402

pytestmark = pytest.mark.timeout(600)


def _rec(output: str, i: int, *, task: str = "qa", method: str = "template", inp: str = "",
         score: float | None = None) -> dict:
    prov = {"builder": method, "seed": 0, "template_id": "qa", "template_hash": "0" * 16}
    meta = {"judge": {"score": score}} if score is not None else None
    return make_record(task=task, method=method, instruction="Answer the question.", input=inp,
                       output=output, source={"name": "t", "license": "CC-BY-4.0", "record_id": f"r{i}"},
                       provenance=prov, meta=meta)


def _edit(text: str, rate: float, rng: random.Random) -> str:
    words = text.split()
    for _ in range(max(1, int(len(words) * rate))):
        j = rng.randrange(len(words))
        words[j] = rng.choice(["the", "a", "patients", "often", "may", "treatment", "cells"])
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    """~1,850 records from real MedQuAD answers with planted exact copies, near copies at
    several edit rates, chains (A~B, B~C), 120 near-identical short records
    (over the 64-member bucket limit), a second task with the same texts, and mixed methods
    and judge scores so the keep rule has work to do."""
    rng = random.Random(7)
    answers = []
    for d in ("medquad/5_NIDDK_QA", "medquad/1_CancerGov_QA"):
        for f in sorted(shared_file(d).glob("*.xml"))[:120]:
            for a in ET.parse(f).getroot().iter("Answer"):
                text = " ".join((a.text or "").split())
                if 30 <= len(text.split()) <= 300:
                    answers.append(text)
    answers = answers[:900]
    recs, i = [], 0
    for a in answers:
        recs.append(_rec(a, i, method=rng.choice(["template", "template", "synthetic", "rag"]),
                         score=rng.choice([None, 3.0, 4.5])))
        i += 1
    for a in rng.sample(answers, 150):  # exact copies (case and punctuation only)
        recs.append(_rec(a.upper().replace(",", " "), i, method=rng.choice(["template", "synthetic"])))
        i += 1
    for a in rng.sample(answers, 300):  # near copies
        recs.append(_rec(_edit(a, rng.choice([0.03, 0.08, 0.15]), rng), i, score=rng.choice([None, 5.0])))
        i += 1
    for a in rng.sample(answers, 40):  # chains: each link a few edits from the previous one
        b = _edit(a, 0.12, rng)
        recs += [_rec(b, i), _rec(_edit(b, 0.12, rng), i + 1)]
        i += 2
    base = ("Call your health care provider if the symptoms do not go away after a few days of rest "
            "and fluids, or if you notice blood in the urine, a high fever, severe pain in the back "
            "or side, or vomiting that keeps you from drinking")
    for k in range(120):  # near-identical short records: buckets over the 64-member limit
        recs.append(_rec(f"{base} (note {k})", i))
        i += 1
    for a in rng.sample(answers, 120):  # the same text under another task: not a duplicate by default
        recs.append(_rec(a, i, task="qa_other"))
        i += 1
    rng.shuffle(recs)
    return recs


def _run(step, records):
    q = Quarantine()
    step.bind(q)
    kept = [r["id"] for r in step(records)]
    drops = sorted((e["record_id"], e["reason"], e["duplicate_of"], e["similarity"]) for e in q.entries)
    return kept, drops


CONFIGS = [
    {},
    {"clustering": "union_find"},
    {"scope": "all", "keep": {"order": ["judge_score", "output_length"]}},
    {"exact": False, "near": {"threshold": 0.6}},
    {"near": False},
    {"near": {"threshold": 0.8, "num_perm": 64, "shingle_size": 2}},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(c) or "defaults")
def test_phases_keep_what_the_step_kept_before(corpus, config):
    new = DedupStage.dedup_step(config, _ctx())
    kwargs = {k: getattr(new, k) for k in ("exact", "exact_fields", "near", "keep", "clustering", "scope")}
    ref = ReferenceDedupStep(**kwargs, near_threshold=new.near_threshold, near_fields=new.near_fields,
                             near_min_words=new.near_min_words,
                             num_perm=new.minhasher.num_perm if new.near else 128,
                             shingle_size=new.minhasher.shingle_size if new.near else 1)
    kept_new, drops_new = _run(new, corpus)
    kept_ref, drops_ref = _run(ref, corpus)
    assert kept_new == kept_ref
    assert drops_new == drops_ref
    assert len(drops_new) > (100 if config.get("near") is not False else 50)
    assert new.summary()["duplicates"] == {k: ref.counts.get(k, 0) for k in ("exact", "near", "semantic")}
    assert new.clusters == ref.clusters


def test_pairs_verified_a_chunk_at_a_time_decide_the_same(corpus, monkeypatch):
    """Verify gathers the pairs' signatures a chunk at a time (at 1M records, all at once took
    6.9 GB); chunks of 7 pairs decide exactly as one chunk does."""
    whole = _run(DedupStage.dedup_step({}, _ctx()), corpus)
    monkeypatch.setattr(phases, "VERIFY_CHUNK", 7)
    assert _run(DedupStage.dedup_step({}, _ctx()), corpus) == whole


def _ctx():
    from instructkit.context import RunContext

    return RunContext()


def _partition(block: phases.Block, key: np.ndarray, parts: int) -> list[phases.Block]:
    """Hash-partition rows by ``key`` (what Ray's repartition(keys=...) does), shuffled inside."""
    h = (key.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    rng = np.random.default_rng(0)
    out = []
    for p in range(parts):
        rows = np.flatnonzero(h % np.uint64(parts) == p)
        out.append(phases.take(block, rng.permutation(rows)))
    return out


def test_phases_on_hash_partitions_equal_one_block(corpus):
    step = DedupStep()
    block = phases.features(step, corpus, range(len(corpus)))
    whole = phases.exact_representatives(block, step.keep)
    parts = _partition(block, block[phases.EXACT].view(np.uint64), 5)
    rep = {int(p): int(r) for b in parts
           for p, r in zip(b[phases.POS], phases.exact_representatives(b, step.keep))}
    assert [rep[int(p)] for p in block[phases.POS]] == whole.tolist()

    rows = phases.band_rows(block[phases.POS], block[phases.BANDS], block[phases.EXACT])
    all_pairs = phases.bucket_pairs(rows["band"], rows["key"], rows["pos"], rows["order"])
    combined = rows["key"] ^ rows["band"].astype(np.uint64)
    parts = _partition(rows, combined, 4)
    split = np.unique(np.concatenate([phases.bucket_pairs(b["band"], b["key"], b["pos"], b["order"]) for b in parts]), axis=0)
    assert np.array_equal(split, all_pairs) and len(all_pairs) > 100
    # the local executor's band-at-a-time pairs: the same set without the records x bands rows
    assert np.array_equal(phases.band_pairs(block[phases.BANDS], block[phases.POS], block[phases.EXACT]), all_pairs)


def test_star_clusters_follow_the_keep_rule_and_never_chain():
    # 0~1, 1~2 (0 and 2 not similar): star keeps the best (0), drops 1, keeps 2
    nodes = {phases.POS: np.array([10, 11, 12]), phases.ID: np.array(["c", "b", "a"], dtype=object),
             phases.METHOD: np.zeros(3, np.int8), phases.OUT_LEN: np.array([30, 20, 10], np.int32),
             phases.SCORE: np.full(3, np.nan, np.float32)}
    edges = [(np.array([[10, 11], [11, 12]]), np.array([0.8, 0.9], np.float32), 0)]
    verdict = phases.star_clusters(nodes, edges, KeepRule())
    assert set(verdict) == {11} and verdict[11][:2] == (0, 10)
    sims = lambda kind, pairs: np.full(len(pairs), 0.5)  # noqa: E731
    uf = phases.union_find_clusters(nodes, edges, KeepRule(), near=True, similarity=sims)
    assert set(uf) == {11, 12} and uf[12] == (0, 10, 0.5)


def test_bucket_pairs_cap_large_buckets():
    n = 100
    pos = np.arange(n, dtype=np.int64)
    pairs = phases.bucket_pairs(np.zeros(n, np.int16), np.zeros(n, np.uint64), pos)
    assert len(pairs) == 2 * (n - 1) - 1  # a chain plus a star, not n*(n-1)/2
    small = phases.bucket_pairs(np.zeros(5, np.int16), np.zeros(5, np.uint64), pos[:5])
    assert len(small) == 10
