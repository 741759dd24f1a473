"""``instructkit anonymize`` and ``instructkit audit``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register", "anonymize_file"]


def anonymize_file(input: str | Path, out: str | Path, *, operator: str = "placeholder",
                   quarantine_path: str | Path | None = None, seed: int = 0,
                   config: dict[str, Any] | None = None, quiet: bool = False) -> tuple[int, int, dict]:
    """Anonymize a JSONL of records into ``out``; records that fail go to the quarantine
    (scrubbed). Returns (written, quarantined, stage summary)."""
    from instructkit.steps.anonymize.step import AnonymizeStep
    from instructkit.api import run_steps_file
    from instructkit.context import RunContext

    ctx = RunContext(seed=seed, quiet=quiet)
    try:
        stage = AnonymizeStep.from_config({**(config or {}), "operator": operator}, ctx)
        written, dropped = run_steps_file([stage], input, out, quarantine_path=quarantine_path,
                                          label="anonymizing", quiet=quiet)
        return written, dropped, stage.summary()["anonymization"]
    finally:
        ctx.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def anonymize(
        input: Path = typer.Argument(..., help="JSONL of instruction records."),
        out: Path = typer.Option(..., "--out", "-o", help="JSONL of the anonymized records."),
        operator: str = typer.Option("placeholder", "--operator",
                                     help="placeholder ([NAME], [DATE] ...), surrogate (consistent Faker values, dates shifted) or hash."),
        quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where records that fail go (default: OUT's folder/quarantine.jsonl); written scrubbed."),
        seed: int = typer.Option(0, "--seed", help="Seed of the surrogates."),
    ) -> None:
        """Replace PHI in every text of each record (Presidio + clinical recognizers)."""
        from instructkit._exceptions import InstructkitError
        from instructkit.steps.anonymize.operators import OPERATORS
        from instructkit.cli.app import quiet

        if operator not in OPERATORS:
            raise InstructkitError(f"--operator must be one of {', '.join(OPERATORS)}")
        written, dropped, s = anonymize_file(input, out, operator=operator,
                                             quarantine_path=quarantine, seed=seed, quiet=quiet())
        if not quiet():
            by_type = ", ".join(f"{t} {n}" for t, n in s["replaced"].items()) or "nothing"
            canary = s["canary"]
            typer.echo(f"{written} records written, {dropped} quarantined; replaced: {by_type}")
            if canary.get("enabled"):
                typer.echo(f"canary self-test: {'passed' if canary.get('passed') else 'FAILED'} "
                           f"({canary.get('removed', 0)}/{canary.get('values', 0)} removed)")

    @app.command()
    def audit(
        dataset: Path = typer.Argument(..., help="A folder written by `instructkit build`."),
        names: bool = typer.Option(True, "--names/--no-names", help="Also look for names with spaCy NER (reported, not limited by default)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Residual-PHI audit of a built dataset: suspects by type with record ids.
        Exits 1 when the audit fails its limits (default: zero structured identifiers)."""
        from instructkit.steps.audit import audit_dataset

        report = audit_dataset(dataset, names=names)
        if as_json:
            typer.echo(json.dumps(report, indent=2, sort_keys=True))
        else:
            typer.echo(f"audit {'passed' if report['passed'] else 'FAILED'}: "
                       f"{report['records_scanned']} records, "
                       f"{report['records_with_suspects']} with suspects")
            for typ, n in report["suspects_by_type"].items():
                limit = report["limits"].get(typ)
                ids = report["record_ids_by_type"].get(typ, [])
                typer.echo(f"  {typ:<14} {n:>6}  (limit {'-' if limit is None else limit})  "
                           f"records: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
        if not report["passed"]:
            raise typer.Exit(1)
