"""A real engine's version lifecycle, driven and measured from outside: the shared parts of
:mod:`benchmarks.churn`, :mod:`benchmarks.load_isolation` and their tests.

Versions come and go through TensorFlow Serving's own mechanism, ``HandleReloadConfigRequest``
adding or removing a model, and every step waits on ``GetModelStatus`` (AVAILABLE, END), never
on a sleep. Memory is the engine process's resident set, read from ``/proc``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path

from tf_serving_platform.servectl.engine_process import EngineProcess

STATUS_POLL_S = 0.02


def memory_bytes(pid: int | str, field: str = "VmRSS") -> int:
    """A memory line of ``/proc/<pid>/status`` in bytes: ``VmRSS`` (resident now, what the OS
    has given the process) or ``VmHWM`` (its high-water mark). ``pid`` may be ``"self"``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) << 10
    raise RuntimeError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` (VmRSS) in MiB."""
    return memory_bytes(pid) / (1 << 20)


def save_weights_model(path: Path, megabytes: float, chunk_kb: int = 128) -> Path:
    """A SavedModel ``y = x + w0[0]`` holding ``megabytes`` of float32 variables in chunks of
    ``chunk_kb``: a model whose footprint is its weights, so RSS tells load from unload.

    Chunks under 256 KB live in malloc'd memory; one large variable would live in oneDNN's
    BFC pool, which TensorFlow keeps for reuse and never hands back (see benchmarks/churn.py).
    """
    import tensorflow as tf

    floats = chunk_kb * 256
    count = max(1, round(megabytes * 1024 / chunk_kb))
    module = tf.Module()
    module.weights = [tf.Variable(tf.random.stateless_uniform([floats], seed=(i, 1)))
                      for i in range(count)]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(x):
        return {"y": x + module.weights[0][0]}
    staging = path.parent / f".staging-{path.name}"
    tf.saved_model.save(module, str(staging), signatures={"serving_default": predict})
    staging.rename(path)
    return path


def export_zoo(name: str, base: Path, predict_warmup_only: bool = True) -> Path:
    """``servectl export NAME``: version 1 of a zoo model under ``base/NAME``, with warmup
    (reused when ``base`` already holds it).

    ``predict_warmup_only`` keeps only the Predict warmup records: a zoo classifier without
    class names exports ``classes [?, 1]`` next to ``scores [?, N]``, which TensorFlow
    Serving's classify check refuses, so its classify records would fail the load.
    """
    from tf_serving_platform.export import pipeline, sources

    version = base / name / "1"
    if (version / "saved_model.pb").exists():
        return version.parent  # exported by an earlier run into the same --models-dir
    pipeline.export_model(sources.resolve(name, progress=False), base, version=1,
                          progress=False)
    if predict_warmup_only:
        _keep_predict_records(version)
    return version.parent


def _keep_predict_records(version: Path) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from tf_serving_platform.serving.engine.warmup import WARMUP_PATH

    path = version / WARMUP_PATH
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for raw in records:
            if prediction_log_pb2.PredictionLog.FromString(raw).HasField("predict_log"):
                writer.write(raw)


def config_text(models: Mapping[str, Path]) -> str:
    """Text-format ModelServerConfig serving ``{name: base_path}``."""
    entries = "".join(f'  config {{ name: "{name}" base_path: "{path}" '
                      f'model_platform: "tensorflow" }}\n' for name, path in models.items())
    return f"model_config_list {{\n{entries}}}\n"


def start_engine(resident: Mapping[str, Path], workdir: Path, *flags: str,
                 timeout: float = 300) -> EngineProcess:
    """An engine (one process: ``--workers=1``, so its pid is ``engine.process.pid``) serving
    ``resident``; its config changes only through HandleReloadConfigRequest."""
    config = workdir / "models.config"
    config.write_text(config_text(resident))
    engine = EngineProcess(f"--model_config_file={config}", "--file_system_poll_wait_seconds=0",
                           "--workers=1", *flags)
    return engine.start(timeout=timeout)


class ModelSwitch:
    """Adds and removes one model of a running engine with HandleReloadConfigRequest."""

    def __init__(self, engine: EngineProcess, resident: Mapping[str, Path], name: str,
                 base_path: Path):
        from tf_serving_platform.serving.client import GrpcClient

        self.client = GrpcClient(engine.grpc_target, timeout_s=600)
        self.name = name
        self._without = config_text(resident)
        self._with = config_text({**resident, name: base_path})

    def load(self, timeout: float = 600) -> float:
        """Add the model; returns once it is AVAILABLE (the reload waits for it), in seconds."""
        started = time.monotonic()
        self.client.reload_config(self._with, timeout=timeout)
        self.wait_for("AVAILABLE", timeout)
        return time.monotonic() - started

    def unload(self, timeout: float = 120) -> float:
        """Remove the model; returns once its version is END, in seconds."""
        started = time.monotonic()
        self.client.reload_config(self._without, timeout=timeout)
        self.wait_for("END", timeout)
        return time.monotonic() - started

    def wait_for(self, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.client.status(self.name)[0]
            if status.state == state:
                if status.error_code != "OK":
                    raise RuntimeError(f"{self.name}: {status.error_code} "
                                       f"{status.error_message}")
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not {state} after {timeout}s: {status}")
            time.sleep(STATUS_POLL_S)

    def close(self) -> None:
        self.client.close()


def machine() -> dict:
    """Where a figure was measured; the load average says how busy the machine was."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg": os.getloadavg()}


def write_json(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return path

