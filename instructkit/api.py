"""The Python functions behind the CLI commands (the CLI only parses arguments).

A recipe and its Python twin do the same thing: ``build`` runs a recipe; the ``*_file``
functions run one stage over a JSONL of records, as ``instructkit <stage> IN --out OUT`` does.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from instructkit._exceptions import SourceError
from instructkit.context import RunContext
from instructkit.pipeline import Pipeline, RunResult
from instructkit.records import Record
from instructkit.steps.base import Quarantine, Step, StepStats

__all__ = ["build", "run_stage_file", "run_steps_file", "anonymize_file", "dedup_file",
           "judge_file", "bias_report_file", "StageFileResult"]


def build(recipe: Any, out: str | Path, *, limit: int | None = None, seed: int | None = None,
          quiet: bool = False, max_requests: int | None = None,
          cache_dir: str | Path | None = None, executor: str | None = None,
          ray_address: str | None = None, workers: int | None = None,
          allow_empty: bool | None = None, allow_paths: Iterable[str | Path] = ()) -> RunResult:
    """Build a recipe (file, shipped name or dict) into the dataset folder ``out``.

    ``executor`` (``local`` | ``ray``), ``ray_address`` and ``workers`` override the recipe's
    ``execution:``; ``allow_paths`` are folders the recipe may read besides the current
    directory and its own folder; ``allow_empty`` lets a build that writes 0 records succeed.
    """
    from instructkit.executors import executor_from_config
    from instructkit.recipe.load import load_recipe

    ctx = RunContext(limit=limit, quiet=quiet, max_requests=max_requests,
                     cache_dir=Path(cache_dir) if cache_dir else None,
                     allowed_paths=[Path(p) for p in allow_paths])
    recipe_obj = load_recipe(recipe)
    pipe = Pipeline.from_recipe(recipe_obj, seed=seed, limit=limit, context=ctx)
    execution = dict(recipe_obj.data.get("execution") or {})
    if executor:
        execution["executor"] = executor
    if ray_address:
        execution.setdefault("executor", "ray")
        execution["address"] = ray_address
    if workers:
        execution["workers"] = workers
    return pipe.run(out, quiet=quiet, executor=executor_from_config(execution),
                    allow_empty=allow_empty)


class StageFileResult(dict):
    """What ``run_steps_file`` returns: ``kept``, ``quarantined`` and each step's figures."""

    @property
    def kept(self) -> int:
        return self["kept"]

    @property
    def quarantined(self) -> int:
        return self["quarantined"]


def run_stage_file(stage: str, input: str | Path, out: str | Path, *,
                   config: dict[str, Any] | None = None, quarantine_path: str | Path | None = None,
                   quiet: bool = False, ctx: RunContext | None = None) -> StageFileResult:
    """Run one recipe stage alone over a JSONL of records (``instructkit <stage> IN --out OUT``)."""
    from instructkit.registry import STAGES, resolve

    ctx = ctx or RunContext(quiet=quiet)
    try:
        _checked_stage_paths(input, out, quarantine_path)  # before the stage loads its models
        made = resolve(STAGES[stage]).from_config(config or {}, ctx)
        steps = made if isinstance(made, list) else [made]
        return run_steps_file(steps, input, out, quarantine_path=quarantine_path, label=stage,
                              quiet=quiet)
    finally:
        ctx.close()


def run_steps_file(steps: list[Step], input: str | Path, out: str | Path, *,
                   quarantine_path: str | Path | None = None, label: str = "",
                   quiet: bool = False) -> StageFileResult:
    """Stream a JSONL of records through ``steps`` into ``out`` (written whole or not at
    all); dropped records and unreadable lines go to the quarantine (default: next to
    ``out``), scrubbed by the steps' scrubber. Returns kept, quarantined and the figures."""
    from instructkit.progress import progress_iter
    from instructkit.records import write_jsonl

    input, out = Path(input), Path(out)
    q = Quarantine(_checked_stage_paths(input, out, quarantine_path))
    scrub = next((s.quarantine_scrubber() for s in steps if s.quarantine_scrubber()), None)
    for s in steps:
        s.bind(q, scrub)
    reader = _LenientReader(input)
    stream: Any = reader.records(q, scrub)
    for s in steps:
        stream = s(stream)
    try:
        with _atomic_file(out) as tmp:
            kept = write_jsonl(tmp, progress_iter(stream, label, quiet=quiet))
    finally:
        q.close()
    figures = {s.name: _finalized(s) for s in steps}
    return StageFileResult(kept=kept, quarantined=len(q), steps=figures)


