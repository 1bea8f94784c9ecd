"""Slow and idle REST clients bounded in time and number (issue 13, item 5; RELIABILITY.md,
Hostile; serving/engine/connections.py).

Each case ran against the engine before its fix and failed there; the docstrings say how.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import http_json, linear_predict, linear_statuses, serving, wait_until
from tests.model_builders import save_linear
from tf_serving_platform.servectl.engine_process import EngineProcess, free_port

IDLE_S = 1
MAX_CONNECTIONS = 20
PARTIAL_HEADERS = b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\n"


@contextlib.contextmanager
def started_engine(folder, idle_s: float) -> Iterator[EngineProcess]:
    """An engine for the ``with`` block, ready on its admin address (``admin_url``)."""
    save_linear(folder / "linear" / "1", a=1.0, b=0.0)
    admin = free_port()
    # One process: the tests cut that process's open-file limit (front ends split the
    # connection limit: tests/engine/test_frontend_processes.py).
    with serving("--model_name=linear", f"--model_base_path={folder / 'linear'}",
                 "--frontend_processes=1", f"--rest_api_idle_timeout_seconds={idle_s}",
                 f"--rest_api_max_connections={MAX_CONNECTIONS}",
                 f"--admin_address=127.0.0.1:{admin}", wait=None) as engine:
        engine.admin_url = f"http://127.0.0.1:{admin}"
        wait_until(lambda: _ready(engine), timeout=120, interval=0.2)
        engine.base = folder / "linear"
        yield engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """Idle connections closed after 1 s."""
    with started_engine(tmp_path_factory.mktemp("slow-clients"), IDLE_S) as engine:
        yield engine


@pytest.fixture
def patient_engine(tmp_path):
    """Idle connections kept for a minute: the test holds them."""
    with started_engine(tmp_path, 60) as engine:
        yield engine


def _ready(engine: EngineProcess) -> bool:
    assert engine.process.poll() is None, engine.log()
    with contextlib.suppress(OSError):
        return http_json(f"{engine.admin_url}/readyz")[0] == 200
    return False


def connect(engine: EngineProcess, first_bytes: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", engine.rest_port), timeout=30)
    if first_bytes:
        s.sendall(first_bytes)
    return s


def first_answer(engine: EngineProcess) -> bytes:
    """What a new connection that sends nothing gets first (b"" if closed, or 2 s of silence)."""
    with connect(engine) as s:
        s.settimeout(2)
        try:
            return s.recv(65536)
        except TimeoutError:
            return b""


def closed_by_server(s: socket.socket) -> bool:
    """Whether the server closed ``s`` (reading what it answered first, if anything)."""
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_connections_that_never_finish_their_headers_are_closed(engine):
    """Before: no header or idle timeout (aiohttp's default keep-alive is an hour): slowloris
    sockets stayed open for as long as their client wished."""
    sockets = [connect(engine, PARTIAL_HEADERS) for _ in range(5)] + [connect(engine)]
    started = time.monotonic()
    assert all(closed_by_server(s) for s in sockets)
    assert time.monotonic() - started < 20
    assert linear_predict(engine, 2.0) == (200, {"outputs": [2.0]})


def test_a_body_that_stops_arriving_is_answered_408(engine):
    with connect(engine, PARTIAL_HEADERS + b"Content-Length: 1000\r\n\r\n{\"inputs\"") as s:
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"sent nothing of the request body for 1 s" in answer


def test_connections_past_the_limit_are_refused_at_once_and_health_still_answers(
        patient_engine):
    """Before: 1,500 idle sockets at a 1,024 file limit made every REST request and /readyz
    fail, and the source log "Too many open files". Here the open-file limit of the running
    engine is cut to what it uses plus 64: the REST port holds its 20, refuses the rest at
    once, the admin address still answers, and a new version still loads."""
    engine = patient_engine
    fds = len(os.listdir(f"/proc/{engine.process.pid}/fd"))
    subprocess.run(["prlimit", f"--pid={engine.process.pid}", f"--nofile={fds + 64}"],
                   check=True)
    held = [connect(engine, PARTIAL_HEADERS) for _ in range(MAX_CONNECTIONS)]
    try:
        wait_until(lambda: first_answer(engine).startswith(b"HTTP/1.1 503"))  # all 20 counted
        for _ in range(200):
            answer = first_answer(engine)
            assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"--rest_api_max_connections" in answer
        assert http_json(f"{engine.admin_url}/healthz")[0] == 200
        save_linear(engine.base / "2", a=2.0, b=0.0)
        wait_until(lambda: "loaded linear version 2 in" in engine.log(), timeout=60)
        assert http_json(f"{engine.admin_url}/readyz")[0] == 200
    finally:
        for s in held:
            s.close()
    wait_until(lambda: linear_statuses(engine).get(2, {}).get("state") == "AVAILABLE", timeout=60)
    assert "Too many open files" not in engine.log()
