"""Bad input: the corpus in ``tests/reliability/bad_inputs/`` against the real engine's REST
and gRPC APIs.

``rest.jsonl`` holds HTTP requests (path, headers, body as text, base64 or repeated parts; or a
whole raw request for framing errors), ``grpc.jsonl`` gRPC requests as protobuf JSON or raw wire
bytes, each with the answer expected: an HTTP status or gRPC code and a fragment of the message.
Every case must be refused with that 4xx (or the code TensorFlow Serving uses, such as NOT_FOUND),
with a clear message that carries no Python traceback or exception class name; after every case a
valid request must still succeed, and after the whole corpus the engine process must be alive
with no internal error in its log. The ``tolerated`` group holds inputs TensorFlow Serving's
contract accepts (trailing bytes, unknown keys...): they must answer 200.

A case with ``known_bug`` documents a defect still to be fixed outside the front ends: it must
still fail its expectation (like ``xfail(strict=True)``), so a fix makes it fail until the marker
goes. gRPC cases with ``"engine": "private"`` run on an engine of this module only, whose gRPC
front end takes at most 1 MiB per message, and which HandleReloadConfigRequest may change.

The last test prints the tally, by front end, group and answer, that RELIABILITY.md quotes; with
``RELIABILITY_REPORT_DIR=DIR`` it also writes it to ``DIR/last_run.json``.
"""

from __future__ import annotations

import base64
import collections
import gzip
import json
import re
import shutil
import socket
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    predict_pb2,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from tests.helpers import models_config, send, wait_until, write_report
from tf_serving_platform.servectl.engine_process import EngineProcess
from tf_serving_platform.serving.errors import http_status

CORPUS = Path(__file__).parent / "bad_inputs"
PRIVATE_MAX_MESSAGE_BYTES = 1 << 20
# What must never reach a client: tracebacks and Python exception class names ("Error:" alone is
# TensorFlow Serving's own wording, e.g. "Failed to process element: 0 ... Error: ...").
PYTHON_TEXT = re.compile(r"Traceback|most recent call last|File \"|<class '|"
                         r"\b(?!Error\b|Exception\b)[A-Z]\w*(?:Error|Exception)\b")
