"""Record limits: the first step after the builders. A record whose texts are too long for
the models after it (spaCy refuses texts over its ``max_length``) goes to quarantine
``too_long`` instead of ending the build."""

from __future__ import annotations

from typing import Any

from instructkit.records import Record, text_fields
from instructkit.steps.base import Filter

__all__ = ["RecordLimitsFilter", "DEFAULT_MAX_CHARS"]

#: the schema's default (schemas/stages/limits.schema.json); generous: a long discharge
#: summary is ~30k characters, spaCy's own limit is 1M
DEFAULT_MAX_CHARS = 200_000


class RecordLimitsFilter(Filter):
    name = "limits"

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        super().__init__()
        self.max_chars = int(max_chars)

    @classmethod
    def from_config(cls, config: dict[str, Any], ctx: Any = None) -> "RecordLimitsFilter":
        from instructkit._resources import schema_defaults

        cfg = {**schema_defaults("stages/limits.schema.json"), **(config or {})}
        return cls(max_chars=int(cfg["max_chars"]))

    def settings(self) -> dict[str, Any]:
        return {"max_chars": self.max_chars}

    def check(self, record: Record):
        total = 0
        for path, text in text_fields(record):
            total += len(text)
            if len(text) > self.max_chars:
                return "too_long", {"field": path, "chars": len(text), "max_chars": self.max_chars}
        if total > 4 * self.max_chars:
            return "too_long", {"field": "(all texts)", "chars": total, "max_chars": 4 * self.max_chars}
        return True
