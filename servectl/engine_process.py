"""An engine child process: ``servectl serve`` on free loopback ports, waited on with a real
readiness probe and stopped with SIGTERM. Used by the tests, the benchmarks and ``servectl up``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc

from tf_serving_platform.servectl import command


def free_port() -> int:
    """A port the OS says is free now (the engine keeps TF Serving's meaning of --port=0: off)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


class LoopbackPorts:
    """The addresses of an engine listening on 127.0.0.1 (``grpc_port``, ``rest_port``)."""

    grpc_port: int
    rest_port: int

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


class EngineProcess(LoopbackPorts):
    """One ``servectl serve`` child process."""

    def __init__(self, *flags: str, grpc_port: int | None = None, rest_port: int | None = None):
        self.grpc_port = grpc_port or free_port()
        self.rest_port = rest_port or free_port()
        self.flags = [f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
                      "--host=127.0.0.1", *flags]
        fd, log_path = tempfile.mkstemp(prefix="engine-", suffix=".log")
        self.log_path = Path(log_path)
        """Where the engine's stdout and stderr go."""
        self._log = os.fdopen(fd, "w")
        self.process: subprocess.Popen | None = None

    def start(self, wait: str | None = "ready", timeout: float = 120) -> EngineProcess:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(command("serve", *self.flags), stdout=self._log,
                                        stderr=subprocess.STDOUT, env=env)
        if wait:
            try:
                self.wait_for(f"/{'readyz' if wait == 'ready' else 'healthz'}", timeout)
            except BaseException:
                self.kill()  # an engine that never came up must not outlive its caller
                raise
        return self

    def kill(self) -> None:
        """SIGKILL the engine and, with ``--workers``, the workers it started."""
        for pid in (*children(self.process.pid), self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def wait_for(self, path: str, timeout: float = 120) -> None:
        """Poll ``path`` until it answers 200; fail with the log if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"engine exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.rest_url + path, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{path} not 200 after {timeout}s:\n{self.log()}")

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.grpc_target)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode
