"""The ``instructkit`` command: a thin shell over the Python API.

Each area adds its commands from its own module (``instructkit/cli/<area>.py`` with
``register(app)``); command modules only parse arguments and print.

One error path: a user error (a bad recipe, path or option: ``InstructkitError`` with exit
code 2, or a usage error from click, whichever copy of click typer uses) prints one line and
exits 2; a failure while running prints one line and exits 1; ``--verbose`` adds the
traceback. Every message passes through the secret scrubber.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer

from instructkit._exceptions import InstructkitError
from instructkit._secrets import SecretFilter, scrub_secrets

app = typer.Typer(
    name="instructkit",
    help="Build medical instruction-tuning datasets: build, anonymize, dedup, validate, publish.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

logger = logging.getLogger("instructkit")

#: modules that add commands
COMMAND_MODULES = ["build", "llm", "rag", "anonymize", "dedup", "quality", "publish", "report"]

_state = {"quiet": False, "verbose": False}


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars; only errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens (no record text); show tracebacks."),
) -> None:
    _state["quiet"] = quiet
    _state["verbose"] = verbose
    _setup_logging(logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING))


def quiet() -> bool:
    """Whether ``--quiet`` was given (for commands in other modules)."""
    return _state["quiet"]


def echo(message: str, err: bool = False) -> None:
    typer.echo(scrub_secrets(message), err=err)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message: a handler bound to the
    stderr of the first invocation breaks ("Logging error") once that stream is closed, as with
    several CliRunner invocations in one process."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def _setup_logging(level: int) -> None:
    # our logger only: never configure the root logger of the host application
    if not any(getattr(h, "_instructkit", False) for h in logger.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("%(levelname)s instructkit: %(message)s"))
        h.addFilter(SecretFilter())
        h._instructkit = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.setLevel(level)
    logger.propagate = False


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"instructkit.cli.{name}").register(app)


_register_commands()


def _click_kind(exc: BaseException) -> str | None:
    """'usage', 'abort' or 'exit' for click's exceptions, from the class names alone: typer
    vendors its own copy of click (``typer._click``), so checking one module's classes misses
    the other's."""
    names = {c.__name__ for c in type(exc).__mro__}
    if "Exit" in names and hasattr(exc, "exit_code") and "ClickException" not in names:
        return "exit"
    if "Abort" in names:
        return "abort"
    if "ClickException" in names:
        return "usage"
    return None


def _one_line(message: str) -> str:
    lines = [ln for ln in str(message).strip().splitlines() if ln.strip()]
    return scrub_secrets(" ".join(lines[:1]) if len(lines) <= 1 else "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; every error ends as one message and an exit code."""
    _setup_logging(logging.WARNING)
    args = list(sys.argv[1:] if argv is None else argv)
    _state["verbose"] = any(a in ("--verbose", "-v") for a in args)
    try:
        code = app(args=args, prog_name="instructkit", standalone_mode=False)
    except InstructkitError as exc:
        _fail(f"error: {_one_line(str(exc))}", exc.exit_code, exc)
    except KeyboardInterrupt:
        _fail("interrupted", 130, None)
    except BaseException as exc:  # noqa: BLE001 - the one place every failure ends
        kind = _click_kind(exc)
        if kind == "exit":
            raise SystemExit(getattr(exc, "exit_code", 0)) from None
        if kind == "abort":
            _fail("aborted", 1, None)
        if kind == "usage":
            msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            hint = " (see --help)"
            _fail(f"error: {_one_line(msg)}{hint}", int(getattr(exc, "exit_code", 2) or 2), None)
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            _fail(f"error: {exc.strerror or type(exc).__name__}{where}", 1, exc)
        # the message of an unexpected exception may quote data: name the place, not the text
        _fail(f"error: internal error ({type(exc).__name__} at {_where(exc)}); run with "
              "--verbose for the traceback", 1, exc)
    # without standalone mode, click returns the code of typer.Exit instead of raising it
    raise SystemExit(code if isinstance(code, int) else 0)


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "instructkit" in f.filename] or frames
    if not ours:
        return "?"
    f = ours[-1]
    return f"{Path(f.filename).name}:{f.lineno}"


def _fail(message: str, code: int, exc: BaseException | None) -> None:
    if exc is not None and _state["verbose"]:
        sys.stderr.write(scrub_secrets("".join(traceback.format_exception(exc))))
    typer.echo(message, err=True)
    raise SystemExit(code) from None


if __name__ == "__main__":  # pragma: no cover
    main()
