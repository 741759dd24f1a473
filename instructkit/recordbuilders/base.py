"""The base class of builders: steps that turn their inputs (source rows, seed tasks,
retrieved chunks) into instruction records."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from instructkit.records import Record
from instructkit.steps.base import Step

__all__ = ["Builder"]


class Builder(Step):
    """A step whose input is what it builds from and whose output is records.

    Subclasses implement ``inputs()`` (what to build from) and ``process(inputs)``, and
    call ``self.drop(None, reason, source=...)`` for any input they cannot turn into a
    record, so that no input disappears without a quarantine line.
    """

    #: ``template`` | ``synthetic`` | ``rag``
    method: str = "template"

    def inputs(self) -> Iterable[Any]:
        raise NotImplementedError

    def build(self, limit: int | None = None) -> Iterator[Record]:
        """Run the builder over its inputs; stop pulling inputs after ``limit`` records."""
        it = self(self.inputs())
        if limit is None:
            yield from it
            return
        for n, rec in enumerate(it, 1):
            yield rec
            if n >= limit:
                break
        if hasattr(it, "close"):
            it.close()

    def card_section(self) -> str | None:
        """Markdown for the card's construction section (templates, prompts, models)."""
        return None
