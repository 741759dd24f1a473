"""``instructkit validate``, ``instructkit judge`` and ``instructkit bias-report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from instructkit.cli.app import echo, quiet


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.command("judge")(judge_command)
    app.command("bias-report")(bias_report_command)


def validate_command(
    input: Path = typer.Argument(..., help="JSONL of instruction records."),
    out: Path = typer.Option(..., "--out", "-o", help="JSONL of the records that pass."),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where dropped records go (default: OUT's folder/quarantine.jsonl)."),
) -> None:
    """Run the validate stage alone (record schema, then the quality filters)."""
    from instructkit.api import run_stage_file

    r = run_stage_file("validate", input, out, quarantine_path=quarantine, quiet=quiet())
    if not quiet():
        echo(f"{r.kept} records kept, {r.quarantined} quarantined")


def judge_command(
    input: Path = typer.Argument(..., help="JSONL of instruction records."),
    out: Path = typer.Option(..., "--out", "-o", help="JSONL of the judged records that pass (scores in meta.judge)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Recipe whose `llm` and `stages.judge` settings to use."),
    min_score: Optional[float] = typer.Option(None, "--min-score", help="Drop records whose overall score is below this (1-5)."),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where dropped records go (default: OUT's folder/quarantine.jsonl)."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests", help="Stop cleanly after N LLM requests."),
) -> None:
    """Score each record 1-5 on the judge rubric with the LLM; print the score distribution."""
    from instructkit.api import judge_file

    config = {"min_score": min_score} if min_score is not None else {}
    r = judge_file(input, out, recipe=recipe, config=config, quarantine_path=quarantine,
                   quiet=quiet(), max_requests=max_requests)
    if not quiet():
        echo(f"{r.kept} records kept, {r.quarantined} quarantined")
        section = (r["steps"].get("judge") or {}).get("card_section")
        if section:
            echo(section)


def bias_report_command(
    input: Path = typer.Argument(..., help="JSONL of instruction records."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON instead of a markdown table."),
) -> None:
    """Count demographic mentions (sex and gender, age group, race and ethnicity,
    pregnancy) by task and method; print the table with its caveat."""
    from instructkit.api import bias_report_file

    figures, table = bias_report_file(input)
    echo(json.dumps(figures, indent=2, sort_keys=True) if as_json else table)
