"""PNG plots of a load test (matplotlib's Agg backend: no display needed).

* ``timeline``: latency percentiles (p50/p95/p99) and throughput per second over the run, per
  protocol, with the measured period of each level shaded, so warm-up, a GC pause or a
  degrading server is visible rather than averaged away.
* ``curve``: the throughput-vs-latency curve of a sweep, one point per level, with the SLO's
  p99 limit and the knee marked.

Figures are built with ``matplotlib.figure.Figure``, not pyplot: no global figure state and no
backend to select, so it works the same in a headless process.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from tf_serving_platform.loadtest.report import LevelReport, Report
from tf_serving_platform.loadtest.samples import Samples
from tf_serving_platform.loadtest.slo import Slo
from tf_serving_platform.loadtest.stages import users_text

BUCKET_S = 1.0
STYLES = {50: "-", 95: "--", 99: ":"}


def _log_scale(axis) -> None:
    """A log latency axis labelled 2, 5, 10 rather than 2x10^0: latencies span decades."""
    axis.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.yaxis.set_major_formatter(plain)
    axis.yaxis.set_minor_formatter(plain)


def _per_second(samples: Samples, t0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bucket centres, successful requests per second and p50/p95/p99 per bucket."""
    done = samples.done - t0
    bucket = np.floor(done / BUCKET_S).astype(int)
    keys = np.unique(bucket)
    keys = keys[(keys + 1) * BUCKET_S <= done.max()]  # a partial last bucket's rate reads low
    rps = np.array([np.count_nonzero(samples.ok[bucket == k]) / BUCKET_S for k in keys])
    latency = np.full((len(keys), len(STYLES)), np.nan)
    for i, k in enumerate(keys):
        good = samples.latency_ms[(bucket == k) & samples.ok]
        if good.size:
            latency[i] = np.percentile(good, list(STYLES))
    return (keys + 0.5) * BUCKET_S, rps, latency


def timeline(samples: Samples, report: Report, path: Path) -> Path:
    """Writes the latency/throughput-over-time plot of a run."""
    fig = Figure(figsize=(10, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    t0 = float(samples.start.min()) if len(samples.start) else 0.0
    for color, name in zip(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"],
                           sorted(set(samples.protocol.tolist())), strict=False):
        seconds, rps, latency = _per_second(samples.select(samples.protocol == name), t0)
        for column, (q, style) in enumerate(STYLES.items()):
            top.plot(seconds, latency[:, column], style, color=color, label=f"{name} p{q}")
        bottom.plot(seconds, rps, color=color, label=name)
    for level in report.levels:
        for axis in (top, bottom):
            axis.axvspan(level.start - t0, level.end - t0, color="0.9", zorder=0)
        bottom.annotate(users_text(level.users), (level.start - t0, 0), fontsize=8,
                        xytext=(2, 2), textcoords="offset points")
    _log_scale(top)
    top.set_ylabel("latency (ms)")
    top.set_title("latency percentiles and throughput per second (shaded: measured levels)")
    top.legend(fontsize=8, ncol=2)
    bottom.set_ylabel("successful requests/s")
    bottom.set_xlabel("seconds since the first request")
    bottom.set_ylim(bottom=0)
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def curve(levels: list[LevelReport], knee: LevelReport | None, slo: Slo, path: Path) -> Path:
    """Writes the throughput-vs-latency curve of a sweep."""
    fig = Figure(figsize=(8, 5.5))
    axis = fig.subplots()
    rps = [level.combined.summary.rps for level in levels]
    for q, style in STYLES.items():
        values = [getattr(level.combined.summary, f"p{q}_ms") for level in levels]
        axis.plot(rps, values, style, marker="o", label=f"p{q}")
    for level, x in zip(levels, rps, strict=True):
        axis.annotate(users_text(level.users), (x, level.combined.summary.p99_ms), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
    if slo.p99_ms is not None:
        axis.axhline(slo.p99_ms, color="red", linewidth=1, label=f"SLO p99 {slo.p99_ms:g} ms")
    if knee is not None:
        s = knee.combined.summary
        axis.plot([s.rps], [s.p99_ms], "*", color="red", markersize=16,
                  label=f"knee: {users_text(knee.users)}, {s.rps:.0f} req/s")
    axis.set_xlabel("throughput (successful requests/s)")
    axis.set_ylabel("latency (ms)")
    _log_scale(axis)
    axis.set_title("throughput vs latency, one point per load level")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
