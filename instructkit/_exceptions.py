"""The exceptions instructkit raises.

Every error a user can cause derives from ``InstructkitError``; the CLI prints its message
(never a traceback) and exits with its ``exit_code``. Messages say *where* (file, line,
field) and never contain record text, so they are safe to log (no PHI, no tokens).

    InstructkitError
    ├── RecipeError          a recipe failed schema or semantic checks (lists every error)
    ├── SourceError          a source could not be read (file, line, field)
    ├── TemplateError        a prompt/instruction template is invalid (template, variable)
    │   └── RenderLimitError a rendering went over its size or time bound (one record's)
    ├── RecordError          a record does not match the record schema (JSONL input to a stage)
    ├── MissingExtraError    an optional dependency is not installed (names the extra)
    ├── OutputError          the output folder cannot be written, or another build holds it
    ├── EmptyDatasetError    a build wrote no record (names the main reason)
    ├── LLMError             the language-model endpoint failed beyond retries
    │   └── BudgetExceeded   a request or cost cap was reached
    └── PublishError         publishing was refused or failed
        └── GateError        a safety gate failed
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "InstructkitError",
    "RecipeError",
    "SourceError",
    "TemplateError",
    "RenderLimitError",
    "RecordError",
    "MissingExtraError",
    "OutputError",
    "EmptyDatasetError",
    "LLMError",
    "BudgetExceeded",
    "PublishError",
    "GateError",
]


class InstructkitError(Exception):
    """Base class of every error instructkit raises on purpose.

    ``exit_code`` is 2 for errors in what the user gave (a recipe, a path, an option) and 1
    for failures while running."""

    exit_code = 1


class RecipeError(InstructkitError):
    """A recipe is invalid. ``errors`` holds one ``path.to.field: message`` line per problem."""

    exit_code = 2

    def __init__(self, errors: Iterable[str], recipe: str | None = None) -> None:
        self.errors = list(errors)
        self.recipe = recipe
        head = f"invalid recipe {recipe}" if recipe else "invalid recipe"
        super().__init__(head + ":\n" + "\n".join(f"  {e}" for e in self.errors))


class SourceError(InstructkitError):
    """A source file or dataset could not be read. Says where: file, line and field."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file, self.line, self.field = file, line, field
        where = ":".join(str(p) for p in (file, line) if p is not None)
        if field:
            where = f"{where} field '{field}'" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class TemplateError(InstructkitError):
    """A template is invalid, e.g. uses a variable it does not declare."""

    exit_code = 2


class RenderLimitError(TemplateError):
    """One rendering grew past its size or time bound; ``reason`` (``render_too_large`` or
    ``render_timeout``) is the quarantine reason of the record it was making."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class RecordError(InstructkitError):
    """Input records do not match ``schemas/record.schema.json``."""

    exit_code = 2


class MissingExtraError(InstructkitError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    exit_code = 2

    def __init__(self, extra: str, module: str, purpose: str = "") -> None:
        self.extra, self.module = extra, module
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"the Python package '{module}' is needed{what}: "
            f"install it with  pip install 'instructkit[{extra}]'"
        )


class OutputError(InstructkitError):
    """The output folder cannot be used: it is a file, not writable, holds other files, or
    another build is writing it (exit code 1 for the lock, 2 otherwise)."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class EmptyDatasetError(InstructkitError):
    """A build wrote 0 records (``--allow-empty`` lets it succeed)."""

    exit_code = 1


class LLMError(InstructkitError):
    """The language-model endpoint could not be used."""


class BudgetExceeded(LLMError):
    """A ``--max-requests`` or cost cap was reached; the run stops cleanly."""


class PublishError(InstructkitError):
    """Publishing failed or was refused."""


class GateError(PublishError):
    """One or more publish gates failed."""
