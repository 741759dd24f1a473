"""``instructkit build`` and ``instructkit inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from instructkit.cli.app import echo, quiet


def register(app: typer.Typer) -> None:
    app.command()(build)
    app.command()(inspect)


def build(
    recipe: str = typer.Argument(..., help="Recipe YAML file, or the name of a shipped recipe (e.g. quickstart)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (Hugging Face Hub layout); replaced only when the build succeeds, and only if it holds nothing but what the previous build wrote (a link is followed)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most N records from each builder."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the recipe's seed."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests", help="Stop cleanly after N LLM requests."),
    executor: Optional[str] = typer.Option(None, "--executor", help="local (default) or ray; overrides the recipe's execution.executor."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join a Ray cluster: 'auto' or HOST:PORT (default: start a local one)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray workers per heavy step (default: the cluster's CPUs)."),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="Succeed even when the build writes 0 records."),
    allow_path: list[Path] = typer.Option([], "--allow-path", help="A folder the recipe may read sources from (besides the current directory and the recipe's folder); repeatable."),
) -> None:
    """Build a dataset from a recipe into OUT: data/*.parquet, README.md card, manifest.json,
    quarantine.jsonl and a copy of the recipe."""
    from instructkit.api import build as build_api

    if executor is not None and executor not in ("local", "ray"):
        from instructkit._exceptions import RecipeError

        raise RecipeError([f"--executor: {executor!r} is not one of ['local', 'ray']"])
    result = build_api(recipe, out, limit=limit, seed=seed, quiet=quiet(), max_requests=max_requests,
                       executor=executor, ray_address=ray_address, workers=workers,
                       allow_empty=allow_empty or None, allow_paths=allow_path)
    if not quiet():
        echo(f"wrote {result.records} records to {result.out_dir} "
             f"({result.quarantined} quarantined, see quarantine.jsonl)")


def inspect(
    dataset: Path = typer.Argument(..., help="A folder written by `instructkit build`."),
    samples: int = typer.Option(3, "--samples", "-n", help="How many example records to print."),
) -> None:
    """Print counts by task, method and source, and a few sample records."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from instructkit.dataset.reader import open_dataset

    ds = open_dataset(dataset)
    console = Console()
    counts = ds.counts
    for key in ("task", "method", "source"):
        t = Table(title=f"records by {key}")
        t.add_column(key)
        t.add_column("records", justify="right")
        for k, v in counts.by[key].most_common():
            t.add_row(str(k), str(v))
        console.print(t)
    console.print(f"records: {counts.records}; quarantined: {ds.manifest.get('quarantined', 0)} "
                  "(see quarantine.jsonl)")
    for i, rec in enumerate(ds.records()):
        if i >= samples:
            break
        console.rule(f"{rec['task']} · {rec['method']} · {rec['id']}")
        console.print(f"[bold]instruction[/bold] {escape(rec['instruction'])}", highlight=False)
        if rec.get("input"):
            console.print(f"[bold]input[/bold] {escape(rec['input'][:600])}", highlight=False)
        console.print(f"[bold]output[/bold] {escape(rec['output'][:600])}", highlight=False)
