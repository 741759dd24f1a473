"""``instructkit dedup``: decontaminate and deduplicate a JSONL of records."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register", "dedup_file"]


def dedup_file(input: str | Path, out: str | Path, *, config: dict[str, Any] | None = None,
               quarantine_path: str | Path | None = None,
               quiet: bool = False) -> tuple[int, int, dict[str, Any]]:
    """Run the dedup stage (decontamination first, when configured) over a JSONL of records.

    Returns (written, quarantined, {step name: summary}).
    """
    from instructkit.api import run_steps_file
    from instructkit.context import RunContext
    from instructkit.steps.dedup import DedupStage

    ctx = RunContext(quiet=quiet)
    try:
        steps = DedupStage.from_config(config or {}, ctx)
        written, dropped = run_steps_file(steps, input, out, quarantine_path=quarantine_path,
                                          label="dedup", quiet=quiet)
        return written, dropped, {s.name: {**s.stats.as_dict(), **s.summary()} for s in steps}
    finally:
        ctx.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def dedup(
        input: Path = typer.Argument(..., help="JSONL of instruction records."),
        out: Path = typer.Option(..., "--out", "-o", help="JSONL of the records kept."),
        exact: bool = typer.Option(False, "--exact", help="Drop exact duplicates (normalised text)."),
        near: Optional[float] = typer.Option(None, "--near", metavar="THRESHOLD",
                                             help="Drop near duplicates: MinHash Jaccard threshold of word sets, e.g. 0.7."),
        semantic: Optional[float] = typer.Option(None, "--semantic", metavar="THRESHOLD",
                                                 help="Drop semantic duplicates: cosine threshold, e.g. 0.95 (embeds every record)."),
        decontaminate: Optional[list[str]] = typer.Option(
            None, "--decontaminate", metavar="FILE_OR_DATASET",
            help="Benchmark test set to remove (file, PubMedQA folder, or hf:owner/name[:split]); repeatable."),
        quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where dropped records go (default: OUT's folder/quarantine.jsonl)."),
        keep: Optional[str] = typer.Option(None, "--keep", help="Keep rule, comma-separated: method,output_length,judge_score,id."),
        ngram: int = typer.Option(13, "--ngram", help="Decontamination: shared word n-gram length."),
    ) -> None:
        """Remove benchmark-contaminated records, then exact / near / semantic duplicates.

        Without --exact/--near/--semantic, exact and near (0.7) dedup run."""
        from instructkit.cli.app import quiet

        if not (exact or near is not None or semantic is not None):
            exact, near = True, 0.7
        config: dict[str, Any] = {"exact": exact, "near": near if near is not None else False,
                                  "semantic": semantic if semantic is not None else False}
        if keep:
            config["keep"] = [k.strip() for k in keep.split(",") if k.strip()]
        if decontaminate:
            config["decontaminate"] = list(decontaminate)
            config["decontamination"] = {"ngram": ngram, "min_ngram": min(8, ngram)}
        written, dropped, summaries = dedup_file(input, out, config=config,
                                                 quarantine_path=quarantine, quiet=quiet())
        if not quiet():
            typer.echo(f"{written} records kept, {dropped} quarantined")
            for name, s in summaries.items():
                reasons = ", ".join(f"{k}: {v}" for k, v in s.get("dropped_by_reason", {}).items())
                typer.echo(f"  {name}: {reasons or 'nothing dropped'}")
                for bench, b in (s.get("benchmarks") or {}).items():
                    typer.echo(f"    {bench}: {b['removed']} removed ({b['items']} test items)")
                for skipped in s.get("skipped_absent") or []:
                    typer.echo(f"    {skipped}: absent, skipped")
