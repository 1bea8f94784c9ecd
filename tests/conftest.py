"""Shared fixtures: trained zoo models, the test models, and one engine serving them (trained,
written and started once per session). Helpers they and the tests use: ``tests/helpers.py``."""

from __future__ import annotations

import os
from functools import cache

import pytest

from tests.helpers import models_config, serving

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@cache
def _trained_source(name: str):
    from tf_serving_platform.export import sources

    return sources.resolve(name, progress=False)


@pytest.fixture(scope="session")
def zoo_source():
    """``zoo_source(name)``: an :class:`ExportSource` for a zoo model, trained once."""
    return _trained_source


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

    config = tmp_path_factory.mktemp("engine-config") / "models.config"
    config.write_text(models_config(test_models))
    # A budget that parses bodies up to the 1 GiB body limit (1 GiB x 40), so that the 413
    # texts of the bad-input corpus do not depend on the machine's memory.
    with serving(f"--model_config_file={config}",
                 f"--request_memory_budget_bytes={40 << 30}") as server:
        yield server


@pytest.fixture
def otlp_receiver():
    """A fresh real OTLP/gRPC receiver per test (``benchmarks.otlp_receiver``)."""
    from benchmarks.otlp_receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        yield receiver
