"""The synthetic builder (Self-Instruct, Evol-Instruct) and its seed pool and prompts."""

from __future__ import annotations

from instructkit.recordbuilders.synthetic.builder import EvolInstructConfig, SelfInstructConfig, SyntheticBuilder
from instructkit.recordbuilders.synthetic.filters import NoveltyFilter, elimination_reason, instruction_problem
from instructkit.recordbuilders.synthetic.prompts import Prompt, PromptSet, load_prompt_set
from instructkit.recordbuilders.synthetic.seeds import SeedPool, SeedTask, load_seed_pool

__all__ = [
    "EvolInstructConfig",
    "NoveltyFilter",
    "Prompt",
    "PromptSet",
    "SeedPool",
    "SeedTask",
    "SelfInstructConfig",
    "SyntheticBuilder",
    "elimination_reason",
    "instruction_problem",
    "load_prompt_set",
    "load_seed_pool",
]
