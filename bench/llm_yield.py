"""Benchmark: what the LLM builders yield on the embedded model (issue 14), and the fit of
the model-junk filters on real data.

Part 1, ``--fit`` (no model needed): real template records built from ../shared/data
(MedQuAD, PubMedQA, MedQA, IU X-ray; builders only, no anonymization) are split at random
into a fit part (2/3) and a held-out part (1/3). The relevance threshold is fitted on the
fit part (the ``--quantile`` of instruction+input / output cosines, rounded down); then
every filter of the validate stage, with the shipped defaults, is run on both parts and
its drop rate printed: each must stay at or under 1% on real data.

Part 2 (default): each mode of the LLM builders runs on the embedded SmolLM2-135M in the
same run, over the same sample documents and texts: extractive RAG and back-translation
(new), abstractive RAG, Self-Instruct and Evol-Instruct (old). For each mode: attempts,
records kept by the builder and then by the validate stage, kept per minute (wall clock
of the mode, model time included), drops by reason, and the share of kept records that
show any junk pattern -- counted by the new filters over what the *old* filters kept
("old validate") and over what the full validate stage kept (always 0 there, since the
same patterns drop them; the old-validate column is the one that says how much junk the
previous stage let through).

    python bench/llm_yield.py --fit                 # filter fit on real records (a few minutes)
    python bench/llm_yield.py --attempts 12         # yield per mode on the embedded model
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIT_RECIPES = ["consumer_health_qa", "research_qa", "multiple_choice_qa", "report_labeling",
               "impression_generation", "diagnosis"]
#: filters this issue added or changed (printed first in the fit table)
NEW_FILTERS = ["placeholders", "task_list", "label_input", "relevance", "model_artefacts",
               "repetition", "copy"]


# -- part 1: fit on real template records -----------------------------------------------------
def real_template_records(max_per_recipe: int) -> list[dict]:
    from instructkit.pipeline import Pipeline
    from instructkit.steps.base import Quarantine

    out = []
    for name in FIT_RECIPES:
        pipe = Pipeline.from_recipe(ROOT / "builders" / f"{name}.yaml")
        pipe.bind(Quarantine())
        recs = [r for b in pipe.builders for r in b.build()]
        random.Random(name).shuffle(recs)
        out += recs[:max_per_recipe] if max_per_recipe else recs
    return out


def run_filters(records: list[dict], config: dict, ctx) -> tuple[Counter, Counter]:
    """Drops per filter stage and per (stage, reason), each filter run on all records
    (not chained: a record two filters drop counts for both)."""
    from instructkit.steps.quality import quality_filters
    from instructkit.steps.base import Quarantine

    by_stage, by_reason = Counter(), Counter()
    for f in quality_filters(config, ctx):
        q = Quarantine()
        f.bind(q)
        for _ in f(iter(records)):
            pass
        for (stage, reason), n in q.counts.items():
            by_stage[stage] += n
            by_reason[(stage, reason)] += n
    return by_stage, by_reason


def fit(args) -> dict:
    from instructkit.context import RunContext
    from instructkit.steps.quality.junk import relevance_pair, relevance_scores
    from instructkit.steps.quality.settings import load_defaults

    t0 = time.perf_counter()
    records = real_template_records(args.max_per_recipe)
    rng = random.Random(args.seed)
    rng.shuffle(records)
    cut = len(records) * 2 // 3
    fit_part, held = records[:cut], records[cut:]
    print(f"real template records: {len(records)} ({', '.join(f'{t} {n}' for t, n in Counter(r['task'] for r in records).most_common())})")
    print(f"fit part {len(fit_part)}, held-out part {len(held)}; built in {time.perf_counter() - t0:.0f} s", flush=True)

    ctx = RunContext(seed=args.seed)
    rel = load_defaults()["filters"]["relevance"]
    min_words = int(rel.get("min_output_words", 3))
    # every record is scored once here (the shipped filter scores LLM-built records only)
    t1 = time.perf_counter()
    scored = [r for r in records if len(r["output"].split()) >= min_words]
    cos = dict(zip((r["id"] for r in scored),
                   relevance_scores([relevance_pair(r, int(rel.get("max_chars", 1000))) for r in scored], ctx)))
    fit_cos = sorted(cos[r["id"]] for r in fit_part if r["id"] in cos)
    q = fit_cos[int(len(fit_cos) * args.quantile)] if fit_cos else 0.0
    fitted = math.floor(q * 100) / 100
    pct = lambda p: fit_cos[int(len(fit_cos) * p)]  # noqa: E731
    print(f"\nrelevance: instruction+input vs output cosine of {len(cos)} records ({time.perf_counter() - t1:.0f} s); "
          f"fit part p0.5={pct(.005):.3f} p1={pct(.01):.3f} p5={pct(.05):.3f} median={pct(.5):.3f}")
    print(f"fitted min_cosine = {fitted:.2f} (quantile {args.quantile} of the fit part, rounded down); "
          f"shipped default: {rel.get('min_cosine')}")
    shipped = float(rel.get("min_cosine"))

    config = {"filters": {"relevance": False}}
    rows = {}
    for label, part in (("fit", fit_part), ("held-out", held)):
        n, by, reasons = len(part), *run_filters(part, config, ctx)
        low = sum(1 for r in part if cos.get(r["id"], 1.0) < shipped)
        by["validate.relevance"] = low
        if low:
            reasons[("validate.relevance", "low_relevance")] = low
        rows[label] = (n, by, reasons)
    stages = sorted({s for _, by, _ in rows.values() for s in by},
                    key=lambda s: (s.split(".")[-1] not in NEW_FILTERS, s))
    print("\n| filter | fit dropped | held-out dropped | reasons (held-out) |\n|---|---|---|---|")
    for s in [f"validate.{k}" for k in NEW_FILTERS if f"validate.{k}" not in stages] + stages:
        cells = []
        for label in ("fit", "held-out"):
            n, by, _ = rows[label]
            cells.append(f"{by.get(s, 0)} ({100 * by.get(s, 0) / max(n, 1):.2f}%)")
        reasons = ", ".join(f"{r} {c}" for (st, r), c in rows["held-out"][2].items() if st == s)
        print(f"| {s} | {cells[0]} | {cells[1]} | {reasons or '-'} |")
    for label, part in (("fit", fit_part), ("held-out", held)):
        shipped_stage = chained_drops(part, ctx, set())  # relevance scores LLM-built records only
        every = chained_drops(part, ctx, {r["id"] for r in part if cos.get(r["id"], 1.0) < shipped})
        print(f"{label}: the validate stage as shipped drops {shipped_stage} of {len(part)} "
              f"({100 * shipped_stage / max(len(part), 1):.2f}%); with relevance at {shipped} on every "
              f"record too, {every} ({100 * every / max(len(part), 1):.2f}%)")
    return {"fitted_min_cosine": fitted}


def chained_drops(records: list[dict], ctx, low_relevance: set[str]) -> int:
    """Records the stage drops, each counted once (relevance from the scores computed above)."""
    from instructkit.steps.base import Quarantine
    from instructkit.steps.quality.validate import ValidateStage

    q = Quarantine()
    stream = iter(records)
    for s in ValidateStage.from_config({"filters": {"relevance": False}}, ctx):
        s.bind(q)
        stream = s(stream)
    return len(records) - sum(1 for r in stream if r["id"] not in low_relevance)


# -- part 2: yield per mode on the embedded model ----------------------------------------------
SAMPLES = "pkg://samples"


def mode_recipes(attempts: int) -> dict[str, dict]:
    """One recipe per mode, all over the shipped samples (same documents and texts)."""
    sources = [
        {"name": "sample-health-questions", "type": "jsonl", "path": f"{SAMPLES}/health_questions.jsonl",
         "id_field": "id", "license": "Apache-2.0"},
        {"name": "sample-research-abstracts", "type": "json", "path": f"{SAMPLES}/research_abstracts.json",
         "license": "Apache-2.0"}]
    docs = [{"path": f"{SAMPLES}/guidelines", "license": "Apache-2.0"}]
    rag = {"type": "rag", "documents": docs, "n": attempts, "chunk_size": 600, "chunk_overlap": 80,
           "top_k": 3, "min_chunk_chars": 200,
           "tasks": ["guideline_qa", "recommendation_summary", "guideline_adherence"]}
    off = {"self_instruct": False}
    return {
        "extractive RAG (new)": {"builders": [{**rag, "answer_mode": "extractive"}]},
        "back-translation (new)": {"builders": [{"type": "synthetic", **off, "batch_size": 4, "backtranslate": {
            "n": attempts, "sources": [s["name"] for s in sources], "documents": docs}}]},
        "abstractive RAG (old)": {"builders": [{**rag, "answer_mode": "abstractive"}]},
        "Self-Instruct (old)": {"builders": [{"type": "synthetic", "batch_size": 4, "self_instruct": {
            "n": attempts, "max_attempts": attempts}}]},
        "Evol-Instruct (old)": {"builders": [{"type": "synthetic", **off, "batch_size": 4, "evol_instruct": {
            "n": attempts}}]},
    }, sources


def old_filters() -> dict:
    """The validate settings before issue 14: no junk filters, no relevance, meta-text only
    about the answer (the first six patterns) in instruction and output, repetition in the
    output only and no back-to-back loop check."""
    from instructkit.steps.quality.settings import load_defaults

    meta = load_defaults()["filters"]["model_artefacts"]["meta_text"][:6]
    return {"placeholders": False, "task_list": False, "label_input": False, "relevance": False,
            "repetition": {"consecutive_repeats": False, "fields": ["output"]},
            "model_artefacts": {"meta_text": meta, "meta_text_fields": ["instruction", "output"]}}


def yield_run(args) -> None:
    from instructkit.context import RunContext
    from instructkit.llm import EmbeddedServer
    from instructkit.pipeline import Pipeline
    from instructkit.recipe.load import load_recipe
    from instructkit.steps.base import Quarantine

    server = EmbeddedServer(n_threads=args.threads).start()
    try:
        recipes, sources = mode_recipes(args.attempts)
        rows = []
        for mode, part in recipes.items():
            data = {"name": "llm-yield", "seed": args.seed, "sources": sources, **part,
                    "llm": {"base_url": server.base_url, "model": server.model, "cache": False,
                            "params": {"temperature": 0.7, "max_tokens": 160}}}
            ctx = RunContext(seed=args.seed)
            cpu0, t0 = time.process_time(), time.perf_counter()
            pipe = Pipeline.from_recipe(load_recipe(data), context=ctx)
            q = Quarantine()
            pipe.bind(q)
            built = [r for b in pipe.builders for r in b.build()]
            attempts = sum(b.stats.n_in for b in pipe.builders) if "RAG" in mode else \
                sum(b.stats.n_out + sum(b.stats.dropped.values()) for b in pipe.builders)
            kept_old = _validate(built, old_filters(), ctx)
            if args.save:
                _save(args.save, mode, built)
            kept_new = _validate(built, {}, ctx, q)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            junk_old = _junk_share(kept_old, ctx)
            drops = Counter(e_reason for (_, e_reason), n in q.counts.items() for _ in range(n))
            rows.append((mode, attempts, len(built), len(kept_old), len(kept_new), wall, cpu, drops, junk_old,
                         _junk_share(kept_new, ctx)))
            ctx.close()
            print(f"[{mode}] {attempts} attempts, {len(kept_new)} kept, {wall:.0f} s", flush=True)
    finally:
        server.stop()
    print(f"\nEmbedded model {server.model}, {args.threads} llama.cpp thread(s), seed {args.seed}, "
          f"{args.attempts} attempts per mode (machine shared: wall-clock rates move with its load)\n")
    print("| mode | attempts | built | kept (old validate) | kept (validate) | kept/min | CPU s (this process) "
          "| junk among kept, old validate | junk among kept, validate | drops by reason |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode, att, built, k_old, k_new, wall, cpu, drops, j_old, j_new in rows:
        reasons = ", ".join(f"{r} {n}" for r, n in drops.most_common())
        print(f"| {mode} | {att} | {built} | {k_old} | {k_new} | {60 * k_new / wall:.1f} | {cpu:.0f} "
              f"| {_pct(j_old)} | {_pct(j_new)} | {reasons or '-'} |")


def _save(folder: str, mode: str, records: list[dict]) -> None:
    import json
    import re

    path = Path(folder) / (re.sub(r"[^a-z]+", "_", mode.lower()).strip("_") + ".jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _validate(records, filters_cfg, ctx, q=None):
    from instructkit.steps.base import Quarantine
    from instructkit.steps.quality.validate import ValidateStage

    q = q if q is not None else Quarantine()
    stream = iter(records)
    for s in ValidateStage.from_config({"filters": filters_cfg}, ctx):
        s.bind(q)
        stream = s(stream)
    return list(stream)


def _junk_share(records, ctx) -> tuple[int, int]:
    """Records that any of the model-junk checks (placeholders, task lists, label inputs,
    meta-text, loops) would drop."""
    from instructkit.steps.quality import quality_filters

    if not records:
        return (0, 0)
    keys = {"placeholders", "task_list", "label_input", "model_artefacts", "repetition"}
    bad = set()
    for f in quality_filters({}, ctx):
        if f.key not in keys:
            continue
        for r in records:
            if f.check(r) is not True:
                bad.add(r["id"])
    return (len(bad), len(records))


def _pct(pair: tuple[int, int]) -> str:
    n, d = pair
    return f"{n}/{d} ({100 * n / d:.0f}%)" if d else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit", action="store_true", help="fit and check the filters on real template records")
    ap.add_argument("--max-per-recipe", type=int, default=400, help="real records per recipe for --fit (0 = all)")
    ap.add_argument("--quantile", type=float, default=0.01, help="relevance threshold quantile for --fit")
    ap.add_argument("--attempts", type=int, default=12, help="generation attempts per mode")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--save", help="folder to write each mode's built records to (JSONL)")
    args = ap.parse_args()
    if args.fit:
        fit(args)
    else:
        yield_run(args)


if __name__ == "__main__":
    main()
