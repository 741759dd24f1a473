"""The validate stage: every record must match ``schemas/record.schema.json``, then pass
the quality filters (``instructkit.steps.quality``), each of which drops with a named reason.

Stage names: the schema check is ``validate``; each quality filter is
``validate.<filter>`` (e.g. ``validate.model_artefacts`` dropping with reason ``refusal``)
so the manifest and card count every filter on its own row.
"""

from __future__ import annotations

from typing import Any

from instructkit.context import RunContext
from instructkit.records import Record, schema_errors
from instructkit.steps.base import Filter, Step

__all__ = ["SchemaFilter", "ValidateStage"]


class SchemaFilter(Filter):
    """Drop records that do not match the record schema (compiled validator)."""

    name = "validate"

    def check(self, record: Record):
        errors = schema_errors(record)
        if not errors:
            return True
        return "schema", {"errors": errors[:10]}


class ValidateStage:
    """Factory for the ``validate`` stage: schema check first, then the quality filters.

    ``config`` is the recipe's ``stages.validate`` mapping: ``quality: false`` keeps the
    schema check only; ``filters`` and ``tasks`` override ``instructkit/steps/quality/defaults.yaml``.
    """

    @classmethod
    def from_config(cls, config: dict[str, Any], ctx: RunContext) -> list[Step]:
        from instructkit.steps.quality import quality_filters

        config = dict(config or {})
        steps: list[Step] = [SchemaFilter()]
        if config.get("quality", True) is not False:
            steps.extend(quality_filters(config, ctx))
        return steps
