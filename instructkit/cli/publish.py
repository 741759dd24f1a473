"""``instructkit publish DIR --repo-id ORG/NAME [--public] [--dry-run]``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from instructkit._exceptions import GateError, PublishError


def _recipe_publish(folder: Path) -> dict:
    """The ``publish:`` section of the folder's recipe copy (repo_id, private)."""
    import yaml

    p = folder / "recipe.yaml"
    if not p.is_file():
        return {}
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}
    section = data.get("publish") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


def register(app: typer.Typer) -> None:
    @app.command()
    def publish(
        dataset: Path = typer.Argument(..., help="A dataset folder written by `instructkit build`."),
        repo_id: Optional[str] = typer.Option(None, "--repo-id", help="ORG/NAME on the Hub (default: the recipe's publish.repo_id)."),
        public: bool = typer.Option(False, "--public", help="Create the repo public (default: private)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="No network, no token: print the gate results, the exact files and the card."),
    ) -> None:
        """Check the publish gates, then push data, card, manifest and recipe to the Hub in one
        commit (token from HF_TOKEN or `hf auth login`)."""
        from instructkit.cli.app import quiet
        from instructkit.hub import publish as publish_api

        cfg = _recipe_publish(dataset)
        repo = repo_id or cfg.get("repo_id")
        if not repo:
            raise PublishError("no repo id: pass --repo-id ORG/NAME (or set publish.repo_id in the recipe)")
        private = not public and cfg.get("private", True) is not False
        try:
            result = publish_api(dataset, repo, private=private, dry_run=dry_run)
        except GateError as exc:
            res = getattr(exc, "result", None)
            if res is not None:
                typer.echo(res.gates_report(), err=True)
            raise
        if dry_run:
            typer.echo(f"dry run: would publish to {result.url} "
                       f"({'private' if result.private else 'PUBLIC'}); nothing was sent\n")
            typer.echo("gates:\n" + result.gates_report() + "\n")
            total = sum(f.size for f in result.files)
            typer.echo(f"files ({len(result.files)}, {total} bytes):\n" + result.files_report() + "\n")
            typer.echo("card (README.md):\n" + result.card)
            if not result.passed:
                raise GateError("publishing would be refused: gate(s) " + ", ".join(
                    str(g.number) for g in result.failed_gates) + " failed")
            return
        if not quiet():
            typer.echo(result.gates_report())
            typer.echo(f"published {len(result.files)} files "
                       f"({'private' if result.private else 'public'})")
        typer.echo(result.url)
