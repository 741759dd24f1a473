"""The ``instructkit`` command: a thin shell over the Python API.

Each area adds its commands from its own module (``instructkit/cli/<area>.py`` with
``register(app)``), so the commands live next to the code they drive. Errors the user
can cause (``InstructkitError``) are printed as one clear message, never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from instructkit._exceptions import InstructkitError

app = typer.Typer(
    name="instructkit",
    help="Build medical instruction-tuning datasets: build, anonymize, dedup, validate, publish.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

logger = logging.getLogger("instructkit")

#: modules that add commands; a module not present yet is skipped
COMMAND_MODULES = ["llm", "rag", "anonymize", "dedup", "quality", "publish"]

_state = {"quiet": False}


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; only errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens (no record text)."),
) -> None:
    _state["quiet"] = quiet
    _setup_logging(logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING))


def quiet() -> bool:
    """Whether ``--quiet`` was given (for commands in other modules)."""
    return _state["quiet"]


def _setup_logging(level: int) -> None:
    # our logger only: never configure the root logger of the host application
    if not any(getattr(h, "_instructkit", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(levelname)s instructkit: %(message)s"))
        h._instructkit = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.setLevel(level)
    logger.propagate = False


@app.command()
def build(
    recipe: str = typer.Argument(..., help="Recipe YAML file, or the name of a shipped recipe (e.g. quickstart)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (Hugging Face Hub layout)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="At most N records from each builder."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the recipe's seed."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests", help="Stop cleanly after N LLM requests."),
) -> None:
    """Build a dataset from a recipe into OUT: data/*.parquet, README.md card, manifest.json,
    quarantine.jsonl and a copy of the recipe."""
    from instructkit.api import build as build_api

    result = build_api(recipe, out, limit=limit, seed=seed, quiet=quiet(),
                       max_requests=max_requests)
    if not quiet():
        typer.echo(f"wrote {result.records} records to {result.out_dir} "
                   f"({result.quarantined} quarantined, see quarantine.jsonl)")


@app.command()
def validate(
    input: Path = typer.Argument(..., help="JSONL of instruction records."),
    out: Path = typer.Option(..., "--out", "-o", help="JSONL of the records that pass."),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where dropped records go (default: OUT's folder/quarantine.jsonl)."),
) -> None:
    """Run the validate stage alone on a JSONL of records."""
    from instructkit.api import run_stage_file

    kept, dropped = run_stage_file("validate", input, out, quarantine_path=quarantine, quiet=quiet())
    if not quiet():
        typer.echo(f"{kept} records kept, {dropped} quarantined")


@app.command()
def inspect(
    dataset: Path = typer.Argument(..., help="A folder written by `instructkit build`."),
    samples: int = typer.Option(3, "--samples", "-n", help="How many example records to print."),
) -> None:
    """Print counts by task, method and source, and a few sample records."""
    from instructkit.dataset.inspect import inspect_dataset

    inspect_dataset(dataset, samples=samples)


def _register_plugins() -> None:
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"instructkit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"instructkit.cli.{name}":
                continue
            raise
        mod.register(app)


_register_plugins()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors exit with their code and one message."""
    _setup_logging(logging.WARNING)
    try:
        app(args=argv, standalone_mode=False)
    except InstructkitError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, click.exceptions.Abort):
            raise SystemExit(1) from None
        raise
    raise SystemExit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