def _checked_stage_paths(input: str | Path, out: str | Path,
                         quarantine_path: str | Path | None) -> Path:
    """Check a stage's input and where it writes, before any model loads; returns the
    quarantine file (default: beside ``out``). The output is never the input, nor inside a
    built dataset folder (``dataset/outputs.py``)."""
    from instructkit.dataset.outputs import check_stage_outputs

    input, out = Path(input), Path(out)
    if not input.is_file():
        raise SourceError("file not found" if not input.exists() else "not a file", file=str(input))
    quarantine_file = Path(quarantine_path or out.parent / "quarantine.jsonl")
    check_stage_outputs(input, out, quarantine_file)
    return quarantine_file


def _finalized(step: Step) -> dict[str, Any]:
    from instructkit.dataset.manifest import step_entry

    return step_entry(step, step.collect())


@contextmanager
def _atomic_file(path: Path) -> Iterator[Path]:
    """Write ``path`` through a temporary sibling renamed into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _LenientReader:
    """Each JSON object line of a file; lines that are not JSON objects go to quarantine
    (stage ``read``, with where, never the text)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self, q: Quarantine, scrub: Any = None) -> Iterator[Record]:
        from instructkit.recipe.sources import MAX_LINE_BYTES, _bounded_lines

        with self.path.open("rb") as fh:
            for n, raw in _bounded_lines(fh, MAX_LINE_BYTES):
                loc = f"{self.path.name}:{n}"
                if raw is None:
                    q.add({"stage": "read", "reason": "unreadable_line", "location": loc,
                           "error": f"line longer than {MAX_LINE_BYTES:,} bytes"})
                    continue
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    q.add({"stage": "read", "reason": "unreadable_line", "location": loc,
                           "error": f"not valid UTF-8 (byte {exc.start})"})
                    continue
                except json.JSONDecodeError as exc:
                    q.add({"stage": "read", "reason": "unreadable_line", "location": loc,
                           "error": f"not valid JSON ({exc.msg})"})
                    continue
                if not isinstance(obj, dict):
                    q.add({"stage": "read", "reason": "not_an_object", "location": loc})
                    continue
                yield obj


# -- one stage over a JSONL file ---------------------------------------------------------------
def anonymize_file(input: str | Path, out: str | Path, *, operator: str = "placeholder",
                   quarantine_path: str | Path | None = None, seed: int = 0,
                   config: dict[str, Any] | None = None, quiet: bool = False) -> StageFileResult:
    """Anonymize a JSONL of records into ``out`` (every text field); records that fail go to
    the quarantine, scrubbed. The figures are under ``result["steps"]["anonymize"]``."""
    from instructkit.steps.anonymize.step import AnonymizeStep

    _checked_stage_paths(input, out, quarantine_path)  # before the models load
    ctx = RunContext(seed=seed, quiet=quiet)
    try:
        stage = AnonymizeStep.from_config({**(config or {}), "operator": operator}, ctx)
        return run_steps_file([stage], input, out, quarantine_path=quarantine_path,
                              label="anonymizing", quiet=quiet)
    finally:
        ctx.close()


def dedup_file(input: str | Path, out: str | Path, *, config: dict[str, Any] | None = None,
               quarantine_path: str | Path | None = None, quiet: bool = False) -> StageFileResult:
    """Decontaminate (when configured) and deduplicate a JSONL of records."""
    return run_stage_file("dedup", input, out, config=config, quarantine_path=quarantine_path,
                          quiet=quiet)


def judge_file(input: str | Path, out: str | Path, *, recipe: Any = None,
               config: dict[str, Any] | None = None, quarantine_path: str | Path | None = None,
               quiet: bool = False, max_requests: int | None = None) -> StageFileResult:
    """Score each record with the LLM judge (the recipe's ``llm`` and ``stages.judge``)."""
    from instructkit.recipe.load import load_recipe

    recipe_data = load_recipe(recipe).data if recipe is not None else {}
    cfg = (recipe_data.get("stages") or {}).get("judge")
    cfg = {**(cfg if isinstance(cfg, dict) else {}), **(config or {})}
    ctx = RunContext(recipe=recipe_data, seed=recipe_data.get("seed", 0), quiet=quiet,
                     max_requests=max_requests)
    return run_stage_file("judge", input, out, config=cfg, quarantine_path=quarantine_path,
                          quiet=quiet, ctx=ctx)


def bias_report_file(input: str | Path) -> tuple[dict[str, Any], str]:
    """Demographic-mention counts of a JSONL of records: (figures, markdown table)."""
    from instructkit.steps.quality.bias import BiasReportStep

    if not Path(input).is_file():
        raise SourceError("file not found", file=str(input))
    step = BiasReportStep().bind(Quarantine())
    for _ in step(_LenientReader(Path(input)).records(Quarantine())):
        pass
    stats: StepStats = step.collect()
    return stats.extra, step.card_section(stats) or "no records"
