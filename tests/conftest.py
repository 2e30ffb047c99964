"""Shared fixtures (helpers live in support.py)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from support import MakeProject, build_project

# the device-simulation kit, enabled as users enable it in their own test suites
pytest_plugins = ["slowdash_controls.pytest_plugin"]


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """``make_project(modules={"name": source, ...}, parameters=..., entries=..., system=...)``."""
    return functools.partial(build_project, tmp_path)
