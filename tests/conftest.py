"""Shared fixtures: trained zoo models (trained once per session) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import cache

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@cache
def _trained_source(name: str):
    from export import sources

    return sources.resolve(name, progress=False)


@pytest.fixture(scope="session")
def zoo_source():
    """``zoo_source(name)``: an :class:`ExportSource` for a zoo model, trained once."""
    return _trained_source


def run_servectl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real ``servectl`` console entry point in a child process."""
    return subprocess.run([sys.executable, "-m", "servectl.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_until(check, timeout: float = 30, interval: float = 0.05):
    """Poll ``check`` until it returns a truthy value; return it, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


METRICS_PATH = "/monitoring/prometheus/metrics"
"""TensorFlow Serving's default metrics path (``prometheus_config { enable: true }``)."""
MONITORING_CONFIG = "prometheus_config { enable: true }\n"


def monitoring_flag(folder) -> str:
    """``--monitoring_config_file`` for a file written in ``folder``: metrics on."""
    path = folder / "monitoring.config"
    path.write_text(MONITORING_CONFIG)
    return f"--monitoring_config_file={path}"


def metric(rest_url: str, prefix: str) -> float:
    """The sum of the samples on an engine's metrics page whose line starts with ``prefix``."""
    import urllib.request

    with urllib.request.urlopen(rest_url + METRICS_PATH, timeout=5) as response:
        page = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
               if line.startswith(prefix))


MODELS_CONFIG = """model_config_list {{
{entries}}}
"""


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


@pytest.fixture(scope="session")
def test_models(tmp_path_factory):
    """Every model of tests/model_builders.py, written once: ``{name: base_path}``."""
    from tests.model_builders import build_all

    return build_all(tmp_path_factory.mktemp("engine-models"))


@pytest.fixture(scope="session")
def tfs_models(tmp_path_factory):
    """TensorFlow Serving's own test models and config files (tests/tfs_models.py), generated
    once: ``{name: path}``."""
    from tests.tfs_models import build

    return build(tmp_path_factory.mktemp("tfs-models"))


@pytest.fixture(scope="session")
def engine(test_models, tmp_path_factory):
    """One engine serving every test model over REST and gRPC, for the conformance tests."""
    from servectl.engine_process import EngineProcess

    config = tmp_path_factory.mktemp("engine-config") / "models.config"
    config.write_text(models_config(test_models))
    # A budget that parses bodies up to the 1 GiB body limit (1 GiB x 40), so that the 413
    # texts of the bad-input corpus do not depend on the machine's memory.
    server = EngineProcess(f"--model_config_file={config}",
                           f"--request_memory_budget_bytes={40 << 30}").start()
    yield server
    assert server.stop() == 0, server.log()
