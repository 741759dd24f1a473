"""The Python functions behind the CLI commands (the CLI only parses arguments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instructkit.context import RunContext
from instructkit.pipeline import Pipeline, RunResult, stages_from_config
from instructkit.records import write_jsonl
from instructkit.steps.base import Quarantine

__all__ = ["build", "run_stage_file"]


def build(recipe: Any, out: str | Path, *, limit: int | None = None, seed: int | None = None,
          quiet: bool = False, max_requests: int | None = None,
          cache_dir: str | Path | None = None) -> RunResult:
    """Build a recipe (file, shipped name or dict) into the dataset folder ``out``."""
    ctx = RunContext(limit=limit, quiet=quiet, max_requests=max_requests,
                     cache_dir=Path(cache_dir) if cache_dir else None)
    pipe = Pipeline.from_recipe(recipe, seed=seed, limit=limit, context=ctx)
    return pipe.run(out, quiet=quiet)


def run_stage_file(stage: str, input: str | Path, out: str | Path, *,
                   config: dict[str, Any] | None = None, quarantine_path: str | Path | None = None,
                   quiet: bool = False, ctx: RunContext | None = None) -> tuple[int, int]:
    """Run one stage alone over a JSONL of records: ``instructkit <stage> IN --out OUT``.

    Lines that are not JSON are quarantined by the stage's own schema check (stage
    ``read``), so every input line is accounted for. Returns (kept, quarantined).
    """
    from instructkit.registry import STAGE_ORDER

    ctx = ctx or RunContext(quiet=quiet)
    try:
        steps = stages_from_config({name: False for name in STAGE_ORDER} | {stage: config or True}, ctx)
        return run_steps_file(steps, input, out, quarantine_path=quarantine_path, label=stage,
                              quiet=quiet)
    finally:
        ctx.close()


def run_steps_file(steps: list[Any], input: str | Path, out: str | Path, *,
                   quarantine_path: str | Path | None = None, label: str = "",
                   quiet: bool = False) -> tuple[int, int]:
    """Stream a JSONL of records through ``steps`` into ``out``; dropped records and unreadable
    lines go to the quarantine (default: next to ``out``). Returns (kept, quarantined)."""
    from instructkit.progress import progress_iter

    out = Path(out)
    q = Quarantine(quarantine_path or out.parent / "quarantine.jsonl")
    for s in steps:
        s.bind(q)
        if getattr(s, "scrub_text", None) is not None:
            q.scrub = s.scrub_text  # a record dropped here must not put PHI on disk
    stream: Any = _read_lenient(Path(input), q)
    for s in steps:
        stream = s(stream)
    try:
        kept = write_jsonl(out, progress_iter(stream, label, quiet=quiet))
    finally:
        q.close()
    return kept, len(q)


def _read_lenient(path: Path, q: Quarantine):
    """Yield each JSON object line; quarantine lines that are not JSON objects (no text kept)."""
    import json

    from instructkit._exceptions import SourceError

    if not path.is_file():
        raise SourceError("file not found", file=str(path))
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            loc = f"{path.name}:{n}"
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                q.add("read", "unreadable_line", None, location=loc, error=f"not valid UTF-8 (byte {exc.start})")
                continue
            except json.JSONDecodeError as exc:
                q.add("read", "unreadable_line", None, location=loc, error=f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                q.add("read", "not_an_object", None, location=loc)
                continue
            yield obj
