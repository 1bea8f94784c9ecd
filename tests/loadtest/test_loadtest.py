"""``servectl loadtest`` against the live engine, and the pure parts of ``loadtest/`` on tables.

The command runs Locust in a child process, so this test process never imports Locust (and its
gevent monkey-patching); the unit tests import only the numpy-only modules.
"""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from tests.helpers import run_servectl
from tf_serving_platform.loadtest import payloads, samples, stages, stats, sweep
from tf_serving_platform.loadtest.options import LocustfileOptions, add_arguments
from tf_serving_platform.loadtest.report import Generator, LevelReport, Measured
from tf_serving_platform.loadtest.samples import ProcessUsage, Recorder
from tf_serving_platform.loadtest.session import LoadTest, LoadTestError, plan
from tf_serving_platform.loadtest.signature import InputSpec
from tf_serving_platform.loadtest.slo import Slo, Verdict, judge
from tf_serving_platform.servectl.arguments import duration
from tf_serving_platform.serving import codec
from tf_serving_platform.serving.client import ModelRef

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
GENEROUS = ("--slo-p99-ms", "2000", "--slo-error-rate", "0")


def loadtest(engine, out, *args: str):
    return run_servectl("loadtest", "--model", "half_plus_two", "--out", str(out), *args,
                        timeout=120)


@pytest.fixture(scope="module")
def both_protocols(engine, tmp_path_factory):
    """One short run over REST and gRPC that meets a generous SLO."""
    out = tmp_path_factory.mktemp("loadtest")
    result = loadtest(engine, out, "--rest", engine.rest_url, "--grpc", engine.grpc_target,
                      "--users", "2", "--duration", "3s", *GENEROUS)
    return result, out


def test_generous_slo_passes_and_prints_the_table(both_protocols):
    result, _ = both_protocols
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("users"))
    assert header.split() == ["users", "protocol", "requests", "errors", "error", "%", "req/s",
                              "p50", "ms", "p90", "ms", "p95", "ms", "p99", "ms", "stable"]
    for protocol in ("grpc", "rest", "all"):
        row = next(line.split() for line in lines if re.match(rf"\s*2\s+{protocol}\s", line))
        assert int(row[2]) > 10 and row[3] == "0"
        p50, p90, p95, p99 = map(float, row[6:10])
        assert 0 < p50 <= p90 <= p95 <= p99 < 2000
        assert re.fullmatch(r"\d+\.\d{3}", row[6])  # microsecond precision, not Locust's ms
    assert re.search(r"load generator: 1 Locust process\(es\) sending, [\d.]+ of \d+ cores",
                     result.stdout)
    assert lines[-1].startswith("SLO PASS: p99 ")


