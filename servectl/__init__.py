"""The ``servectl`` command line."""

from __future__ import annotations

import sys


def command(*args: str) -> list[str]:
    """``servectl ARGS`` as this interpreter runs it, for child processes: the console script
    need not be on ``PATH``, and the child imports the same installation."""
    return [sys.executable, "-m", "tf_serving_platform.servectl.cli", *args]
