"""Executors run a pipeline's builders and steps; they are separate from the steps.

- ``LocalExecutor``: one process, streaming (the default);
- ``RayExecutor``: the same steps on a Ray cluster (``instructkit[ray]``).

Both hand back the same ``Execution``: every step's merged ``StepStats``, the merged
``DatasetCounts`` of the written records and the number of quarantined entries, so the
manifest and the card are the same whichever ran.
"""

from instructkit.executors.base import Execution, Executor, executor_from_config
from instructkit.executors.local import LocalExecutor

__all__ = ["Execution", "Executor", "LocalExecutor", "executor_from_config"]
