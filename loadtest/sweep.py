"""A sweep over load levels: the throughput-vs-latency curve and its knee.

Each level of ``--sweep USERS1,USERS2,...`` is one stage of a single Locust run (the ``steps``
shape with explicit levels), so the server stays warm between levels and Locust's HTML report
shows the whole curve. The knee is the highest load that still meets the SLO: the capacity to
plan with. A sweep passes when it has a knee.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tf_serving_platform.loadtest.report import LevelReport, Report
from tf_serving_platform.loadtest.slo import Verdict
from tf_serving_platform.loadtest.stages import users_text

CSV_COLUMNS = ("users", "rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "error_rate", "stable",
               "slo_passed")


def parse_levels(text: str) -> tuple[int, ...]:
    """``"1,4,16"`` -> ``(1, 4, 16)``.

    Raises:
        ValueError: an entry is not a positive integer, or the list is empty.
    """
    try:
        levels = tuple(int(part) for part in text.split(","))
    except ValueError:
        levels = ()
    if not levels or min(levels) < 1:
        raise ValueError(f"expected comma-separated positive user counts like 1,4,16; "
                         f"got {text!r}")
    return levels


def knee(levels: list[LevelReport]) -> LevelReport | None:
    """The level with the most users among those meeting the SLO (None if none does)."""
    passing = [level for level in levels if level.verdict.passed]
    return max(passing, key=lambda level: level.users, default=None)


def verdict(report: Report) -> Verdict:
    """A sweep's verdict: passed when a knee exists, with the knee (or the best level) named."""
    found = knee(report.levels)
    if found is None:
        return Verdict(False, ("no level met the SLO",))
    s = found.combined.summary
    return Verdict(True, (f"knee at {users_text(found.users)}: {s.rps:.1f} req/s, "
                          f"p99 {s.p99_ms:.3f} ms",))


def write_csv(levels: list[LevelReport], path: Path) -> Path:
    """The curve, one row per level (all protocols together)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for level in levels:
            s, stable = level.combined.summary, level.combined.stability.stable
            writer.writerow([level.users, f"{s.rps:.3f}", f"{s.p50_ms:.4f}", f"{s.p90_ms:.4f}",
                             f"{s.p95_ms:.4f}", f"{s.p99_ms:.4f}", f"{s.error_rate:.6f}",
                             stable, level.verdict.passed])
    return path
