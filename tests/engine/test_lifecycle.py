"""Version lifecycle on a real engine: new versions, corrupt versions, policies, labels, swaps."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import (
    http_json,
    linear_predict,
    linear_statuses,
    metric,
    models_config,
    monitoring_flag,
    serving,
    wait_until,
)
from tests.model_builders import save_linear
from tf_serving_platform.servectl.engine_process import EngineProcess

POLL_S = 1
IN_FLIGHT = ':platform:requests_in_flight{entrypoint="REST"}'
SLOW_WORK = 6000  # rounds of a 256x256 matmul: a few seconds on 2 cores


@pytest.fixture
def model_dir(tmp_path) -> Path:
    base = tmp_path / "linear"
    base.mkdir()
    save_linear(base / "1", a=1.0, b=0.0)  # y = x
    return base


@pytest.fixture
def engine_for(tmp_path):
    """Start an engine on a config (text) or base path; always stopped, exit status checked."""
    with contextlib.ExitStack() as started:
        def start(*flags: str, config: str | None = None, wait: str = "ready") -> EngineProcess:
            if config is not None:
                path = tmp_path / "models.config"
                path.write_text(config)
                flags = (f"--model_config_file={path}", *flags)
            return started.enter_context(serving(f"--file_system_poll_wait_seconds={POLL_S}",
                                                 monitoring_flag(tmp_path), *flags, wait=wait))
        yield start


def test_new_version_is_served_within_two_polls(engine_for, model_dir):
    engine = engine_for("--model_name=linear", f"--model_base_path={model_dir}")
    assert linear_predict(engine, 3.0)[1] == {"outputs": [3.0]}
    published = time.monotonic()
    save_linear(model_dir / "2", a=2.0, b=0.0)
    wait_until(lambda: linear_predict(engine, 3.0)[1] == {"outputs": [6.0]},
               timeout=2 * POLL_S + 10)
    took = time.monotonic() - published
    print(f"version 2 served {took:.2f}s after it was published (poll {POLL_S}s)")
    # Latest policy with one version: version 1 is unloaded once version 2 serves.
    wait_until(lambda: linear_statuses(engine)[1]["state"] == "END")
    assert linear_statuses(engine)[2]["state"] == "AVAILABLE"


def test_corrupt_version_never_replaces_the_serving_one(engine_for, model_dir):
    engine = engine_for("--model_name=linear", f"--model_base_path={model_dir}",
                        "--max_num_load_retries=0")
    corrupt = model_dir / ".staging-2"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"this is not a protobuf")
    corrupt.rename(model_dir / "2")
    failed = wait_until(
        lambda: linear_statuses(engine).get(2, {}).get("status", {}).get("error_code")
        not in (None, "OK") and linear_statuses(engine)[2])
    assert failed["state"] == "END" and failed["status"]["error_message"]
    assert linear_statuses(engine)[1]["state"] == "AVAILABLE"
    assert linear_predict(engine, 3.0) == (200, {"outputs": [3.0]})


def test_missing_variables_is_reported_and_old_version_serves(engine_for, model_dir):
    engine = engine_for("--model_name=linear", f"--model_base_path={model_dir}",
                        "--max_num_load_retries=0")
    broken = save_linear(model_dir / ".build", a=5.0, b=5.0)
    for f in (broken / "variables").iterdir():
        f.unlink()
    broken.rename(model_dir / "2")
    wait_until(lambda: linear_statuses(engine).get(2, {}).get("state") == "END")
    assert linear_statuses(engine)[2]["status"]["error_code"] != "OK"
    assert linear_predict(engine, 1.0) == (200, {"outputs": [1.0]})


def test_half_written_version_is_ignored_until_complete(engine_for, model_dir):
    engine = engine_for("--model_name=linear", f"--model_base_path={model_dir}")
    partial = model_dir / "2"
    (partial / "variables").mkdir(parents=True)
    time.sleep(3 * POLL_S)  # three polls see the incomplete directory: none may act on it
    assert set(linear_statuses(engine)) == {1}
    complete = save_linear(model_dir / ".build", a=2.0, b=0.0)
    for item in sorted((complete / "variables").iterdir()):
        item.rename(partial / "variables" / item.name)
    for item in complete.iterdir():
        if item.name not in ("variables", "saved_model.pb"):
            item.rename(partial / item.name)
    (complete / "saved_model.pb").rename(partial / "saved_model.pb")  # the copy completes
    wait_until(lambda: linear_predict(engine, 1.0)[1] == {"outputs": [2.0]}, timeout=20)


def test_all_policy_serves_every_version_and_labels_move_by_config_poll(engine_for, model_dir,
                                                                        tmp_path):
    save_linear(model_dir / "2", a=2.0, b=0.0)
    policy = {"linear": " model_version_policy { all {} }"}
    engine = engine_for("--model_config_file_poll_wait_seconds=1",
                        config=models_config({"linear": model_dir}, policies=policy))
    # Ready means every model has an AVAILABLE version; the others may still be loading.
    wait_until(lambda: [s["state"] for s in linear_statuses(engine).values()] == ["AVAILABLE"] * 2)
    assert linear_predict(engine, 1.0, "/versions/1")[1] == {"outputs": [1.0]}
    assert linear_predict(engine, 1.0, "/versions/2")[1] == {"outputs": [2.0]}
    assert linear_predict(engine, 1.0)[1] == {"outputs": [2.0]}  # latest
    assert linear_predict(engine, 1.0, "/labels/stable")[0] == 400
    (tmp_path / "models.config").write_text(models_config(
        {"linear": model_dir}, labels={"linear": {"stable": 1, "canary": 2}}, policies=policy))
    wait_until(lambda: linear_predict(engine, 1.0, "/labels/stable")[1] == {"outputs": [1.0]})
    assert linear_predict(engine, 1.0, "/labels/canary")[1] == {"outputs": [2.0]}


def test_label_to_unavailable_version_refused_at_startup(tmp_path, model_dir):
    config = tmp_path / "models.config"
    config.write_text(models_config({"linear": model_dir}, labels={"linear": {"stable": 1}}))
    engine = EngineProcess(f"--model_config_file={config}").start(wait=None)
    assert engine.process.wait(60) == 255
    assert ("Request to assign label to version 1 of model linear, which is not currently "
            "available for inference") in engine.log()


def test_labels_for_unavailable_versions_with_the_flag(engine_for, model_dir):
    engine = engine_for("--allow_version_labels_for_unavailable_models",
                        config=models_config({"linear": model_dir},
                                             labels={"linear": {"stable": 1}}))
    assert linear_predict(engine, 4.0, "/labels/stable") == (200, {"outputs": [4.0]})


def slow_request(engine: EngineProcess, x: float) -> tuple[threading.Thread, dict]:
    """A request that keeps version 1 busy for seconds; ``result`` gets its answer and time."""
    result: dict = {}

    def send():
        answer = linear_predict(engine, x, work=SLOW_WORK)
        result.update(answer=answer, finished=time.monotonic())
    thread = threading.Thread(target=send)
    thread.start()
    wait_until(lambda: metric(engine.rest_url, IN_FLIGHT) >= 1)  # it reached the engine
    return thread, result


def test_request_in_flight_across_a_swap_completes_on_its_version(engine_for, model_dir):
    engine = engine_for("--model_name=linear", f"--model_base_path={model_dir}")
    slow, result = slow_request(engine, 1.0)
    save_linear(model_dir / "2", a=2.0, b=0.0)
    wait_until(lambda: linear_predict(engine, 1.0)[1] == {"outputs": [2.0]}, timeout=30)
    swapped = time.monotonic()
    slow.join(60)
    assert result["answer"] == (200, {"outputs": [1.0]})
    assert result["finished"] > swapped, "the slow request ended before the swap"
    wait_until(lambda: linear_statuses(engine)[1]["state"] == "END")


def test_sigterm_finishes_requests_in_flight_then_exits_0(model_dir):
    engine = EngineProcess("--model_name=linear", f"--model_base_path={model_dir}",
                           monitoring_flag(model_dir.parent)).start()
    slow, result = slow_request(engine, 2.0)
    started = time.monotonic()
    assert engine.stop() == 0, engine.log()
    slow.join(10)
    assert result["answer"] == (200, {"outputs": [2.0]})
    assert result["finished"] > started, "the slow request ended before SIGTERM"
    print(f"shutdown with a request in flight took {time.monotonic() - started:.2f}s")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{engine.rest_url}/healthz", timeout=2)


def test_readiness_waits_for_every_model(engine_for, tmp_path, model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    engine = engine_for(config=models_config({"linear": model_dir, "later": empty}),
                        wait="live")
    assert http_json(f"{engine.rest_url}/readyz")[0] == 503
    save_linear(empty / "1", a=0.0, b=7.0)
    engine.wait_for("/readyz", timeout=30)


def test_malformed_config_file_exits_with_the_parser_reason(tmp_path):
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: 'x' base_path: '/m' bogus: 1 } }")
    engine = EngineProcess(f"--model_config_file={config}").start(wait=None)
    assert engine.process.wait(60) != 0
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in engine.log()
    assert 'has no field named "bogus"' in engine.log()
    assert "Traceback" not in engine.log()


def test_model_that_cannot_load_at_startup_fails_the_start(tmp_path):
    base = tmp_path / "broken" / "1"
    base.mkdir(parents=True)
    (base / "saved_model.pb").write_bytes(b"garbage")
    engine = EngineProcess("--model_name=broken", f"--model_base_path={base.parent}",
                           "--max_num_load_retries=0").start(wait=None)
    assert engine.process.wait(60) == 255
    assert "Failed to start server. Error: UNKNOWN: 1 model(s) did not become available" \
        in engine.log()
