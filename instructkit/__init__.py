"""instructkit: build medical instruction-tuning datasets a hospital can trust.

The public surface is exactly ``__all__`` (held by ``tests/test_exported_members.py``).
The core (records, recipes, the template builder, the pipeline) is imported eagerly; the
stages and builders that need an extra (Presidio, FAISS, the LLM client...) are imported on
first use, so ``import instructkit`` stays light and a missing extra is reported only by
what needs it.
"""

__version__ = "0.1.0"

from instructkit._exceptions import (
    BudgetExceeded,
    EmptyDatasetError,
    GateError,
    InstructkitError,
    LLMError,
    MissingExtraError,
    OutputError,
    PublishError,
    RecipeError,
    RecordError,
    SourceError,
    TemplateError,
)
from instructkit.recordbuilders.base import Builder
from instructkit.context import RunContext
from instructkit.pipeline import Pipeline, RunResult
from instructkit.records import make_record, record_id
from instructkit.steps.base import Filter, Quarantine, Step, StepStats
from instructkit.recipe.load import Recipe, load_recipe
from instructkit.recipe.sources import Source
from instructkit.recordbuilders.template import TemplateBuilder
from instructkit.dataset.reader import DatasetFolder, open_dataset, read_dataset
from instructkit.executors import LocalExecutor
from instructkit.api import anonymize_file, build, dedup_file

# name -> (module, attribute), imported on first access
_LAZY = {
    "SchemaFilter": ("instructkit.steps.quality.validate", "SchemaFilter"),
    "stages_from_config": ("instructkit.pipeline", "stages_from_config"),
    # anonymize (issue 5)
    "AnonymizeStep": ("instructkit.steps.anonymize.step", "AnonymizeStep"),
    "AuditStep": ("instructkit.steps.audit", "AuditStep"),
    "PhiDetector": ("instructkit.steps.anonymize.detect", "PhiDetector"),
    "audit_dataset": ("instructkit.steps.audit_folder", "audit_dataset"),
    # dedup and decontamination (issue 6)
    "DedupStage": ("instructkit.steps.dedup", "DedupStage"),
    "KeepRule": ("instructkit.steps.dedup.keep", "KeepRule"),
    "load_benchmark": ("instructkit.steps.dedup.decontam", "load_benchmark"),
    "Embedder": ("instructkit.embeddings", "Embedder"),
    "load_embedder": ("instructkit.embeddings", "load_embedder"),
    # quality (issue 7)
    "QualitySettings": ("instructkit.steps.quality.settings", "QualitySettings"),
    "quality_filters": ("instructkit.steps.quality", "quality_filters"),
    "JudgeStep": ("instructkit.steps.quality.judge", "JudgeStep"),
    "BiasReportStep": ("instructkit.steps.quality.bias", "BiasReportStep"),
    # language models and the synthetic builder (issue 3)
    "LLMClient": ("instructkit.llm.client", "LLMClient"),
    "llm_from_context": ("instructkit.llm.client", "llm_from_context"),
    "ChatRequest": ("instructkit.llm.types", "ChatRequest"),
    "ChatResult": ("instructkit.llm.types", "ChatResult"),
    "JsonRequest": ("instructkit.llm.types", "JsonRequest"),
    "JsonResult": ("instructkit.llm.types", "JsonResult"),
    "SyntheticBuilder": ("instructkit.recordbuilders.synthetic.builder", "SyntheticBuilder"),
    # retrieval-grounded builder (issue 4)
    "RagBuilder": ("instructkit.recordbuilders.rag.builder", "RagBuilder"),
    "RagIndex": ("instructkit.recordbuilders.rag.index", "RagIndex"),
    # publishing to the Hugging Face Hub (issue 8)
    "publish": ("instructkit.hub.publisher", "publish"),
    "publish_dataset": ("instructkit.hub.publisher", "publish_dataset"),
    "PublishResult": ("instructkit.hub.publisher", "PublishResult"),
    "GateResult": ("instructkit.hub.gates", "GateResult"),
    # the HTML dataset report (issue 17)
    "write_report": ("instructkit.dataset.report", "write_report"),
    # phased and curriculum training exports (issue 18)
    "write_phase_exports": ("instructkit.dataset.phases", "write_phase_exports"),
}


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'instructkit' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "Builder",
    "BudgetExceeded",
    "DatasetFolder",
    "EmptyDatasetError",
    "Filter",
    "GateError",
    "InstructkitError",
    "LLMError",
    "LocalExecutor",
    "MissingExtraError",
    "OutputError",
    "Pipeline",
    "PublishError",
    "Quarantine",
    "RecipeError",
    "RecordError",
    "RunContext",
    "RunResult",
    "SourceError",
    "Step",
    "StepStats",
    "TemplateError",
    "Recipe",
    "Source",
    "TemplateBuilder",
    "anonymize_file",
    "build",
    "dedup_file",
    "load_recipe",
    "make_record",
    "open_dataset",
    "read_dataset",
    "record_id",
    *_LAZY,
]
