"""Shared fixtures: trained zoo models (trained once per session) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@cache
def _trained_source(name: str):
    from export import sources

    return sources.resolve(name, progress=False)


@pytest.fixture(scope="session")
def zoo_source():
    """``zoo_source(name)``: an :class:`ExportSource` for a zoo model, trained once."""
    return _trained_source


def run_servectl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``servectl`` console entry point in a child process."""
    return subprocess.run([sys.executable, "-m", "servectl.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
