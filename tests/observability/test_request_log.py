"""Request logging (``logging_config``): sampling, files, rotation, drops, reloads; real files."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.helpers import wait_until
from tf_serving_platform.serving.engine import request_log
from tf_serving_platform.serving.engine.request_log import (
    RequestLogs,
    log_files,
    read_logs,
    summarize,
)
from tf_serving_platform.serving.errors import ServingError


def server_config(prefix, rate: float = 1.0, kind: str = "tfrecord", models=("m",)):
    config = model_server_config_pb2.ModelServerConfig()
    for name in models:
        model = config.model_config_list.config.add(name=name, base_path=f"/models/{name}",
                                                    model_platform="tensorflow")
        model.logging_config.log_collector_config.type = kind
        model.logging_config.log_collector_config.filename_prefix = str(prefix)
        model.logging_config.sampling_config.sampling_rate = rate
    return config


def record(i: int, pad: int = 0) -> prediction_log_pb2.PredictionLog:
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.model_spec.name = "m"
    log.predict_log.request.model_spec.signature_name = "serving_default"
    log.predict_log.request.model_spec.version.value = i
    if pad:
        log.predict_log.request.inputs["pad"].string_val.append(b"x" * pad)
    return log


class Counts:
    """on_written / on_dropped, counted per model."""

    def __init__(self):
        self.written, self.dropped = Counter(), Counter()

    def logs(self, **kwargs) -> RequestLogs:
        return RequestLogs(on_dropped=lambda m: self.dropped.update([m]),
                           on_written=lambda m: self.written.update([m]), **kwargs)


def versions(path) -> list[int]:
    return [r.predict_log.request.model_spec.version.value for r in read_logs(path)]


@pytest.fixture
def counts():
    return Counts()


def test_rate_one_logs_every_record_in_order_and_flushes_without_close(tmp_path, counts):
    prefix = tmp_path / "logs" / "m"  # the folder does not exist yet
    logs = counts.logs()
    logs.update(server_config(prefix))
    for i in range(200):
        logs.sample("m").submit(lambda i=i: record(i))
    wait_until(lambda: len(versions(prefix)) == 200, timeout=10)  # flushed, still open
    assert versions(prefix) == list(range(200))
    assert counts.written["m"] == 200 and not counts.dropped
    first = next(read_logs(prefix))
    assert first.log_metadata.sampling_config.sampling_rate == 1.0
    assert first.log_metadata.model_spec.name == "m"
    assert abs(first.log_metadata.timestamp_secs - time.time()) < 60
    [file] = log_files(prefix)
    assert file.parent == tmp_path / "logs" and file.name.startswith("m-")
    assert re.fullmatch(rf"m-\d{{8}}T\d{{6}}-{os.getpid()}-\d{{5}}\.tfrecord", file.name)
    assert log_files(tmp_path / "logs") == [file] == log_files(file)
    summary = summarize(prefix)
    assert summary["files"] == 1 and summary["records"] == 200
    assert summary["bytes"] == file.stat().st_size
    assert summary["by_kind"] == {"predict_log": 200} and summary["by_model"] == {"m": 200}
    assert summary["by_signature"] == {"serving_default": 200}
    assert summary["first"] <= summary["last"] and summary["first"].endswith("+00:00")
    logs.close()


def test_rate_zero_and_unlogged_models_sample_nothing(tmp_path, counts):
    logs = counts.logs()
    config = server_config(tmp_path / "m", rate=0.0)
    config.model_config_list.config.add(name="plain", base_path="/models/plain",
                                        model_platform="tensorflow")
    empty = config.model_config_list.config.add(name="empty", base_path="/models/empty",
                                                model_platform="tensorflow")
    empty.logging_config.SetInParent()  # present but empty: no logging
    logs.update(config)
    assert [logs.sample(m) for m in ("m", "plain", "empty", "unknown") for _ in range(500)] \
        == [None] * 2000
    logs.close()
    assert log_files(tmp_path / "m") == []


def test_rate_half_is_binomial(tmp_path, counts):
    logs = counts.logs()
    logs.update(server_config(tmp_path / "m", rate=0.5))
    sampled = sum(logs.sample("m") is not None for _ in range(2000))
    assert 800 < sampled < 1200  # mean 1000, sd 22: a 9-sigma bound
    logs.close()


def test_rotation_by_size_reads_back_complete_and_in_order(tmp_path, counts):
    prefix = tmp_path / "m"
    logs = counts.logs(max_file_bytes=2000)
    logs.update(server_config(prefix))
    for i in range(100):
        logs.sample("m").submit(lambda i=i: record(i, pad=150))
    logs.close()
    files = log_files(prefix)
    assert len(files) >= 5
    assert all(f.stat().st_size < 2000 + 300 for f in files)
    assert versions(prefix) == list(range(100))
    assert summarize(prefix)["files"] == len(files)


def test_full_queue_drops_without_blocking(tmp_path, counts):
    logs = counts.logs(max_queued=5)
    logs.update(server_config(tmp_path / "m"))
    logger = logs.sample("m")
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return record(0)

    logger.submit(slow)
    assert started.wait(5)  # the writer is busy in slow(); the queue is empty
    begin = time.monotonic()
    for i in range(1, 16):
        logger.submit(lambda i=i: record(i))
    assert time.monotonic() - begin < 0.5
    assert counts.dropped["m"] == 10
    release.set()
    wait_until(lambda: counts.written["m"] == 6, timeout=10)
    logs.close()
    assert versions(tmp_path / "m") == list(range(6))


def test_update_keeps_unchanged_logger_and_closes_removed(tmp_path, counts):
    logs = counts.logs()
    logs.update(server_config(tmp_path / "m", models=("m", "n")))
    m, n = logs.sample("m"), logs.sample("n")
    m.submit(lambda: record(1))
    logs.update(server_config(tmp_path / "m", models=("m", "n")))  # a reload, same text
    assert logs.sample("m") is m and logs.sample("n") is n
    changed = server_config(tmp_path / "m", models=("m",))
    changed.model_config_list.config[0].logging_config.sampling_config.sampling_rate = 0.99
    logs.update(changed)
    assert logs.sample("n") is None
    new_m = wait_until(lambda: logs.sample("m"))
    assert new_m is not m and new_m.sampling_rate == 0.99
    # the replaced logger wrote what it had queued and closed its file; a call sampled by it
    # just before the reload goes to the model's new logger; a removed model's is dropped
    wait_until(lambda: versions(tmp_path / "m") == [1])
    m.submit(lambda: record(2))
    n.submit(lambda: record(3))
    assert counts.dropped == {"n": 1}
    new_m.submit(lambda: record(4))
    logs.close()
    assert versions(tmp_path / "m") == [1, 2, 4]
    assert len(log_files(tmp_path / "m")) == 2


def test_bad_config_raises_invalid_argument_and_changes_nothing(tmp_path, counts):
    logs = counts.logs()
    logs.update(server_config(tmp_path / "m"))
    m = logs.sample("m")
    bad = server_config(tmp_path / "m", models=("m", "x"), rate=0.3)
    bad.model_config_list.config[1].logging_config.log_collector_config.type = "kafka"
    with pytest.raises(ServingError) as error:
        logs.update(bad)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Cannot find LogCollector::Factory for type: 'kafka'" in error.value.message
    no_prefix = server_config("", models=("m",))
    with pytest.raises(ServingError, match="filename_prefix"):
        logs.update(no_prefix)
    with pytest.raises(ServingError, match="sampling_rate"):
        logs.update(server_config(tmp_path / "m", rate=50))
    assert logs.sample("m") is m and m.sampling_rate == 1.0 and logs.sample("x") is None
    m.submit(lambda: record(7))
    logs.close()
    assert versions(tmp_path / "m") == [7]


def test_truncated_last_record_is_skipped_and_corruption_raises(tmp_path, counts):
    logs = counts.logs(max_file_bytes=1)  # one record per file
    logs.update(server_config(tmp_path / "m"))
    for i in range(3):
        logs.sample("m").submit(lambda i=i: record(i, pad=40))
    logs.close()
    first, second, third = log_files(tmp_path / "m")
    data = second.read_bytes()
    second.write_bytes(data[:-7])  # a writer that died mid-record
    third.write_bytes(third.read_bytes() + data[:10])  # and one that died mid-header
    assert versions(tmp_path / "m") == [0, 2]
    corrupt = bytearray(data)
    corrupt[20] ^= 0xFF
    second.write_bytes(first.read_bytes() + bytes(corrupt))
    with pytest.raises(ValueError, match=f"{second.name}: corrupt record at offset "
                                         f"{first.stat().st_size}"):
        list(read_logs(second))


def test_files_read_back_with_tf_data(tmp_path, counts):
    logs = counts.logs()
    logs.update(server_config(tmp_path / "m"))
    for i in range(20):
        logs.sample("m").submit(lambda i=i: record(i))
    logs.close()
    raw = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in log_files(tmp_path)])]
    parsed = [prediction_log_pb2.PredictionLog.FromString(r) for r in raw]
    assert [p.predict_log.request.model_spec.version.value for p in parsed] == list(range(20))
    assert parsed == list(read_logs(tmp_path))


def test_failing_build_drops_its_record_only(tmp_path, counts):
    logs = counts.logs()
    logs.update(server_config(tmp_path / "m"))

    def broken():
        raise RuntimeError("no response")

    for i in range(10):
        logs.sample("m").submit(broken if i % 3 == 0 else lambda i=i: record(i))
    logs.close()
    assert versions(tmp_path / "m") == [1, 2, 4, 5, 7, 8]
    assert counts.dropped["m"] == 4 and counts.written["m"] == 6


def test_unwritable_folder_drops_then_recovers(tmp_path, counts):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the folder should be")
    logs = counts.logs()
    logs.update(server_config(blocker / "m"))
    logs.sample("m").submit(lambda: record(0))
    wait_until(lambda: counts.dropped["m"] == 1, timeout=5)
    blocker.unlink()
    start = time.monotonic()

    def written():
        logs.sample("m").submit(lambda: record(1))
        return counts.written["m"]

    wait_until(written, timeout=request_log.REOPEN_AFTER + 5, interval=0.05)
    assert time.monotonic() - start < request_log.REOPEN_AFTER + 5
    logs.close()
    assert set(versions(blocker / "m")) == {1}
