"""``instructkit dedup``: decontaminate and deduplicate a JSONL of records."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from instructkit.cli.app import echo

__all__ = ["register"]


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
        keep: Optional[str] = typer.Option(None, "--keep", help="Keep rule, comma-separated: method,judge_score,relevance,output_length,id."),
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
        from instructkit.api import dedup_file

        r = dedup_file(input, out, config=config, quarantine_path=quarantine, quiet=quiet())
        if not quiet():
            echo(f"{r.kept} records kept, {r.quarantined} quarantined")
            for name, s in r["steps"].items():
                reasons = ", ".join(f"{k}: {v}" for k, v in s.get("dropped_by_reason", {}).items())
                echo(f"  {name}: {reasons or 'nothing dropped'}")
                removed = (s.get("extra") or {}).get("removed_by_benchmark") or {}
                for bench, b in ((s.get("settings") or {}).get("benchmarks") or {}).items():
                    echo(f"    {bench}: {(removed.get(bench) or {}).get('removed', 0)} removed "
                               f"({b['items']} test items)")
                for skipped in (s.get("settings") or {}).get("skipped_absent") or []:
                    echo(f"    {skipped}: absent, skipped")
