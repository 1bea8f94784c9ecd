"""Server core: the current ModelServerConfig, applied to the source, the labels and the manager.

``reload_config`` is the one path for the initial config, ``HandleReloadConfigRequest`` and
config-file polling, with ``ServerCore::ReloadConfig``'s order: validate, update the labels
(before the new models load, so a label can only point at an AVAILABLE version unless
``--allow_version_labels_for_unavailable_models``), the request loggers (``logging_config``),
reconfigure the source, then wait until newly added models are AVAILABLE. A config that fails
validation, names a base path outside ``--model_base_path_roots``, has a logging config that
cannot be served or fails its label check changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import grpc

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine import model_config
from tf_serving_platform.serving.engine.manager import Manager
from tf_serving_platform.serving.engine.model_config import ModelServerConfig
from tf_serving_platform.serving.engine.request_log import RequestLogs
from tf_serving_platform.serving.engine.source import FileSystemSource
from tf_serving_platform.serving.errors import ServingError

log = logger(__name__)


class ServerCore:
    """Owns the config; everything that changes it goes through :meth:`reload_config`."""

    def __init__(self, manager: Manager, source: FileSystemSource,
                 allow_unavailable_labels: bool = False, base_path_roots: tuple[str, ...] = (),
                 request_logs: RequestLogs | None = None):
        self._manager, self._source = manager, source
        self._request_logs = request_logs
        self._allow_unavailable_labels = allow_unavailable_labels
        self._base_path_roots = base_path_roots
        self._config = ModelServerConfig()
        self._names: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def configured_models(self) -> list[str]:
        return [m.name for m in self._config.model_config_list.config]

    def is_configured(self, name: str) -> bool:
        """Whether ``name`` is a model of the current config (on the request path: no lock)."""
        return name in self._names

    def reload_config(self, config: ModelServerConfig, timeout: float | None = None) -> None:
        """Apply ``config``; block until models it adds are available.

        Raises:
            ServingError: INVALID_ARGUMENT / FAILED_PRECONDITION for a config that is refused
                (nothing changes), UNKNOWN ``<k> model(s) did not become available: ...``.
        """
        model_config.validate(config)
        model_config.check_roots(config, self._base_path_roots)
        RequestLogs.check(config)
        with self._lock:
            before = set(self.configured_models())
            labels = {m.name: dict(m.version_labels) for m in config.model_config_list.config}
            self._manager.set_labels(labels, self._allow_unavailable_labels)
            if self._request_logs is not None:
                self._request_logs.update(config)
            self._config = config
            self._names = frozenset(self.configured_models())
            self._source.configure(config)
        added = [name for name in self.configured_models() if name not in before]
        failures = self._manager.wait_until_available(
            added, timeout, abandoned=lambda model: model not in self.configured_models())
        if failures:
            details = "".join(f"{{{reason}}}, " for reason in failures.values())
            raise ServingError(grpc.StatusCode.UNKNOWN,
                               f"{len(failures)} model(s) did not become available: {{{details}}}")


class ConfigFilePoller:
    """Re-reads ``--model_config_file`` every N seconds; a bad or empty file is logged (once),
    counted and ignored (an empty one would otherwise unload every model). No failure ends the
    polling thread."""

    def __init__(self, core: ServerCore, path: str, interval_s: float,
                 applied: model_config.ModelServerConfig,
                 on_error: Callable[[], None] = lambda: None):
        """``applied`` is the config the server loaded at start. The file is compared with it,
        not with what the file holds when polling starts, so an edit made during a long initial
        load is applied and a broken one reported."""
        self._core, self._path, self._interval_s = core, Path(path), interval_s
        self._applied, self._on_error = applied, on_error
        self._last_text: str | None = None
        self._last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="config-poller", daemon=True)

    def start(self) -> None:
        if self._interval_s > 0:
            self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        """The polling thread (None when not polling), for the watchdog."""
        return self._thread if self._interval_s > 0 else None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                text = self._path.read_text()
                if text == self._last_text:
                    continue
                config = model_config.parse_text(text)
                if config.WhichOneof("config") is None:  # a truncated write, a failed render
                    self._failed(f"{self._path} holds no config: taking no action, as "
                                 "TensorFlow Serving does for an empty config")
                    continue
                if config != self._applied:
                    self._core.reload_config(config)
                    log.info("applied new model config from %s", self._path)
                self._applied, self._last_text, self._last_error = config, text, ""
            except (OSError, UnicodeDecodeError, model_config.ConfigParseError,
                    ServingError) as e:
                self._failed(str(e))
            except Exception as e:  # noqa: BLE001 - polling must outlive any one failure
                self._failed(f"{type(e).__name__}: {e}")

    def _failed(self, reason: str) -> None:
        """Count every failed poll; log a reason once, not on every poll."""
        self._on_error()
        if reason != self._last_error:
            log.error("keeping the current model config: %s", reason)
            self._last_error = reason

    def stop(self) -> None:
        self._stop.set()
