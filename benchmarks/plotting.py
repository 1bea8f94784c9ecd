"""matplotlib's pyplot on the file-only backend, for the benchmarks' PNGs (no display here)."""

from __future__ import annotations


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
