"""The file-system source: which versions of each configured model exist and are aspired.

Each poll lists every model's base path, keeps the *complete* numeric version directories
(``saved_model.pb`` written — or ``model.tflite`` with ``--prefer_tflite_model``; a half-copied
directory is ignored until it is complete, where TensorFlow Serving would fail its load and
retry a minute later), applies the model's version policy and hands the
manager the full aspired list (``sources/storage_path/file_system_storage_path_source.cc``).
"""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from pathlib import Path

from tf_serving_platform.serving import logger
from tf_serving_platform.serving.engine import policy
from tf_serving_platform.serving.engine.model_config import ModelServerConfig
from tf_serving_platform.serving.engine.servable import (
    SAVED_MODEL_FILE,
    SESSION_BUNDLE_FILE,
    TFLITE_FILE,
)
from tf_serving_platform.serving.versions import MAX_VERSION, looks_like_a_version, parse_version

log = logger(__name__)


def complete_versions(base_path: Path, prefer_tflite: bool) -> tuple[dict[int, Path],
                                                                       dict[str, str]]:
    """Version children of ``base_path`` that hold a complete model (``007`` is version 7),
    and the entries skipped that were meant as versions, with why: a name that is no version
    (serving/versions.py) or a directory that cannot be read. One such entry never hides the
    others (each entry is read on its own).

    A TF1 Session Bundle (``export.meta``) counts, so that it fails to load as in TF Serving."""
    markers = (SAVED_MODEL_FILE, SESSION_BUNDLE_FILE) + ((TFLITE_FILE,) if prefer_tflite else ())
    found: dict[int, Path] = {}
    skipped: dict[str, str] = {}
    for child in sorted(base_path.iterdir()):
        version = parse_version(child.name)
        if version is None:
            if looks_like_a_version(child.name):
                skipped[child.name] = f"not a version number (versions are ASCII digits up " \
                                      f"to {MAX_VERSION})"
            continue
        try:
            complete = any(_is_file(child / m) for m in markers)
        except OSError as e:
            skipped[child.name] = e.strerror or str(e)
            continue
        if complete:
            found.setdefault(version, child)
    return found, skipped


def _is_file(path: Path) -> bool:
    """``Path.is_file`` that raises what it would swallow on permissions (EACCES)."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):  # (NotADirectory: a file named "7")
        return False


AspiredVersionsCallback = Callable[[str, dict[int, Path]], None]
"""``(model, {version: path})``: every version the model should serve now; ``{}`` unloads it."""


class FileSystemSource:
    """Polls base paths every ``poll_seconds`` (0: once; negative: never) and hands each model's
    aspired versions to a callback, as TensorFlow Serving's sources call their
    ``AspiredVersionsCallback``: the manager's ``set_aspired_versions`` in the engine, anything
    in a test."""

    def __init__(self, aspired_versions: AspiredVersionsCallback, poll_seconds: float,
                 prefer_tflite: bool, on_error: Callable[[str], None] = lambda model: None):
        self._aspired_versions, self._poll_seconds = aspired_versions, poll_seconds
        self._on_error = on_error
        self._prefer_tflite = prefer_tflite
        self._models: dict[str, tuple[Path, policy.VersionPolicy]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None

    def configure(self, config: ModelServerConfig) -> None:
        """Watch exactly the models of ``config``; models no longer listed are unloaded."""
        models = {m.name: (Path(m.base_path), m.model_version_policy)
                  for m in config.model_config_list.config}
        with self._lock:
            removed = set(self._models) - set(models)
            self._models = models
        for name in removed:
            self._aspired_versions(name, {})
        self.poll()

    def poll(self) -> None:
        """List every base path once and hand each model's aspired versions to the manager."""
        with self._lock:
            models = dict(self._models)
        for name, (base_path, version_policy) in models.items():
            try:
                on_disk, skipped = complete_versions(base_path, self._prefer_tflite)
            except (OSError, ValueError) as e:  # ValueError: a path the OS cannot take
                self._on_error(name)
                reason = getattr(e, "strerror", None) or str(e)
                self._warn_once(name, f"Could not find base path {base_path} for servable "
                                      f"{name} with error {reason}; keeping what serves")
                continue
            for entry, reason in skipped.items():
                self._warn_once(f"{name}/{entry}", f"Ignoring {base_path / entry} of servable "
                                                   f"{name}: {reason}")
            if not on_disk:
                self._warn_once(name, f"No versions of servable {name} found under base path "
                                      f"{base_path}. Did you forget to name your leaf directory "
                                      "as a number (eg. '/1/')?")
            else:
                self._warned.discard(name)
            wanted = policy.aspired_versions(version_policy, on_disk)
            self._aspired_versions(name, {v: on_disk[v] for v in wanted})

    def _warn_once(self, name: str, message: str) -> None:
        if name not in self._warned:
            log.warning(message)
            self._warned.add(name)

    def start(self) -> None:
        """Keep polling in the background (the first poll happened in :meth:`configure`)."""
        if self._poll_seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="source", daemon=True)
            self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        """The polling thread (None when not polling), for the watchdog."""
        return self._thread

    def _loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll()
            except Exception as e:  # noqa: BLE001 - polling must outlive any one failure
                self._warn_once("", f"polling the base paths failed: {type(e).__name__}: {e}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
