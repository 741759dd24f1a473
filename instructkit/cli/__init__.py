"""The ``instructkit`` command: a thin shell over the Python API."""

from instructkit.cli.app import app, main

__all__ = ["app", "main"]
