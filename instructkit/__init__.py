"""instructkit: build medical instruction-tuning datasets a hospital can trust.

The public surface is exactly ``__all__`` (held by ``tests/test_exported_members.py``).
"""

__version__ = "0.1.0"

from ._exceptions import (
    BudgetExceeded,
    GateError,
    InstructkitError,
    LLMError,
    MissingExtraError,
    PublishError,
    RecipeError,
    RecordError,
    SourceError,
    TemplateError,
)
from .builder import Builder
from .context import RunContext
from .pipeline import Pipeline, RunResult
from .records import make_record, record_id
from .steps import Filter, Quarantine, Step
from .recipe import Recipe, load_recipe
from .sources import Source
from .template import TemplateBuilder
from .export import read_dataset
from .api import build

__all__ = [
    "__version__",
    "Builder",
    "BudgetExceeded",
    "Filter",
    "GateError",
    "InstructkitError",
    "LLMError",
    "MissingExtraError",
    "Pipeline",
    "PublishError",
    "Quarantine",
    "RecipeError",
    "RecordError",
    "RunContext",
    "RunResult",
    "SourceError",
    "Step",
    "TemplateError",
    "Recipe",
    "Source",
    "TemplateBuilder",
    "build",
    "load_recipe",
    "make_record",
    "read_dataset",
    "record_id",
]
