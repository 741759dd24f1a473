"""Placeholders the anonymize stage puts into public records (issue 12: at most 1%).

Public exam questions (MedQA), consumer-health answers (MedQuAD) and research abstracts
(PubMedQA) hold no PHI. The shipped recipes declare them ``phi: false``; here the anonymize
stage is forced on anyway, over the records their builders make, and every record that gets a
placeholder in any of its texts (instruction, input, output, messages, meta, context ...) is
counted as over-redacted.

Each recipe's records are split in two by a hash of the record id: ``tune`` (what the detector's
public-text rules were tuned on) and ``held-out`` (never looked at while tuning). Both figures
are printed, side by side with the same figures of a baseline revision of the code, run in the
same invocation from ``git archive <rev>`` in a subprocess (default: main before this work).

    python bench/phi_placeholders.py [--records 0] [--recipes ...] [--baseline-rev REV|none] [--show 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\[(?:NAME|DATE|AGE|PHONE|EMAIL|URL|IP|SSN|MRN|ID|ACCOUNT|HEALTH_PLAN|"
                         r"ACCESSION|LICENSE|DEVICE_ID|VEHICLE_ID|ADDRESS|LOCATION|ZIP|HOSPITAL)\]")
RECIPES = ("multiple_choice_qa", "consumer_health_qa", "research_qa")
#: main before the public-text precision work of issue 12 (the "before" of this bench)
BASELINE_REV = "1f0f152"
SPLITS = ("tune", "held-out")


def split_of(record_id: str) -> str:
    """``tune`` or ``held-out``, fixed by the record id (half and half)."""
    return SPLITS[hashlib.sha256(record_id.encode("utf-8")).digest()[0] & 1]


def recipe_records(name: str, limit: int) -> tuple[list[dict], list]:
    """The recipe's records straight from its builders (no stage run), and its declared
    sources (their citations and urls are the recipe's own text, which a build's anonymize
    stage leaves alone, as here)."""
    from instructkit.context import RunContext
    from instructkit.pipeline import Pipeline
    from instructkit.recipe.load import load_recipe

    data = dict(load_recipe(name).data)
    data["stages"] = {"anonymize": False, "dedup": False, "audit": False, "bias_report": False}
    ctx = RunContext(limit=limit or None, quiet=True)
    pipe = Pipeline.from_recipe(data, limit=limit or None, context=ctx)
    try:
        return list(Pipeline(pipe.builders, [], context=ctx).records()), list(data.get("sources") or ())
    finally:
        ctx.close()


def _leaves(value, top: str | None = None, group: str | None = None) -> list[str]:
    """Every string of a record (``group``: only under ``source`` or only outside it)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in ("id", "sha256", "hash")
                and (top is not None or group is None or (k == "source") == (group == "source"))
                for s in _leaves(v, k if top is None else top)]
    if isinstance(value, list):
        return [s for v in value for s in _leaves(v, top or "")]
    return []


def _count(rec: dict, group: str | None = None) -> int:
    return sum(len(PLACEHOLDER.findall(t)) for t in _leaves(rec, None, group))


def measure(recipes: list[str], limit: int, show: int) -> dict:
    """Per recipe and split: records, records with a new placeholder, examples."""
    import logging

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    import inspect

    from instructkit.steps.anonymize.step import AnonymizeStep

    # a build's stage leaves the recipe's own citation and url alone (an older baseline
    # revision has no such setting)
    declares = "recipe_texts" in inspect.signature(AnonymizeStep).parameters
    detector = None
    out: dict = {}
    for name in recipes:
        recs, sources = recipe_records(name, limit)
        declared = {}
        if declares:
            from instructkit.records import recipe_texts

            declared = {"recipe_texts": recipe_texts(sources)}
        stage = AnonymizeStep("placeholder", detector=detector, canary=False, **declared)
        detector = stage.detector
        t0 = time.perf_counter()
        done = list(stage(recs))
        secs = time.perf_counter() - t0
        res = {s: {"records": 0, "with_placeholder": 0, "in_text": 0, "kinds": Counter(), "examples": []}
               for s in SPLITS}
        for r0, r in zip(recs, done):
            part = res[split_of(str(r0.get("id")))]
            part["records"] += 1
            if _count(r) <= _count(r0):
                continue
            part["with_placeholder"] += 1
            # the record's own text (not its ``source`` lineage: recipe citation, url, ids)
            part["in_text"] += _count(r, "content") > _count(r0, "content")
            texts = _leaves(r)
            for t in texts:
                part["kinds"].update(m.group() for m in PLACEHOLDER.finditer(t))
            if len(part["examples"]) < show:
                t = next(t for t in texts if PLACEHOLDER.search(t))
                m = PLACEHOLDER.search(t)
                part["examples"].append(t[max(0, m.start() - 70):m.end() + 40].replace("\n", " "))
        for part in res.values():
            part["share"] = part["with_placeholder"] / max(1, part["records"])
            part["text_share"] = part["in_text"] / max(1, part["records"])
            part["kinds"] = dict(part["kinds"])
        res["seconds"] = round(secs, 1)
        out[name] = res
    return out