SERVER_ERRORS = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}
METHODS = {  # gRPC method: (full path, request class)
    "Predict": ("/tensorflow.serving.PredictionService/Predict", predict_pb2.PredictRequest),
    "Classify": ("/tensorflow.serving.PredictionService/Classify",
                 classification_pb2.ClassificationRequest),
    "Regress": ("/tensorflow.serving.PredictionService/Regress", regression_pb2.RegressionRequest),
    "MultiInference": ("/tensorflow.serving.PredictionService/MultiInference",
                       inference_pb2.MultiInferenceRequest),
    "GetModelMetadata": ("/tensorflow.serving.PredictionService/GetModelMetadata",
                         get_model_metadata_pb2.GetModelMetadataRequest),
    "GetModelStatus": ("/tensorflow.serving.ModelService/GetModelStatus",
                       get_model_status_pb2.GetModelStatusRequest),
    "HandleReloadConfigRequest": ("/tensorflow.serving.ModelService/HandleReloadConfigRequest",
                                  model_management_pb2.ReloadConfigRequest),
    "Check": ("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest),
}


def _load(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines() if line]


REST_CASES = _load("rest.jsonl")
GRPC_CASES = _load("grpc.jsonl")


def _params(cases: list[dict]):
    return [pytest.param(c, id=c["id"]) for c in cases]


class Tally:
    """Every answer of the corpus, for the summary."""

    def __init__(self, log_start: int):
        self.rows: list[dict] = []
        self.log_start = log_start
        """Where the shared engine's log stood before the first case."""

    def add(self, front_end: str, case: dict, answer: str, problems: list[str],
            seconds: float) -> None:
        self.rows.append({"front_end": front_end, "id": case["id"], "group": case["group"],
                          "answer": answer, "known_bug": case.get("known_bug"),
                          "problems": problems, "seconds": round(seconds, 3)})

    def summary(self) -> dict:
        count = collections.Counter
        by_answer = count((r["front_end"], r["answer"]) for r in self.rows)
        by_class = count(f"{r['front_end']} {_http_class(r['answer'])}" for r in self.rows)
        by_group = collections.defaultdict(collections.Counter)
        for r in self.rows:
            by_group[f"{r['front_end']} {r['group']}"][r["answer"]] += 1
        return {
            "cases": len(self.rows),
            "by_front_end": dict(count(r["front_end"] for r in self.rows)),
            "by_class": dict(sorted(by_class.items())),
            "by_answer": {f"{f} {a}": n for (f, a), n in sorted(by_answer.items())},
            "by_group": {g: dict(sorted(c.items())) for g, c in sorted(by_group.items())},
            "known_bugs": [{"id": r["id"], "answer": r["answer"], "bug": r["known_bug"]}
                           for r in self.rows if r["known_bug"]],
            "slowest": sorted(({"id": r["id"], "seconds": r["seconds"]} for r in self.rows),
                              key=lambda r: -r["seconds"])[:5],
        }


@pytest.fixture(scope="module")
def tally(engine):
    return Tally(len(engine.log()))


def _http_class(answer: str) -> str:
    """"4xx"-style class of an HTTP status, or of a gRPC code through TF Serving's table."""
    status = int(answer) if answer.isdigit() else http_status(grpc.StatusCode[answer])
    return f"{status // 100}xx"


def _judge(case: dict, problems: list[str]) -> None:
    """A case passes with no problem; a ``known_bug`` case must still have one."""
    if case.get("known_bug"):
        assert problems, f"known bug no longer reproduces, remove its marker: {case['known_bug']}"
    else:
        assert not problems, problems


def _python_text(message: str) -> list[str]:
    found = PYTHON_TEXT.search(message)
    return [f"Python text in the message: {found.group()!r}"] if found else []


# ---- REST ---------------------------------------------------------------------------------

def _body(case: dict) -> bytes | None:
    if "body_b64" in case:
        return base64.b64decode(case["body_b64"])
    if "body_parts" in case:
        body = "".join(text * times for text, times in case["body_parts"]).encode()
    elif "body" in case:
        body = case["body"].encode()
    else:
        return None
    if case.get("gzip_members"):  # a gzip bomb: the same member again and again
        body = gzip.compress(body, 9) * case["gzip_members"]
    return body


def _http(engine, case: dict) -> tuple[int, str, bytes]:
    status, content_type, raw = send(engine, f"{case['method']} {case['path']}", _body(case),
                                     case.get("headers"), timeout=120)
    return status, content_type or "", raw


def _raw_http(engine, request: bytes) -> tuple[int, str, bytes]:
    """Send bytes as they are and parse the one response (the server may not read them all)."""
    with socket.create_connection(("127.0.0.1", engine.rest_port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(headers.get("Content-Length", 0))
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    return int(lines[0].split()[1]), headers.get("Content-Type", ""), body


def _rest_problems(case: dict, status: int, content_type: str, raw: bytes) -> list[str]:
    expect, problems = case["expect"], []
    if status != expect["status"]:
        problems.append(f"status {status}, expected {expect['status']}: {raw[:300]!r}")
    if status >= 500:
        problems.append(f"server error {status}")
    if expect.get("json", True):
        if content_type != "application/json":
            problems.append(f"Content-Type {content_type!r}")
        try:
            document = json.loads(raw, parse_constant=str)
        except ValueError:
            return [*problems, f"not JSON: {raw[:300]!r}"]
        if status < 300:
            return problems
        if not (isinstance(document, dict) and list(document) == ["error"]):
            return [*problems, f"not an error body: {raw[:300]!r}"]
        message = document["error"]
    else:
        message = raw.decode("utf-8", "replace")
    if expect["message"] not in message:
        problems.append(f"message {message[:300]!r} lacks {expect['message']!r}")
    return problems + _python_text(message)


def _rest_still_serves(engine) -> None:
    case = {"method": "POST", "path": "/v1/models/half_plus_two:predict",
            "body": '{"instances": [1.0, 2.0]}'}
    status, _, raw = _http(engine, case)
    assert (status, json.loads(raw)) == (200, {"predictions": [2.5, 3.0]})


@pytest.mark.parametrize("case", _params(REST_CASES))
def test_rest(engine, tally, case):
    started = time.monotonic()
    if "raw_b64" in case:
        status, content_type, raw = _raw_http(engine, base64.b64decode(case["raw_b64"]))
    else:
        status, content_type, raw = _http(engine, case)
    seconds = time.monotonic() - started
    problems = _rest_problems(case, status, content_type, raw)
    if seconds > case.get("max_seconds", 60):
        problems.append(f"answered after {seconds:.1f}s, more than {case['max_seconds']}s")
    tally.add("REST", case, str(status), problems, seconds)
    _judge(case, problems)
    _rest_still_serves(engine)


# ---- gRPC ---------------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
    return out + bytes([n])


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _deep_variant_nesting() -> bytes:
    """TensorProto.variant_val -> VariantTensorDataProto.tensors -> TensorProto ..., 5000 deep."""
    inner = b""
    for _ in range(5000):
        inner = _field(15, _field(3, inner))
    return predict_pb2.PredictRequest(model_spec={"name": "half_plus_two"}).SerializeToString() \
        + _field(2, _field(1, b"x") + _field(2, inner))


def _predict_1_5_mib() -> bytes:
    request = predict_pb2.PredictRequest(model_spec={"name": "m"})
    request.inputs["x"].dtype = 1
    request.inputs["x"].tensor_shape.dim.add(size=393_216)
    request.inputs["x"].tensor_content = bytes(1_572_864)
    return request.SerializeToString()


GENERATED = {
    "deep_variant_nesting": _deep_variant_nesting,
    "predict_1_5_mib": _predict_1_5_mib,
    "status_name_2_mib": lambda: get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": "m" * (2 << 20)}).SerializeToString(),
    "reload_1_5_mib": lambda: model_management_pb2.ReloadConfigRequest(
        metric_names=["n" * 1024] * 1536).SerializeToString(),
}


def _grpc_bytes(case: dict, private=None) -> bytes:
    if "raw_b64" in case:
        return base64.b64decode(case["raw_b64"])
    if "gen" in case:
        return GENERATED[case["gen"]]()
    if "config" in case or "labels" in case:
        return private.reload_request(case.get("config", []), case.get("labels")) \
            .SerializeToString()
    return json_format.ParseDict(case["request"], METHODS[case["method"]][1]()) \
        .SerializeToString()


def _call(channel: grpc.Channel, case: dict, data: bytes) -> tuple[str, str]:
    call = channel.unary_unary(METHODS[case["method"]][0])  # bytes in, bytes out
    try:
        call(data, timeout=case.get("deadline_s", 60))
    except grpc.RpcError as e:
        return e.code().name, e.details() or ""
    return "OK", ""


def _grpc_problems(case: dict, code: str, message: str) -> list[str]:
    expect, problems = case["expect"], []
    if code != expect["code"]:
        problems.append(f"code {code}, expected {expect['code']}: {message[:300]!r}")
    if code in SERVER_ERRORS:
        problems.append(f"server error {code}")
    if expect["message"] not in message:
        problems.append(f"message {message[:300]!r} lacks {expect['message']!r}")
    return problems + _python_text(message)


def _grpc_still_serves(channel: grpc.Channel, name: str) -> None:
    request = predict_pb2.PredictRequest(model_spec={"name": name})
    request.inputs["x"].dtype = 1
    request.inputs["x"].tensor_shape.dim.add(size=2)
    request.inputs["x"].float_val.extend([1.0, 2.0])
    call = channel.unary_unary(METHODS["Predict"][0], request_serializer=None,
                               response_deserializer=predict_pb2.PredictResponse.FromString)
    assert list(call(request.SerializeToString(), timeout=30).outputs["y"].float_val) == [2.5, 3.0]


@pytest.fixture(scope="module")
def shared_channel(engine):
    with engine.channel() as channel:
        yield channel


def _run_grpc(channel, tally, case, private=None) -> None:
    data = _grpc_bytes(case, private)
    started = time.monotonic()
    code, message = _call(channel, case, data)
    seconds = time.monotonic() - started
    problems = _grpc_problems(case, code, message)
    tally.add("gRPC", case, code, problems, seconds)
    _judge(case, problems)


@pytest.mark.parametrize("case", _params([c for c in GRPC_CASES if c["engine"] == "shared"]))
def test_grpc(shared_channel, tally, case):
    _run_grpc(shared_channel, tally, case)
    _grpc_still_serves(shared_channel, "half_plus_two")


class PrivateEngine:
    """An engine serving ``m`` (half_plus_two), with a 1 MiB gRPC message limit."""

    def __init__(self, base: Path):
        self.base = base
        config = base / "models.config"
        config.write_text(models_config({"m": base / "m"}))
        self.server = EngineProcess(
            f"--model_config_file={config}", "--max_num_load_retries=0",
            f"--grpc_channel_arguments=grpc.max_receive_message_length="
            f"{PRIVATE_MAX_MESSAGE_BYTES}").start()
        self.channel = self.server.channel()

    def reload_request(self, extra: list[dict], labels: dict | None = None):
        config = model_server_config_pb2.ModelServerConfig()
        config.model_config_list.config.add(name="m", base_path=str(self.base / "m"),
                                            model_platform="tensorflow")
        for entry in extra:
            json_format.ParseDict(entry, config.model_config_list.config.add())
        for model, model_labels in (labels or {}).items():
            for label, version in model_labels.items():
                config.model_config_list.config[0].version_labels[label] = int(version)
            assert model == "m"
        return model_management_pb2.ReloadConfigRequest(config=config)

    def restore(self) -> None:
        """Back to serving only ``m``, and ready."""
        call = self.channel.unary_unary(METHODS["HandleReloadConfigRequest"][0])
        call(self.reload_request([]).SerializeToString(), timeout=60)
        assert send(self.server, "GET /readyz", timeout=10)[0] == 200


@pytest.fixture(scope="module")
def private(test_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("bad-input-engine")
    shutil.copytree(test_models["half_plus_two"], base / "m")
    engine = PrivateEngine(base)
    yield engine
    engine.channel.close()
    engine.server.stop(timeout=10)


@pytest.mark.parametrize("case", _params([c for c in GRPC_CASES if c["engine"] == "private"]))
def test_grpc_private_engine(private, tally, case):
    _run_grpc(private.channel, tally, case, private)
    private.restore()
    _grpc_still_serves(private.channel, "m")


def _internal_errors(log: str) -> list[str]:
    """Log records of internal errors or tracebacks (a client's malformed HTTP is a warning)."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", log)
    return [r for r in records if "Traceback" in r or "internal error" in r
            or "Error handling request" in r]


def test_private_engine_logged_no_internal_error(private):
    assert private.server.process.poll() is None
    assert not _internal_errors(private.server.log())


def test_rest_client_leaving_mid_body(engine):
    """A client that closes the connection in the middle of its body is no server error."""
    start = len(engine.log())
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", engine.rest_port), timeout=10) as sock:
            sock.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 100\r\n\r\n{\"instances\": [1")
    _rest_still_serves(engine)
    time.sleep(0.2)
    assert not _internal_errors(engine.log()[start:])


def test_malformed_http_is_logged_as_one_warning_line(engine):
    """aiohttp refuses it with a 400; the log says so in one line, with no traceback."""
    start = len(engine.log())
    with socket.create_connection(("127.0.0.1", engine.rest_port), timeout=10) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        assert sock.recv(100).split(b" ", 2)[1] == b"400"
    _rest_still_serves(engine)
    log = wait_until(lambda: "refused a malformed" in (text := engine.log()[start:]) and text)
    assert "WARNING" in log and "refused a malformed HTTP request from 127.0.0.1" in log, log
    assert not _internal_errors(log)


# ---- after the corpus -----------------------------------------------------------------------

def test_engine_survived_the_corpus(engine, tally):
    """Alive, still serving on both APIs, and nothing logged as an internal error meanwhile."""
    if not tally.rows:
        pytest.skip("no corpus case ran")
    assert engine.process.poll() is None
    _rest_still_serves(engine)
    with engine.channel() as channel:
        _grpc_still_serves(channel, "half_plus_two")
    assert not _internal_errors(engine.log()[tally.log_start:])


def test_summary(capsys, tally):
    """Print the tally RELIABILITY.md quotes; write it to last_run.json on request."""
    if not tally.rows:
        pytest.skip("no corpus case ran")
    summary = tally.summary()
    width = max(len(k) for k in summary["by_group"]) + 2
    lines = [f"bad-input corpus: {summary['cases']} cases "
             f"({', '.join(f'{k} {v}' for k, v in summary['by_front_end'].items())})",
             "classes (gRPC codes as TF Serving maps them to HTTP): "
             + ", ".join(f"{k}: {v}" for k, v in summary["by_class"].items()),
             "answers: " + ", ".join(f"{k}: {v}" for k, v in summary["by_answer"].items())]
    lines += [f"  {group:<{width}}" + ", ".join(f"{a} x{n}" for a, n in answers.items())
              for group, answers in summary["by_group"].items()]
    lines += [f"  known bug {b['id']} ({b['answer']})" for b in summary["known_bugs"]]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    write_report("last_run.json", summary)
    assert summary["cases"] >= 200
    unexpected = [r for r in tally.rows if r["problems"] and not r["known_bug"]]
    assert not unexpected, unexpected


def test_private_engine_still_polls_after_a_nul_base_path(private):
    reload = private.channel.unary_unary(METHODS["HandleReloadConfigRequest"][0])
    bad = [{"name": "x", "basePath": "/tmp/\u0000", "modelPlatform": "tensorflow"}]
    with pytest.raises(grpc.RpcError):
        reload(private.reload_request(bad).SerializeToString(), timeout=30)
    time.sleep(1.5)  # one poll of the source's thread, every second
    private.restore()
    shutil.copytree(private.base / "m" / "1", private.base / "m" / "2")
    status = private.channel.unary_unary(
        METHODS["GetModelStatus"][0], request_serializer=None,
        response_deserializer=get_model_status_pb2.GetModelStatusResponse.FromString)
    request = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "m"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        versions = status(request.SerializeToString(), timeout=10).model_version_status
        if any(v.version == 2 for v in versions):
            return
        time.sleep(0.2)
    pytest.fail("version 2 was never loaded")


def test_private_engine_stops_after_a_hung_reload(private):
    reload = private.channel.unary_unary(METHODS["HandleReloadConfigRequest"][0])
    hangs = [{"name": "y", "basePath": "/etc/../etc/passwd", "modelPlatform": "tensorflow"}]
    with pytest.raises(grpc.RpcError) as info:
        reload(private.reload_request(hangs).SerializeToString(), timeout=1)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    private.restore()
    assert private.server.stop(timeout=5) == 0
