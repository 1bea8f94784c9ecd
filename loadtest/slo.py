"""The service-level objective and its verdict: p99 latency, error rate and throughput.

The same ``judge`` runs twice per load test: inside Locust as a ``quitting`` listener (on
Locust's whole-run statistics, whose percentiles are whole milliseconds) so that a plain
``locust -f loadtest/locustfile.py --slo-p99-ms 50`` exits 0/1 on its own, and again in
``servectl loadtest`` on the raw samples of the measured period, which is exact and is what
decides ``servectl``'s exit status. Averages are never judged: a mean hides the tail a user
waits on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Slo:
    """Limits a load test must meet; a limit left at None is not checked.

    Attributes:
        p99_ms: the highest acceptable 99th-percentile latency, in milliseconds.
        error_rate: the highest acceptable share of failed requests (0.01 = 1%).
        min_rps: the lowest acceptable throughput of successful requests per second.
    """

    p99_ms: float | None = None
    error_rate: float | None = None
    min_rps: float | None = None

    def describe(self) -> str:
        """The limits as text, e.g. ``p99 <= 50 ms, errors <= 1.0%``."""
        parts = []
        if self.p99_ms is not None:
            parts.append(f"p99 <= {self.p99_ms:g} ms")
        if self.error_rate is not None:
            parts.append(f"errors <= {self.error_rate:.1%}")
        if self.min_rps is not None:
            parts.append(f"throughput >= {self.min_rps:.10g} req/s")
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class Verdict:
    """The outcome: passed, and one reason per limit checked (the failing ones first)."""

    passed: bool
    reasons: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """0 when the SLO was met, 1 when it was not."""
        return 0 if self.passed else 1

    def line(self) -> str:
        """``SLO PASS: ...`` or ``SLO FAIL: ...``, the line both Locust and servectl print."""
        return f"SLO {'PASS' if self.passed else 'FAIL'}: " + "; ".join(self.reasons)


def judge(slo: Slo, requests: int, p99_ms: float, error_rate: float, rps: float) -> Verdict:
    """Checks measured values against ``slo``.

    A run in which no request completed fails whatever the limits: no evidence is not a pass.
    Likewise a NaN p99 (no request succeeded) fails a p99 limit.

    Args:
        slo: the limits.
        requests: how many requests completed (successful or not).
        p99_ms: 99th-percentile latency of the successful requests.
        error_rate: failed share of the completed requests.
        rps: successful requests per second.

    Example:
        >>> judge(Slo(p99_ms=10), requests=500, p99_ms=12.5, error_rate=0, rps=100).line()
        'SLO FAIL: p99 12.500 ms > 10 ms'
    """
    failed: list[str] = [] if requests else ["no request completed"]
    met: list[str] = []
    if slo.p99_ms is not None:
        ok = math.isfinite(p99_ms) and p99_ms <= slo.p99_ms
        (met if ok else failed).append(
            f"p99 {p99_ms:.3f} ms {'<=' if ok else '>'} {slo.p99_ms:g} ms")
    if slo.error_rate is not None:
        ok = error_rate <= slo.error_rate
        (met if ok else failed).append(
            f"error rate {error_rate:.2%} {'<=' if ok else '>'} {slo.error_rate:.2%}")
    if slo.min_rps is not None:
        ok = rps >= slo.min_rps
        (met if ok else failed).append(
            f"throughput {rps:.1f} req/s {'>=' if ok else '<'} {slo.min_rps:.10g} req/s")
    if not failed and not met:
        met.append("no SLO set")
    return Verdict(not failed, tuple(failed + met))
