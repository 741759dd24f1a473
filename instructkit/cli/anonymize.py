"""``instructkit anonymize`` and ``instructkit audit``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from instructkit.cli.app import echo

__all__ = ["register"]


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
        from instructkit.api import anonymize_file
        from instructkit.cli.app import quiet
        from instructkit.steps.anonymize.operators import OPERATORS

        if operator not in OPERATORS:
            raise typer.BadParameter(f"must be one of {', '.join(OPERATORS)}", param_hint="--operator")

        r = anonymize_file(input, out, operator=operator, quarantine_path=quarantine, seed=seed,
                           quiet=quiet())
        written, dropped = r.kept, r.quarantined
        s = r["steps"]["anonymize"]["extra"]["anonymization"]
        if not quiet():
            by_type = ", ".join(f"{t} {n}" for t, n in s["replaced"].items()) or "nothing"
            canary = s["canary"]
            echo(f"{written} records written, {dropped} quarantined; replaced: {by_type}")
            if canary.get("enabled"):
                echo(f"canary self-test: {'passed' if canary.get('passed') else 'FAILED'} "
                           f"({canary.get('removed', 0)}/{canary.get('values', 0)} removed)")

    @app.command()
    def audit(
        dataset: Path = typer.Argument(..., help="A folder written by `instructkit build`."),
        names: bool = typer.Option(True, "--names/--no-names", help="Also look for names with spaCy NER (reported, not limited by default)."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Residual-PHI audit of a built dataset: suspects by type with record ids, judged as
        publish gate 1 judges them (the package's limits: zero structured identifiers; the
        folder's recipe may only lower them). Exits 1 when the audit fails."""
        from instructkit.dataset.reader import DatasetFolder
        from instructkit.hub.policy import gate_policy, read_folder_recipe
        from instructkit.steps.audit_folder import audit_dataset
        from instructkit.steps.audit_verdict import audit_verdict

        # the gate's policy, so this command and `publish` give one verdict (issue 26)
        manifest = DatasetFolder(dataset, require_complete=False).manifest
        policy = gate_policy(manifest, read_folder_recipe(dataset))
        report = audit_dataset(dataset, names=names, policy=policy)
        report["policy"] = {"from": "publish gate 1 (the package's limits; the folder may only lower them)",
                            "ignored": list(policy.ignored)}
        if as_json:
            echo(json.dumps(report, indent=2, sort_keys=True))
        else:
            verdict = audit_verdict(report, report["limits"])
            lines = verdict.lines()
            if verdict.passed and not report["passed"]:
                lines[0] = lines[0].replace("passed", "FAILED", 1) + " (exports do not match the records)"
            echo(f"audit {lines[0]}; {report['records_with_suspects']} records with suspects "
                 "(limits of publish gate 1)")
            for line in lines[1:]:
                echo(f"  {line}")
            for note in policy.ignored:
                echo(f"  note: {note}")
            for typ, n in report["suspects_by_type"].items():
                limit = report["limits"].get(typ)
                ids = report["record_ids_by_type"].get(typ, [])
                echo(f"  {typ:<14} {n:>6}  (limit {'-' if limit is None else limit})  "
                           f"records: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
        if not report["passed"]:
            raise typer.Exit(1)
