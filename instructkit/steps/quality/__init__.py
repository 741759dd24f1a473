"""The quality gate: filters of the validate stage, the optional LLM judge and the bias
report. Each filter keeps a record or drops it into the quarantine with a named reason;
thresholds come per task from ``defaults.yaml``, overridden by the recipe's
``stages.validate`` settings.
"""

from __future__ import annotations

from typing import Any

from instructkit.steps.quality.bias import BiasReportStep, count_mentions
from instructkit.steps.quality.filters import (CopyFilter, EmptyFieldsFilter, LengthFilter, ModelArtefactFilter,
                      QualityFilter, RepetitionFilter, TemplateLeakageFilter, TruncationFilter)
from instructkit.steps.quality.junk import LabelInputFilter, PlaceholderFilter, RelevanceFilter, TaskListFilter
from instructkit.steps.quality.language import LanguageFilter
from instructkit.steps.quality.settings import FILTER_KEYS, QualitySettings
from instructkit.steps.quality.tasks import (DecisionFilter, ImpressionCopyFilter, LabelSetFilter, MultipleChoiceFilter,
                    SeriesVocabularyFilter)

__all__ = ["QualitySettings", "QualityFilter", "quality_filters", "FILTER_CLASSES",
           "EmptyFieldsFilter", "LengthFilter", "TemplateLeakageFilter", "ModelArtefactFilter",
           "TruncationFilter", "CopyFilter", "RepetitionFilter", "LanguageFilter",
           "MultipleChoiceFilter", "LabelSetFilter", "DecisionFilter", "ImpressionCopyFilter",
           "SeriesVocabularyFilter", "PlaceholderFilter", "TaskListFilter", "LabelInputFilter",
           "RelevanceFilter", "BiasReportStep", "count_mentions"]

#: filter key -> class; run order is the order of ``defaults.yaml``
FILTER_CLASSES: dict[str, type[QualityFilter]] = {c.key: c for c in (
    EmptyFieldsFilter, LengthFilter, TemplateLeakageFilter, ModelArtefactFilter,
    TruncationFilter, CopyFilter, RepetitionFilter, PlaceholderFilter, TaskListFilter,
    LabelInputFilter, MultipleChoiceFilter, LabelSetFilter, DecisionFilter, ImpressionCopyFilter,
    SeriesVocabularyFilter, LanguageFilter, RelevanceFilter)}

assert set(FILTER_CLASSES) == set(FILTER_KEYS), "defaults.yaml and FILTER_CLASSES disagree"


def quality_filters(config: dict[str, Any] | None = None, ctx: Any = None) -> list[QualityFilter]:
    """The quality filters for validate-stage settings ``config`` (``filters``/``tasks``),
    in run order; a filter off for every task is left out. ``ctx`` (the run context) shares
    the run's embedder with the relevance filter."""
    settings = QualitySettings(config)
    return [FILTER_CLASSES[k](settings, ctx=ctx) if k == RelevanceFilter.key else FILTER_CLASSES[k](settings)
            for k in FILTER_KEYS if settings.enabled_anywhere(k)]
