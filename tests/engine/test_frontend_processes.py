"""``--frontend_processes``: several processes on the shared ports, one model process (issue 14).

Every case runs real engines: the answers of a split engine are compared byte for byte with a
one-process engine's; the front ends are checked not to hold TensorFlow (one copy of the
models); batches merge across connections that land on different front ends; a client that
hangs up drops its queued work in the model process; a killed front end is restarted while the
other keeps serving; SIGTERM drains a request in flight; a port that cannot be shared fails the
start with one line; each front end holds its part of the connection limit; the default count
follows the cgroup's CPU quota. The request memory budget shared by all of them, and scrapes
that see every front end's requests, are tested by tests/engine/test_request_memory.py and
tests/reliability/test_bad_input.py, which run the default (one front end per CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

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
from tf_serving_platform.servectl.engine_process import EngineProcess, children
from tf_serving_platform.serving import codec
from tf_serving_platform.serving.engine.cpus import usable_cpus
from tf_serving_platform.serving.engine.frames import FrameChannel

TENSORFLOW_LIBRARY = "_pywrap_tensorflow_internal"
SLOW_WORK = 10_000  # rounds of a 256x256 matmul: two seconds or more on 2 cores


def front_end_pids(engine: EngineProcess) -> set[int]:
    pids = set()
    for pid in children(engine.process.pid):
        try:
            if b"serving.engine.frontend_process" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
        except OSError:
            pass  # exited meanwhile
    return pids


def maps_tensorflow(pid: int) -> bool:
    return TENSORFLOW_LIBRARY in Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture(scope="module")
def split(test_models, tmp_path_factory):
    """The conftest engine's models and flags, with two front-end processes."""
    folder = tmp_path_factory.mktemp("split-engine")
    config = folder / "models.config"
    config.write_text(models_config(test_models))
    with serving(f"--model_config_file={config}", "--frontend_processes=2",
                 f"--request_memory_budget_bytes={40 << 30}", monitoring_flag(folder)) as server:
        wait_until(lambda: len(front_end_pids(server)) == 2)
        yield server


CASES = [
    ("POST", "/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]}),
    ("POST", "/v1/models/multi_signature:predict",
     {"signature_name": "sum_and_product", "inputs": {"a": [1.0, 2.0], "b": [3.0, 4.0]}}),
    ("POST", "/v1/models/strings:predict", {"instances": ["ab", "Cd"]}),
    ("POST", "/v1/models/half_plus_two:classify",
     {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}, {"x": 3.0}]}),
    ("POST", "/v1/models/half_plus_two:regress",
     {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}),
    ("POST", "/v1/models/half_plus_two:predict", {"signature_name": "nope", "instances": [1]}),
    ("POST", "/v1/models/half_plus_two:predict", {"signature_name": "nope", "instances": "x"}),
    ("POST", "/v1/models/half_plus_two:predict", {"instances": ["not a number"]}),
    ("POST", "/v1/models/missing:predict", {"instances": [1.0]}),
    ("POST", "/v1/models/half_plus_two/versions/7:predict", {"instances": [1.0]}),
    ("GET", "/v1/models/half_plus_two", None),
    ("GET", "/v1/models/half_plus_two/metadata", None),
    ("GET", "/v1/models/missing", None),
    ("GET", "/v1/models", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CASES)
def test_rest_answers_are_the_one_process_engines(engine, split, method, path, body):
    """The same status and document (maps compared as maps: protobuf's map order differs
    from one process to the next, in one engine as in two)."""
    assert method == ("POST" if body is not None else "GET")
    (status, got), (expected_status, expected) = (http_json(server.rest_url + path, body)
                                                  for server in (split, engine))
    assert (status, got) == (expected_status, expected)


def test_grpc_answers_are_the_one_process_engines(engine, split):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(codec.ndarray_to_tensor_proto(np.array([1.0, 4.0], "f4")))
    unknown = predict_pb2.PredictRequest()
    unknown.model_spec.name = "missing"
    answers = []
    for server in (engine, split):
        with server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=30)
            with pytest.raises(grpc.RpcError) as error:
                stub.Predict(unknown, timeout=30)
        answers.append((response, error.value.code(), error.value.details()))
    assert answers[0] == answers[1]
    assert list(codec.tensor_proto_to_ndarray(answers[1][0].outputs["y"])) == [2.5, 4.0]


