"""Every zoo model trains reproducibly, beats a trivial baseline and takes natural inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tf_serving_platform.models import evaluation, zoo

# Held-out bounds well past a model that learned nothing: chance is 0.10 for digits and 0.25
# for the four topics; predicting the training mean gives a diabetes MAE of 63.6.
BOUNDS = {
    "digits_mlp": ("probabilities_accuracy", 0.93),
    "digits_cnn": ("probabilities_accuracy", 0.93),
    "text_classifier": ("probabilities_accuracy", 0.80),
    "diabetes_mlp": ("progression_mae", 50.0),
}


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_model_learns_something(zoo_source, name):
    metric, bound = BOUNDS[name]
    value = zoo_source(name).metrics[metric]
    if evaluation.higher_is_better(zoo.get(name).heads[0]):
        assert value >= bound
    else:
        assert value <= bound


def test_wide_deep_has_named_inputs_and_two_trained_heads(zoo_source):
    source = zoo_source("wide_deep")
    assert sorted(source.model.input) == ["age", "blood_pressure", "bmi", "serum", "sex"]
    assert source.metrics["high_risk_accuracy"] > 0.65
    assert source.metrics["progression_mae"] < 55


def test_inputs_are_in_natural_form(zoo_source):
    cnn = zoo_source("digits_cnn").data.x_test["image"]
    assert cnn.dtype == np.uint8 and cnn.max() > 200
    text = zoo_source("text_classifier").data.x_test["text"]
    assert isinstance(text[0], str)


def test_training_is_reproducible():
    from tf_serving_platform.models import train

    spec = zoo.get("digits_mlp")
    first, second = train.train(spec, progress=False), train.train(spec, progress=False)
    assert first.metrics == second.metrics


def test_unknown_zoo_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: digits_mlp"):
        zoo.get("resnet")
