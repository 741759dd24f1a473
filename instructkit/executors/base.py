"""What every executor hands back, and choosing one from a recipe or the command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from instructkit.dataset.counts import DatasetCounts
from instructkit.steps.base import Step, StepStats

if TYPE_CHECKING:
    from instructkit.dataset.writer import DatasetWriter
    from instructkit.pipeline import Pipeline

__all__ = ["Execution", "Executor", "executor_from_config"]


@dataclass
class Execution:
    """A finished execution: merged figures of every builder and stage, and of the records."""

    builders: list[tuple[Step, StepStats]]
    stages: list[tuple[Step, StepStats]]
    counts: DatasetCounts
    quarantined: int
    stopped_early: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    name: str

    def run(self, pipeline: "Pipeline", writer: "DatasetWriter | None", *,
            quiet: bool = False) -> Execution: ...


def executor_from_config(config: Mapping[str, Any] | None) -> Executor:
    """``execution: {executor: local | ray, address: ..., workers: N}`` (recipe or CLI)."""
    from instructkit.executors.local import LocalExecutor

    cfg = dict(config or {})
    kind = cfg.get("executor", "local")
    if kind == "local":
        return LocalExecutor()
    if kind == "ray":
        from instructkit.executors.ray import RayExecutor

        return RayExecutor.from_config(cfg)
    from instructkit._exceptions import RecipeError

    raise RecipeError([f"execution.executor: {kind!r} is not one of ['local', 'ray']"])