def test_run_writes_locust_reports_plot_and_json(both_protocols):
    _, out = both_protocols
    with open(out / "locust_stats.csv", newline="") as f:
        rows = {row["Type"]: row for row in csv.DictReader(f)}
    assert {"POST", "gRPC"} <= set(rows) and int(rows["gRPC"]["Request Count"]) > 0
    html = (out / "locust.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "half_plus_two" in html
    png = (out / "timeline.png").read_bytes()
    assert png.startswith(PNG_HEADER) and len(png) > 10_000
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == {"passed": True, "exit_code": 0,
                                  "reasons": results["verdict"]["reasons"]}
    level = results["levels"][0]
    assert level["users"] == 2 and set(level["protocols"]) == {"rest", "grpc", "all"}
    assert level["protocols"]["all"]["requests"] == sum(
        level["protocols"][p]["requests"] for p in ("rest", "grpc"))
    assert [p["role"] for p in results["generator"]["processes"]] == ["local"]
    assert results["locust_exit_code"] == 0


def test_impossible_slo_fails_with_the_reason(engine, tmp_path):
    result = loadtest(engine, tmp_path, "--rest", engine.rest_url, "--users", "1",
                      "--duration", "2s", "--slo-min-rps", "1000000")
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^SLO FAIL: throughput [\d.]+ req/s < 1000000 req/s", result.stdout, re.M)
    assert json.loads((tmp_path / "results.json").read_text())["locust_exit_code"] == 1


def test_sweep_draws_the_curve_and_finds_the_knee(engine, tmp_path):
    result = loadtest(engine, tmp_path, "--rest", engine.rest_url, "--sweep", "1,4",
                      "--duration", "2s", *GENEROUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SLO PASS: knee at 4 users" in result.stdout
    with open(tmp_path / "curve.csv", newline="") as f:
        curve = list(csv.DictReader(f))
    assert [row["users"] for row in curve] == ["1", "4"]
    assert all(float(row["rps"]) > 0 and row["slo_passed"] == "True" for row in curve)
    assert (tmp_path / "curve.png").read_bytes().startswith(PNG_HEADER)
    assert json.loads((tmp_path / "results.json").read_text())["knee_users"] == 4


@pytest.mark.parametrize("args, message", [
    (("--model", "no_such_model"), "HTTP 404: Servable not found for request"),
    (("--model", "half_plus_two", "--signature", "nope"), "has no signature 'nope'"),
    (("--model", "half_plus_two", "--sweep", "4,x"), "--sweep: expected comma-separated"),
])
def test_usage_errors_are_one_line_and_exit_2(engine, tmp_path, args, message):
    result = run_servectl("loadtest", "--rest", engine.rest_url, "--out", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- pure parts, on small tables ------------------------------------------------------------

def test_percentiles_are_exact_below_a_millisecond():
    summary = stats.summarize(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 90.0]),
                              np.array([True] * 5 + [False]), seconds=2.0)
    assert summary.p50_ms == pytest.approx(0.3) and summary.max_ms == pytest.approx(0.5)
    assert (summary.requests, summary.errors, summary.rps) == (6, 1, 2.5)
    assert summary.error_rate == pytest.approx(1 / 6)
    nothing = stats.summarize(np.array([5.0]), np.array([False]), seconds=1.0)
    assert math.isnan(nothing.p99_ms) and nothing.rps == 0


def test_windows_drop_the_partial_last_one():
    start = np.array([0.1, 0.6, 1.2, 1.9, 2.5])
    found = stats.windows(start, np.ones(5), np.ones(5, bool), begin=0.0, end=2.7, width=1.0)
    assert [w.requests for w in found] == [2, 2]


def _window(rps: float, p95: float) -> stats.Summary:
    return stats.Summary(int(rps), 0, 1.0, p95 / 2, p95, p95, p95, p95)


@pytest.mark.parametrize("table, stable", [
    ([(100, 5.0), (100, 5.0), (100, 5.0)], True),
    ([(50, 9.0), (100, 5.0), (105, 5.2), (98, 4.9)], True),  # only the last three count
    ([(100, 5.0), (100, 5.0), (130, 5.0)], False),  # throughput moved by > 10%
    ([(100, 5.0), (100, 5.0), (100, 6.5)], False),  # p95 moved by > 10%
    ([(100, 5.0), (100, 5.0)], False),  # too few windows
])
def test_stability_needs_three_agreeing_windows(table, stable):
    assert stats.stability([_window(*row) for row in table]).stable is stable


@pytest.mark.parametrize("slo, measured, passed, reason", [
    (Slo(p99_ms=10), (100, 9.5, 0.0, 50.0), True, "p99 9.500 ms <= 10 ms"),
    (Slo(p99_ms=10), (100, 10.5, 0.0, 50.0), False, "p99 10.500 ms > 10 ms"),
    (Slo(p99_ms=10), (100, math.nan, 1.0, 0.0), False, "p99 nan ms > 10 ms"),
    (Slo(error_rate=0.01), (100, 1.0, 0.02, 50.0), False, "error rate 2.00% > 1.00%"),
    (Slo(min_rps=1e6), (100, 1.0, 0.0, 50.0), False, "throughput 50.0 req/s < 1000000 req/s"),
    (Slo(), (100, 1.0, 0.5, 1.0), True, "no SLO set"),
    (Slo(error_rate=0.01), (0, math.nan, 0.0, 0.0), False, "no request completed"),
])
def test_verdict(slo, measured, passed, reason):
    verdict = judge(slo, *measured)
    assert verdict.passed is passed and verdict.reasons[0] == reason
    assert verdict.exit_code == (0 if passed else 1)


@pytest.mark.parametrize("shape, kwargs, users", [
    ("constant", {}, [8]),
    ("steps", {"step_users": 3}, [3, 6, 8]),
    ("steps", {"levels": (1, 4, 16)}, [1, 4, 16]),
    ("spike", {}, [2, 8, 2]),
])
def test_stage_plans(shape, kwargs, users):
    planned = stages.plan(shape, 8, 4.0, 10.0, **kwargs)
    assert [s.users for s in planned] == users and {s.seconds for s in planned} == {10.0}


def test_stage_clock_starts_a_stage_when_its_users_are_running(tmp_path):
    now = [0.0]
    clock = stages.StageClock([stages.Stage(2, 3.0, 1.0), stages.Stage(4, 3.0, 1.0)],
                              tmp_path / stages.SCHEDULE_FILE, clock=lambda: now[0])
    ticks = []
    for t, running in [(0, 0), (1, 1), (2, 2), (4, 2), (5, 2), (6, 3), (7, 4), (10, 4)]:
        now[0] = float(t)
        ticks.append(clock.tick(running))
    assert ticks == [(2, 1.0)] * 4 + [(4, 1.0)] * 3 + [None]
    assert stages.read_levels(tmp_path) == [stages.Level(2, 2.0, 5.0), stages.Level(4, 7.0, 10.0)]


def _level(users: int, passed: bool) -> LevelReport:
    measured = Measured(_window(100.0 * users, 5.0), stats.stability([]))
    return LevelReport(users, 0.0, 1.0, {"rest": measured}, Verdict(passed, ()))


@pytest.mark.parametrize("table, knee", [
    ([(1, True), (4, True), (16, False)], 4),
    ([(1, True), (4, False), (16, True)], 16),
    ([(1, False), (4, False)], None),
])
def test_knee_is_the_highest_load_meeting_the_slo(table, knee):
    found = sweep.knee([_level(*row) for row in table])
    assert (found.users if found else None) == knee


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("1m30s", 90), ("500ms", 0.5),
                                           ("45", 45), ("2h", 7200)])
