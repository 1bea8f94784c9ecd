"""The options the throughput benchmarks share, so that each means one thing in every one."""

from __future__ import annotations

import argparse
from pathlib import Path

from tf_serving_platform.servectl.arguments import int_list, positive

RESULTS = Path("benchmarks/results")


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of a benchmark's module docstring."""
    return argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])


def add_sweep(parser: argparse.ArgumentParser, *, levels: str, duration: float,
              rounds: int | None = None) -> None:
    """``--levels`` (concurrency levels, ``1,8,32``), ``--duration`` (s a level) and, where the
    benchmark repeats its measurements interleaved, ``--rounds``."""
    parser.add_argument("--levels", type=int_list(1), default=levels,
                        help=f"concurrency levels (default {levels})")
    parser.add_argument("--duration", type=positive(float), default=duration,
                        help=f"seconds a level (default {duration:g})")
    if rounds is not None:
        parser.add_argument("--rounds", type=positive(int), default=rounds,
                            help=f"interleaved rounds, medians reported (default {rounds})")


def add_model_and_out(parser: argparse.ArgumentParser, model: str = "digits_mlp") -> None:
    """``--model`` (a zoo name) and ``--out`` (where the JSON and PNG go)."""
    parser.add_argument("--model", default=model, help=f"a zoo model (default {model})")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"folder of the results (default {RESULTS})")
