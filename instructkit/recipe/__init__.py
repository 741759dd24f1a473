"""Recipes and the sources they name."""

from instructkit.recipe.load import Recipe, find_recipe, load_recipe, resolve_path, validate_recipe

__all__ = ["Recipe", "find_recipe", "load_recipe", "resolve_path", "validate_recipe"]
