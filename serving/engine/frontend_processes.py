"""The engine's front-end processes: started with it, restarted when one dies, stopped with it.

One Python process parses HTTP, JSON and protobuf on one core at a time (the GIL). With
``--frontend_processes N`` the engine's process keeps the models, the batch scheduler and the
version lifecycle, and N processes (:mod:`serving.engine.frontend_process`) share the gRPC and
REST ports through ``SO_REUSEPORT``: the kernel spreads connections over them, each forwards
its requests to the one model process (:mod:`serving.engine.model_host`), so there is one copy
of each model and batches merge across every connection.

A front end that dies (a crash, the OOM killer) loses only the connections it held: the others
keep serving and it is started again after :mod:`serving.engine.restarts`' back-off. One that
cannot start (a port held by another program) fails the engine's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine.ledger import Ledger, ledger_path
from tf_serving_platform.serving.engine.model_host import ModelHost
from tf_serving_platform.serving.engine.restarts import RestartBackoff, describe_exit

log = logger(__name__)
START_TIMEOUT_S = 300.0
"""How long the front ends may take to listen (importing their libraries, on a busy node)."""
STOP_MARGIN_S = 5.0
"""Beyond the grace period, how long a front end may take to exit before it is killed."""


class FrontEndStartError(Exception):
    """A front-end process exited before it listened."""


class _Child:
    """A started process, awaited through its pidfd (no thread, no SIGCHLD handler).

    It is started by ``posix_spawn`` (``close_fds=False``; every descriptor Python opens is
    close-on-exec anyway), not by a ``fork()`` of this process while gRPC's threads run.
    """

    def __init__(self, popen: subprocess.Popen):
        self._popen = popen
        self.pid = popen.pid
        self._pidfd = os.pidfd_open(popen.pid)
        self._exited = asyncio.Event()
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._popen.wait()
        self._exited.set()

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode if self._exited.is_set() else None

    async def wait(self) -> int:
        await self._exited.wait()
        return self._popen.returncode

    def send_signal(self, signum: int) -> None:
        if not self._exited.is_set():
            self._popen.send_signal(signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class FrontEndProcesses:
    """``count`` front-end processes serving through ``host``."""

    def __init__(self, count: int, host: ModelHost):
        self._count, self.host = count, host
        self._folder = Path(tempfile.mkdtemp(prefix="servectl-frontends-"))  # mode 0700
        self.socket_path = str(self._folder / "model.sock")
        self.ledger = Ledger.create(ledger_path(self._folder), count + 1, slot=count)
        """The request memory budget's: a slot per front end, the last this process's."""
        self._processes: list[_Child | None] = [None] * count
        self._watchers: list[asyncio.Task] = []
        self._stopping = False

    async def _spawn(self, index: int) -> _Child:
        process = self._processes[index] = _Child(subprocess.Popen(
            [sys.executable, "-m", "tf_serving_platform.serving.engine.frontend_process",
             self.socket_path, str(index)], stdin=subprocess.DEVNULL, close_fds=False))
        return process

    async def start(self) -> None:
        """Start every front end; return once all of them listen.

        Raises:
            FrontEndStartError: one exited first (its own error is on stderr).
        """
        await self.host.start(self.socket_path)
        processes = [await self._spawn(i) for i in range(self._count)]
        exits = {asyncio.create_task(p.wait()): p for p in processes}
        listening = asyncio.create_task(self.host.wait_listening(self._count))
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                done, _ = await asyncio.wait({listening, *exits},
                                             return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise FrontEndStartError(f"the front-end processes did not listen within "
                                     f"{START_TIMEOUT_S:g} s") from None
        finally:
            listening.cancel()
            for waiter in exits:
                waiter.cancel()
        if listening not in done:
            process = exits[next(iter(done))]
            raise FrontEndStartError(f"a front-end process exited before it listened "
                                     f"({describe_exit(process.returncode)})")
        self._watchers = [asyncio.create_task(self._watch(i)) for i in range(self._count)]

    async def _watch(self, index: int) -> None:
        """Restart front end ``index`` whenever it dies, until the engine stops."""
        backoff = RestartBackoff()
        while True:
            process = self._processes[index]
            status = await process.wait()
            if self._stopping:
                return
            self.ledger.clear(index)  # what it held died with it
            delay = backoff.died()
            log.error("front-end process %d (pid %d) died (%s); restarting it in %gs",
                      index, process.pid, describe_exit(status), delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            await self._spawn(index)
            backoff.started_now()

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p is not None and p.returncode is None]

    async def stop(self, grace_s: float) -> None:
        """SIGTERM every front end (each drains within ``grace_s``), SIGKILL what remains."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        running = [p for p in self._processes if p is not None and p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if running:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in running],
                                         timeout=grace_s + STOP_MARGIN_S)
            for process in running:
                if process.returncode is None:
                    log.error("front-end process %d did not stop; killing it", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
        await self.host.close()
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)
            os.unlink(ledger_path(self._folder))
            self._folder.rmdir()
