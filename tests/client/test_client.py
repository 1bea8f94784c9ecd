"""The Python clients and ``servectl predict`` against real engines.

Every API test runs all four clients (``client`` fixture) on the shared ``engine``; the async
ones run on a private event loop (``Blocking``) so one test body serves all four. ``replicas``
are three engines of our own with metrics on, a ``stable`` label and a slow model: they count
requests for the no-retry and round-robin tests and hold a call past its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from PIL import Image

from tests.helpers import metrics_page, models_config, run_servectl, serving
from tests.model_builders import save_linear
from tf_serving_platform.servectl.commands.predict_cmd import image_input
from tf_serving_platform.servectl.engine_process import EngineProcess, free_port
from tf_serving_platform.serving.client import (
    AsyncGrpcClient,
    AsyncRestClient,
    GrpcClient,
    ModelVersionStatus,
    RestClient,
    RetryPolicy,
    ServingClientError,
    TensorSpec,
)
from tf_serving_platform.serving.client.grpc_client import channel_target

HPT, METRICS = "half_plus_two", "/metrics"
INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
FAILURES = (("(unknown)", "NOT_FOUND"), (HPT, "INVALID_ARGUMENT"))
"""How the engine counts the two bad requests below (a model it does not serve is counted as
``(unknown)``: clients' names are no label values)."""


class Blocking:
    """An async client driven from synchronous test code, on its own event loop."""

    def __init__(self, make):
        self._loop = asyncio.new_event_loop()
        self._client = self._loop.run_until_complete(self._create(make))

    @staticmethod
    async def _create(make):
        return make()  # grpc.aio channels and aiohttp sessions belong to the running loop

    def __getattr__(self, name):
        method = getattr(self._client, name)
        return lambda *args, **kw: self._loop.run_until_complete(method(*args, **kw))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


CLASSES = {"rest": RestClient, "async_rest": AsyncRestClient, "grpc": GrpcClient,
           "async_grpc": AsyncGrpcClient}
KINDS = tuple(CLASSES)


def make(kind: str, rest_url: str = "", grpc_target: str | list[str] = "", **settings):
    """A client of one of the four kinds; REST kinds use ``rest_url``, gRPC kinds the target."""
    target = rest_url if kind.endswith("rest") else grpc_target
    if kind.startswith("async"):
        return Blocking(lambda: CLASSES[kind](target, **settings))
    return CLASSES[kind](target, **settings)


def for_engine(kind: str, engine: EngineProcess, **settings):
    return make(kind, engine.rest_url, engine.grpc_target, **settings)


@pytest.fixture(scope="module", params=KINDS)
def client(request, engine):
    with for_engine(request.param, engine) as c:
        yield c


@pytest.fixture(scope="module")
def replicas(test_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("replicas")
    (base / "linear").mkdir()
    save_linear(base / "linear" / "1", 1.0, 0.0)
    config = base / "models.config"
    config.write_text(models_config({HPT: test_models[HPT], "linear": base / "linear"},
                                    labels={HPT: {"stable": 1}}))
    monitoring = base / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS}" }}\n')
    with contextlib.ExitStack() as stack:  # three started at once, then waited for
        engines = [stack.enter_context(serving(f"--model_config_file={config}",
                                               f"--monitoring_config_file={monitoring}",
                                               "--allow_version_labels_for_unavailable_models",
                                               wait=None))
                   for _ in range(3)]
        for e in engines:
            e.wait_for("/readyz")
        yield engines


def request_count(engine: EngineProcess, model: str, status: str) -> int:
    """TF Serving's ``:tensorflow:serving:request_count`` from the engine's metrics page."""
    page = metrics_page(engine.rest_url, METRICS)
    found = re.search(rf':tensorflow:serving:request_count{{model_name="{re.escape(model)}",'
                      rf'status="{status}"}} (\d+)', page)
    return int(found.group(1)) if found else 0


def test_predict_named_bare_and_typed_inputs(client):
    expected = np.float32([2.5, 3.0])
    for inputs in ({"x": [1.0, 2.0]}, [1, 2], np.float32([1.0, 2.0])):
        (name, y), = client.predict(HPT, inputs).items()
        assert name == "y" and y.dtype == np.float32
        np.testing.assert_array_equal(y, expected)


def test_every_dtype_round_trips(client):
    sent = {"f32": np.float32([1 / 3, -0.0, 3.4e38]), "f64": np.float64([1 / 3, 1e-300, 2.0]),
            "i32": np.int32([-2**31, 0, 2**31 - 1]), "i64": np.int64([-2**63, 2**62 + 1, 7]),
            "u8": np.uint8([0, 128, 255]), "i8": np.int8([-128, 0, 127]),
            "b": np.array([True, False, True]), "s": np.array(["a", "é", ""], dtype=object)}
    got = client.predict("dtypes", sent)
    assert sorted(got) == sorted(f"{k}_out" for k in sent)
    for key, value in sent.items():
        out = got[f"{key}_out"]
        if key == "s":
            assert out.tolist() == [s.encode() for s in value]
        else:
            assert out.dtype == value.dtype, key
            np.testing.assert_array_equal(out, value)


def test_strings_and_bytes_keep_every_byte(client):
    text = [b"\xff\x00z", "h\u00e9llo".encode(), b""]  # not UTF-8, UTF-8, empty
    got = client.predict("strings", {"text": text})
    assert got["upper_bytes"].tolist() == [t.upper() for t in text]
    assert got["length"].tolist() == [len(t) for t in text]


def test_signature_output_filter_and_version(client):
    got = client.predict("multi_signature", {"a": [1.0, 2.0], "b": [3.0, 4.0]},
                         signature="sum_and_product", version=1)
    assert got["sum"].tolist() == [4.0, 6.0] and got["product"].tolist() == [3.0, 8.0]
    only = client.predict("many_outputs", {"x": [[1.0, 5.0, 2.0]]}, output_filter=["argmax"])
    assert list(only) == ["argmax"] and only["argmax"].tolist() == [1]
    assert client.predict("multi_signature", [1.0], signature="plus_one")["y"].tolist() == [2.0]


def test_classify_regress_status_and_metadata(client):
    examples = [{"x": 1.0}, {"x": 3.0}]
    result = client.classify(HPT, examples, signature="classify_x_to_y")
    assert result.scores.tolist() == [[2.5], [3.5]] and result.labels.tolist() == [[""], [""]]
    assert client.regress(HPT, examples, signature="regress_x_to_y").tolist() == [2.5, 3.5]
    assert client.regress(HPT, [{}, {}], context={"x": 2.0}, signature="regress_x_to_y"
                          ).tolist() == [3.0, 3.0]
    assert client.status(HPT) == [ModelVersionStatus(1, "AVAILABLE", "OK", "")]
    metadata = client.metadata("multi_signature")
    assert metadata.version == 1
    pair = metadata.signatures["sum_and_product"]
    assert pair.inputs == {"a": TensorSpec("DT_FLOAT", (None,)), "b": TensorSpec("DT_FLOAT",
                                                                                 (None,))}


@pytest.mark.parametrize(("call", "code", "text"), [
    (lambda c: c.predict("nope", [1.0]), NOT_FOUND, "Servable not found for request: Latest"),
    (lambda c: c.status("nope"), NOT_FOUND, "Could not find any versions of model nope"),
    (lambda c: c.predict(HPT, [1.0], version=7), NOT_FOUND, f"Specific({HPT}, 7)"),
    (lambda c: c.predict(HPT, [1.0], label="zzz"), INVALID, "version label: zzz"),
    (lambda c: c.predict(HPT, {"x": ["a"]}), INVALID, "is not of expected type: float"),
    (lambda c: c.predict(HPT, [1.0], output_filter=["q"]), INVALID, "alias not found"),
    (lambda c: c.predict(HPT, [1.0], version=1, label="a"), INVALID, "not both"),
    (lambda c: c.classify(HPT, [{"x": 1.0}], signature="nope"), INVALID, "nope"),
])
def test_errors_carry_canonical_codes(client, call, code, text):
    with pytest.raises(ServingClientError) as raised:
        call(client)
    assert raised.value.code == code and text in raised.value.message


def test_unknown_signature_is_a_400_on_both_wires(client):
    with pytest.raises(ServingClientError) as raised:
        client.predict(HPT, {"x": np.float32([1.0])}, signature="zz")
    assert raised.value.http_status == 400 and '"zz" not found' in raised.value.message


def test_reload_config_over_grpc_only(engine):
    with pytest.raises(ServingClientError) as raised, RestClient(engine.rest_url) as rest:
        rest.reload_config("model_config_list {}")
    assert raised.value.code == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(ServingClientError) as raised, GrpcClient(engine.grpc_target) as g:
        g.reload_config('model_config_list { config { name: "x" base_path: "relative" } }')
    assert raised.value.code == INVALID and "absolute" in raised.value.message


def test_list_models_over_rest_with_labels(replicas):
    with RestClient(replicas[0].rest_url) as rest:
        listings = {m.name: m for m in rest.list_models()}
    assert sorted(listings) == sorted([HPT, "linear"])
    assert listings[HPT].labels == {"stable": 1}
    assert listings[HPT].versions == [ModelVersionStatus(1, "AVAILABLE")]
    assert listings["linear"].labels == {}
    with pytest.raises(ServingClientError) as raised, GrpcClient(replicas[0].grpc_target) as g:
        g.list_models()
    assert raised.value.code == grpc.StatusCode.UNIMPLEMENTED


def test_servectl_predict_list(replicas):
    result = run_servectl("predict", "--list", "--rest", replicas[0].rest_url)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert [HPT, "1", "AVAILABLE", "stable"] in rows and ["linear", "1", "AVAILABLE"] in rows
    refused = run_servectl("predict", "--list", "--grpc", replicas[0].grpc_target)
    assert refused.returncode == 2 and "--list needs --rest" in refused.stderr


def test_rest_client_does_not_import_tensorflow():
    code = ("import sys, serving.client.rest; from serving.client import RestClient; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("kind", KINDS)
def test_bad_requests_reach_the_server_once(replicas, kind):
    def failures():
        return [request_count(replicas[0], m, s) for m, s in FAILURES]

    before = failures()
    with for_engine(kind, replicas[0], retry=RetryPolicy(max_attempts=5)) as c:
        for call in (lambda: c.predict("nope", {"x": np.float32([1])}),
                     lambda: c.predict(HPT, {"x": np.array(["a"], dtype=object)})):
            with pytest.raises(ServingClientError) as raised:
                call()
            assert raised.value.code in (NOT_FOUND, INVALID)
    after = failures()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]


@pytest.mark.parametrize("kind", ["grpc", "async_grpc"])
def test_round_robin_spreads_calls_over_three_replicas(replicas, kind):
    with make(kind, grpc_target=[e.grpc_target for e in replicas]) as c:
        for _ in range(100):  # until every replica's connection is up and has served a call
            c.predict(HPT, {"x": np.float32([1.0])})
            if all(request_count(e, HPT, "OK") for e in replicas):
                break
        before = [request_count(e, HPT, "OK") for e in replicas]
        for _ in range(60):
            c.predict(HPT, {"x": np.float32([1.0])})
    counts = [request_count(e, HPT, "OK") - b for e, b in zip(replicas, before, strict=True)]
    assert sum(counts) == 60 and max(counts) - min(counts) <= 0.2 * max(counts), counts


def test_several_targets_become_one_address_list():
    assert channel_target("dns:///tf-serving.ns:8500") == "dns:///tf-serving.ns:8500"
    assert channel_target(["localhost:1", "127.0.0.1:2"]) == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert channel_target(["[::1]:1", "[::1]:2"]) == "ipv6:[::1]:1,[::1]:2"


class _Flaky(http.server.BaseHTTPRequestHandler):
    """503 for the first two requests, then a proxy to the real engine."""

    def _answer(self):
        self.server.hits += 1
        if self.server.hits <= 2:
            status, body = 503, b'{"error": "overloaded"}'
        else:
            length = int(self.headers.get("Content-Length") or 0)
            request = urllib.request.Request(self.server.upstream + self.path, method=self.command,
                                             data=self.rfile.read(length) if length else None)
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = response.status, response.read()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("kind", ["rest", "async_rest"])
def test_rest_retries_503_then_succeeds(engine, kind, caplog):
    # A stub, because no real server can be told to answer 503 exactly twice; it counts the
    # requests that reach it and forwards the rest to the real engine.
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    stub.hits, stub.upstream = 0, engine.rest_url
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    caplog.set_level(logging.INFO, "serving.client")
    try:
        url = f"http://127.0.0.1:{stub.server_address[1]}"
        with make(kind, url, retry=RetryPolicy(max_attempts=3)) as c:
            assert c.status(HPT)[0].state == "AVAILABLE"
    finally:
        stub.shutdown()
    assert stub.hits == 3 and sum("retrying" in r.message for r in caplog.records) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_refused_connections_are_retried_within_bounds(kind, caplog):
    caplog.set_level(logging.INFO, "serving.client")
    closed = (f"http://127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    with make(kind, *closed, retry=RetryPolicy(max_attempts=3)) as c, \
            pytest.raises(ServingClientError, match="gave up after 3 attempts in") as raised:
        c.status(HPT)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert sum("retrying" in r.message for r in caplog.records) == 2
    many = RetryPolicy(max_attempts=10_000, initial_backoff_s=0.01, max_backoff_s=0.05)
    with make(kind, *closed, retry=many) as c:
        started = time.monotonic()
        with pytest.raises(ServingClientError) as raised:
            c.status(HPT, timeout=0.5)  # the deadline, not the attempts, ends this one
    assert 0.3 < time.monotonic() - started < 1.5
    # The last attempt fails fast (refused) or runs out of time while gRPC reconnects.
    assert raised.value.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"), raised.value


def test_grpc_retries_until_a_starting_engine_listens(test_models, tmp_path, caplog):
    caplog.set_level(logging.INFO, "serving.client")
    config = models_config({HPT: test_models[HPT]})
    (tmp_path / "models.config").write_text(config)
    engine = EngineProcess(f"--model_config_file={tmp_path / 'models.config'}")
    with GrpcClient(engine.grpc_target, retry=RetryPolicy(200, 0.02, 0.2), timeout_s=120) as c, \
            ThreadPoolExecutor(1) as pool:
        # ReloadConfig with the engine's own config answers OK at once whether or not the
        # initial load has finished, unlike Predict (NOT_FOUND while the model loads).
        reloaded = pool.submit(c.reload_config, config)
        engine.start(wait=None)
        try:
            reloaded.result(timeout=120)
            engine.wait_for("/readyz")  # a reload that found the model loading returns at once
            assert c.predict(HPT, [1.0])["y"].tolist() == [2.5]
        finally:
            assert engine.stop() == 0, engine.log()
    assert any("Connection refused" in r.message for r in caplog.records)


CERTIFICATES = """
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
  -out ca.pem -days 2 -subj /CN=test-ca
printf subjectAltName=IP:127.0.0.1 > san.ext
for name in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $name.key \
    -out $name.csr -subj /CN=$name
  openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $name.pem \
    -days 2 -extfile san.ext
done
"""


def wait_until_available(client, timeout: float = 60) -> None:
    """Polls the model's status: the port opens before the model's config is even read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(s.state == "AVAILABLE" for s in client.status(HPT)):
                return
        except ServingClientError as e:
            if e.code != NOT_FOUND:
                raise
        time.sleep(0.05)
    raise TimeoutError(f"{HPT} not AVAILABLE after {timeout} s")


def test_mutual_tls_on_both_wires(test_models, tmp_path):
    subprocess.run(["bash", "-ec", CERTIFICATES], cwd=tmp_path, check=True, capture_output=True)
    pem = {name: json.dumps((tmp_path / name).read_text()) for name in
           ("server.key", "server.pem", "ca.pem")}
    (tmp_path / "ssl.config").write_text(
        f"server_key: {pem['server.key']} server_cert: {pem['server.pem']} "
        f"custom_ca: {pem['ca.pem']} client_verify: true\n")
    (tmp_path / "models.config").write_text(models_config({HPT: test_models[HPT]}))
    with serving(f"--model_config_file={tmp_path / 'models.config'}",
                 f"--ssl_config_file={tmp_path / 'ssl.config'}", "--rest_api_enable_ssl",
                 wait=None) as engine:
        url, ca = f"https://127.0.0.1:{engine.rest_port}", tmp_path / "ca.pem"
        mine = {"verify": ca, "cert": (tmp_path / "client.pem", tmp_path / "client.key")}
        once = RetryPolicy(max_attempts=1)
        with RestClient(url, retry=RetryPolicy(600, 0.05, 0.1), timeout_s=60, **mine) as c:
            wait_until_available(c)
        for kind in ("rest", "async_rest"):
            with make(kind, url, **mine) as c:
                assert c.predict(HPT, [1.0])["y"].tolist() == [2.5]
        with GrpcClient(engine.grpc_target, root_certificates=ca, private_key=mine["cert"][1],
                        certificate_chain=mine["cert"][0]) as c:
            assert c.predict(HPT, [1.0])["y"].tolist() == [2.5]
        for untrusted in (RestClient(url, retry=once, verify=ca),  # no client certificate
                          RestClient(url, retry=once, cert=mine["cert"]),  # unknown CA
                          GrpcClient(engine.grpc_target, retry=once, root_certificates=ca),
                          GrpcClient(engine.grpc_target, retry=once, tls=True)):
            with untrusted, pytest.raises(ServingClientError) as raised:
                untrusted.status(HPT)
            assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_servectl_predict_prints_outputs_and_latency(engine, tmp_path):
    rest = run_servectl("predict", "many_outputs", "--rest", engine.rest_url, "--json",
                        '{"instances": [[1, 2, 3], [6, 5, 4]]}', "--output-filter", "sum,argmax")
    assert rest.returncode == 0, rest.stderr
    assert "argmax: int64 (2,)\n  [2, 0]\nsum: float32 (2,)\n  [ 6., 15.]\nlatency: " in rest.stdout
    np.save(tmp_path / "x.npy", np.arange(40, dtype=np.float64))
    grpc_run = run_servectl("predict", HPT, "--grpc", engine.grpc_target, "--npy",
                            f"x={tmp_path / 'x.npy'}", "--version", "1")
    assert grpc_run.returncode == 0, grpc_run.stderr
    assert "y: float32 (40,)\n  [ 2. ,  2.5,  3. , ..., 20.5, 21. , 21.5]\n" in grpc_run.stdout


def test_servectl_predict_sends_an_image_as_pixels_or_bytes(engine, tmp_path):
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "d.png")
    pixels = image_input(tmp_path / "d.png", TensorSpec("DT_FLOAT", (None, 4, 4, 1)))
    assert pixels.shape == (1, 4, 4, 1) and pixels.dtype == np.float32
    result = run_servectl("predict", "strings", "--rest", engine.rest_url, "--image",
                          f"text={tmp_path / 'd.png'}")
    size = (tmp_path / "d.png").stat().st_size
    assert result.returncode == 0 and f"length: int64 (1,)\n  [{size}]" in result.stdout


@pytest.mark.parametrize(("args", "fragment"), [
    ([HPT, "--json", "[1.0,"], "not valid JSON"),
    ([HPT, "--json", '["a"]'], "is not of expected type: float"),
    ([HPT, "--json", "[1.0]", "--signature", "zz"], "has no signature 'zz'"),
    (["nope", "--json", "[1]"], "NOT_FOUND: Servable not found"),
    ([HPT, "--json", "[1]", "--rest", "http://127.0.0.1:{port}"], "UNAVAILABLE: Cannot reach"),
])
def test_servectl_predict_user_errors_are_one_line(engine, args, fragment):
    args = [a.replace("{port}", str(free_port())) for a in args]
    result = run_servectl("predict", "--rest", engine.rest_url, *args)  # the last --rest wins
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and fragment in lines[0], result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_deadline_cuts_a_slow_call_and_label_resolves(replicas, kind):
    # Last in the file: the engine finishes the cut-off work anyway, burning CPU for a second.
    with for_engine(kind, replicas[1]) as c:
        assert c.predict(HPT, [2.0], label="stable")["y"].tolist() == [3.0]
        started = time.monotonic()
        with pytest.raises(ServingClientError) as raised:
            c.predict("linear", {"x": [1.0], "work": [5000]}, timeout=0.3)  # ~1 s of work
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 0.9
