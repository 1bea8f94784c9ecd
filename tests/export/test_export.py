"""Exporting every zoo model: layout, signatures, verification, warmup records, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tf_serving_platform.export import describe, pipeline, publish, warmup
from tf_serving_platform.export.examples import serialize
from tf_serving_platform.export.verify import load_as_served, run_signature
from tf_serving_platform.models import zoo


@pytest.fixture(scope="module")
def exported(zoo_source, tmp_path_factory):
    """Each zoo model exported once into one base path."""
    base = tmp_path_factory.mktemp("models")
    return base, {name: pipeline.export_model(zoo_source(name), base, progress=False)
                  for name in zoo.ZOO}


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_every_zoo_model_exports_and_verifies(exported, name):
    base, reports = exported
    report = reports[name]
    assert report.version == 1
    assert report.path == base / name / "1"
    assert (report.path / "saved_model.pb").exists()
    # Reloaded as TF Serving loads it (a session, whose fused kernels round large regression
    # outputs a little differently from eager Keras): within 1e-5 + 1e-6 x |value|.
    assert report.max_abs_diff <= 1e-5 + 1e-6 * 400
    assert publish.list_versions(base / name) == [1]
    assert not [p for p in (base / name).iterdir() if p.name.startswith(".")], "staging left"


def _signatures(path):
    return {s.key: s for s in describe.saved_model_signatures(path)}


def _alias(tensor) -> str:
    """A described input or output without the graph tensor behind it."""
    return str(tensor).split(" (")[0]


def test_classifier_signatures_follow_tf_serving_classify_contract(exported):
    sigs = _signatures(exported[1]["digits_cnn"].path)
    assert set(sigs) == {"serving_default", "classify"}
    predict, classify = sigs["serving_default"], sigs["classify"]
    assert [_alias(t) for t in predict.inputs] == ["image: uint8 [?, 8, 8, 1]"]
    assert [_alias(t) for t in predict.outputs] == ["probabilities: float32 [?, 10]"]
    assert classify.method == "tensorflow/serving/classify"
    assert [_alias(t) for t in classify.inputs] == ["inputs: string [?]"]
    assert [_alias(t) for t in classify.outputs] == ["classes: string [?, 10]",
                                                  "scores: float32 [?, 10]"]


def test_classes_without_class_names_are_the_score_indices(exported):
    """A classifier whose data names no classes (MobileNetV2's random images) answers the
    indices as classes, one per score: a single empty name failed TF Serving's check that
    classes and scores have the same width, so its Classify warmup failed the load."""
    path = exported[1]["mobilenet_v2"].path
    record = next(r for r in warmup.read_warmup(path) if r.HasField("classify_log"))
    examples = record.classify_log.request.input.example_list.examples
    out = run_signature(load_as_served(path), "classify",
                        {"inputs": np.array([e.SerializeToString() for e in examples])})
    assert out["classes"].shape == out["scores"].shape == (len(examples), 1000)
    assert out["classes"][0, [0, 1, 999]].tolist() == [b"0", b"1", b"999"]


def test_regressor_signature_follows_tf_serving_regress_contract(exported):
    sigs = _signatures(exported[1]["diabetes_mlp"].path)
    assert sigs["regress"].method == "tensorflow/serving/regress"
    assert [_alias(t) for t in sigs["regress"].outputs] == ["outputs: float32 [?]"]


def test_wide_deep_serves_predict_classify_and_regress(exported, zoo_source):
    path = exported[1]["wide_deep"].path
    assert set(_signatures(path)) == {"serving_default", "classify", "regress"}
    rows = {k: v[:5] for k, v in zoo_source("wide_deep").data.x_test.items()}
    loaded = load_as_served(path)
    predicted = run_signature(loaded, "serving_default", rows)
    classified = run_signature(loaded, "classify", {"inputs": serialize(rows)})
    regressed = run_signature(loaded, "regress", {"inputs": serialize(rows)})
    assert classified["classes"][0].tolist() == [b"low", b"high"]
    np.testing.assert_allclose(classified["scores"][:, 1], predicted["high_risk"][:, 0],
                               atol=1e-6)
    np.testing.assert_allclose(regressed["outputs"], predicted["progression"][:, 0], atol=1e-4)


def test_text_classifier_takes_raw_strings(exported):
    loaded = load_as_served(exported[1]["text_classifier"].path)
    out = run_signature(loaded, "serving_default",
                        {"text": np.array([b"the striker scored twice in the final match"])})
    names = zoo.get("text_classifier").load_data().class_names
    assert names[int(out["probabilities"].argmax())] == "sports"


def test_warmup_records_replay_against_the_saved_model(exported):
    path = exported[1]["digits_cnn"].path
    records = warmup.read_warmup(path)
    predicts = [r.predict_log.request for r in records if r.HasField("predict_log")]
    assert sorted(len(tf.make_ndarray(r.inputs["image"])) for r in predicts) == [1, 2, 4, 8]
    assert sum(r.HasField("classify_log") for r in records) == 4
    loaded = load_as_served(path)
    for request in predicts:
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        assert run_signature(loaded, request.model_spec.signature_name, inputs)[
            "probabilities"].shape == (len(inputs["image"]), 10)


def test_metadata_describes_the_version(exported):
    report = exported[1]["digits_cnn"]
    meta = json.loads((report.path / describe.METADATA_FILE).read_text())
    assert meta["model"] == "digits_cnn" and meta["version"] == 1
    assert meta["source"].startswith("zoo:digits_cnn")
    assert meta["metrics"]["probabilities_accuracy"] == report.metrics["probabilities_accuracy"]
    assert meta["verification"]["max_abs_diff"] <= 1e-5
    assert {s["key"] for s in meta["signatures"]} == {"serving_default", "classify"}
    assert meta["size_bytes"] > 10_000 and meta["created"].endswith("+00:00")


def test_next_export_gets_the_next_version(zoo_source, tmp_path):
    source = zoo_source("digits_mlp")
    versions = [pipeline.export_model(source, tmp_path, progress=False).version
                for _ in range(2)]
    assert versions == [1, 2]
    assert pipeline.export_model(source, tmp_path, version=7, progress=False).version == 7
    assert publish.next_version(tmp_path / "digits_mlp") == 8
