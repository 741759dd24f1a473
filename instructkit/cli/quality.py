"""``instructkit judge`` and ``instructkit bias-report``: the LLM judge and the
demographic-mention report over a JSONL of records (``instructkit validate`` lives in
``cli.py`` and picks up the quality filters through the validate stage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_command)
    app.command("bias-report")(bias_report_command)


def judge_command(
    input: Path = typer.Argument(..., help="JSONL of instruction records."),
    out: Path = typer.Option(..., "--out", "-o", help="JSONL of the judged records that pass (scores in meta.judge)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Recipe whose `llm` and `stages.judge` settings to use."),
    min_score: Optional[float] = typer.Option(None, "--min-score", help="Drop records whose overall score is below this (1-5)."),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where dropped records go (default: OUT's folder/quarantine.jsonl)."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests", help="Stop cleanly after N LLM requests."),
) -> None:
    """Score each record 1-5 on the judge rubric with the LLM; print the score distribution."""
    from instructkit.cli.app import quiet
    from instructkit.context import RunContext
    from instructkit.progress import progress_iter
    from instructkit.steps.quality.judge import JudgeStep
    from instructkit.records import read_records, write_jsonl
    from instructkit.steps.base import Quarantine

    recipe_data = {}
    if recipe:
        from instructkit.recipe.load import load_recipe

        recipe_data = load_recipe(recipe).data
    config = recipe_data.get("stages", {}).get("judge")
    config = dict(config) if isinstance(config, dict) else {}
    if min_score is not None:
        config["min_score"] = min_score
    ctx = RunContext(recipe=recipe_data, seed=recipe_data.get("seed", 0), quiet=quiet(),
                     max_requests=max_requests)
    q = Quarantine(quarantine or out.parent / "quarantine.jsonl")
    try:
        judge = JudgeStep.from_config(config, ctx).bind(q)
        kept = write_jsonl(out, progress_iter(judge(read_records(input)), "judge", quiet=quiet()))
    finally:
        q.close()
        ctx.close()
    if not quiet():
        typer.echo(f"{kept} records kept, {len(q)} quarantined")
        section = judge.card_section()
        if section:
            typer.echo(section)


def bias_report_command(
    input: Path = typer.Argument(..., help="JSONL of instruction records."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON instead of a markdown table."),
) -> None:
    """Count demographic mentions (sex and gender, age group, race and ethnicity,
    pregnancy) by task and method; print the table with its caveat."""
    from instructkit.steps.quality.bias import BiasReportStep
    from instructkit.records import read_jsonl
    from instructkit.steps.base import Quarantine

    report = BiasReportStep().bind(Quarantine())
    for _ in report(obj for _, obj in read_jsonl(input) if isinstance(obj, dict)):
        pass
    if as_json:
        typer.echo(json.dumps(report.summary(), indent=2, sort_keys=True))
    else:
        typer.echo(report.card_section() or "no records")
