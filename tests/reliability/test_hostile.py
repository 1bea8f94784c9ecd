"""Hostile inputs, hostile operators and failing storage (issue 13): what a bad day in
production sends the engine, and what it must do instead of failing (RELIABILITY.md, Hostile).

Each case ran against the engine before its fix and failed there; the docstrings say how.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import tensorflow as tf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf import text_format

from tests.helpers import (
    NEVER_RETURNS,
    http_json,
    linear_in_background,
    linear_predict,
    linear_statuses,
    metric,
    models_config,
    monitoring_flag,
    run_servectl,
    serving,
    wait_until,
)
from tests.model_builders import save_linear
from tf_serving_platform.export import pipeline, publish
from tf_serving_platform.export.errors import ExportError
from tf_serving_platform.servectl.engine_process import EngineProcess
from tf_serving_platform.serving.engine.config_protos import SSLConfig
from tf_serving_platform.serving.engine.manager import KEPT_ENDED_VERSIONS, Manager
from tf_serving_platform.serving.engine.policy import State
from tf_serving_platform.serving.engine.servable import load_saved_model
from tf_serving_platform.serving.versions import MAX_VERSION

WITHOUT_ROOTS_READ_ANYTHING = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                               "--bounding-set=-dac_override,-dac_read_search"]
"""As root, run a command that file permissions apply to (as they do to any server user)."""


@pytest.fixture(scope="module")
def polled(tmp_path_factory):
    """An engine polling its config file and ``linear``'s base path every second; ``linear``
    has version 3 and three directories that only look like versions."""
    folder = tmp_path_factory.mktemp("polled")
    base = folder / "linear"
    save_linear(base / "3", a=1.0, b=0.0)
    for name in ODD_NAMES:
        shutil.copytree(base / "3", base / name)
    config = folder / "models.config"
    config.write_text(models_config({"linear": base}))
    with serving(f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1",
                 "--file_system_poll_wait_seconds=1", monitoring_flag(folder)) as engine:
        engine.base, engine.config = base, config
        yield engine


ODD_NAMES = ("²", "١٣", str(MAX_VERSION + 1))


def test_only_ascii_int64_names_are_versions(polled):
    """Before: ``²`` (``isdigit()``, not ``int()``) failed every poll of the model, ``١٣``
    loaded as version 13 and a number past int64 loaded, then answered INTERNAL."""
    assert list(linear_statuses(polled)) == [3]
    assert linear_predict(polled, 2.0)[0] == 200
    log = wait_until(lambda: (text := polled.log()).count("Ignoring") >= len(ODD_NAMES) and text)
    for name in ODD_NAMES:
        assert f"Ignoring {polled.base / name} of servable linear: not a version number" in log


def test_an_unreadable_version_directory_hides_no_other_version():
    """Before: one directory the server may not read (mode 000) made every poll of its model
    fail, so no new version of it ever loaded. Root reads it anyway: a root run drops the
    capabilities that let it."""
    root = Path(tempfile.mkdtemp(prefix="unreadable-"))
    try:
        for version in ("3", "5"):
            (root / "m" / version).mkdir(parents=True)
            (root / "m" / version / "saved_model.pb").write_bytes(b"")
        (root / "m" / "5").chmod(0)
        code = ("import json, sys; from pathlib import Path; "
                "from serving.engine.source import complete_versions; "
                "found, skipped = complete_versions(Path(sys.argv[1]), False); "
                "print(json.dumps([sorted(found), skipped]))")
        prefix = WITHOUT_ROOTS_READ_ANYTHING if os.geteuid() == 0 else []
        result = subprocess.run([*prefix, sys.executable, "-c", code, str(root / "m")],
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert result.returncode == 0, result.stderr
        found, skipped = json.loads(result.stdout.splitlines()[-1])
        assert found == [3]
        assert skipped == {"5": "Permission denied"}
    finally:
        (root / "m" / "5").chmod(0o755)
        shutil.rmtree(root)


def test_an_empty_config_file_takes_no_action(polled):
    """Before: a config file emptied (a truncated write, a failed template render) unloaded
    every model within one poll, readiness green. TensorFlow Serving takes no action on an
    empty config (``ServerCore::ReloadConfig``)."""
    polled.config.write_text("")
    wait_until(lambda: metric(polled.rest_url, ":platform:config_reload_errors") >= 2,
               timeout=30)  # two polls of the empty file, both refused
    assert linear_predict(polled, 2.0) == (200, {"outputs": [2.0]})
    assert linear_statuses(polled)[3]["state"] == "AVAILABLE"
    assert "holds no config: taking no action" in polled.log()


def test_versions_that_came_and_went_leave_a_bounded_status(tmp_path):
    """Before: every version that ever ended kept its record (and its place in GetModelStatus)
    for the life of the process; a model published and pruned for months grew without end."""
    save_linear(tmp_path / "1", a=1.0, b=0.0)
    manager = Manager(lambda name, version, path: load_saved_model(
        name, version, path, {"serve"}, tf.compat.v1.ConfigProto()))
    try:
        last = KEPT_ENDED_VERSIONS + 4
        for version in range(1, last + 1):  # each replaces the last, as a rollout does
            manager.set_aspired_versions("m", {version: tmp_path / "1"})
            wait_until(lambda v=version: manager.version_status("m", v)[0].state
                       == State.AVAILABLE)
        wait_until(lambda: manager.version_status("m", last - 1)[0].state == State.END)
        manager.set_aspired_versions("m", {last: tmp_path / "1"})  # (prunes at each update)
        kept = [r.version for r in manager.version_status("m")]
        assert kept == list(range(last, last - KEPT_ENDED_VERSIONS - 1, -1))
    finally:
        manager.stop()


def test_sigterm_while_waiting_for_a_first_version_exits_0(tmp_path):
    """Before: an engine waiting for the first version of a model ignored SIGTERM and SIGINT
    (it was killed after the stop's timeout)."""
    (tmp_path / "empty").mkdir()
    engine = EngineProcess("--model_name=later", f"--model_base_path={tmp_path / 'empty'}",
                           "--file_system_poll_wait_seconds=1").start(wait="alive")
    assert engine.stop(timeout=30) == 0, engine.log()
    assert "stopping before the initial load is done" in engine.log()


def test_sighup_drains_and_exits_0(tmp_path):
    """Before: SIGHUP (a closed terminal) killed the process with no drain."""
    save_linear(tmp_path / "linear" / "1", a=1.0, b=0.0)
    engine = EngineProcess("--model_name=linear",
                           f"--model_base_path={tmp_path / 'linear'}").start()
    engine.process.send_signal(signal.SIGHUP)
    assert engine.process.wait(60) == 0, engine.log()
    assert "SIGHUP received" in engine.log() and "shutting down: draining" in engine.log()


def test_a_second_sigint_exits_at_once(tmp_path):
    """Before: a second Ctrl-C was ignored; the drain waited for a run that never returns."""
    save_linear(tmp_path / "linear" / "1", a=1.0, b=0.0)
    engine = EngineProcess("--model_name=linear", f"--model_base_path={tmp_path / 'linear'}",
                           monitoring_flag(tmp_path), "--grace_period_seconds=600").start()
    try:
        linear_in_background(engine, NEVER_RETURNS)
        wait_until(lambda: metric(engine.rest_url,
                                  ':platform:requests_in_flight{entrypoint="GRPC"}') >= 1)
        engine.process.send_signal(signal.SIGINT)
        wait_until(lambda: "shutting down: draining" in engine.log())
        engine.process.send_signal(signal.SIGINT)
        assert engine.process.wait(60) == 128 + signal.SIGINT, engine.log()
        assert "interrupted again: exiting now" in engine.log()
    finally:
        engine.kill()


def test_staging_left_by_a_killed_exporter_is_shown_then_removed(tmp_path):
    """Before: an exporter killed mid-way (SIGKILL, a lost node) never exposed a partial
    version, but its ``.staging-*`` directory stayed for good."""
    model_dir = tmp_path / "linear"
    save_linear(model_dir / "1", a=1.0, b=0.0)
    code = ("import sys, time; from pathlib import Path; from export import publish\n"
            "with publish.staging_dir(Path(sys.argv[1])) as path:\n"
            "    path.mkdir(); print(path, flush=True); time.sleep(600)")
    exporter = subprocess.Popen([sys.executable, "-c", code, str(model_dir)],
                                stdout=subprocess.PIPE, text=True)
    killed = Path(exporter.stdout.readline().strip())
    exporter.kill()
    exporter.wait()
    old = model_dir / ".staging-0123456789abcdef"  # an older exporter's name, a day old
    old.mkdir()
    os.utime(old, (0, 0))
    shown = run_servectl("inspect", str(model_dir)).stdout
    assert f"{killed.name}: stale (its exporter (pid {exporter.pid}) is gone" in shown
    assert f"{old.name}: stale (untouched for" in shown
    with publish.staging_dir(model_dir) as live:  # the next export removes them
        assert not killed.exists() and not old.exists()
        live.mkdir()
        assert f"{live.name}: an export in progress" in run_servectl(
            "inspect", str(model_dir)).stdout
        with publish.staging_dir(model_dir):  # a concurrent export spares the live one
            assert live.exists()


@pytest.fixture
def full_disk(tmp_path):
    """A 300 KB tmpfs: a real file system that fills up (mounting one needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_an_export_with_one_line_and_nothing_left(zoo_source, full_disk):
    """Before: a raw TensorFlow traceback (ResourceExhaustedError), exit 1."""
    with pytest.raises(ExportError) as error:
        pipeline.export_model(zoo_source("digits_mlp"), full_disk / "models", progress=False)
    assert str(error.value) == (f"cannot export digits_mlp to {full_disk / 'models' / 'digits_mlp'}"
                                ": No space left on device")
    assert list((full_disk / "models" / "digits_mlp").iterdir()) == []


def self_signed(valid_from: datetime.datetime, valid_to: datetime.datetime) -> SSLConfig:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "engine")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(valid_from).not_valid_after(valid_to).sign(key, hashes.SHA256()))
    return SSLConfig(server_cert=cert.public_bytes(serialization.Encoding.PEM).decode(),
                     server_key=key.private_bytes(
                         serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                         serialization.NoEncryption()).decode())


@pytest.mark.parametrize(("days", "reason"), [((-30, -1), "expired on"),
                                              ((1, 30), "is not valid before")],
                         ids=["expired", "not_yet_valid"])
def test_a_server_certificate_that_cannot_serve_now_refuses_the_start(tmp_path, days, reason):
    """Before: the engine started and reported ready; every TLS handshake then failed."""
    now = datetime.datetime.now(datetime.UTC)
    config = self_signed(*(now + datetime.timedelta(days=d) for d in days))
    (tmp_path / "ssl.config").write_text(text_format.MessageToString(config))
    save_linear(tmp_path / "linear" / "1", a=1.0, b=0.0)
    result = run_servectl("serve", "--model_name=linear",
                          f"--model_base_path={tmp_path / 'linear'}",
                          f"--ssl_config_file={tmp_path / 'ssl.config'}", timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines()
             if line.startswith("servectl serve: error:")]
    assert len(lines) == 1 and "the server certificate (CN=engine)" in lines[0], result.stderr
    assert reason in lines[0]


def version_states(engine: EngineProcess, model: str) -> dict[int, str]:
    _, body = http_json(f"{engine.rest_url}/v1/models/{model}")
    return {int(s["version"]): s["state"] for s in body.get("model_version_status", [])}


def hanging_version(base: Path) -> Path:
    """A version whose variables file blocks every read, as on a dead NFS or FUSE mount (a FIFO
    that no one writes)."""
    staging = base.parent / f".staging-hanging-{base.name}"
    save_linear(staging, a=1.0, b=0.0)
    data = next((staging / "variables").glob("variables.data-*"))
    data.unlink()
    os.mkfifo(data)
    return staging.rename(base / "2")


def test_failing_and_hanging_versions_delay_no_other_model_nor_the_exit(tmp_path):
    """Before: a truncated saved_model.pb was retried 6 times, 60 s apart, on the manager's
    only thread: another model's new version waited 298 s to load. A version whose files hang
    on read held that thread, every later load and SIGTERM, for as long as the read hung (11
    minutes in the test)."""
    bases = {name: tmp_path / name for name in ("bad", "good", "hung")}
    for base in bases.values():
        save_linear(base / "1", a=1.0, b=0.0)
    config = tmp_path / "models.config"
    config.write_text(models_config(bases))
    with serving(f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
                 "--load_timeout_seconds=15",
                 "--grace_period_seconds=5") as engine:  # default retries: 5, a minute apart
        hanging_version(bases["hung"])
        broken = tmp_path / "broken"
        shutil.copytree(bases["bad"] / "1", broken)
        pb = broken / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[:100])  # truncated
        broken.rename(bases["bad"] / "2")
        wait_until(lambda: "loading bad version 2 failed (attempt 1)" in engine.log())
        save_linear(bases["good"] / "2", a=2.0, b=0.0)
        wait_until(lambda: version_states(engine, "good").get(2) == "AVAILABLE", timeout=30)
        assert version_states(engine, "bad")[2] == "LOADING"  # still waiting to retry
        assert version_states(engine, "bad")[1] == "AVAILABLE"
        wait_until(lambda: "loading hung version 2 failed (attempt 1): Loading took longer "
                   "than --load_timeout_seconds=15" in engine.log(), timeout=60)
        assert http_json(f"{engine.rest_url}/v1/models/hung:predict",
                    {"inputs": {"x": [2.0], "work": [0]}})[0] == 200  # version 1 serves
        started = time.monotonic()  # the stop at the end of the block is timed
    assert time.monotonic() - started < 30  # the hung read still holds its thread
    assert "exiting with 0 model run(s) and 1 load(s) that never returned" in engine.log()
