"""``HandleReloadConfigRequest``'s gate: who may reload, and how many reloads run at once.

TensorFlow Serving lets anyone who reaches its gRPC port reload the config: unload every model,
or load any directory of the host as one. With ``--admin_token_file`` a reload must carry
``authorization: Bearer <token>`` (the file is read at each call, so a rotated Secret applies at
once); ``--model_base_path_roots`` confines what a config may name (:mod:`model_config`).

A reload that adds models blocks until they are available, as ``ServerCore::ReloadConfig``
does: eight that added models without versions used to fill the default thread pool, so that
later reloads, the engine's other threaded work and its shutdown waited behind them. Reloads now
run on their own ``RUNNING`` threads, at most ``WAITING`` more queue behind them and beyond that
a reload is refused RESOURCE_EXHAUSTED. Each waits no longer than its caller's deadline; the
manager's stop ends every wait at shutdown.
"""

from __future__ import annotations

import asyncio
import hmac
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine.core import ServerCore
from tf_serving_platform.serving.engine.model_config import ModelServerConfig
from tf_serving_platform.serving.errors import ServingError

log = logger(__name__)
RUNNING, WAITING = 2, 4


class ReloadGate:
    def __init__(self, core: ServerCore, token_file: str = ""):
        self._core = core
        self._token_file = Path(token_file) if token_file else None
        self._pool = ThreadPoolExecutor(RUNNING, thread_name_prefix="reload")
        self._pending = 0

    async def authorize(self, metadata) -> None:
        """Raises UNAUTHENTICATED unless the call carries the token (when one is set)."""
        if self._token_file is None:
            return
        try:
            token = self._token_file.read_text().strip()
        except OSError as e:
            raise ServingError(grpc.StatusCode.UNAVAILABLE,
                               f"Cannot read --admin_token_file: {e.strerror}") from None
        sent = dict(metadata or ()).get("authorization", "")
        if not token or not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            log.warning("refused a config reload that lacks the admin token")
            raise ServingError(grpc.StatusCode.UNAUTHENTICATED,
                               "HandleReloadConfigRequest needs metadata 'authorization: "
                               "Bearer <token>' with the token of --admin_token_file")

    async def reload(self, config: ModelServerConfig, timeout: float | None) -> None:
        """Apply ``config`` on the reload threads; RESOURCE_EXHAUSTED when too many wait."""
        if self._pending >= RUNNING + WAITING:
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{self._pending} config reloads are in progress or waiting; "
                               "retry when one has finished")
        self._pending += 1
        names = [m.name for m in config.model_config_list.config]
        log.info("config reload: %d model(s): %s", len(names), ", ".join(names))
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._pool, self._core.reload_config, config, timeout)
        except ServingError as e:
            log.warning("config reload failed: %s", e.message)
            raise
        finally:
            self._pending -= 1
        log.info("config reload applied")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
