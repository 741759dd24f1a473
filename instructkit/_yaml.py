"""One YAML loader for everything a user hands us (recipes, templates, prompts, rubrics).

YAML from a colleague is untrusted input. ``safe_load`` is PyYAML's safe loader with two
bounds: a document larger than ``max_bytes`` is refused before parsing, and one with more than
``max_aliases`` alias references, or that would expand to more than ``MAX_EXPANDED_NODES``
nodes, is refused after composing (before anything walks it), so an alias bomb ("billion
laughs") costs milliseconds instead of minutes and gigabytes.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["safe_load", "YAMLLimitError", "MAX_BYTES", "MAX_ALIASES", "shorten"]

MAX_BYTES = 2 * 1024 * 1024
MAX_ALIASES = 100
#: nodes the document would have with every alias expanded (what a reader of it walks)
MAX_EXPANDED_NODES = 200_000


class YAMLLimitError(yaml.YAMLError):
    """A YAML document over the size or alias limit."""


class _BoundedLoader(yaml.SafeLoader):
    max_aliases = MAX_ALIASES

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self.max_aliases:
                mark = self.peek_event().start_mark
                raise YAMLLimitError(f"more than {self.max_aliases} alias references (line "
                                     f"{mark.line + 1}); aliases are limited to stop alias bombs")
        return super().compose_node(parent, index)


def safe_load(text: str | bytes, max_bytes: int = MAX_BYTES, max_aliases: int = MAX_ALIASES) -> Any:
    """Parse one YAML document within the limits (``YAMLLimitError`` past them)."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > max_bytes:
        raise YAMLLimitError(f"the document is {size:,} bytes, over the {max_bytes:,}-byte limit")
    loader = _BoundedLoader(text)
    loader.max_aliases = max_aliases
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expanded_size(root: Any) -> None:
    """Nodes ``root`` stands for with aliases expanded; shared (aliased) nodes are counted
    each time they are used, computed once each (memoised), without expanding anything."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        sizes[id(node)] = total
        if total > MAX_EXPANDED_NODES:
            raise YAMLLimitError(f"the document expands to more than {MAX_EXPANDED_NODES:,} values "
                                 "through its aliases (an alias bomb?)")


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    return []


def shorten(value: Any, limit: int = 120) -> str:
    """A value for an error message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text):,} chars)"
