"""Benchmark: a build at scale, on the local and the Ray executor (issue 15).

Input: question-answer rows made from the real text in ../shared/data with variation and
planted exact and near duplicates (``bench/scale_corpus.py``; no row is repeated verbatim
unless it is a planted duplicate). Every measurement runs in a fresh subprocess, so each
peak RSS is that run's own (for Ray: the driver's; the workers are other processes).

Printed side by side:

1. **local pipeline**: template -> decontaminate -> exact+near dedup -> validate -> export,
   records/s and peak RSS per size, against the issue's bound (4 GB at 1M records);
2. **default build, anonymize off, audit on**: built now and by main before this issue
   (``--baseline-rev``, run from ``git archive`` of that revision with its own CLI), on the
   same rows; the ratio is what the issue's 3x is about;
3. **ray executor** on the same rows as (1), against the local executor's time;
4. **anonymize throughput** on Ray with 1 and 2 workers (the issue asks 1.6x);
5. **equivalence**: anonymize, decontaminate, exact+near dedup and validate on, local vs Ray
   (the issue asks >= 20k rows): the same record ids and the same per-stage counts.

    python bench/scale.py                 # short: a few minutes on 2 cores
    python bench/scale.py --full          # 100k and 1M (local), 100k audit and Ray, 10k anonymize, 20k equivalence
    python bench/scale.py --sections local,audit --local-sizes 200000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA = Path(os.environ.get("INSTRUCTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))

#: what the issue measured on main (100k default build, anonymize off) and its targets
MAIN_DEFAULT_BUILD_100K_S = 20 * 60 + 38
MAIN_DEFAULT_BUILD_RSS_MB = 1310
RSS_BOUND_1M_MB = 4096
ANON_SCALING_TARGET = 1.6


# -- recipes ------------------------------------------------------------------------------------
def recipe_text(rows: Path, kind: str) -> str:
    decontam = DATA / "decontam" / "medqa_usmle_4opt_test.jsonl"
    head = (f"name: scale-{kind}\nseed: 1\n"
            f"sources: [{{name: rows, type: jsonl, path: \"{rows}\", id_field: id, license: CC-BY-4.0}}]\n"
            "builders: [{type: template, task: consumer_health_qa, sources: [rows]}]\n")
    if kind in ("pipeline", "pipeline-novalidate"):  # template -> decontaminate -> exact+near dedup -> validate -> export
        validate = "false" if kind.endswith("novalidate") else "true"
        stages = (f"stages:\n  anonymize: false\n  audit: false\n  bias_report: false\n  validate: {validate}\n"
                  f"  dedup: {{exact: true, near: true, decontaminate: [{{path: \"{decontam}\", name: medqa}}]}}\n")
    elif kind in ("default", "default-baseline"):  # the default stages, anonymize off (the issue's 100k build)
        stages = "stages:\n  anonymize: false\n"
    elif kind == "equivalence":  # every record-changing stage the issue names, audit off
        stages = ("stages:\n  anonymize: true\n  audit: false\n  bias_report: false\n  validate: true\n"
                  f"  dedup: {{exact: true, near: true, decontaminate: [{{path: \"{decontam}\", name: medqa}}]}}\n")
    elif kind == "anonymize":
        stages = ("stages:\n  anonymize: true\n  dedup: false\n  validate: false\n  audit: false\n"
                  "  bias_report: false\n")
    else:
        raise ValueError(kind)
    # the bench pipeline ends at the export; the HTML report (an output option) would audit the
    # folder again for its publish gates when no audit stage ran
    if kind == "default-baseline":  # the baseline revision has no HTML report option
        return head + stages + "output: {formats: [messages]}\n"
    report = "true" if kind == "default" else "false"
    return head + stages + f"output: {{formats: [messages], report: {report}}}\n"


# -- the baseline: main before this issue's work, run from its own source --------------------------
#: main when the issue measured its 100k build (20m38s); the issue's work began after it
BASELINE_REV = "49012f7"


def baseline_source(tmp: Path, rev: str) -> Path:
    """``git archive`` of ``rev`` (the bench's own checkout must be a git repository)."""
    import io
    import tarfile

    dest = tmp / f"src-{rev}"
    if not (dest / "instructkit").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(dest, filter="data")
    return dest


def run_baseline(spec: dict) -> dict:
    """The baseline's own ``instructkit build`` in this process (its source first on the path)."""
    sys.path.insert(0, spec["src"])
    for name in [m for m in sys.modules if m == "instructkit" or m.startswith("instructkit.")]:
        del sys.modules[name]
    import contextlib
    import io

    from instructkit.cli import main as cli_main  # the baseline's CLI

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            cli_main(["build", spec["recipe"], "--out", spec["out"]])
        except SystemExit as e:
            if e.code not in (0, None):
                raise
    wall = time.perf_counter() - t0
    manifest = json.loads((Path(spec["out"]) / "manifest.json").read_text())
    stage_s: dict[str, float] = {}
    for st in manifest.get("stages") or []:
        name = str(st.get("stage", "")).split(".")[0]
        if name in ("audit", "anonymize", "dedup", "validate", "decontaminate"):
            stage_s[name] = round(stage_s.get(name, 0) + (st.get("seconds") or 0), 1)
    return {"records": int(manifest.get("records") or manifest.get("counts", {}).get("records") or 0),
            "wall_s": wall, "stage_s": stage_s, "printed": out.getvalue()[-300:],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# -- one measured run (in its own process) --------------------------------------------------------
def run_one(spec: dict) -> dict:
    if spec.get("src"):
        return run_baseline(spec)
    from instructkit.pipeline import Pipeline

    recipe = Path(spec["recipe"])
    pipe = Pipeline.from_recipe(str(recipe))
    executor = None
    if spec["executor"] == "ray":
        import ray

        from instructkit.executors.ray import RayExecutor

        ray.init(num_cpus=spec.get("cpus") or os.cpu_count(), include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)
        t0 = time.perf_counter()
        ray.data.range(4).materialize()  # the cluster is up and has its workers: not the build's time
        executor = RayExecutor(workers=spec.get("workers"))
    else:
        from instructkit.executors import LocalExecutor

        executor = LocalExecutor()
    t0 = time.perf_counter()
    result = pipe.run(spec["out"], quiet=True, executor=executor)
    wall = time.perf_counter() - t0
    if spec["executor"] == "ray":
        import ray

        ray.shutdown()
    stage_s: dict[str, float] = {}
    for s in result.manifest["stages"]:  # validate.* filters counted under validate
        name = s["stage"].split(".")[0]
        if name in ("audit", "anonymize", "dedup", "validate", "decontaminate"):
            stage_s[name] = round(stage_s.get(name, 0) + (s.get("seconds") or 0), 1)
    counts = [[s["stage"], s.get("in"), s.get("out"), s.get("dropped_by_reason") or {}]
              for s in result.manifest["stages"]]
    return {"records": result.records, "quarantined": result.quarantined, "wall_s": wall, "counts": counts,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "stage_s": stage_s}


def measure(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # Ray starts its worker processes at nice 15; the local executor's run is at the caller's
    # priority. On a machine shared with other work that compares priorities, not executors:
    # the bench runs Ray's workers at the priority of the local runs.
    env.setdefault("RAY_worker_niceness", str(os.nice(0)))
    r = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        raise SystemExit(f"run failed ({spec['executor']}, {spec['recipe']}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def rows_file(tmp: Path, n: int) -> Path:
    from scale_corpus import write_rows

    p = tmp / f"rows-{n}.jsonl"
    if not p.exists():
        write_rows(p, n, seed=11)
    return p


def recipe_file(tmp: Path, n: int, kind: str) -> Path:
    p = tmp / f"{kind}-{n}.yaml"
    p.write_text(recipe_text(rows_file(tmp, n), kind))
    return p


# -- sections ---------------------------------------------------------------------------------------
def fmt_rate(n: int, s: float) -> str:
    return f"{n / s:,.0f} rec/s" if s > 0 else "-"


def section_local(tmp: Path, sizes: list[int], validate: bool = True) -> dict[int, dict]:
    kind = "pipeline" if validate else "pipeline-novalidate"
    print("\n== 1. local executor: template -> decontaminate -> exact+near dedup -> "
          f"{'validate -> ' if validate else '(validate off) '}export ==")
    print(f"{'input rows':>12} {'written':>9} {'wall':>9} {'throughput':>14} {'peak RSS':>10}  bound (issue)")
    out = {}
    for n in sizes:
        r = measure({"recipe": str(recipe_file(tmp, n, kind)), "executor": "local",
                     "out": str(tmp / f"out-local-{n}")})
        verdict = ("met" if r["peak_rss_mb"] < RSS_BOUND_1M_MB else "NOT met") if n >= 1_000_000 else "not this size"
        bound = f"< {RSS_BOUND_1M_MB:,} MB at 1M ({verdict})"
        print(f"{n:>12,} {r['records']:>9,} {r['wall_s']:>8.1f}s {fmt_rate(n, r['wall_s']):>14} "
              f"{r['peak_rss_mb']:>8,.0f}MB  {bound}   stages {r['stage_s']}")
        out[n] = r
    return out


def section_audit(tmp: Path, n: int, baseline_n: int | None = None, baseline_rev: str = BASELINE_REV,
                  baseline_json: Path | None = None) -> None:
    """The default build at ``n`` rows, now and as built by ``baseline_rev`` (main when the
    issue measured 20m38s), on the same rows. The baseline takes over an hour at 100k on 2
    cores: ``--audit-baseline-size`` runs it on fewer rows (its time per record is flat: no
    cache crosses records), and ``--baseline-json`` keeps its result for a later run."""
    baseline_n = baseline_n or n
    print(f"\n== 2. default build (anonymize off, audit on): {n:,} rows now; main at {baseline_rev} "
          f"(before this issue) on {baseline_n:,} of the same rows ==")
    base = None
    if baseline_json and baseline_json.exists():
        stored = json.loads(baseline_json.read_text())
        if stored.get("rev") == baseline_rev and stored.get("rows") == baseline_n:
            base = stored
    if base is None:
        src = baseline_source(tmp, baseline_rev)
        base = measure({"recipe": str(recipe_file(tmp, baseline_n, "default-baseline")), "executor": "local",
                        "src": str(src), "out": str(tmp / f"out-baseline-{baseline_n}")})
        base.update(rev=baseline_rev, rows=baseline_n)
        if baseline_json:
            baseline_json.write_text(json.dumps(base, indent=1))
    new = measure({"recipe": str(recipe_file(tmp, n, "default")), "executor": "local",
                   "out": str(tmp / "out-audit-new")})
    new_b = new if baseline_n == n else measure({"recipe": str(recipe_file(tmp, baseline_n, "default")),
                                                 "executor": "local", "out": str(tmp / "out-audit-new-b")})
    print(f"{'':>24} {'rows':>9} {'written':>9} {'wall':>9} {'throughput':>14} {'audit s':>9} {'validate s':>10} "
          f"{'peak RSS':>10}")
    rows = [(f"main {baseline_rev}", baseline_n, base), ("now", baseline_n, new_b)]
    if baseline_n != n:
        rows.append(("now", n, new))
    for label, k, r in rows:
        print(f"{label:>24} {k:>9,} {r['records']:>9,} {r['wall_s']:>8.1f}s {fmt_rate(k, r['wall_s']):>14} "
              f"{r['stage_s'].get('audit', 0):>8.1f}s {r['stage_s'].get('validate', 0):>9.1f}s "
              f"{r['peak_rss_mb']:>8,.0f}MB")
    ratio = base["wall_s"] / new_b["wall_s"]
    print(f"same rows, {baseline_n:,}: now {ratio:.2f}x faster than main {baseline_rev} "
          f"(the issue asks >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
    if n >= 100_000:
        vs_main = MAIN_DEFAULT_BUILD_100K_S * n / 100_000 / new["wall_s"]
        print(f"{n:,} rows now: {new['wall_s']:.0f} s; the issue's figure for main, {MAIN_DEFAULT_BUILD_100K_S} s, "
              f"was on its own rows (lighter: main's audit ran at 48 rec/s there, "
              f"{baseline_n / max(1e-9, base['stage_s'].get('audit') or base['wall_s']):.0f} rec/s here): {vs_main:.2f}x")


def section_ray(tmp: Path, n: int, local: dict | None, cpus: int) -> None:
    print(f"\n== 3. ray executor ({cpus} CPUs, local cluster) vs local, same pipeline, {n:,} rows ==")
    recipe = recipe_file(tmp, n, "pipeline")
    loc = local or measure({"recipe": str(recipe), "executor": "local", "out": str(tmp / f"out-local-{n}")})
    ray_r = measure({"recipe": str(recipe), "executor": "ray", "out": str(tmp / f"out-ray-{n}"), "cpus": cpus,
                     "workers": cpus})
    same = _ids(tmp / f"out-local-{n}") == _ids(tmp / f"out-ray-{n}")
    print(f"{'':>8} {'written':>9} {'wall':>9} {'throughput':>14} {'driver RSS':>11}")
    for label, r in (("local", loc), ("ray", ray_r)):
        print(f"{label:>8} {r['records']:>9,} {r['wall_s']:>8.1f}s {fmt_rate(n, r['wall_s']):>14} {r['peak_rss_mb']:>9,.0f}MB")
    print(f"ray / local throughput: {loc['wall_s'] / ray_r['wall_s']:.2f}x; same record ids: {same}")


def section_anonymize(tmp: Path, n: int) -> None:
    print(f"\n== 4. anonymize on ray, {n:,} rows: 1 worker vs 2 workers (2-CPU local cluster) ==")
    recipe = recipe_file(tmp, n, "anonymize")
    res = {}
    for w in (1, 2):
        res[w] = measure({"recipe": str(recipe), "executor": "ray", "out": str(tmp / f"out-anon-{w}"), "cpus": 2,
                          "workers": w})
        r = res[w]
        print(f"{w} worker{'s' if w > 1 else ' '}: {r['wall_s']:>8.1f}s {fmt_rate(n, r['wall_s']):>14}")
    ratio = res[1]["wall_s"] / res[2]["wall_s"]
    print(f"2 workers / 1 worker: {ratio:.2f}x (the issue asks >= {ANON_SCALING_TARGET}x: "
          f"{'met' if ratio >= ANON_SCALING_TARGET else 'NOT met'} here)")


def section_equivalence(tmp: Path, n: int, cpus: int) -> None:
    print(f"\n== 5. equivalence, {n:,} rows: anonymize -> decontaminate -> exact+near dedup -> validate, "
          f"local vs ray ({cpus} CPUs) ==")
    recipe = recipe_file(tmp, n, "equivalence")
    loc = measure({"recipe": str(recipe), "executor": "local", "out": str(tmp / "out-eq-local")})
    ray_r = measure({"recipe": str(recipe), "executor": "ray", "out": str(tmp / "out-eq-ray"), "cpus": cpus,
                     "workers": cpus})
    for label, r in (("local", loc), ("ray", ray_r)):
        print(f"{label:>8} {r['records']:>9,} written {r['quarantined']:>7,} quarantined {r['wall_s']:>8.1f}s "
              f"{fmt_rate(n, r['wall_s']):>14}")
    print(f"{'stage':>34} {'in':>8} {'out':>8}  (local = ray?)")
    ray_counts = {c[0]: c for c in ray_r["counts"]}
    for c in loc["counts"]:
        other = ray_counts.get(c[0])
        print(f"{c[0]:>34} {c[1] or 0:>8,} {c[2] or 0:>8,}  {'same' if other == c else f'ray: {other}'}")
    same_ids = _ids(tmp / "out-eq-local") == _ids(tmp / "out-eq-ray")
    same_counts = loc["counts"] == ray_r["counts"]
    print(f"same record ids: {same_ids}; same per-stage counts and reasons: {same_counts}")


def _ids(out: Path) -> list[str]:
    import pyarrow.parquet as pq

    return sorted(i for f in (out / "data").glob("*.parquet") for i in pq.read_table(f, columns=["id"])["id"].to_pylist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--full", action="store_true", help="the issue's sizes (takes hours on 2 cores)")
    ap.add_argument("--sections", default="local,audit,ray,anonymize,equivalence")
    ap.add_argument("--local-sizes", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--audit-size", type=int)
    ap.add_argument("--audit-baseline-size", type=int, help="rows for main's build (default: --audit-size)")
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="main before this issue (section 2's baseline)")
    ap.add_argument("--baseline-json", type=Path, help="keep / reuse section 2's baseline result here")
    ap.add_argument("--ray-size", type=int)
    ap.add_argument("--anonymize-size", type=int)
    ap.add_argument("--equivalence-size", type=int)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--no-validate", action="store_true",
                    help="section 1 without validate (its filters run at ~100 records/s on one core)")
    ap.add_argument("--keep", help="folder to keep the rows and outputs in (default: a temp folder)")
    args = ap.parse_args()
    # the recipes read the rows (beside them) and the decontamination set in the data folder
    os.environ.setdefault("INSTRUCTKIT_ALLOW_PATHS", os.pathsep.join([str(DATA), tempfile.gettempdir()]))
    if args.worker:
        print(json.dumps(run_one(json.loads(args.worker))))
        return
    local_sizes = args.local_sizes or ([100_000, 1_000_000] if args.full else [10_000])
    audit_n = args.audit_size or (100_000 if args.full else 1_000)
    ray_n = args.ray_size or (100_000 if args.full else 3_000)
    anon_n = args.anonymize_size or (10_000 if args.full else 1_000)
    eq_n = args.equivalence_size or (20_000 if args.full else 1_000)
    sections = set(args.sections.split(","))
    with tempfile.TemporaryDirectory(prefix="instructkit-scale-") as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        print(f"rows from {DATA} (bench/scale_corpus.py: real MedQuAD/PubMedQA text, varied, 5% exact and "
              f"10% near duplicates planted); python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        local = section_local(tmp, sorted(set(local_sizes + ([ray_n] if "ray" in sections and not args.no_validate else []))),
                              validate=not args.no_validate) if "local" in sections else {}
        if "audit" in sections:
            section_audit(tmp, audit_n, args.audit_baseline_size, args.baseline_rev, args.baseline_json)
        if "ray" in sections:
            section_ray(tmp, ray_n, None if args.no_validate else local.get(ray_n), args.cpus)
        if "anonymize" in sections:
            section_anonymize(tmp, anon_n)
        if "equivalence" in sections:
            section_equivalence(tmp, eq_n, args.cpus)


if __name__ == "__main__":
    main()
