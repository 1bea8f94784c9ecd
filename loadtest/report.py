"""A load test's results from its raw samples: per level and protocol, the verdict, the table.

The measured period of each level comes from the stage clock (``loadtest.stages``), so ramp-up
is excluded; a request belongs to a level when it started and completed inside it. (Requests
in flight when Locust stops the users complete late, because the stop itself keeps the
generator's event loop busy: measured here, 25 ms instead of 4 ms.) Latency percentiles are
over successful requests, throughput counts successful requests per second, and the error
rate is the failed share of completed requests (see ``loadtest.stats``). The run-wide verdict
judges all measured requests together, which for a ``spike`` includes the spike.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from tf_serving_platform.loadtest.samples import ProcessUsage, Samples
from tf_serving_platform.loadtest.slo import Slo, Verdict, judge
from tf_serving_platform.loadtest.stages import Level
from tf_serving_platform.loadtest.stats import Stability, Summary, stability, summarize, windows
from tf_serving_platform.serving.tables import format_table

ALL = "all"
T = TypeVar("T")
BUSY_CORE = 0.9
"""A Locust process busier than this share of its one core limits the load it can offer."""


@dataclass(frozen=True)
class Measured:
    """One slice of a level: its summary and whether its measurement windows agreed."""

    summary: Summary
    stability: Stability


@dataclass(frozen=True)
class LevelReport:
    """A load level: ``users`` held from ``start`` to ``end``, measured per protocol."""

    users: int
    start: float
    end: float
    protocols: dict[str, Measured]
    verdict: Verdict

    @property
    def combined(self) -> Measured:
        """All protocols together (what the SLO judges)."""
        return _combined(self.protocols)


def _combined(by_protocol: dict[str, T]) -> T:
    """The all-protocols entry, or the only protocol's."""
    return by_protocol.get(ALL) or next(iter(by_protocol.values()))


@dataclass(frozen=True)
class Generator:
    """How busy the load generator's own processes were."""

    processes: tuple[ProcessUsage, ...]

    @property
    def busiest(self) -> float:
        """The highest share of one core used by a process that sent requests."""
        return max((p.cores for p in self.processes if p.role != "master"), default=0.0)

    @property
    def bottleneck(self) -> bool:
        """True when a generator process was (nearly) saturated: results understate the server."""
        return self.busiest >= BUSY_CORE

    def describe(self) -> str:
        """One line: processes, total cores and the busiest process."""
        senders = sum(p.role != "master" for p in self.processes)
        total = sum(p.cores for p in self.processes)
        return (f"load generator: {senders} Locust process(es) sending, {total:.2f} of "
                f"{os.cpu_count()} cores in all, busiest at {self.busiest:.0%} of its core")

    def warning(self) -> str | None:
        """The bottleneck warning, or None."""
        if not self.bottleneck:
            return None
        return (f"warning: a Locust process was {self.busiest:.0%} busy: the load generator, "
                "not the server, probably limited throughput; raise --processes or run the "
                "generator on another machine")


@dataclass(frozen=True)
class Report:
    """Everything ``servectl loadtest`` prints and writes."""

    levels: list[LevelReport]
    verdict: Verdict
    overall: dict[str, Summary]
    generator: Generator
    window_s: float


def _measure(samples: Samples, begin: float, end: float, window: float) -> Measured:
    summary = summarize(samples.latency_ms, samples.ok, end - begin)
    slices = windows(samples.start, samples.latency_ms, samples.ok, begin, end, window)
    return Measured(summary, stability(slices))


def _by_protocol(samples: Samples) -> dict[str, Samples]:
    names = sorted(set(samples.protocol.tolist()))
    parts = {name: samples.select(samples.protocol == name) for name in names}
    return {**parts, ALL: samples} if len(parts) > 1 else parts


def _judge(slo: Slo, summary: Summary) -> Verdict:
    return judge(slo, summary.requests, summary.p99_ms, summary.error_rate, summary.rps)


def analyze(samples: Samples, levels: list[Level], slo: Slo,
            window_s: float | None = None) -> Report:
    """Slices the samples by level and protocol, measures them and judges the SLO.

    Args:
        samples: every request of the run.
        levels: the measured periods; when empty (the run ended before its first stage did),
            the whole span of the samples is one level of unknown (0) users.
        slo: the limits for the verdicts.
        window_s: measurement window for stability; a fifth of the level, within 0.5-5 s,
            when not given.
    """
    if not levels and len(samples.start):
        levels = [Level(0, float(samples.start[0]), float(samples.start[-1]) + 1e-6)]
    first = (levels[0].end - levels[0].start) if levels else 5.0
    window = window_s or max(0.5, min(5.0, first / 5))
    reports = []
    measured = np.zeros(len(samples.start), bool)
    for level in levels:
        inside = (samples.start >= level.start) & (samples.done <= level.end)
        measured |= inside
        parts = _by_protocol(samples.select(inside)) or {ALL: samples.select(inside)}
        protocols = {name: _measure(part, level.start, level.end, window)
                     for name, part in parts.items()}
        reports.append(LevelReport(level.users, level.start, level.end, protocols,
                                   _judge(slo, _combined(protocols).summary)))
    seconds = sum(level.end - level.start for level in levels)
    overall = {name: summarize(part.latency_ms, part.ok, seconds)
               for name, part in _by_protocol(samples.select(measured)).items()}
    total = _combined(overall) if overall else summarize(np.array([]), np.array([]), seconds)
    return Report(reports, _judge(slo, total), overall, Generator(samples.processes), window)


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


def table(report: Report) -> str:
    """Per level and protocol: requests, errors, throughput, p50/p90/p95/p99, stability."""
    rows = []
    for level in report.levels:
        for name, m in level.protocols.items():
            s = m.summary
            rows.append((level.users, name, s.requests, s.errors, f"{s.error_rate:.2%}",
                         f"{s.rps:.1f}", _ms(s.p50_ms), _ms(s.p90_ms), _ms(s.p95_ms),
                         _ms(s.p99_ms), m.stability.describe()))
    return format_table(["users", "protocol", "requests", "errors", "error %", "req/s",
                         "p50 ms", "p90 ms", "p95 ms", "p99 ms", "stable"], rows)


def to_dict(report: Report) -> dict:
    """JSON-ready results (NaN percentiles become null)."""
    def clean(values: dict) -> dict:
        return {k: None if isinstance(v, float) and math.isnan(v) else v
                for k, v in values.items()}

    return {
        "window_s": report.window_s,
        "levels": [{"users": lv.users, "start": lv.start, "end": lv.end,
                    "slo_passed": lv.verdict.passed,
                    "protocols": {name: {**clean(m.summary.to_dict()),
                                         "stable": m.stability.stable,
                                         "stability": m.stability.describe()}
                                  for name, m in lv.protocols.items()}}
                   for lv in report.levels],
        "overall": {name: clean(s.to_dict()) for name, s in report.overall.items()},
        "verdict": {"passed": report.verdict.passed, "reasons": list(report.verdict.reasons),
                    "exit_code": report.verdict.exit_code},
        "generator": {"busiest_core_share": report.generator.busiest,
                      "bottleneck": report.generator.bottleneck,
                      "machine_cores": os.cpu_count(),
                      "processes": [{"role": p.role, "pid": p.pid, "cpu_s": p.cpu_s,
                                     "wall_s": p.wall_s, "cores": p.cores}
                                    for p in report.generator.processes]},
    }
