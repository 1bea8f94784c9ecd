"""A protected admin plane (issue 13, item 2; RELIABILITY.md, Hostile): who may reload the config,
what a config may name, and reloads that cannot starve anything else.

Each case ran against the engine before its fix and failed there; the docstrings say how.
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from tests.helpers import (
    http_json,
    linear_predict,
    metric,
    models_config,
    monitoring_flag,
    serving,
    wait_until,
)
from tests.model_builders import save_linear
from tf_serving_platform.servectl.engine_process import EngineProcess
from tf_serving_platform.serving.engine.reloads import RUNNING, WAITING

TOKEN = "s3cret-token"


def reload_request(paths: dict) -> model_management_pb2.ReloadConfigRequest:
    config = text_format.Parse(models_config(paths), model_server_config_pb2.ModelServerConfig())
    return model_management_pb2.ReloadConfigRequest(config=config)


def reload(engine: EngineProcess, paths: dict, token: str | None = None, timeout: float = 60):
    stub = model_service_pb2_grpc.ModelServiceStub(engine.channel())
    metadata = [("authorization", f"Bearer {token}")] if token else None
    return stub.HandleReloadConfigRequest(reload_request(paths), timeout=timeout,
                                          metadata=metadata)


@pytest.fixture
def linear(tmp_path):
    save_linear(tmp_path / "models" / "linear" / "1", a=1.0, b=0.0)
    return tmp_path / "models" / "linear"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """An engine whose reloads need the token and may only name paths under ``models/``."""
    root = tmp_path_factory.mktemp("admin")
    save_linear(root / "models" / "linear" / "1", a=1.0, b=0.0)
    (root / "token").write_text(TOKEN + "\n")
    with serving("--model_name=linear", f"--model_base_path={root / 'models/linear'}",
                 f"--admin_token_file={root / 'token'}",
                 f"--model_base_path_roots={root / 'models'}") as engine:
        engine.root = root
        yield engine


def test_a_reload_without_the_token_changes_nothing(guarded):
    """Before: any client of the gRPC port could unload every model."""
    for token in (None, "wrong"):
        with pytest.raises(grpc.RpcError) as refused:
            reload(guarded, {}, token)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert linear_predict(guarded, 2.0) == (200, {"outputs": [2.0]})
    linear = guarded.root / "models" / "linear"
    reload(guarded, {"linear": linear, "again": linear}, TOKEN)
    assert http_json(f"{guarded.rest_url}/v1/models/again")[0] == 200


def test_a_reload_may_only_name_base_paths_under_the_roots(guarded):
    """Before: a reload could load any directory of the host as a model, or point an existing
    name at another directory. A link inside a root that points outside is outside."""
    outside = guarded.root / "elsewhere"
    save_linear(outside / "1", a=5.0, b=0.0)
    (guarded.root / "models" / "link").symlink_to(outside)
    for base in (outside, guarded.root / "models" / "link"):
        with pytest.raises(grpc.RpcError) as refused:
            reload(guarded, {"linear": base}, TOKEN)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"base path {base} is outside --model_base_path_roots" in refused.value.details()
    assert linear_predict(guarded, 2.0) == (200, {"outputs": [2.0]})


def test_a_reload_that_unloads_every_model_turns_readiness_off(guarded):
    """Before: readiness stayed green with nothing left to serve."""
    reload(guarded, {}, TOKEN)
    status, body = http_json(f"{guarded.rest_url}/readyz")
    assert status == 503 and "no model is configured" in body["reason"]
    reload(guarded, {"linear": guarded.root / "models" / "linear"}, TOKEN)
    assert http_json(f"{guarded.rest_url}/readyz")[0] == 200


def test_reloads_that_never_finish_starve_nothing_and_sigterm_still_exits(tmp_path, linear):
    """Before: eight reloads that added models without versions filled the default thread
    pool: later reloads timed out and SIGTERM no longer ended the process."""
    engine = EngineProcess("--model_name=linear", f"--model_base_path={linear}",
                           "--grace_period_seconds=5", monitoring_flag(tmp_path)).start()
    stub = model_service_pb2_grpc.ModelServiceStub(engine.channel())
    paths = {"linear": linear}
    calls = []
    try:
        for i in range(RUNNING + WAITING + 2):
            paths = {**paths, f"empty{i}": tmp_path / f"empty{i}"}  # never gets a version
            calls.append(stub.HandleReloadConfigRequest.future(reload_request(paths)))
            if i < RUNNING:  # applied (its base path polled) before the next one is sent
                wait_until(lambda n=f"empty{i}": metric(
                    engine.rest_url, f':platform:base_path_errors{{model_name="{n}"}}'))
        refused = wait_until(lambda: [c for c in calls if c.done()], timeout=60)
        assert len(refused) == 2
        assert all(c.exception().code() == grpc.StatusCode.RESOURCE_EXHAUSTED for c in refused)
        assert linear_predict(engine, 2.0) == (200, {"outputs": [2.0]})
        assert http_json(f"{engine.rest_url}/healthz")[0] == 200
        assert http_json(f"{engine.rest_url}/readyz")[0] == 503  # empty0 and empty1 have no version
        started = time.monotonic()
        assert engine.stop(timeout=60) == 0
        assert time.monotonic() - started < 30
    finally:
        engine.kill() if engine.process.poll() is None else None