def baseline(rev: str, recipes: list[str], limit: int, show: int) -> dict:
    """The same measurement with the code of ``rev`` (git archive, subprocess)."""
    with tempfile.TemporaryDirectory(prefix="phi-baseline-") as tmp:
        arch = Path(tmp) / "rev.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(arch), rev,
                        "instructkit", "schemas", "builders", "prompts"], check=True)
        with tarfile.open(arch) as tf:
            tf.extractall(tmp, filter="data")
        result = Path(tmp) / "result.json"
        env = dict(os.environ, PYTHONPATH=tmp)
        subprocess.run([sys.executable, __file__, "--worker", str(result), "--records", str(limit),
                        "--recipes", ",".join(recipes), "--show", str(show)], check=True, env=env, cwd=tmp)
        return json.loads(result.read_text(encoding="utf-8"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=0, help="records per recipe (0: all)")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated shipped recipes")
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the baseline ('none': skip)")
    ap.add_argument("--show", type=int, default=8, help="examples per recipe and split")
    ap.add_argument("--baseline-json", type=Path,
                    help="reuse the 'before' of an earlier run's --json instead of re-running the baseline")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--baseline-only", type=Path, help="measure only the baseline and store it here")
    args = ap.parse_args()
    recipes = [r for r in args.recipes.split(",") if r]
    if args.worker:  # the baseline's run: instructkit comes from PYTHONPATH
        args.worker.write_text(json.dumps(measure(recipes, args.records, args.show)), encoding="utf-8")
        return
    if args.baseline_only:  # store the baseline's figures for --baseline-json
        args.baseline_only.write_text(json.dumps({"before": baseline(args.baseline_rev, recipes, args.records,
                                                                     args.show)}), encoding="utf-8")
        return
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    if args.baseline_json:
        base = json.loads(args.baseline_json.read_text(encoding="utf-8"))["before"]
        where = f"from {args.baseline_json} (an earlier run of this bench, same data)"
    elif args.baseline_rev == "none":
        base, where = None, ""
    else:
        base = baseline(args.baseline_rev, recipes, args.records, args.show)
        where = f"git revision {args.baseline_rev}, same data, same run"
    now = measure(recipes, args.records, args.show)

    def cell(r: dict, key: str, share: str) -> str:
        return f"{r[key]:>4} ({r[share]:6.2%})"

    print("== anonymize forced on over public recipes' records: share with a placeholder (target <= 1%)")
    print("   text: in the record's own text (instruction, input, output, messages, meta, context);"
          " any: also in its source lineage (url, citation, ids)")
    print(f"{'recipe':<20} {'split':<9} {'records':>7} {'before text':>14} {'after text':>14} "
          f"{'before any':>14} {'after any':>14}")
    for name in recipes:
        for s in SPLITS:
            a = now[name][s]
            b = base[name][s] if base and name in base else None
            print(f"{name:<20} {s:<9} {a['records']:>7} {cell(b, 'in_text', 'text_share') if b else '-':>14} "
                  f"{cell(a, 'in_text', 'text_share'):>14} "
                  f"{cell(b, 'with_placeholder', 'share') if b else '-':>14} {cell(a, 'with_placeholder', 'share'):>14}")
    if base:
        print(f"(before: {where})")
    for name in recipes:
        for s in SPLITS:
            a = now[name][s]
            if a["examples"]:
                print(f"\n{name} {s} after: {a['kinds']}")
                for ex in a["examples"]:
                    print("   ", ex)
    if args.json:
        args.json.write_text(json.dumps({"before": base, "after": now}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
