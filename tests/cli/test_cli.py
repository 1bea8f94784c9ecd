"""The ``servectl`` command line as a user runs it: real processes, real exit codes."""

from __future__ import annotations

import pytest

from tests.helpers import run_servectl


def _one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(("args", "fragments"), [
    (["export", "resnet9000", "--base-path", "{tmp}"], ["unknown model 'resnet9000'",
                                                        "digits_cnn"]),
    (["export", "digits_mlp", "--base-path", "{tmp}", "--version", "two"],
     ["--version", "expected a positive integer", "got 'two'"]),
    (["export", "digits_mlp", "--base-path", "{tmp}", "--version", "0"],
     ["expected a positive integer"]),
    (["export", "digits_mlp", "--base-path", "{tmp}", "--version", "99999999999999999999"],
     ["expected a positive integer up to 9223372036854775807"]),
    (["export", "digits_mlp", "--base-path", "{tmp}", "--version", "١٣"],
     ["expected a positive integer"]),
    (["export", "digits_mlp", "--base-path", "{tmp}", "--tflite", "int4"],
     ["unknown TFLite variant 'int4'"]),
    (["export", "digits_mlp", "--base-path", "{tmp}", "--max-drop", "lots"],
     ["expected a fraction between 0 and 1"]),
    (["export", "digits_mlp", "--base-path", "{tmp}/afile/models"], ["cannot write to base path"]),
    (["export", "digits_mlp"], ["--base-path"]),
    (["train", "resnet9000"], ["unknown zoo model 'resnet9000'"]),
    (["inspect", "{tmp}/nothing-here"], ["is not a directory"]),
    (["inspect", "{tmp}"], ["holds no model versions"]),
])
def test_bad_input_gives_one_clear_line_and_exit_2(tmp_path, args, fragments):
    (tmp_path / "afile").write_text("not a directory")
    result = run_servectl(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    _one_line_error(result, *fragments)


def test_refused_variant_exits_1_with_the_reason(tmp_path):
    result = run_servectl("export", "diabetes_mlp", "--base-path", str(tmp_path),
                          "--tflite", "int8", "--quiet")
    assert result.returncode == 1
    assert "refused: int8 variant of diabetes_mlp refused: mae" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "diabetes_mlp" / "1" / "saved_model.pb").exists()


def test_existing_version_is_refused_from_the_cli(tmp_path):
    (tmp_path / "digits_mlp" / "5").mkdir(parents=True)
    result = run_servectl("export", "digits_mlp", "--base-path", str(tmp_path), "--version",
                          "5", "--quiet")
    _one_line_error(result, "version 5 of digits_mlp already exists")
    assert [p.name for p in (tmp_path / "digits_mlp").iterdir()] == ["5"]


def test_train_then_export_twice_then_inspect(tmp_path):
    model_file = tmp_path / "cnn.keras"
    result = run_servectl("train", "digits_cnn", "--output", str(model_file))
    assert result.returncode == 0, result.stderr
    assert "held-out probabilities_accuracy 0.9" in result.stdout
    for expected in (1, 2):
        result = run_servectl("export", str(model_file), "--base-path", str(tmp_path),
                              "--tflite", "fp16,int8", "--quiet")
        assert result.returncode == 0, result.stderr
        assert f"published digits_cnn version {expected}" in result.stdout
        assert "int8        digits_cnn_int8/" in result.stdout
    assert (tmp_path / "digits_cnn" / "2" / "assets.extra" / "variants.txt").exists()
    result = run_servectl("inspect", str(tmp_path / "digits_cnn"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("digits_cnn: versions 1, 2\n")
    assert "in   image: uint8 [?, 8, 8, 1]" in result.stdout
    assert "signature 'classify' (tensorflow/serving/classify)" in result.stdout
