"""``servectl up`` (2 replicas behind nginx, Prometheus), rollouts under load, a replica killed
under load, ``servectl down``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request

import numpy as np
import pytest

from benchmarks.loadgen import Endpoint, predict_path, run_level
from benchmarks.run import payloads
from tests.helpers import metric, run_servectl, wait_until
from tests.model_builders import save_linear
from tf_serving_platform.loadtest import samples
from tf_serving_platform.servectl import command
from tf_serving_platform.servectl.topology import local

CONFIG = ('model_config_list { config { name: "linear" base_path: "/models/linear" '
          'model_platform: "tensorflow" model_version_policy { specific { versions: 1 } } } }\n')


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    folder = tmp_path_factory.mktemp("topology")
    for version, a in ((1, 1.0), (2, 2.0)):
        (folder / "models" / "linear").mkdir(parents=True, exist_ok=True)
        save_linear(folder / "models" / "linear" / str(version), a=a, b=0.0)
    (folder / "models.config").write_text(CONFIG)
    state = folder / "state"
    result = run_servectl("up", "--models-dir", str(folder / "models"), "--config",
                          str(folder / "models.config"), "--state", str(state),
                          "--rest-port", "0", "--grpc-port", "0")
    assert result.returncode == 0, result.stderr
    yield local.Topology.load(state)
    result = run_servectl("down", "--state", str(state))
    assert result.returncode == 0, result.stderr
    assert "replica-0" in result.stdout and "nginx" in result.stdout


def load(topology, protocol: str, seconds: float, results: dict, concurrency: int = 8):
    grpc_payload, rest_payload = payloads("linear", {"x": np.array([1.0], np.float32),
                                                     "work": np.array([0], np.int32)})
    target = Endpoint("grpc", f"127.0.0.1:{topology.grpc_port}", grpc_payload) \
        if protocol == "grpc" else Endpoint(
            "rest", f"http://127.0.0.1:{topology.rest_port}{predict_path('linear')}",
            rest_payload)
    results[protocol] = run_level(target, concurrency, seconds, processes=1, warmup_s=0.5)


def served(topology) -> float:
    """Requests the replicas have answered so far, read from their own metrics pages."""
    return sum(metric(f"http://127.0.0.1:{r.rest_port}", ":tensorflow:serving:request_count")
               for r in topology.replicas)


def rollout(topology, *args: str) -> str:
    result = run_servectl("rollout", *args, "--state", topology.state_dir, "--drain-seconds",
                          "1")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_up_starts_replicas_nginx_and_prometheus(topology):
    assert len(topology.replicas) == 2
    assert {p.name for p in topology.processes} == {"replica-0", "replica-1", "nginx",
                                                    "prometheus"}
    assert all(local._alive(p) for p in topology.processes)


def test_rollouts_under_locust_load_lose_no_request(topology, tmp_path):
    """Constant Locust load over REST and gRPC through nginx (``servectl loadtest``) while the
    model goes canary -> promote -> rollback: no request may fail. The load runs until the
    rollouts are done, however long a busy machine makes them (Ctrl-C ends it, reported)."""
    np.savez(tmp_path / "rows.npz", x=np.ones(16, np.float32), work=np.zeros(16, np.int32))
    locust = subprocess.Popen(command(
        "loadtest", "--model", "linear", "--rest", f"http://127.0.0.1:{topology.rest_port}",
        "--grpc", f"127.0.0.1:{topology.grpc_port}", "--users", "8", "--duration", "900s",
        "--payload-npz", str(tmp_path / "rows.npz"), "--slo-error-rate", "0",
        "--out", str(tmp_path / "load")), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        wait_until(lambda: served(topology) >= 100, timeout=120)  # Locust's users are running
        started = time.time()
        assert "label canary -> 2" in rollout(topology, "linear", "--canary", "2")
        assert "label stable -> 2 (was 1)" in rollout(topology, "linear", "--promote")
        assert "label stable -> 1 (was 2)" in rollout(topology, "linear", "--rollback")
        finished, sent_at_finish = time.time(), served(topology)
        wait_until(lambda: served(topology) >= sent_at_finish + 100, timeout=120)
        locust.send_signal(signal.SIGINT)
        output = locust.communicate(timeout=240)[0]
    finally:
        if locust.poll() is None:  # a failed step: no load may outlive the test
            os.killpg(locust.pid, signal.SIGKILL)
            locust.wait()
    assert "interrupted: load stopped; the report covers what ran" in output
    assert locust.returncode == 0, output
    # Every request sent while the rollouts ran, ramp-up or not, must have succeeded.
    sent = samples.load(tmp_path / "load" / "samples")
    assert sent.start[0] <= started and sent.done.max() >= finished, "load did not span it"
    during = sent.select((sent.done >= started) & (sent.start <= finished))
    for protocol in ("rest", "grpc"):
        mine = during.select(during.protocol == protocol)
        p99 = np.percentile(mine.latency_ms, 99)
        print(f"{protocol}: {len(mine.ok)} requests under Locust load spanning "
              f"{finished - started:.1f}s of rollouts, {int((~mine.ok).sum())} failed, "
              f"p99 {p99:.2f} ms")
        assert len(mine.ok) > 100 and mine.ok.all()
    status = run_servectl("rollout", "status", "linear", "--state", topology.state_dir).stdout
    assert status.count("1:AVAILABLE") == 2 and "2:AVAILABLE" not in status
    assert "stable=1" in status


def test_auto_rollout_decides_on_the_slo(topology):
    def auto(slo_ms: str):
        return run_servectl("rollout", "linear", "--auto", "2", "--slo-p99-ms", slo_ms,
                            "--load-seconds", "3", "--state", topology.state_dir,
                            "--drain-seconds", "1")
    missed = auto("0.001")  # no request is that fast: the canary must be rolled back
    assert missed.returncode == 1, missed.stderr
    assert "SLO missed -> rollback" in missed.stdout and "labels {'stable': 1}" in missed.stdout
    met = auto("10000")
    assert met.returncode == 0, met.stderr
    assert "SLO met -> promote" in met.stdout and "labels {'stable': 2}" in met.stdout


def test_killing_a_replica_under_load_keeps_the_others_answering(topology):
    """Bound: only requests in flight on the killed replica may fail, i.e. at most the
    concurrency; nginx retries connection errors on the other replica (proxy_next_upstream)."""
    results: dict = {}
    before = served(topology)
    loader = threading.Thread(target=load, args=(topology, "rest", 8, results, 8))
    loader.start()
    wait_until(lambda: served(topology) >= before + 100, timeout=60)  # load is on both
    victim = next(p for p in topology.processes if p.name == "replica-1")
    os.kill(victim.pid, signal.SIGKILL)
    loader.join()
    result = results["rest"]
    print(f"replica killed under load: {result.requests} answered, {result.errors} failed")
    assert result.requests > 100 and result.errors <= 8
    with urllib.request.urlopen(f"http://127.0.0.1:{topology.rest_port}/v1/models/linear",
                                timeout=10) as response:
        assert json.loads(response.read())["model_version_status"]
