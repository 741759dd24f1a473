"""Fixtures for the HTML dataset report (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def report_quickstart(tmp_path_factory) -> Path:
    """The template quickstart built with the default stages; the build writes report.html."""
    from conftest import template_quickstart
    from instructkit.api import build

    out = tmp_path_factory.mktemp("report") / "quickstart"
    build(template_quickstart(), out, quiet=True)
    return out
