"""ServerCore in process, over a real manager and source on real SavedModels: a reload returns
once its new models serve, labels only available versions (TensorFlow Serving's rule: so a
model's first config carries no label), refuses a bad config whole, and drops removed models."""

from __future__ import annotations

import grpc
import pytest
import tensorflow as tf
from google.protobuf import text_format

from tests.helpers import models_config, wait_until
from tests.model_builders import save_linear
from tf_serving_platform.serving.engine.core import ServerCore
from tf_serving_platform.serving.engine.manager import Manager
from tf_serving_platform.serving.engine.model_config import ModelServerConfig
from tf_serving_platform.serving.engine.policy import State
from tf_serving_platform.serving.engine.servable import load_saved_model
from tf_serving_platform.serving.engine.source import FileSystemSource
from tf_serving_platform.serving.errors import ServingError

CONFIG = tf.compat.v1.ConfigProto()
ALL_VERSIONS = " model_version_policy { all {} }"


def load(name, version, path):
    return load_saved_model(name, version, path, {"serve"}, CONFIG)


@pytest.fixture
def core():
    manager = Manager(load)
    source = FileSystemSource(manager.set_aspired_versions, poll_seconds=0, prefer_tflite=False)
    yield ServerCore(manager, source), manager
    manager.stop()


@pytest.fixture
def bases(tmp_path):
    """``one`` with versions 1 and 2, ``two`` with version 1."""
    for model, versions in (("one", (1, 2)), ("two", (1,))):
        for v in versions:
            save_linear(tmp_path / model / str(v), a=float(v), b=0.0)
    return {"one": tmp_path / "one", "two": tmp_path / "two"}


def config(paths: dict, labels: dict | None = None) -> ModelServerConfig:
    text = models_config(paths, labels, {name: ALL_VERSIONS for name in paths})
    return text_format.Parse(text, ModelServerConfig())


def labelled(manager: Manager, model: str, label: str) -> int:
    with manager.handle(model, label=label) as servable:
        return servable.version


def test_a_reload_returns_once_the_added_models_serve(core, bases):
    server_core, manager = core
    server_core.reload_config(config({"one": bases["one"]}), timeout=60)
    assert server_core.configured_models() == ["one"] and server_core.is_configured("one")
    wait_until(lambda: {r.state for r in manager.version_status("one")} == {State.AVAILABLE})
    server_core.reload_config(config(bases, {"one": {"stable": 1, "canary": 2}}), timeout=60)
    assert (labelled(manager, "one", "stable"), labelled(manager, "one", "canary")) == (1, 2)
    with manager.handle("two") as servable:
        assert servable.version == 1


def test_a_label_on_a_version_not_available_refuses_the_whole_config(core, bases):
    server_core, manager = core
    server_core.reload_config(config({"one": bases["one"]}), timeout=60)
    wait_until(lambda: {r.state for r in manager.version_status("one")} == {State.AVAILABLE})
    server_core.reload_config(config({"one": bases["one"]}, {"one": {"stable": 1}}), timeout=60)
    with pytest.raises(ServingError) as refused:
        server_core.reload_config(config(bases, {"one": {"stable": 7}}), timeout=60)
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert server_core.configured_models() == ["one"] and not server_core.is_configured("two")
    assert labelled(manager, "one", "stable") == 1


def test_a_model_left_out_of_a_reload_is_unloaded(core, bases):
    """Its loaded versions end. (A reload returns once one version of each model serves; the
    test waits for both of ``one``'s, since a version dropped before its load began is never
    loaded and keeps the START state, as TensorFlow Serving's status reports it too.)"""
    server_core, manager = core
    server_core.reload_config(config(bases), timeout=60)
    wait_until(lambda: {r.state for r in manager.version_status("one")} == {State.AVAILABLE})
    server_core.reload_config(config({"two": bases["two"]}), timeout=60)
    assert not server_core.is_configured("one")
    wait_until(lambda: all(r.state == State.END for r in manager.version_status("one")))
    with pytest.raises(ServingError) as gone:
        labelled(manager, "one", "stable")
    assert gone.value.code is grpc.StatusCode.INVALID_ARGUMENT
