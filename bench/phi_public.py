"""Over-redaction on public medical text, which holds no PHI: what the detector takes anyway.

Two figures, both on real public data in ../shared/data:
  1. false NAME / LOCATION (and HOSPITAL) findings on the raw texts of MedQuAD (questions
     and answers), PubMedQA PQA-L (questions, abstract sections, long answers) and IU X-ray
     (findings, impressions): every such finding is counted as false;
  2. the share of records with a placeholder after the anonymize stage, forced on, over the
     records the shipped recipes build from MedQA (multiple_choice_qa), MedQuAD
     (consumer_health_qa) and PubMedQA (research_qa). Target (issue 12): at most 1%.

    python bench/phi_public.py [--records 0] [--texts 0] [--show 20]

``--records N`` / ``--texts N`` cap the records per recipe and the texts per source
(0: all).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
PLACEHOLDER = re.compile(r"\[(?:NAME|DATE|AGE|PHONE|EMAIL|URL|IP|SSN|MRN|ID|ACCOUNT|HEALTH_PLAN|"
                         r"ACCESSION|LICENSE|DEVICE_ID|VEHICLE_ID|ADDRESS|LOCATION|ZIP|HOSPITAL)\]")
RECIPES = ("multiple_choice_qa", "consumer_health_qa", "research_qa")


def public_texts(cap: int = 0) -> dict[str, list[str]]:
    """Raw texts by source (each capped at ``cap`` when > 0)."""
    import xml.etree.ElementTree as ET

    out: dict[str, list[str]] = {"medquad": [], "pubmedqa": [], "iu_xray": []}
    for folder in ("1_CancerGov_QA", "5_NIDDK_QA"):
        for f in sorted((SHARED / "medquad" / folder).glob("*.xml")):
            for pair in ET.parse(f).getroot().iter("QAPair"):
                for tag in ("Question", "Answer"):
                    t = (pair.findtext(tag) or "").strip()
                    if t:
                        out["medquad"].append(t)
    pqa = json.loads((SHARED / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    for item in pqa.values():
        out["pubmedqa"] += [item["QUESTION"], *item["CONTEXTS"], item["LONG_ANSWER"]]
    with (SHARED / "iu_xray" / "indiana_reports.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out["iu_xray"] += [t for t in (r["findings"], r["impression"]) if t.strip()]
    return {k: (v[:cap] if cap else v) for k, v in out.items()}


def false_findings(detector, texts: dict[str, list[str]], show: int) -> dict:
    res, examples = {}, Counter()
    for src, items in texts.items():
        t0 = time.perf_counter()
        found = detector.detect_many(items)
        c = Counter(f.type for fs in found for f in fs)
        res[src] = {"texts": len(items), "NAME": c["NAME"], "LOCATION": c["LOCATION"],
                    "HOSPITAL": c["HOSPITAL"], "other": sum(c.values()) - c["NAME"] - c["LOCATION"] - c["HOSPITAL"],
                    "texts_with_any": sum(1 for fs in found if fs), "seconds": round(time.perf_counter() - t0, 1)}
        for t, fs in zip(items, found):
            for f in fs:
                if f.type in ("NAME", "LOCATION", "HOSPITAL"):
                    examples[(f.type, t[f.start:f.end])] += 1
    res["total"] = {k: sum(r[k] for r in res.values()) for k in ("texts", "NAME", "LOCATION", "HOSPITAL",
                                                                   "other", "texts_with_any")}
    res["top"] = [f"{typ}:{val} x{n}" for (typ, val), n in examples.most_common(show)]
    return res


def recipe_records(name: str, limit: int) -> list[dict]:
    """The recipe's records straight from its builders (no stage run)."""
    from instructkit.context import RunContext
    from instructkit.pipeline import Pipeline
    from instructkit.recipe.load import load_recipe

    data = dict(load_recipe(name).data)
    data["stages"] = {"anonymize": False, "dedup": False, "audit": False, "bias_report": False}
    ctx = RunContext(limit=limit or None, quiet=True)
    pipe = Pipeline.from_recipe(data, limit=limit or None, context=ctx)
    builders_only = Pipeline(pipe.builders, [], context=ctx)
    try:
        return list(builders_only.records())
    finally:
        ctx.close()


def placeholder_share(stage, records: list[dict], show: int) -> dict:
    def texts(rec: dict) -> str:
        return "\n".join([rec["instruction"], rec.get("input") or "", rec["output"],
                          *(m["content"] for m in rec.get("messages") or [])])

    before = [len(PLACEHOLDER.findall(texts(r))) for r in records]
    t0 = time.perf_counter()
    out = list(stage(records))
    secs = time.perf_counter() - t0
    changed, kinds, examples = 0, Counter(), []
    for r0, r, n0 in zip(records, out, before):
        t = texts(r)
        if len(PLACEHOLDER.findall(t)) > n0:
            changed += 1
            kinds.update(m.group() for m in PLACEHOLDER.finditer(t))
            if len(examples) < show:
                m = PLACEHOLDER.search(t)
                examples.append(t[max(0, m.start() - 60):m.end() + 40].replace("\n", " "))
    return {"records": len(records), "with_placeholder": changed,
            "share": round(changed / max(1, len(records)), 4), "placeholders": dict(kinds),
            "seconds": round(secs, 1), "examples": examples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=0, help="records per recipe (0: all)")
    ap.add_argument("--texts", type=int, default=0, help="texts per source (0: all)")
    ap.add_argument("--show", type=int, default=15)
    ap.add_argument("--skip-texts", action="store_true")
    ap.add_argument("--skip-records", action="store_true")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated shipped recipes")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import logging

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from instructkit.steps.anonymize.step import AnonymizeStep

    stage = AnonymizeStep("placeholder", canary=False)
    results: dict = {}
    if not args.skip_texts:
        res = false_findings(stage.detector, public_texts(args.texts), args.show)
        results["false_findings"] = res
        print("== findings on public texts (no PHI: every NAME/LOCATION/HOSPITAL finding is false)")
        print(f"{'source':<10} {'texts':>6} {'NAME':>6} {'LOC':>6} {'HOSP':>6} {'other':>6} {'texts hit':>9}")
        for src in ("medquad", "pubmedqa", "iu_xray", "total"):
            r = res[src]
            print(f"{src:<10} {r['texts']:>6} {r['NAME']:>6} {r['LOCATION']:>6} {r['HOSPITAL']:>6} "
                  f"{r['other']:>6} {r['texts_with_any']:>9}")
        print(f"false NAME+LOCATION findings: {res['total']['NAME'] + res['total']['LOCATION']} "
              f"on {res['total']['texts']} texts")
        print("most frequent:", "; ".join(res["top"]))
    if not args.skip_records:
        print("\n== anonymize forced on over public recipes' records (target: <= 1% get a placeholder)")
        for name in filter(None, args.recipes.split(",")):
            recs = recipe_records(name, args.records)
            stage = AnonymizeStep("placeholder", detector=stage.detector, canary=False)
            r = placeholder_share(stage, recs, args.show)
            results[name] = r
            print(f"{name:<20} {r['with_placeholder']:>5} of {r['records']:>5} records "
                  f"({r['share']:.2%}) {r['placeholders']}")
            for ex in r["examples"]:
                print("     ", ex)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