def test_durations(text, seconds):
    assert duration(text) == seconds


def test_synthetic_payload_round_trips_through_the_codec():
    specs = [InputSpec("x", codec.resolve("DT_FLOAT"), (-1, 3)),
             InputSpec("ids", codec.resolve("DT_INT64"), (-1,)),
             InputSpec("text", codec.resolve("DT_STRING"), (-1,))]
    arrays = payloads.synthesize(specs, batch=4, rng=np.random.default_rng(0))
    assert arrays["x"].shape == (4, 3) and arrays["x"].dtype == np.float32
    body = payloads.rest_body(arrays, ModelRef("m", signature="sig"))
    request = codec.decode_predict_json(body)
    assert request.signature_name == "sig" and not request.row_format
    assert request.inputs["ids"].tolist() == arrays["ids"].tolist()
    assert all(b" " in phrase for phrase in arrays["text"].tolist())


@pytest.mark.parametrize("processes, bottleneck", [
    ([("local", 9.5, 10.0)], True),
    ([("local", 3.0, 10.0)], False),
    ([("master", 9.8, 10.0), ("worker", 5.0, 10.0), ("worker", 5.5, 10.0)], False),
])
def test_generator_bottleneck_is_a_busy_sending_process(processes, bottleneck):
    usage = Generator(tuple(ProcessUsage(role, pid, cpu, wall)
                            for pid, (role, cpu, wall) in enumerate(processes)))
    assert usage.bottleneck is bottleneck
    assert (usage.warning() is not None) is bottleneck


def test_recorder_round_trip(tmp_path):
    recorder = Recorder(tmp_path, "local")
    recorder.on_test_start()
    recorder.on_request(request_type="POST", response_time=0.25, start_time=100.0)
    recorder.on_request(request_type="gRPC", response_time=1.5, start_time=99.0,
                        exception=RuntimeError("UNAVAILABLE"))
    recorder.on_test_stop()
    loaded = samples.load(tmp_path)
    assert loaded.protocol.tolist() == ["grpc", "rest"]  # ordered by start time
    assert loaded.latency_ms.tolist() == [1.5, 0.25] and loaded.ok.tolist() == [False, True]
    assert [p.role for p in loaded.processes] == ["local"] and loaded.processes[0].wall_s > 0


# --- the session API and the locustfile's options --------------------------------------------

def test_locustfile_options_parse_back_from_the_command_line_the_runner_writes():
    import argparse

    written = LocustfileOptions(model="m", model_version=3, signature="sig",
                                grpc_target="127.0.0.1:1", batch_size=4, shape="steps",
                                step_duration=2.5, levels="1,4", samples_dir="out/samples",
                                slo_p99_ms=12.5, slo_error_rate=0.0, api_protocol="v2")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert LocustfileOptions.from_parsed(parser.parse_args(written.argv())) == written
    assert LocustfileOptions.from_parsed(parser.parse_args([])) == LocustfileOptions()


@pytest.mark.parametrize("changes, message", [
    ({"rest": None}, "give --rest URL and/or --grpc HOST:PORT"),
    ({"model": None}, "give --model NAME (or --replay LOGS)"),
    ({"version": 2, "label": "canary"}, "give --version or --label, not both"),
    ({"sweep": "1,4", "shape": "spike"}, "--sweep plays its own levels"),
    ({"sweep": "4,x"}, "--sweep: expected comma-separated"),
    ({"slo": Slo(error_rate=1.5)}, "--slo-error-rate is a fraction in [0, 1]"),
    ({"processes": -3}, "--processes is a positive count or -1"),
])
def test_plan_refuses_what_cannot_run(tmp_path, changes, message):
    test = LoadTest(**{"out": tmp_path, "rest": "http://127.0.0.1:1", "model": "m", **changes})
    with pytest.raises(LoadTestError, match=re.escape(message)):
        plan(test)


def test_a_sweep_plans_its_levels_as_steps_without_locusts_own_gate(tmp_path):
    planned = plan(LoadTest(out=tmp_path, grpc="127.0.0.1:1", model="m", sweep="1,4",
                            duration_s=3.0, slo=Slo(p99_ms=10.0, error_rate=0.01)))
    assert [s.users for s in planned.stages] == [1, 4] and planned.users == 4
    assert (planned.options.shape, planned.options.levels) == ("steps", "1,4")
    assert (planned.options.slo_p99_ms, planned.options.slo_error_rate) == (None, None)
    assert planned.grpc == "127.0.0.1:1" and planned.rest is None
    assert planned.samples_dir == tmp_path / "samples"
    assert planned.argv()[-1] == "GrpcUser"
