"""``instructkit inspect DIR``: counts by task, method and source, and a few samples."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from instructkit._exceptions import SourceError
from instructkit.dataset.writer import read_dataset

__all__ = ["inspect_dataset", "dataset_counts"]


def dataset_counts(path: str | Path) -> dict[str, Counter]:
    counts = {"task": Counter(), "method": Counter(), "source": Counter()}
    for rec in read_dataset(path):
        counts["task"][rec["task"]] += 1
        counts["method"][rec["method"]] += 1
        counts["source"][rec["source"].get("name", "?")] += 1
    return counts


def inspect_dataset(path: str | Path, samples: int = 3) -> None:
    from rich.console import Console
    from rich.table import Table

    path = Path(path)
    if not (path / "data").is_dir():
        raise SourceError("not a dataset folder written by `instructkit build` (no data/)", file=str(path))
    console = Console()
    counts = dataset_counts(path)
    for key, c in counts.items():
        t = Table(title=f"records by {key}")
        t.add_column(key)
        t.add_column("records", justify="right")
        for k, v in c.most_common():
            t.add_row(str(k), str(v))
        console.print(t)
    manifest = path / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        console.print(f"quarantined: {m.get('quarantined', 0)} (see quarantine.jsonl)")
    for i, rec in enumerate(read_dataset(path)):
        if i >= samples:
            break
        console.rule(f"{rec['task']} · {rec['method']} · {rec['id']}")
        console.print(f"[bold]instruction[/bold] {rec['instruction']}", markup=True, highlight=False)
        if rec.get("input"):
            console.print(f"[bold]input[/bold] {rec['input'][:600]}", highlight=False)
        console.print(f"[bold]output[/bold] {rec['output'][:600]}", highlight=False)
