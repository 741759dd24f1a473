"""``instructkit report DIR [--out report.html] [--open]``: the dataset's HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        dataset: Path = typer.Argument(..., help="A dataset folder written by `instructkit build`."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the page (default: DIR/report.html)."),
        open_page: bool = typer.Option(False, "--open", help="Open the page in the default web browser."),
        records: int = typer.Option(500, "--records", help="Records embedded for browsing (a sample stratified by task, method and source beyond this)."),
        quarantine: int = typer.Option(500, "--quarantine", help="Quarantine entries embedded (a sample by stage and reason beyond this)."),
        no_quarantine: bool = typer.Option(False, "--no-quarantine", help="Leave quarantined texts out of the page (their counts stay)."),
    ) -> None:
        """Write one self-contained HTML page about DIR: overview and publish gates, charts,
        and browsable records, quarantine and dedup clusters. Works offline; keep it local
        (it embeds quarantined records)."""
        from instructkit.cli.app import quiet
        from instructkit.dataset.report import write_report

        path = write_report(dataset, out, max_records=records, max_quarantine=quarantine,
                            quarantine_texts=not no_quarantine)
        if not quiet():
            size = path.stat().st_size
            typer.echo(f"wrote {path} ({size / 1024:,.0f} KiB)")
        if open_page:
            import webbrowser

            webbrowser.open(path.resolve().as_uri())
