"""rich progress bars for long steps; silent with ``quiet`` or when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress_iter", "progress_counter"]


def progress_iter(items: Iterable[T], description: str, *, total: int | None = None,
                  quiet: bool = False) -> Iterator[T]:
    """Yield ``items`` while showing a rich progress bar on stderr."""
    if quiet or not sys.stderr.isatty():
        yield from items
        return
    with progress_counter(description, total=total, quiet=quiet) as advance:
        for item in items:
            yield item
            advance(1)


@contextmanager
def progress_counter(description: str, *, total: int | None, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A rich progress bar driven by ``advance(n)`` calls (for work done in uneven batches)."""
    if quiet or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                               TextColumn, TimeElapsedColumn)

    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
