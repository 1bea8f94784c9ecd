"""Latency percentiles, throughput and stability from raw per-request samples.

Locust's own statistics bucket response times to whole milliseconds (and coarser above 100 ms),
so a 0.4 ms p50 reads as 0 or 1 ms there. Everything here works on the raw samples the
locustfile records (float milliseconds, microsecond precision) and is exact.

Stability follows perf_analyzer: a load level is split into measurement windows, and it counts
as stable when the last three windows agree within 10% on throughput and on p95 latency (each
value within 10% of the three windows' mean). An unstable level means the numbers are still
moving (warm-up, a GC storm, a noisy neighbour) and should be measured longer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

PERCENTILES = (50, 90, 95, 99)
STABILITY_WINDOWS = 3
STABILITY_TOLERANCE = 0.10


@dataclass(frozen=True)
class Summary:
    """What one slice of samples (a protocol, a level, a window) measured.

    Attributes:
        requests: requests that completed, successful or not.
        errors: requests that failed (HTTP status >= 400, gRPC error, connection error).
        seconds: the wall-clock length of the slice; throughput is per this time.
        p50_ms: median latency of the successful requests, in milliseconds (NaN if none).
        p90_ms: 90th percentile, as above.
        p95_ms: 95th percentile, as above.
        p99_ms: 99th percentile, as above.
        max_ms: slowest successful request.
    """

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def error_rate(self) -> float:
        """Failed share of the completed requests (0 when nothing completed)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        """Throughput: successful requests per second (failures are not served load)."""
        return (self.requests - self.errors) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        """JSON-ready fields plus the derived rates."""
        return {**asdict(self), "error_rate": self.error_rate, "rps": self.rps}


def summarize(latency_ms: np.ndarray, ok: np.ndarray, seconds: float) -> Summary:
    """Percentiles (linear interpolation between the two nearest samples) and counts.

    Args:
        latency_ms: latency of every completed request, in milliseconds.
        ok: True where the request succeeded; percentiles use only these, because a refused
            request that fails in 50 µs would otherwise make a broken server look fast.
        seconds: length of the slice the samples came from.
    """
    good = np.asarray(latency_ms, dtype=np.float64)[np.asarray(ok, dtype=bool)]
    if good.size:
        values = np.percentile(good, PERCENTILES).tolist()
        slowest = float(good.max())
    else:
        values, slowest = [math.nan] * len(PERCENTILES), math.nan
    return Summary(int(len(ok)), int(len(ok) - np.count_nonzero(ok)), float(seconds), *values,
                   slowest)


def windows(start: np.ndarray, latency_ms: np.ndarray, ok: np.ndarray, begin: float,
            end: float, width: float) -> list[Summary]:
    """Splits ``[begin, end)`` into whole windows of ``width`` seconds and summarizes each.

    A request belongs to the window its start time falls in; a trailing partial window is
    dropped, as perf_analyzer does, because its throughput would read low.
    """
    count = int((end - begin) // width) if width > 0 else 0
    result = []
    for i in range(count):
        low = begin + i * width
        inside = (start >= low) & (start < low + width)
        result.append(summarize(latency_ms[inside], ok[inside], width))
    return result


@dataclass(frozen=True)
class Stability:
    """Whether a level's last windows agree, and by how much they spread.

    Attributes:
        stable: True when the last three windows are within the tolerance on both metrics.
        windows: how many measurement windows the level had.
        rps_spread: largest relative distance of a window's throughput from their mean.
        p95_spread: the same for p95 latency.
    """

    stable: bool
    windows: int
    rps_spread: float
    p95_spread: float

    def describe(self) -> str:
        """One phrase for tables and logs, e.g. ``yes (rps ±3%, p95 ±6%)``."""
        if self.windows < STABILITY_WINDOWS:
            return f"no ({self.windows} of {STABILITY_WINDOWS} windows)"
        return (f"{'yes' if self.stable else 'no'} (rps ±{self.rps_spread:.0%}, "
                f"p95 ±{self.p95_spread:.0%})")


def _spread(values: list[float]) -> float:
    mean = float(np.mean(values))
    if not math.isfinite(mean) or mean <= 0:
        return math.inf
    return max(abs(v - mean) for v in values) / mean


def stability(measured: list[Summary], tolerance: float = STABILITY_TOLERANCE) -> Stability:
    """perf_analyzer's rule over the last three windows (see the module docstring)."""
    last = measured[-STABILITY_WINDOWS:]
    if len(last) < STABILITY_WINDOWS:
        return Stability(False, len(measured), math.inf, math.inf)
    rps = _spread([w.rps for w in last])
    p95 = _spread([w.p95_ms for w in last])
    return Stability(rps <= tolerance and p95 <= tolerance, len(measured), rps, p95)
