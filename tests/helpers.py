"""What the tests share: start an engine, call it over REST and gRPC, wait, read its metrics.

Fixtures live in ``tests/conftest.py`` and use these; test modules import from here, never from
each other. The ``linear`` helpers call the test model of ``tests/model_builders.save_linear``
(``y = a * x + b``, ``work`` rounds of matmul to make a call slow on purpose).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tf_serving_platform.servectl import command
from tf_serving_platform.servectl.engine_process import EngineProcess

Value = TypeVar("Value")
METRICS_PATH = "/monitoring/prometheus/metrics"
"""TensorFlow Serving's default metrics path (``prometheus_config { enable: true }``)."""
MONITORING_CONFIG = "prometheus_config { enable: true }\n"
MODELS_CONFIG = """model_config_list {{
{entries}}}
"""
KUBERNETES_VERSIONS = ("1.30", "1.34")
"""The oldest Kubernetes minor the manifests support and the newest the pinned
kubernetes-validate has schemas for."""
NEVER_RETURNS = 2**31 - 1
"""``work`` for a ``linear`` call whose model run never ends (the watchdog's tests)."""


# --- processes ---------------------------------------------------------------------------------

def run_servectl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``servectl`` console entry point in a child process."""
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@contextlib.contextmanager
def serving(*flags: str, wait: str | None = "ready", timeout: float = 120,
            exit_code: int | None = 0) -> Iterator[EngineProcess]:
    """An engine started with ``flags`` for the ``with`` block, then stopped; its exit status
    must be ``exit_code`` (None: not checked)."""
    engine = EngineProcess(*flags).start(wait=wait, timeout=timeout)
    try:
        yield engine
    finally:
        status = engine.stop()
        if exit_code is not None:
            assert status == exit_code, engine.log()


def wait_until(check: Callable[[], Value], timeout: float = 30, interval: float = 0.05
               ) -> Value:
    """Poll ``check`` until it returns a truthy value; return it, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# --- config files ------------------------------------------------------------------------------

def monitoring_flag(folder: Path) -> str:
    """``--monitoring_config_file`` for a file written in ``folder``: metrics on."""
    path = folder / "monitoring.config"
    path.write_text(MONITORING_CONFIG)
    return f"--monitoring_config_file={path}"


def models_config(paths: dict, labels: dict | None = None, policies: dict | None = None) -> str:
    """Text-format ModelServerConfig for ``{name: base_path}``."""
    entries = []
    for name, path in paths.items():
        extra = policies.get(name, "") if policies else ""
        for label, version in (labels or {}).get(name, {}).items():
            extra += f' version_labels {{ key: "{label}" value: {version} }}'
        entries.append(f'  config {{ name: "{name}" base_path: "{path}" '
                       f'model_platform: "tensorflow"{extra} }}\n')
    return MODELS_CONFIG.format(entries="".join(entries))


# --- REST --------------------------------------------------------------------------------------

