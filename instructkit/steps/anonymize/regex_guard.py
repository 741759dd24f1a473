"""A cheap guard in front of a context pattern: the characters its match can begin with.

Most of the detector's patterns start with a case-insensitive list of label or context words
("(?i:\\b(?:flew|moved|lives|...))"). Python's ``re`` tries the whole list at every position
of a text; a lookahead for the set of first letters fails at most positions for the price of
one character test, which halves the cost of such a pattern (bench/anonymize.py). The set is
read from the pattern's parse tree and is a superset of what can start a match, so the
guarded pattern finds exactly what the pattern finds (tests/test_anonymize_regex_guard.py).
"""

from __future__ import annotations

import re
from typing import Any

try:  # the parser moved in Python 3.11; its tree format did not change
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

__all__ = ["guarded"]

#: no guard pays for itself when more letters than this can start a match
_MAX_FIRST = 40


class _Unknown(Exception):
    """The first character is not a small known set (a class like \\w, any character)."""


def guarded(regex: str, flags: int = 0) -> str:
    """``regex`` with a lookahead for its possible first characters, or ``regex`` itself
    when they are not a small known set or the pattern can match the empty string."""
    try:
        tree = _p.parse(regex, flags)
        first, nullable = _first(list(tree), bool(tree.state.flags & re.IGNORECASE))
    except (_Unknown, re.error, RecursionError):
        return regex
    if nullable or not first or len(first) > _MAX_FIRST:
        return regex
    chars, folded = set(), False
    for ch, ignore_case in first:
        chars.add(ch)
        folded |= ignore_case
    cls = "".join(_escape(ch) for ch in sorted(chars))
    # under IGNORECASE the class folds exactly as the pattern's own letters do
    return f"(?={'(?i:' if folded else ''}[{cls}]{')' if folded else ''}){regex}"


def _escape(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else ch


def _first(items: list[tuple[Any, Any]], ignore_case: bool) -> tuple[set[tuple[str, bool]], bool]:
    """(first characters, whether the sequence can match the empty string)."""
    out: set[tuple[str, bool]] = set()
    for op, av in items:
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue  # zero-width: the first character is the next item's
        if op is _c.LITERAL:
            out.add((chr(av), ignore_case))
            return out, False
        if op is _c.IN:
            out |= _class(av, ignore_case)
            return out, False
        if op is _c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            ic = (ignore_case or bool(add_flags & re.IGNORECASE)) and not del_flags & re.IGNORECASE
            first, nullable = _first(list(sub), ic)
        elif op is _c.BRANCH:
            first, nullable = set(), False
            for alt in av[1]:
                f, n = _first(list(alt), ignore_case)
                first |= f
                nullable |= n
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            low, _high, sub = av
            first, nullable = _first(list(sub), ignore_case)
            nullable = nullable or low == 0
        else:  # any character, a back-reference, a conditional: no small set
            raise _Unknown
        out |= first
        if not nullable:
            return out, False
    return out, True


def _class(items: list[tuple[Any, Any]], ignore_case: bool) -> set[tuple[str, bool]]:
    out: set[tuple[str, bool]] = set()
    for op, av in items:
        if op is _c.LITERAL:
            out.add((chr(av), ignore_case))
        elif op is _c.RANGE and av[1] - av[0] < _MAX_FIRST:
            out |= {(chr(c), ignore_case) for c in range(av[0], av[1] + 1)}
        else:  # a negated class, a category (\w, \d, \s), a wide range
            raise _Unknown
    return out
