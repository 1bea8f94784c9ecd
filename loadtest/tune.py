"""``servectl tune``'s pure parts: the grid of batching settings, the selection rule, the outputs.

The grid follows TensorFlow Serving's tuning recipe (``batching/README.md``, "Performance
Tuning"): ``num_batch_threads`` = the machine's cores; ``batch_timeout_micros`` 0 first, then a
few values between 1 and 10 ms (0 may stay best); ``max_enqueued_batches`` close to
``num_batch_threads`` for online serving, so excess load is refused quickly instead of queueing;
``max_batch_size`` a few powers of two (the recipe's client side uses about 2x
``max_batch_size`` concurrent requests, which the default ``--users`` matches for the smallest).

The rule: among the settings whose measured run met the SLO (the load test's own ``judge``: p99 of
the successful requests and the error rate), the one with the highest throughput wins; a tie
goes to the lower p99, then to the earlier setting. No setting meeting the SLO means no answer.

Nothing here imports TensorFlow or Locust; the command (``servectl/commands/tune_cmd.py``)
starts the engines and runs the load test.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from google.protobuf import text_format

from tf_serving_platform.serving.engine.config_protos import BatchingParameters
from tf_serving_platform.serving.tables import format_table

DEFAULT_MAX_BATCH_SIZES = (8, 16, 32)
DEFAULT_TIMEOUTS_US = (0, 1000, 2000, 5000, 10000)
CSV_COLUMNS = ("index", "max_batch_size", "batch_timeout_micros", "num_batch_threads",
               "max_enqueued_batches", "requests", "rps", "p50_ms", "p99_ms", "errors",
               "error_rate", "meets_slo", "chosen", "note")


@dataclass(frozen=True)
class Setting:
    """The four swept ``BatchingParameters`` fields (in the proto's field-number order)."""

    max_batch_size: int
    batch_timeout_micros: int
    max_enqueued_batches: int
    num_batch_threads: int

    def describe(self) -> str:
        """``max_batch_size=8 batch_timeout_micros=0 ...``: the fields as the file names them."""
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    def short(self) -> str:
        """``b8 t1000us q2 th2``: a compact name for tables, plots and directory names."""
        return (f"b{self.max_batch_size} t{self.batch_timeout_micros}us "
                f"q{self.max_enqueued_batches} th{self.num_batch_threads}")

    def config_text(self, header: Sequence[str] = ()) -> str:
        """Text-format ``tensorflow.serving.BatchingParameters`` with only these four fields.

        Each line is a wrapper (``{ value: N }``), as TensorFlow Serving's own examples write
        them; ``header`` lines become ``#`` comments at the top. The text is parsed back before
        it is returned, so a file written from it always parses.
        """
        lines = [f"# {line}".rstrip() for line in header]
        lines += [f"{f.name} {{ value: {getattr(self, f.name)} }}" for f in fields(self)]
        text = "\n".join(lines) + "\n"
        parsed = text_format.Parse(text, BatchingParameters())
        assert Setting.from_proto(parsed) == self, text
        return text

    @classmethod
    def from_proto(cls, params) -> Setting:
        """The four fields of a ``BatchingParameters`` message (all must be set)."""
        return cls(*(getattr(params, f.name).value for f in fields(cls)))


def parse_values(text: str, minimum: int) -> tuple[int, ...]:
    """``"8,32"`` -> ``(8, 32)``: distinct integers >= ``minimum``, in the order given.

    Raises:
        ValueError: an entry is not an integer or is below ``minimum``, or the list is empty.
    """
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < minimum:
        raise ValueError(f"expected comma-separated integers >= {minimum}, like "
                         f"{minimum + 1},{(minimum + 1) * 4}; got {text!r}")
    return tuple(dict.fromkeys(values))


def build_grid(max_batch_sizes: Sequence[int] = DEFAULT_MAX_BATCH_SIZES,
               timeouts_us: Sequence[int] = DEFAULT_TIMEOUTS_US,
               threads: Sequence[int] = (), queues: Sequence[int] = (),
               cores: int = 1) -> list[Setting]:
    """Every combination of the values, the recipe's defaults for those not given.

    Args:
        max_batch_sizes: ``max_batch_size`` values.
        timeouts_us: ``batch_timeout_micros`` values.
        threads: ``num_batch_threads`` values; empty: ``(cores,)``.
        queues: ``max_enqueued_batches`` values; empty: the same as each setting's
            ``num_batch_threads`` (the recipe's advice for online serving).
        cores: the machine's cores, for the ``threads`` default.

    Returns:
        The settings ordered by max_batch_size, then timeout, then threads, then queue, as the
        values were given.
    """
    threads = tuple(threads) or (max(1, cores),)
    grid = []
    for size in max_batch_sizes:
        for timeout in timeouts_us:
            for thread_count in threads:
                for queue in tuple(queues) or (thread_count,):
                    grid.append(Setting(size, timeout, queue, thread_count))
    return list(dict.fromkeys(grid))


def sample(grid: Sequence[Setting], budget: int | None, seed: int = 0) -> list[Setting]:
    """At most ``budget`` settings of ``grid``: a seeded random choice, kept in grid order.

    The same grid, budget and seed always give the same settings. With no budget, or one at
    least the grid's size, the whole grid.
    """
    if budget is None or budget >= len(grid):
        return list(grid)
    if budget < 1:
        raise ValueError(f"the budget is a positive number of settings; got {budget}")
    chosen = sorted(random.Random(seed).sample(range(len(grid)), budget))
    return [grid[i] for i in chosen]


@dataclass(frozen=True)
class Trial:
    """One measured setting (1-based ``index`` in the order tried).

    ``rps`` counts successful requests per second; the percentiles are over the successful
    requests (NaN when none succeeded); ``meets_slo`` is the load test's verdict on the run.
    """

    index: int
    setting: Setting
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    meets_slo: bool
    note: str = ""

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def choose(trials: Sequence[Trial]) -> Trial | None:
    """The trial with the highest throughput among those meeting the SLO, or None.

    Ties go to the lower p99, then to the earlier trial.
    """
    passing = [t for t in trials if t.meets_slo]
    return min(passing, key=lambda t: (-t.rps, t.p99_ms, t.index), default=None)


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


def table(trials: Sequence[Trial], chosen: Trial | None) -> str:
    """Every trial: the setting, req/s, p50, p99, errors and the SLO verdict; ``*`` = chosen."""
    rows = [(t.index, *astuple(t.setting), f"{t.rps:.1f}", _ms(t.p50_ms), _ms(t.p99_ms),
             t.errors, f"{t.error_rate:.2%}",
             ("yes" if t.meets_slo else "no") + (" *" if t is chosen else ""))
            for t in trials]
    return format_table(["#", "max_batch", "timeout_us", "queue", "threads", "req/s", "p50 ms",
                         "p99 ms", "errors", "error %", "meets SLO"], rows)


def write_csv(trials: Sequence[Trial], chosen: Trial | None, path: Path) -> Path:
    """One row per trial (``CSV_COLUMNS``); ``chosen`` is true on at most one row."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for t in trials:
            s = t.setting
            writer.writerow([t.index, s.max_batch_size, s.batch_timeout_micros,
                             s.num_batch_threads, s.max_enqueued_batches, t.requests,
                             f"{t.rps:.3f}", f"{t.p50_ms:.4f}", f"{t.p99_ms:.4f}", t.errors,
                             f"{t.error_rate:.6f}", t.meets_slo, t is chosen, t.note])
    return path


def plot(trials: Sequence[Trial], chosen: Trial | None, slo_p99_ms: float, path: Path) -> Path:
    """Throughput vs p99, one point per trial (numbered), the SLO line and the chosen one."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator

    fig = Figure(figsize=(8, 5.5))
    axis = fig.subplots()
    for passed, style, label in ((True, "o", "meets SLO"), (False, "x", "misses SLO")):
        points = [t for t in trials if t.meets_slo == passed and math.isfinite(t.p99_ms)]
        if points:
            axis.plot([t.rps for t in points], [t.p99_ms for t in points], style, linestyle="",
                      color="tab:green" if passed else "tab:gray", label=label)
    for t in trials:
        if math.isfinite(t.p99_ms):
            axis.annotate(f"#{t.index}", (t.rps, t.p99_ms), fontsize=7, xytext=(4, 3),
                          textcoords="offset points")
    axis.axhline(slo_p99_ms, color="red", linewidth=1, label=f"SLO p99 {slo_p99_ms:g} ms")
    if chosen is not None:
        axis.plot([chosen.rps], [chosen.p99_ms], "*", color="red", markersize=16,
                  label=f"chosen #{chosen.index}: {chosen.setting.short()}, "
                        f"{chosen.rps:.0f} req/s")
    if any(math.isfinite(t.p99_ms) and t.p99_ms > 0 for t in trials):
        axis.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        axis.yaxis.set_major_formatter(plain)
        axis.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        axis.yaxis.set_minor_formatter(plain)
    axis.set_xlabel("throughput (successful requests/s)")
    axis.set_ylabel("p99 latency (ms)")
    axis.set_title("servectl tune: one point per batching setting")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