def http_json(url: str, body: dict | None = None, timeout: float = 60) -> tuple[int, dict]:
    """``(status, parsed body)`` of a GET (no body) or a JSON POST; errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data), timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def send(engine: EngineProcess, request: str, body: Any = None,
         headers: dict | None = None, timeout: float = 30) -> tuple[int, str | None, bytes]:
    """``request`` is ``"METHOD /path"``; ``body`` is JSON-encoded unless str or bytes.

    Returns ``(status, Content-Type, raw body)``.
    """
    method, path = request.split(" ", 1)
    if body is not None and not isinstance(body, bytes | str):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()  # http.client would send str as Latin-1
    connection = http.client.HTTPConnection("127.0.0.1", engine.rest_port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def send_json(engine: EngineProcess, request: str, body: Any = None,
              headers: dict | None = None, timeout: float = 30) -> tuple[int, Any]:
    """``(status, parsed body)`` of a /v1 request, whose answer must be JSON."""
    status, content_type, raw = send(engine, request, body, headers, timeout)
    assert content_type == "application/json", (content_type, raw)
    return status, json.loads(raw, parse_constant=str)


def metrics_page(rest_url: str, path: str = METRICS_PATH) -> str:
    """An engine's Prometheus page (at ``path``), which must be served as text."""
    with urllib.request.urlopen(rest_url + path, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def metric(rest_url: str, prefix: str) -> float:
    """The sum of the samples on an engine's metrics page whose line starts with ``prefix``."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_page(rest_url).splitlines()
               if line.startswith(prefix))


# --- the linear test model ---------------------------------------------------------------------

def linear_predict(engine: EngineProcess, x: float, path: str = "", work: int = 0,
                   timeout: float = 60) -> tuple[int, dict]:
    """REST predict on ``linear`` (``path``: ``/versions/2``, ``/labels/canary``...)."""
    return http_json(f"{engine.rest_url}/v1/models/linear{path}:predict",
                     {"inputs": {"x": [x], "work": [work]}}, timeout)


def linear_statuses(engine: EngineProcess) -> dict[int, dict]:
    """``linear``'s version statuses by version (REST GetModelStatus)."""
    _, body = http_json(f"{engine.rest_url}/v1/models/linear")
    return {int(s["version"]): s for s in body.get("model_version_status", [])}


def linear_request(work: int = 0, x: float = 1.0):
    """A gRPC ``PredictRequest`` for ``linear``."""
    import numpy as np
    from tensorflow_serving.apis import predict_pb2

    from tf_serving_platform.serving import codec

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    request.inputs["x"].CopyFrom(codec.ndarray_to_tensor_proto(np.array([x], np.float32)))
    request.inputs["work"].CopyFrom(codec.ndarray_to_tensor_proto(np.array([work], np.int32)))
    return request


def linear_in_background(engine: EngineProcess, work: int) -> threading.Thread:
    """A gRPC ``linear`` call running ``work`` rounds on a daemon thread; an engine that stops
    under it ends the call quietly."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    def call():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(engine.channel())
        with contextlib.suppress(grpc.RpcError):
            stub.Predict(linear_request(work), timeout=600)
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


# --- reliability figures -----------------------------------------------------------------------

def write_report(name: str, figures: Any) -> Path | None:
    """Writes a reliability test's figures as ``$RELIABILITY_REPORT_DIR/name`` when that is set
    (RELIABILITY.md's runs); a plain test run writes nothing outside its temporary
    directories."""
    folder = os.environ.get("RELIABILITY_REPORT_DIR")
    if not folder:
        return None
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return path


# --- gRPC --------------------------------------------------------------------------------------

DEADLINE = 30
"""The per-call deadline of the tests' gRPC calls."""


def grpc_stubs(channel, paths=None):
    """The model and prediction service stubs of ``channel`` (``paths``: the caller's own)."""
    from types import SimpleNamespace

    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    return SimpleNamespace(channel=channel, paths=paths,
                           models=model_service_pb2_grpc.ModelServiceStub(channel),
                           predictions=prediction_service_pb2_grpc.PredictionServiceStub(channel))


def tensor(values, dtype="float32", typed=False):
    """A ``TensorProto`` of ``values``: ``tensor_content`` unless ``typed`` (the ``*_val``
    fields)."""
    import numpy as np

    from tf_serving_platform.serving import codec

    return codec.ndarray_to_tensor_proto(np.asarray(values, dtype), use_tensor_content=not typed)


def model_input(*xs, context=None):
    """Examples with float feature ``x`` (None: no feature), in a list or with a context."""
    from tensorflow_serving.apis import input_pb2

    def example(x):
        return {"features": {"feature": {} if x is None else {"x": {"float_list": {"value": [x]}}}}}
    examples = [example(x) for x in xs]
    if context is None:
        return input_pb2.Input(example_list={"examples": examples})
    return input_pb2.Input(example_list_with_context={"examples": examples,
                                                      "context": example(context)})


def request(cls, name="half_plus_two", signature="", version=None, label=None, spec=True,
            **fields):
    """A ``cls`` request; ``spec=False`` leaves ``model_spec`` unset."""
    message = cls(**fields)
    if spec:
        message.model_spec.name, message.model_spec.signature_name = name, signature
        if version is not None:
            message.model_spec.version.value = version
        if label is not None:
            message.model_spec.version_label = label
    return message


def multi(*tasks, inp=None):
    """A ``MultiInferenceRequest``; ``tasks``: (model name, signature, method_name) triples."""
    from tensorflow_serving.apis import inference_pb2

    return inference_pb2.MultiInferenceRequest(input=inp or model_input(1.0, 2.0), tasks=[
        {"model_spec": {"name": name, "signature_name": sig}, "method_name": method}
        for name, sig, method in tasks])


def version_states(response):
    """``(version, state, error code, error message)`` of each version in a status answer."""
    from tensorflow_serving.apis import get_model_status_pb2

    return [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
             s.status.error_code, s.status.error_message) for s in response.model_version_status]