def test_front_ends_hold_no_tensorflow_and_requests_are_counted_once(split):
    """One copy of the models: TensorFlow's library is mapped by the model process only. The
    front ends' metric records reach the model process's page."""
    pids = front_end_pids(split)
    assert len(pids) == 2
    assert maps_tensorflow(split.process.pid)
    assert not any(maps_tensorflow(pid) for pid in pids)
    ok = 'request_count{model_name="strings",status="OK"}'
    before = metric(split.rest_url, f":tensorflow:serving:{ok}")
    for _ in range(6):  # new connections each: both front ends take some
        assert http_json(f"{split.rest_url}/v1/models/strings:predict",
                         {"instances": ["a"]})[0] == 200
    wait_until(lambda: metric(split.rest_url, f":tensorflow:serving:{ok}") == before + 6)
    assert metric(split.rest_url, ':platform:requests_in_flight{entrypoint="REST"}') <= 1


BATCHING = """max_batch_size {{ value: {size} }}
batch_timeout_micros {{ value: {timeout} }}
num_batch_threads {{ value: 1 }}
"""


@pytest.fixture(scope="module")
def batching(test_models, tmp_path_factory):
    """Two front ends, a batch of 16 that waits up to 60 s to fill."""
    folder = tmp_path_factory.mktemp("split-batching")
    config = folder / "batching.config"
    config.write_text(BATCHING.format(size=16, timeout=60_000_000))
    with serving("--model_name=half_plus_two",
                 f"--model_base_path={test_models['half_plus_two']}",
                 "--frontend_processes=2", "--enable_batching",
                 f"--batching_parameters_file={config}", monitoring_flag(folder),
                 "--enable_model_warmup=false") as server:
        wait_until(lambda: len(front_end_pids(server)) == 2)
        yield server


def _read_bytes(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/io").read_text().splitlines()
                if x.startswith("rchar:"))
    return int(line.split()[1])


def test_batches_merge_across_front_ends(batching):
    """16 clients on 16 connections fill one batch: it runs once the 16th arrives (the
    timeout is a minute), so every request met the others in the one model process, whichever
    front end the kernel gave its connection to (both took some)."""
    pids = front_end_pids(batching)
    read_before = {pid: _read_bytes(pid) for pid in pids}
    batches = ":tensorflow:serving:batching_session:processed_batch_size_count"
    before = metric(batching.rest_url, batches)
    answers = [None] * 16

    def call(i: int) -> None:
        answers[i] = http_json(f"{batching.rest_url}/v1/models/half_plus_two:predict",
                               {"instances": [float(i)]})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert [body["predictions"] for _, body in answers] == \
        [[0.5 * i + 2] for i in range(16)]
    assert metric(batching.rest_url, batches) == before + 1
    assert all(_read_bytes(pid) > read_before[pid] for pid in pids)


def test_a_client_that_hangs_up_drops_its_queued_work(batching):
    abandoned = ':platform:requests_abandoned{reason="cancelled",stage="queued"}'
    batches = ":tensorflow:serving:batching_session:processed_batch_size_count"
    before, batches_before = metric(batching.rest_url, abandoned), metric(batching.rest_url,
                                                                          batches)
    body = b'{"instances": [1.0]}'
    with socket.create_connection(("127.0.0.1", batching.rest_port)) as client:
        client.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        wait_until(lambda: metric(batching.rest_url, ":platform:batch_queue_depth") >= 1)
    # closed: the batch waits a minute for company, the client did not
    wait_until(lambda: metric(batching.rest_url, abandoned) == before + 1)
    assert metric(batching.rest_url, batches) == batches_before


@pytest.fixture
def linear(tmp_path):
    save_linear(tmp_path / "linear" / "1", a=2.0, b=1.0)
    server = EngineProcess("--model_name=linear", f"--model_base_path={tmp_path / 'linear'}",
                           "--frontend_processes=2", monitoring_flag(tmp_path)).start()
    wait_until(lambda: len(front_end_pids(server)) == 2)
    yield server
    server.kill()


