"""The manager in process, on real SavedModels: availability-preserving swaps, pinned handles,
failed and hung loads. The loader is the engine's own SavedModel loader behind a gate each test
opens when it wants the load to finish, so every step is waited on, not slept through."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
import tensorflow as tf

from tests.helpers import wait_until
from tests.model_builders import save_linear
from tf_serving_platform.serving.engine.manager import Manager
from tf_serving_platform.serving.engine.policy import State
from tf_serving_platform.serving.engine.servable import load_saved_model
from tf_serving_platform.serving.errors import ServingError

CONFIG = tf.compat.v1.ConfigProto()


class GatedLoader:
    """Loads with ``load_saved_model``, each held version once its gate opens."""

    def __init__(self) -> None:
        self.gates: dict[tuple[str, int], threading.Event] = {}
        self.started: dict[tuple[str, int], threading.Event] = {}

    def hold(self, version: int, name: str = "linear") -> threading.Event:
        self.gates[name, version] = threading.Event()
        self.started[name, version] = threading.Event()
        return self.gates[name, version]

    def __call__(self, name: str, version: int, path: Path):
        if (name, version) in self.gates:
            self.started[name, version].set()
            self.gates[name, version].wait(60)
        return load_saved_model(name, version, path, {"serve"}, CONFIG)


@pytest.fixture
def versions(tmp_path) -> dict[int, Path]:
    """``linear`` versions: y = version * x."""
    return {v: save_linear(tmp_path / "linear" / str(v), a=float(v), b=0.0) for v in (1, 2)}


@pytest.fixture
def loader() -> GatedLoader:
    return GatedLoader()


@pytest.fixture
def manager(loader):
    made = Manager(loader, load_timeout_s=30)
    yield made
    for gate in loader.gates.values():
        gate.set()
    made.stop()


def served_version(manager: Manager, name: str = "linear") -> int:
    with manager.handle(name) as servable:
        return servable.version


def state(manager: Manager, version: int) -> State:
    return manager.version_status("linear", version)[0].state


def test_a_new_version_serves_only_once_loaded_and_then_the_old_one_goes(manager, loader,
                                                                         versions):
    manager.set_aspired_versions("linear", {1: versions[1]})
    assert manager.wait_until_available(["linear"], timeout=60) == {}
    gate = loader.hold(2)
    manager.set_aspired_versions("linear", {2: versions[2]})
    assert loader.started["linear", 2].wait(30)
    assert state(manager, 2) == State.LOADING
    assert served_version(manager) == 1 and state(manager, 1) == State.AVAILABLE
    gate.set()
    wait_until(lambda: served_version(manager) == 2)
    wait_until(lambda: state(manager, 1) == State.END)


def test_a_pinned_handle_keeps_its_version_loaded_until_released(manager, versions):
    manager.set_aspired_versions("linear", {1: versions[1]})
    manager.wait_until_available(["linear"], timeout=60)
    with manager.handle("linear") as pinned:
        manager.set_aspired_versions("linear", {})
        wait_until(lambda: state(manager, 1) == State.UNLOADING)
        assert pinned.version == 1  # still usable: the unload waits for the pin
    wait_until(lambda: state(manager, 1) == State.END)
    with pytest.raises(ServingError) as refused:
        served_version(manager)
    assert refused.value.code is grpc.StatusCode.NOT_FOUND


def test_a_version_that_fails_to_load_never_replaces_the_serving_one(manager, versions, tmp_path):
    manager.set_aspired_versions("linear", {1: versions[1]})
    manager.wait_until_available(["linear"], timeout=60)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    manager.set_aspired_versions("linear", {1: versions[1], 3: broken})
    failed = wait_until(lambda: [r for r in manager.version_status("linear", 3) if r.failed])
    assert failed[0].state == State.END and failed[0].error.message
    assert served_version(manager) == 1


def test_a_hung_load_holds_only_its_own_model(loader, versions, tmp_path):
    other = save_linear(tmp_path / "other" / "1", a=5.0, b=0.0)
    manager = Manager(loader, load_timeout_s=1.0)
    try:
        loader.hold(1)  # linear's version 1 never finishes loading
        manager.set_aspired_versions("linear", {1: versions[1]})
        assert loader.started["linear", 1].wait(30)
        manager.set_aspired_versions("other", {1: other})
        assert manager.wait_until_available(["other"], timeout=60) == {}
        failed = wait_until(lambda: [r for r in manager.version_status("linear") if r.failed])
        assert failed[0].error.code is grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        loader.gates["linear", 1].set()
        manager.stop()
