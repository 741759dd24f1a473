"""Which class a recipe's ``builders[].type`` and ``stages.<name>`` stand for.

Entries are import paths so that a heavy extra is imported only when a recipe uses it.
Each class has ``from_config``:

- builders: ``from_config(config: dict, sources: dict[str, Source], ctx: RunContext) -> Builder``
- stages:   ``from_config(config: dict, ctx: RunContext) -> Step | list[Step]``
"""

from __future__ import annotations

import importlib
from typing import Any

BUILDERS: dict[str, str] = {
    "template": "instructkit.recordbuilders.template:TemplateBuilder",
    "synthetic": "instructkit.recordbuilders.synthetic:SyntheticBuilder",
    "rag": "instructkit.recordbuilders.rag:RagBuilder",
}

#: Stages run in this order, after all builders, over their merged output. validate and
#: judge run before dedup so that dedup's keep rule can read their scores (relevance, judge)
#: and a junk record never wins a duplicate cluster over a clean one.
STAGE_ORDER: list[str] = ["anonymize", "validate", "judge", "dedup", "audit", "bias_report"]

STAGES: dict[str, str] = {
    "anonymize": "instructkit.steps.anonymize:AnonymizeStep",
    "dedup": "instructkit.steps.dedup:DedupStage",
    "validate": "instructkit.steps.quality.validate:ValidateStage",
    "judge": "instructkit.steps.quality.judge:JudgeStep",
    "audit": "instructkit.steps.audit:AuditStep",
    # counts demographic mentions in exactly the records that are written; drops nothing
    "bias_report": "instructkit.steps.quality.bias:BiasReportStep",
}

#: Stages a recipe gets without asking (``stages: {name: false}`` turns one off).
DEFAULT_STAGES: set[str] = {"anonymize", "dedup", "validate", "audit", "bias_report"}


def resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