def test_a_killed_front_end_is_restarted_while_the_other_serves(linear):
    victim, survivor = sorted(front_end_pids(linear))
    os.kill(victim, signal.SIGKILL)
    # Its listening sockets close as its last thread exits (the engine reaps it then): until
    # then the kernel may still queue a new connection to it, and that one is reset
    # (SO_REUSEPORT's limit, as with nginx's reuseport).
    wait_until(lambda: not Path(f"/proc/{victim}").exists())
    assert linear_predict(linear, 1.0) == (200, {"outputs": [3.0]})  # the survivor answers
    assert survivor in front_end_pids(linear)
    wait_until(lambda: len(front_end_pids(linear) - {victim}) == 2)
    assert "died (signal SIGKILL); restarting it" in linear.log()
    for x in range(8):
        assert linear_predict(linear, float(x)) == (200, {"outputs": [2.0 * x + 1]})
    assert metric(linear.rest_url, ":platform:requests_in_flight") <= 1


def test_sigterm_drains_a_request_in_flight(linear):
    answer = []
    thread = threading.Thread(
        target=lambda: answer.append(linear_predict(linear, 5.0, work=SLOW_WORK)))
    thread.start()
    wait_until(lambda: metric(linear.rest_url, ':platform:requests_in_flight{entrypoint="REST"}')
               == 1)  # the slow one
    pids = front_end_pids(linear)
    linear.process.send_signal(signal.SIGTERM)
    thread.join(120)
    assert answer == [(200, {"outputs": [11.0]})]
    assert linear.process.wait(60) == 0, linear.log()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_each_front_end_holds_its_part_of_the_connection_limit(tmp_path):
    """``--rest_api_max_connections=4`` over two front ends: each holds 2 (the limit guards
    each process's descriptors), so whatever the kernel's spread, at most 4 of 8 connections
    are held and the others are refused at once."""
    save_linear(tmp_path / "linear" / "1", a=1.0, b=0.0)
    server = EngineProcess("--model_name=linear", f"--model_base_path={tmp_path / 'linear'}",
                           "--frontend_processes=2", "--rest_api_max_connections=4",
                           "--rest_api_idle_timeout_seconds=60").start()
    try:
        wait_until(lambda: len(front_end_pids(server)) == 2)
        held = [socket.create_connection(("127.0.0.1", server.rest_port), timeout=60)
                for _ in range(8)]
        for s in held:
            s.sendall(b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\n")
        refused = 0
        for s in held:
            s.settimeout(3)  # a held connection waits for the rest of its headers
            with contextlib.suppress(TimeoutError):
                refused += b"--rest_api_max_connections" in s.recv(65536)
            s.close()
        assert refused >= 4
    finally:
        server.kill()


def test_a_port_that_cannot_be_shared_fails_the_start(test_models):
    holder = socket.socket()  # bound without SO_REUSEPORT: nobody may share the port
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    server = EngineProcess("--model_name=half_plus_two",
                           f"--model_base_path={test_models['half_plus_two']}",
                           "--frontend_processes=2", rest_port=holder.getsockname()[1])
    try:
        server.start(wait=None)
        assert server.process.wait(120) == 255
    finally:
        holder.close()
    assert "Failed to start server. Error: a front-end process exited before it listened" \
        in server.log()
    assert "Traceback" not in server.log().split("Failed to start server")[1]


def test_frames_keep_their_order_across_partial_reads():
    """The frame reader of the front-end sockets, over a real socket pair: small and large
    frames, delivered in pieces, arrive whole and in order."""
    async def exchange() -> list:
        received, lost = [], asyncio.Event()
        left, right = socket.socketpair()
        loop = asyncio.get_running_loop()
        _, sender = await loop.create_connection(lambda: FrameChannel(print, lambda: None),
                                                 sock=left)
        await loop.create_connection(lambda: FrameChannel(received.append, lost.set),
                                     sock=right)
        big = np.arange(1 << 20, dtype=np.float32)
        for i in range(50):
            sender.send(("call", i, "predict", (big if i % 10 == 0 else i,)))
        await asyncio.sleep(0)
        sender.close()
        await asyncio.wait_for(lost.wait(), 30)
        return received

    received = asyncio.run(exchange())
    assert [frame[1] for frame in received] == list(range(50))
    assert np.array_equal(received[10][3][0], np.arange(1 << 20, dtype=np.float32))
    assert received[7][3] == (7,)


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpu.max": "50000 100000\n"}, 1),  # v2: half a CPU, rounded up
    ({"cpu.max": "150000 100000\n"}, 2),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu.max": "garbage\n"}, None),
    ({}, None),
])
def test_one_front_end_per_cpu_the_cgroup_grants(tmp_path, files, expected):
    """``--frontend_processes=0`` sizes to the pod's CPU limit, not the node's cores."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    cores = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path) == (cores if expected is None else min(cores, expected))
