"""Benchmark: instructkit dedup (exact + near) against datasketch MinHash + MinHashLSH.

Corpus from real text in ../shared/data (MedQuAD answers, PubMedQA contexts and long
answers, IU X-ray findings), exact-deduplicated after normalisation; when a size needs
more documents than that, extra documents are made of 3-8 random real sentences. Natural
near-duplicates among these base documents (shingle Jaccard >= threshold - 0.2, checked exactly)
are removed so that precision counts merges of genuinely distinct documents. Into it
we plant

- exact duplicates (verbatim, or with case / whitespace / punctuation changes only), and
- near duplicates with known word edits (substitutions, insertions, deletions) at
  2-15% of words, plus case / whitespace / punctuation changes at 2-15% of words.

Both methods run on the same corpus in the same run, each in a fresh subprocess (so peak
memory is each method's own): instructkit's ``DedupStep`` (vectorised numpy MinHash,
sorted LSH band keys) and the baseline: a dict of normalised-text hashes for exact
duplicates plus datasketch ``MinHash`` / ``MinHashLSH`` with the same permutations,
shingles, threshold and bands x rows, records queried and inserted one by one, candidates
verified on the MinHash estimate like ours. Printed: records/s, peak RSS above the loaded
corpus, recall per kind and per edit-rate band, precision per kind.

A dropped record is a correct drop when it and the record it was merged into come from
the same original document ("strict"), or their true word-shingle Jaccard is at least
the threshold (real near-duplicates already in the data, e.g. boilerplate X-ray reports).

Semantic section (``bench/semantic_dedup.py``): planted paraphrase pairs, recall and
precision for every embedder backend, and static candidates verified on MiniLM.

    python bench/dedup.py                       # 10k and 100k records, then the semantic section
    python bench/dedup.py --sizes 10000 --no-baseline
    python bench/dedup.py --semantic-only --semantic-base 2000
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import pickle
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))


# -- corpus ------------------------------------------------------------------------------------
def real_documents(include_reports: bool = True) -> list[str]:
    docs: list[str] = []
    for f in sorted(glob.glob(str(DATA / "medquad" / "*" / "*.xml"))):
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError:
            continue
        docs += [a.text.strip() for a in root.iter("Answer") if a.text and len(a.text.split()) >= 8]
    pq = DATA / "pubmedqa" / "ori_pqal.json"
    if pq.is_file():
        for item in json.loads(pq.read_text(encoding="utf-8")).values():
            docs.append(" ".join(item.get("CONTEXTS") or []))
            if item.get("LONG_ANSWER"):
                docs.append(item["LONG_ANSWER"])
    iu = DATA / "iu_xray" / "indiana_reports.csv"
    if iu.is_file() and include_reports:
        with iu.open(encoding="utf-8", newline="") as fh:
            docs += [r["findings"] for r in csv.DictReader(fh) if len((r["findings"] or "").split()) >= 8]
    from instructkit.steps.dedup.text import normalize

    seen, unique = set(), []
    for d in docs:
        key = normalize(d)
        if key and key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


def distinct_documents(docs: list[str], max_jaccard: float, shingle: int = 2) -> list[str]:
    """Drop documents whose true word-shingle Jaccard with an earlier one is >= max_jaccard.

    The real data has natural near-duplicates (boilerplate X-ray reports, repeated
    MedQuAD paragraphs); removing them first makes precision measure false merges of
    distinct documents. Candidates come from a low-threshold LSH pass; every candidate
    pair is checked with the exact Jaccard of the shingle sets.
    """
    from instructkit.steps.dedup.minhash import (MinHasher, band_keys, lsh_candidate_pairs,
                                           optimal_bands)
    from instructkit.steps.dedup.text import hash_words, normalize

    import numpy as np

    norm = [normalize(d) for d in docs]
    mh = MinHasher(128, shingle, seed=99)
    sigs = np.concatenate([mh.signatures(*hash_words(norm[s:s + 2000]), len(norm[s:s + 2000]))[0]
                           for s in range(0, len(norm), 2000)])
    b, r = optimal_bands(max_jaccard - 0.1, 128)
    pairs = lsh_candidate_pairs(band_keys(sigs, b, r), np.arange(len(docs)))
    # the exact check is costly in Python: skip pairs whose estimate is far below the bar
    from instructkit.steps.dedup.minhash import signature_similarity

    pairs = pairs[signature_similarity(sigs, pairs) >= max_jaccard - 0.15]

    import functools

    @functools.lru_cache(maxsize=None)
    def sh(i):
        w = norm[i].split()
        return {tuple(w[j:j + shingle]) for j in range(len(w) - shingle + 1)} or {tuple(w)}

    removed = set()
    for i, j in pairs.tolist():
        if i in removed or j in removed:
            continue
        a, c = sh(i), sh(j)
        if len(a & c) / len(a | c) >= max_jaccard:
            removed.add(j)
    return [d for k, d in enumerate(docs) if k not in removed]


_PUNCT = ".,;:!?()-"


def cosmetic(words: list[str], rate: float, rng: random.Random) -> list[str]:
    out = list(words)
    for i in range(len(out)):
        if rng.random() < rate:
            op = rng.randrange(4)
            w = out[i]
            out[i] = (w.upper() if op == 0 else w.lower() if op == 1 else
                      w + rng.choice(_PUNCT) if op == 2 else "  " + w + " \t")
    return out


def edit(words: list[str], rate: float, vocab: list[str], rng: random.Random) -> tuple[list[str], int]:
    n = max(1, round(rate * len(words)))
    out = list(words)
    for _ in range(n):
        op = rng.randrange(3)
        pos = rng.randrange(len(out))
        if op == 0:
            out[pos] = rng.choice(vocab)
        elif op == 1:
            out.insert(pos, rng.choice(vocab))
        elif len(out) > 2:
            del out[pos]
    return out, n


def make_corpus(size: int, seed: int = 0, threshold: float = 0.7, shingle: int = 1) -> dict:
    rng = random.Random(seed)
    real = real_documents()
    sentences = sorted({s.strip() for d in real for s in re.split(r"(?<=[.!?])\s+", d)
                        if len(s.split()) >= 5})
    vocab = sorted({w for d in real[:3000] for w in re.findall(r"[A-Za-z]{3,}", d)})
    n_exact, n_near = int(size * 0.05), int(size * 0.10)
    n_base = size - n_exact - n_near
    base = list(real)
    rng.shuffle(base)
    base = base[:n_base]
    extra = 0
    while True:
        while len(base) < n_base + extra:  # composite documents of real sentences
            base.append(" ".join(rng.sample(sentences, rng.randint(3, 8))))
        base = distinct_documents(base, max_jaccard=threshold - 0.2, shingle=shingle)
        if len(base) >= n_base:
            break
        extra = (n_base - len(base)) // 4 + 10  # refill past the gap, then check again
    base = base[:n_base]
    texts = list(base)
    family = list(range(n_base))
    kind = ["base"] * n_base
    edit_rate = [0.0] * n_base
    for _ in range(n_exact):
        b = rng.randrange(n_base)
        words = base[b].split()
        texts.append(base[b] if rng.random() < 0.5 else " ".join(cosmetic(words, rng.uniform(0.02, 0.15), rng)))
        family.append(b), kind.append("exact"), edit_rate.append(0.0)
    for _ in range(n_near):
        b = rng.randrange(n_base)
        words = base[b].split()
        rate = rng.uniform(0.02, 0.15)
        edited, n = edit(words, rate, vocab, rng)
        texts.append(" ".join(cosmetic(edited, rng.uniform(0.02, 0.15), rng)))
        family.append(b), kind.append("near"), edit_rate.append(n / len(words))
    order = list(range(size))
    rng.shuffle(order)
    return {"texts": [texts[i] for i in order], "family": [family[i] for i in order],
            "kind": [kind[i] for i in order], "edit_rate": [edit_rate[i] for i in order],
            "n_real": len(set(base) & set(real))}


# -- workers (run in a subprocess each) --------------------------------------------------------
def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM), so the peak measured is the method's own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_instructkit(texts: list[str], params: dict) -> tuple[list[tuple[int, str]], dict]:
    from instructkit.steps.dedup.stage import DedupStep
    from instructkit.steps.base import Quarantine

    records = [{"id": f"{i:024x}", "method": "template", "instruction": "", "input": "",
                "output": t} for i, t in enumerate(texts)]
    step = DedupStep(fields=("output",), near_threshold=params["threshold"],
                     num_perm=params["num_perm"], shingle_size=params["shingle"],
                     bands=params["bands"], rows=params["rows"],
                     spill_after=len(records) + 1, batch_size=2048)
    q = Quarantine()
    step.bind(q)
    kept = sum(1 for _ in step(records))
    drops = [(int(e["record_id"], 16), e["reason"].split("_")[-1], int(e["duplicate_of"], 16))
             for e in q.entries]
    return drops, {"kept": kept}


def run_datasketch(texts: list[str], params: dict) -> tuple[list, dict]:
    import hashlib

    from datasketch import MinHash, MinHashLSH

    from instructkit.steps.dedup.text import normalize

    k, t, p = params["shingle"], params["threshold"], params["num_perm"]
    lsh = MinHashLSH(threshold=t, num_perm=p, params=(params["bands"], params["rows"]))
    exact: dict[bytes, int] = {}
    hashes: dict[int, MinHash] = {}
    drops = []
    for i, text in enumerate(texts):
        norm = normalize(text)
        h = hashlib.blake2b(norm.encode(), digest_size=8).digest()
        if h in exact:
            drops.append((i, "exact", exact[h]))
            continue
        exact[h] = i
        words = norm.split()
        shingles = {" ".join(words[j:j + k]) for j in range(len(words) - k + 1)} or set(words)
        m = MinHash(num_perm=p, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles])
        match = None
        for c in sorted(lsh.query(m)):
            if m.jaccard(hashes[c]) >= t:
                match = c
                break
        if match is not None:
            drops.append((i, "near", match))  # merged into the earlier (kept) record
            continue
        lsh.insert(i, m)
        hashes[i] = m
    return drops, {}


def worker(method: str, corpus_path: str, params: dict) -> None:
    with open(corpus_path, "rb") as fh:
        texts = pickle.load(fh)["texts"]
    import gc

    fn = run_instructkit if method == "instructkit" else run_datasketch
    # imports and first-call set-up are not throughput: warm each method up on a slice
    fn(texts[:500], params)
    gc.collect()
    _reset_peak()
    rss0 = _status_mb("VmRSS")
    t0 = time.perf_counter()
    drops, extra = fn(texts, params)
    seconds = time.perf_counter() - t0
    print(json.dumps({"drops": drops, "seconds": seconds, "peak_mb": _peak_mb() - rss0, **extra}))


# -- evaluation --------------------------------------------------------------------------------
def evaluate(corpus: dict, drops: list, threshold: float, shingle: int) -> dict:
    from instructkit.steps.dedup.text import normalize

    n = len(corpus["texts"])
    fam, kinds, rates = corpus["family"], corpus["kind"], corpus["edit_rate"]
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    by_kind: dict[str, list[bool]] = {}
    for d, kind, k in drops:
        parent[find(d)] = find(k)

    def shingles(i):
        w = normalize(corpus["texts"][i]).split()
        return {tuple(w[j:j + shingle]) for j in range(len(w) - shingle + 1)} or {tuple(w)}

    for d, kind, k in drops:
        if fam[d] == fam[k]:
            by_kind.setdefault(kind, []).append(True)
        else:
            a, b = shingles(d), shingles(k)
            by_kind.setdefault(kind, []).append(len(a & b) / len(a | b) >= threshold)
            by_kind.setdefault(kind + "_strict_fail", []).append(True)
    base_of = {}
    for i in range(n):
        if kinds[i] == "base":
            base_of[fam[i]] = i
    out = {}
    for kind in ("exact", "near"):
        found = [find(i) == find(base_of[fam[i]]) for i in range(n) if kinds[i] == kind]
        out[f"recall_{kind}"] = sum(found) / max(1, len(found))
    bands = [(0.0, 0.05), (0.05, 0.10), (0.10, 0.16)]
    for lo, hi in bands:
        found = [find(i) == find(base_of[fam[i]]) for i in range(n)
                 if kinds[i] == "near" and lo < rates[i] <= hi]
        out[f"recall_near_{int(lo*100)}-{int(min(hi, .15)*100)}%"] = (sum(found) / max(1, len(found)), len(found))
    for kind in ("exact", "near"):
        v = by_kind.get(kind, [])
        strict_fail = len(by_kind.get(kind + "_strict_fail", []))
        out[f"precision_{kind}"] = sum(v) / max(1, len(v))
        out[f"precision_{kind}_strict"] = (len(v) - strict_fail) / max(1, len(v))
        out[f"dropped_{kind}"] = len(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--shingle", type=int, default=None)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--semantic-base", type=int, default=1500,
                    help="Base documents per semantic corpus (tuning and held-out); 0 skips the section.")
    ap.add_argument("--semantic-share", type=float, default=0.2, help="Share of base documents given a paraphrase.")
    ap.add_argument("--semantic-only", action="store_true", help="Run only the semantic section.")
    ap.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8", "static"])
    ap.add_argument("--_worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        method, corpus_path, params = args._worker
        worker(method, corpus_path, json.loads(params))
        return
    if not DATA.is_dir():
        sys.exit(f"real data folder {DATA} is absent")
    if args.semantic_only:
        semantic_section(args)
        return
    from instructkit.steps.dedup import DEFAULT_NEAR_THRESHOLD, DEFAULT_SHINGLE_SIZE
    from instructkit.steps.dedup.minhash import optimal_bands

    threshold = args.threshold or DEFAULT_NEAR_THRESHOLD
    shingle = args.shingle or DEFAULT_SHINGLE_SIZE
    bands, rows = optimal_bands(threshold, args.num_perm)
    params = {"threshold": threshold, "num_perm": args.num_perm, "shingle": shingle,
              "bands": bands, "rows": rows}
    print(f"near-dup parameters: Jaccard >= {threshold}, {args.num_perm} permutations, word "
          f"{shingle}-gram shingles, {bands} bands x {rows} rows (same for both methods)")
    for size in args.sizes:
        corpus = make_corpus(size, args.seed, threshold, shingle)
        with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as fh:
            pickle.dump(corpus, fh)
            path = fh.name
        print(f"\n== {size:,} records ({corpus['n_real']:,} real documents, "
              f"{corpus['kind'].count('exact'):,} planted exact, {corpus['kind'].count('near'):,} "
              f"planted near duplicates)")
        results = {}
        try:
            for method in ["instructkit"] + ([] if args.no_baseline else ["datasketch"]):
                proc = subprocess.run([sys.executable, __file__, "--_worker", method, path,
                                       json.dumps(params)], capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:])
                    raise SystemExit(f"{method} worker failed")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                res.update(evaluate(corpus, res.pop("drops"), threshold, shingle))
                results[method] = res
        finally:
            os.unlink(path)
        keys = [k for k in results["instructkit"] if k not in ("kept",)]
        print(f"{'':34}" + "".join(f"{m:>16}" for m in results))
        for k in ["records/s"] + keys:
            row = []
            for m, r in results.items():
                v = size / r["seconds"] if k == "records/s" else r[k]
                if isinstance(v, (list, tuple)):
                    v = f"{v[0]:.4f} (n={v[1]})"
                elif isinstance(v, float):
                    v = f"{v:,.1f}" if k in ("records/s", "seconds", "peak_mb") else f"{v:.4f}"
                row.append(f"{v:>16}")
            print(f"{k:34}" + "".join(row))
        if "datasketch" in results:
            speedup = results["datasketch"]["seconds"] / results["instructkit"]["seconds"]
            print(f"{'speed-up vs datasketch':34}{speedup:>16.1f}x")
    if args.semantic_base:
        semantic_section(args)


def semantic_section(args: argparse.Namespace) -> None:
    from bench.semantic_dedup import run
    from instructkit.steps.dedup import DEFAULT_SEMANTIC_THRESHOLD

    docs = [d for d in real_documents(include_reports=False) if len(d.split()) >= 20]
    docs = distinct_documents(docs, max_jaccard=0.5, shingle=1)
    print(f"\n== semantic dedup: default threshold cosine {DEFAULT_SEMANTIC_THRESHOLD}")
    run(docs, n_base=args.semantic_base, share=args.semantic_share, seed=args.seed,
        threshold=DEFAULT_SEMANTIC_THRESHOLD, backends=args.backends)


if __name__ == "__main__":
    main()
