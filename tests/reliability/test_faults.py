"""Faults while serving: a version deleted, the config file replaced with garbage, the model
directory gone, a client that never reads its response. The engine keeps serving what it can,
reports the fault (status, metrics, logs) and recovers when the fault is removed."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.helpers import (
    http_json,
    linear_predict,
    linear_statuses,
    metric,
    models_config,
    monitoring_flag,
    serving,
    wait_until,
)
from tests.model_builders import save_linear
from tf_serving_platform.servectl.engine_process import EngineProcess


@pytest.fixture
def engine(tmp_path):
    base = tmp_path / "linear"
    save_linear(base / "1", a=1.0, b=0.0)
    save_linear(base / "2", a=2.0, b=0.0)
    config = tmp_path / "models.config"
    config.write_text(models_config({"linear": base}))
    with serving(f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1",
                 "--file_system_poll_wait_seconds=1", monitoring_flag(tmp_path)) as server:
        yield server, base, config


class Load:
    """Requests back to back in a thread; counts failures."""

    def __init__(self, engine: EngineProcess):
        self.engine, self.answers, self.failures = engine, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self):
        while not self._stop.is_set():
            status, body = linear_predict(self.engine, 1.0)
            (self.answers if status == 200 else self.failures).append(body)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_version_deleted_while_serving_falls_back_without_failures(engine):
    server, base, _ = engine
    assert linear_predict(server, 1.0)[1] == {"outputs": [2.0]}
    with Load(server) as load:
        import shutil

        shutil.rmtree(base / "2")
        wait_until(lambda: linear_predict(server, 1.0)[1] == {"outputs": [1.0]}, timeout=20)
        wait_until(lambda: linear_statuses(server)[2]["state"] == "END")
    assert load.failures == [] and len(load.answers) > 10


def test_garbage_config_file_keeps_the_current_config_then_recovers(engine):
    server, base, config = engine
    config.write_text("model_config_list { this is not a config")
    wait_until(lambda: metric(server.rest_url, ":platform:config_reload_errors") >= 1, timeout=15)
    assert "keeping the current model config" in server.log()
    assert linear_predict(server, 1.0) == (200, {"outputs": [2.0]})
    config.write_text(models_config({"linear": base}, labels={"linear": {"stable": 2}}))
    wait_until(lambda: linear_predict(server, 3.0, "/labels/stable")[1] == {"outputs": [6.0]})


def test_config_edited_during_the_initial_load_is_applied(tmp_path):
    """The initial load waits for a version; a label added to the file meanwhile must not be
    taken for the config already applied."""
    base = tmp_path / "linear"
    base.mkdir()
    config = tmp_path / "models.config"
    config.write_text(models_config({"linear": base}))
    with serving(f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1",
                 "--file_system_poll_wait_seconds=1", wait="live") as server:
        config.write_text(models_config({"linear": base}, labels={"linear": {"stable": 1}}))
        save_linear(base / "1", a=2.0, b=0.0)
        server.wait_for("/readyz")
        wait_until(lambda: linear_predict(server, 3.0, "/labels/stable")[1] == {"outputs": [6.0]})


def test_model_directory_gone_keeps_serving_and_recovers(engine, tmp_path):
    server, base, _ = engine
    moved = tmp_path / "moved-away"
    with Load(server) as load:
        base.rename(moved)
        wait_until(lambda: metric(server.rest_url, ":platform:base_path_errors") >= 1, timeout=15)
        time.sleep(2)  # two more polls: the serving version must survive them
    assert load.failures == [] and linear_predict(server, 1.0)[1] == {"outputs": [2.0]}
    assert "Could not find base path" in server.log()
    moved.rename(base)
    save_linear(base / "3", a=3.0, b=0.0)
    wait_until(lambda: linear_predict(server, 1.0)[1] == {"outputs": [3.0]}, timeout=20)


def test_a_client_that_never_reads_does_not_block_others(engine):
    server, _, _ = engine
    body = json.dumps({"inputs": {"x": [1.0] * 200_000, "work": [0]}}).encode()
    stalled = socket.create_connection(("127.0.0.1", server.rest_port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for _ in range(3):  # three big responses that this client will never read
        stalled.sendall(b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    started = time.monotonic()
    answers = [linear_predict(server, 1.0) for _ in range(20)]
    assert all(a == (200, {"outputs": [2.0]}) for a in answers)
    assert time.monotonic() - started < 10
    assert http_json(f"{server.rest_url}/healthz")[0] == 200
    stalled.close()
