"""TFLite variants: where they land, that they are evaluated, and the quality gate."""

from __future__ import annotations

import numpy as np
import pytest

from tf_serving_platform.export import describe, pipeline, publish
from tf_serving_platform.export.tflite import TfliteRunner
from tf_serving_platform.export.variants import relative_drop
from tf_serving_platform.models import evaluation, zoo
from tf_serving_platform.serving.engine.servable import TFLITE_FILE
from tf_serving_platform.serving.engine.tflite_session import embedded_signature_defs


@pytest.fixture(scope="module")
def cnn_export(zoo_source, tmp_path_factory):
    base = tmp_path_factory.mktemp("variants")
    report = pipeline.export_model(zoo_source("digits_cnn"), base,
                                   tflite_variants=("fp32", "fp16", "dynamic", "int8", "qat"),
                                   progress=False)
    return base, report


def test_each_variant_lands_where_prefer_tflite_model_finds_it(cnn_export):
    base, report = cnn_export
    for variant in ("fp32", "fp16", "dynamic", "int8", "qat"):
        assert report.variant_paths[variant] == base / f"digits_cnn_{variant}" / "1"
        assert (report.variant_paths[variant] / TFLITE_FILE).stat().st_size > 1000


def test_variant_table_is_measured_on_the_held_out_set(cnn_export, zoo_source):
    _, report = cnn_export
    rows = {r.variant: r for r in report.variants}
    assert rows["savedmodel"].value == pytest.approx(report.metrics["probabilities_accuracy"])
    assert rows["fp32"].delta == pytest.approx(0.0, abs=1e-9)
    assert rows["int8"].size_bytes < rows["fp32"].size_bytes / 2
    assert rows["fp16"].size_bytes < rows["fp32"].size_bytes
    data = zoo_source("digits_cnn").data
    runner = TfliteRunner(report.variant_paths["int8"] / TFLITE_FILE)
    accuracy = evaluation.score(zoo.get("digits_cnn").heads[0],
                                runner(data.x_test)["probabilities"],
                                data.y_test["probabilities"])
    assert accuracy == pytest.approx(rows["int8"].value)
    assert all(r.latency_ms > 0 for r in report.variants)


def test_tflite_variants_keep_the_models_interface(cnn_export, zoo_source):
    _, report = cnn_export
    model = report.variant_paths["int8"] / TFLITE_FILE
    # TensorFlow Serving reads only the embedded SignatureDef; without it the input would be
    # named after the converter's tensor (serving_default_image).
    embedded = embedded_signature_defs(model.read_bytes())
    assert list(embedded) == ["serving_default"]
    assert list(embedded["serving_default"].inputs) == ["image"]
    sig = describe.tflite_signatures(model)[0]
    assert sig.key == "serving_default"
    assert [str(t) for t in sig.inputs] == ["image: uint8 [?, 8, 8, 1] (serving_default_image:0)"]
    image = zoo_source("digits_cnn").data.x_test["image"][:3]
    probabilities = TfliteRunner(report.variant_paths["qat"] / TFLITE_FILE)({"image": image})
    np.testing.assert_allclose(probabilities["probabilities"].sum(axis=1), 1.0, atol=0.02)


def test_int8_gate_refuses_a_variant_that_lost_accuracy(zoo_source, tmp_path):
    # Full-integer quantization of the diabetes regressor costs ~8 % MAE: over the 2 % limit.
    report = pipeline.export_model(zoo_source("diabetes_mlp"), tmp_path,
                                   tflite_variants=("fp16", "int8"), progress=False)
    rows = {r.variant: r for r in report.variants}
    assert rows["int8"].refused and "refused: mae" in rows["int8"].refused
    assert "fp16" in report.variant_paths and "int8" not in report.variant_paths
    assert not (tmp_path / "diabetes_mlp_int8").exists() or not publish.list_versions(
        tmp_path / "diabetes_mlp_int8")
    assert publish.list_versions(tmp_path / "diabetes_mlp") == [1]


def test_text_model_has_no_tflite_variant_and_says_why(zoo_source, tmp_path):
    report = pipeline.export_model(zoo_source("text_classifier"), tmp_path,
                                   tflite_variants=("fp16",), progress=False)
    assert "not TFLite builtins" in report.variants[1].refused


@pytest.mark.parametrize(("kind", "baseline", "value", "drop"), [
    ("classification", 0.90, 0.88, 0.0222),
    ("classification", 0.90, 0.95, -0.0556),
    ("regression", 40.0, 44.0, 0.10),
    ("regression", 40.0, 38.0, -0.05),
])
def test_relative_drop(kind, baseline, value, drop):
    assert relative_drop(zoo.Head("y", kind), baseline, value) == pytest.approx(drop, abs=1e-4)


def _files(directory):
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_published_version_never_changes_after_the_rename(cnn_export, capsys):
    """Everything a version holds, the variant table included, is written before it is
    published (a polling server may already be loading it); what ``servectl export`` prints
    afterwards touches nothing."""
    from tf_serving_platform.export.variants import TABLE_FILE, variant_table
    from tf_serving_platform.servectl.commands.export_cmd import _print_report

    _, report = cnn_export
    published = _files(report.path)
    assert str(TABLE_FILE) in published
    table = variant_table(report.model, report.version, report.variants)
    assert (report.path / TABLE_FILE).read_text() == table + "\n"
    assert "int8        digits_cnn_int8/1" in table
    _print_report(report)
    assert table in capsys.readouterr().out
    assert _files(report.path) == published
