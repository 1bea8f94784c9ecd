"""Soak: one engine with batching under constant mixed load (good, bad and abandoned requests
over REST and gRPC) for minutes holds its memory, descriptors, threads and latency, and gives
every request the answer it should. The load and the bounds are :mod:`benchmarks.soak`'s
(run here in-process); ``SOAK_MINUTES`` sets the length."""

from __future__ import annotations

import os
import sys

from benchmarks import soak
from tests.helpers import write_report

SOAK_MINUTES = float(os.environ.get("SOAK_MINUTES", "1"))
MIN_SHARE = 0.5
"""Each kind must have been sent at least half as often as its share of the mix says: the kinds
are drawn at random, so a kind far below its share means the mix did not run."""


def test_soak_holds_resources_latency_and_answers(tmp_path):
    record = soak.run_soak(SOAK_MINUTES, workdir=tmp_path, progress=sys.stderr)
    summary = record["summary"]
    print(soak.report(summary))
    write_report("soak_last_run.json", soak_figures(record))
    assert record["engine_exit_status"] == 0
    assert soak.violations(summary) == []
    assert_every_kind_ran(record)
    assert_every_request_answered(record)
    # Abandoned requests reached the engine and were dropped there, not only in the client.
    assert sum(v for k, v in record["engine_metrics"].items()
               if k.startswith(":platform:requests_abandoned")) > 0
    unknown = [p for p in record["engine_log_problems"] if not p["known"]]
    assert record["engine_log_problem_counts"].get("unknown", 0) == 0, unknown


def assert_every_kind_ran(record: dict) -> None:
    """Every kind of request was sent in (about) its share, and at least 50 times."""
    total = sum(record["sent"].values())
    weights = {k: v.weight for k, v in soak.MIX.items()}
    for kind, weight in weights.items():
        expected = total * weight / sum(weights.values())
        sent = record["sent"].get(kind, 0)
        assert sent >= max(50, MIN_SHARE * expected), f"{kind}: sent {sent} of ~{expected:.0f}"


def assert_every_request_answered(record: dict) -> None:
    """Each request sent is filed with one answer: none lost by the client, none skipped."""
    answered = sum(sum(w["answers"].values()) for w in record["windows"])
    assert record["skipped"] == 0
    assert answered == sum(record["sent"].values())


def soak_figures(record: dict) -> dict:
    """The figures of this run that RELIABILITY.md quotes."""
    summary = record["summary"]
    figures = {"minutes": record["config"]["minutes"], "rate": record["config"]["rate"],
               "machine": record["machine"], "code": record["code"], "sent": record["sent"],
               **{k: summary[k] for k in ("requests", "outcomes", "answers_by_kind",
                                          "resources", "p99_first_ms", "p99_last_ms",
                                          "p99_ratio", "p99_limit_ms", "warmup_s",
                                          "engine_cpu_cores", "load1_mean", "idle_fds",
                                          "idle_threads", "engine_log_problems")},
               "p99_by_window_ms": [w["p99_ms"] for w in record["windows"]],
               "engine_abandoned": {k: v for k, v in record["engine_metrics"].items()
                                    if k.startswith(":platform:requests_abandoned")},
               "violations": soak.violations(summary)}
    return figures
