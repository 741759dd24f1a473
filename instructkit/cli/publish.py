"""``instructkit publish DIR --repo-id ORG/NAME [--public] [--dry-run]``.

The gate's policy comes from this command and the installed package, never from the folder
it judges (``hub.policy``): the repo is private unless ``--public`` is given, whatever the
folder's ``recipe.yaml`` says under ``publish.private``. The folder may only name a default
repo id (``publish.repo_id``), which a dry run shows before anything is sent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from instructkit.cli.app import echo

from instructkit._exceptions import GateError

logger = logging.getLogger("instructkit")


def _recipe_publish(folder: Path) -> dict:
    """The ``publish:`` section of the folder's recipe copy (repo_id; private is ignored)."""
    from instructkit.hub.policy import read_folder_recipe

    section = read_folder_recipe(folder).get("publish")
    return section if isinstance(section, dict) else {}


def _visibility(public: bool, cfg: dict) -> bool:
    """Private unless the command says ``--public``: a folder cannot make a repo public."""
    if not public and cfg.get("private") is False:
        logger.warning("recipe.yaml in the folder sets publish.private: false: ignored, the repo "
                       "stays private (pass --public to publish publicly)")
    return not public


def _dry_run_report(result) -> None:
    """What a dry run prints: the verdict first, then the gates, the files and the card."""
    where = f"{result.url} ({'private' if result.private else 'PUBLIC'})"
    if result.passed:
        echo(f"dry run: would publish to {where}; nothing was sent\n")
    else:
        failed = ", ".join(str(g.number) for g in result.failed_gates)
        echo(f"dry run: publishing would be REFUSED: gate(s) {failed} failed; nothing would be sent "
             f"to {where}\n")
    echo("gates:\n" + result.gates_report() + "\n")
    total = sum(f.size for f in result.files)
    echo(f"files ({len(result.files)}, {total} bytes):\n" + result.files_report() + "\n")
    if any(g.number == 1 and not g.passed for g in result.gates):
        # the card may hold what gate 1 found: it is shown once the gate passes
        echo("card (README.md): not shown while gate 1 fails")
    else:
        echo("card (README.md):\n" + result.card)


def register(app: typer.Typer) -> None:
    @app.command()
    def publish(
        dataset: Path = typer.Argument(..., help="A dataset folder written by `instructkit build`."),
        repo_id: Optional[str] = typer.Option(None, "--repo-id", help="ORG/NAME on the Hub (default: the recipe's publish.repo_id)."),
        public: bool = typer.Option(False, "--public", help="Create the repo public (default: private; only this option makes it public)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="No network, no token: print the gate results, the exact files and the card."),
    ) -> None:
        """Check the publish gates, then push data, card, manifest and recipe to the Hub in one
        commit (token from HF_TOKEN or `hf auth login`)."""
        from instructkit.cli.app import quiet
        from instructkit.hub import publish as publish_api

        cfg = _recipe_publish(dataset)
        repo = repo_id or cfg.get("repo_id")
        if not repo:
            raise typer.BadParameter("no repo id: pass --repo-id ORG/NAME (or set publish.repo_id "
                                     "in the recipe)", param_hint="--repo-id")
        private = _visibility(public, cfg)
        try:
            result = publish_api(dataset, repo, private=private, dry_run=dry_run)
        except GateError as exc:
            res = getattr(exc, "result", None)
            if res is not None:
                echo(res.gates_report(), err=True)
            raise
        if dry_run:
            _dry_run_report(result)
            if not result.passed:
                raise GateError("publishing would be refused: gate(s) " + ", ".join(
                    str(g.number) for g in result.failed_gates) + " failed")
            return
        if not quiet():
            echo(result.gates_report())
            echo(f"published {len(result.files)} files "
                       f"({'private' if result.private else 'public'})")
        echo(result.url)
