"""The README's YAML examples stay valid: each is checked against the schemas it claims."""

import re
from pathlib import Path

import yaml

from instructkit.llm.settings import LLMSettings
from instructkit.recipe.load import load_recipe

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_yaml_examples_are_valid():
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)]
    assert len(blocks) >= 3
    for block in blocks:
        if "name" in block:  # a whole recipe
            load_recipe(block)
        if "llm" in block:
            LLMSettings.from_config(block["llm"])
        if "embedder" in block:
            from instructkit.embeddings import EmbedderSettings

            EmbedderSettings.from_config(block["embedder"])
        if "builders" in block and "name" not in block:  # a recipe fragment
            load_recipe({"name": "readme", "seed": 1, "sources": [], **block})
