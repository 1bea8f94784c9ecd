"""Prometheus metrics with TensorFlow Serving's names, and batching seen through them; a real
Prometheus server (Debian package) scrapes the engine and answers a query about it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.helpers import METRICS_PATH, http_json, metrics_page, serving
from tf_serving_platform.servectl.engine_process import EngineProcess, free_port
from tf_serving_platform.serving import codec

BATCHING = """max_batch_size { value: 8 }
batch_timeout_micros { value: 50000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
allowed_batch_sizes: 4
allowed_batch_sizes: 8
"""


@pytest.fixture(scope="module")
def monitored(test_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("monitored")
    (folder / "monitoring.config").write_text(
        f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n')
    (folder / "batching.config").write_text(BATCHING)
    with serving("--model_name=half_plus_two",
                 f"--model_base_path={test_models['half_plus_two']}",
                 f"--monitoring_config_file={folder / 'monitoring.config'}",
                 "--enable_batching",
                 f"--batching_parameters_file={folder / 'batching.config'}") as engine:
        yield engine


def rest_predict(engine: EngineProcess, values: list[float]) -> list[float]:
    return http_json(f"{engine.rest_url}/v1/models/half_plus_two:predict",
                     {"instances": values}, timeout=30)[1]["predictions"]


def value(page: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", page, re.MULTILINE)
    assert match, f"{sample} not on the page"
    return float(match.group(1))


def test_concurrent_requests_are_merged_and_padding_is_sliced_off(monitored):
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: rest_predict(monitored, [float(i)]), range(8)))
    assert answers == [[0.5 * i + 2] for i in range(8)]
    page = metrics_page(monitored.rest_url)
    batching = ":tensorflow:serving:batching_session:"
    batches = value(page, f"{batching}processed_batch_size_count{{}}")
    rows = value(page, f"{batching}input_batch_size_sum{{}}")
    assert rows >= 8 and batches < rows, "no two requests shared a batch"
    assert value(page, f"{batching}wrapped_run_count{{}}") >= 8


def test_tf_serving_names_types_and_labels(monitored, test_models):
    rest_predict(monitored, [1.0, 2.0])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(monitored.channel())
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(codec.ndarray_to_tensor_proto(np.array([3.0], "float32")))
    stub.Predict(request, timeout=10)
    request.model_spec.name = "nope"
    with pytest.raises(Exception):  # noqa: B017 - NOT_FOUND, counted below
        stub.Predict(request, timeout=10)
    page = metrics_page(monitored.rest_url)
    assert "# TYPE :tensorflow:serving:request_count counter" in page
    assert "# TYPE :tensorflow:serving:request_latency histogram" in page
    assert "# HELP" not in page and "_total{" not in page and "_created" not in page
    assert value(page, ':tensorflow:serving:request_count{model_name="half_plus_two",'
                       'status="OK"}') >= 2
    # A name the config does not hold is no label value (clients could grow the page without
    # bound: issue 13); TensorFlow Serving labels it as typed.
    assert value(page, ':tensorflow:serving:request_count{model_name="(unknown)",'
                       'status="NOT_FOUND"}') == 1
    assert 'model_name="nope"' not in page
    assert value(page, ':tensorflow:serving:request_latency_count{model_name="half_plus_two",'
                       'API="predict",entrypoint="REST"}') >= 1
    assert value(page, ':tensorflow:serving:request_latency_count{model_name="half_plus_two",'
                       'API="Predict",entrypoint="GRPC"}') == 1
    version_path = test_models["half_plus_two"] / "1"
    assert value(page, ':tensorflow:cc:saved_model:load_attempt_count{model_path="'
                       f'{version_path}",status="success"}}') == 1
    assert value(page, ':platform:versions_loaded{model_name="half_plus_two"}') == 1
    assert ':platform:request_latency_count{model_name="half_plus_two",version="1",' \
           'signature_name="serving_default",API="Predict",entrypoint="GRPC"}' in page


PROMETHEUS_CONFIG = """global:
  scrape_interval: 1s
scrape_configs:
  - job_name: engine
    metrics_path: {path}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def test_a_real_prometheus_scrapes_the_request_counter(monitored, tmp_path):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is installed by .ci/run and the Makefile (Debian package)"
    rest_predict(monitored, [1.0])
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(path=METRICS_PATH, port=monitored.rest_port))
    port = free_port()
    server = subprocess.Popen([binary, f"--config.file={config}",
                               f"--storage.tsdb.path={tmp_path / 'data'}",
                               f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    query = urllib.parse.quote('sum({__name__=":tensorflow:serving:request_count",'
                               'model_name="half_plus_two",status="OK"})')
    try:
        deadline, result = time.monotonic() + 60, []
        while time.monotonic() < deadline and not result:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query="
                                            f"{query}", timeout=5) as response:
                    result = json.loads(response.read())["data"]["result"]
            except OSError:
                pass
            time.sleep(0.5)
        assert result, "Prometheus never stored a sample of the request counter"
        scraped = float(result[0]["value"][1])
        exported = value(metrics_page(monitored.rest_url),
                         ':tensorflow:serving:request_count{model_name="half_plus_two",'
                         'status="OK"}')
        assert 1 <= scraped <= exported
    finally:
        server.terminate()
        server.wait(30)
