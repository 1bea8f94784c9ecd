"""The file-system source in process: what it hands its aspired-versions callback for real
directories, as TensorFlow Serving's ``FileSystemStoragePathSource`` hands its own; no manager."""

from __future__ import annotations

import threading
from pathlib import Path

from google.protobuf import text_format

from tests.helpers import models_config, wait_until
from tf_serving_platform.serving.engine.model_config import ModelServerConfig
from tf_serving_platform.serving.engine.source import FileSystemSource


class Aspired:
    """The callback: every call, in order, and the latest per model."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[int, Path]]] = []
        self.changed = threading.Event()

    def __call__(self, model: str, versions: dict[int, Path]) -> None:
        self.calls.append((model, dict(versions)))
        self.changed.set()

    def latest(self, model: str) -> dict[int, Path] | None:
        return next((v for m, v in reversed(self.calls) if m == model), None)


def version(base: Path, number: str, complete: bool = True) -> Path:
    path = base / number
    path.mkdir(parents=True)
    if complete:
        (path / "saved_model.pb").write_bytes(b"")
    return path


def config(paths: dict, policies: dict | None = None) -> ModelServerConfig:
    return text_format.Parse(models_config(paths, policies=policies), ModelServerConfig())


def test_latest_policy_aspires_the_highest_complete_version(tmp_path):
    base = tmp_path / "m"
    version(base, "1")
    newest = version(base, "007")
    version(base, "9", complete=False)  # being written: no saved_model.pb yet
    (base / "notes").mkdir()
    aspired = Aspired()
    FileSystemSource(aspired, poll_seconds=0, prefer_tflite=False).configure(config({"m": base}))
    assert aspired.calls == [("m", {7: newest})]


def test_all_policy_aspires_every_version_and_a_dropped_model_gets_none(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    found = {n: version(a, str(n)) for n in (1, 2, 3)}
    version(b, "1")
    aspired = Aspired()
    source = FileSystemSource(aspired, poll_seconds=0, prefer_tflite=False)
    source.configure(config({"a": a, "b": b}, {"a": " model_version_policy { all {} }"}))
    assert aspired.latest("a") == found
    source.configure(config({"a": a}, {"a": " model_version_policy { all {} }"}))
    assert aspired.latest("b") == {}


def test_polling_hands_over_a_version_published_later(tmp_path):
    base = tmp_path / "m"
    version(base, "1")
    aspired = Aspired()
    source = FileSystemSource(aspired, poll_seconds=0.05, prefer_tflite=False)
    source.configure(config({"m": base}))
    source.start()
    try:
        second = version(base, "2")
        wait_until(lambda: aspired.latest("m") == {2: second})
    finally:
        source.stop()
    assert source.thread is not None and not source.thread.is_alive()


def test_a_missing_base_path_reports_an_error_and_aspires_nothing_for_it(tmp_path):
    errors: list[str] = []
    aspired = Aspired()
    source = FileSystemSource(aspired, poll_seconds=0, prefer_tflite=False,
                              on_error=errors.append)
    present = tmp_path / "present"
    version(present, "1")
    source.configure(config({"gone": tmp_path / "gone", "present": present}))
    assert errors == ["gone"]
    assert [m for m, _ in aspired.calls] == ["present"]
