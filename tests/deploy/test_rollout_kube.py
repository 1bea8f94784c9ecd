"""``servectl rollout --kube`` against the ConfigMap API, and the pure rollout plans.

No Kubernetes API server can run here, so the ConfigMap API is a small in-memory stand-in with
the two calls the rollout makes (read, patch); the plans it records are checked step by step."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from google.protobuf import text_format

from tf_serving_platform.servectl.topology import rollout
from tf_serving_platform.servectl.topology.apply import KubeConfigMap

CONFIG = """model_config_list { config { name: "m" base_path: "/models/m"
  model_platform: "tensorflow" model_version_policy { specific { versions: 1 } }
  version_labels { key: "stable" value: 1 } } }"""


class ConfigMapApi:
    """In-memory stand-in for CoreV1Api's config map calls (no cluster exists here)."""

    def __init__(self, text: str):
        self.data = {"models.config": text}
        self.patches: list[str] = []

    def read_namespaced_config_map(self, name, namespace):
        assert (name, namespace) == ("serving-models", "serving")
        return SimpleNamespace(data=dict(self.data))

    def patch_namespaced_config_map(self, name, namespace, body):
        self.data.update(body["data"])
        self.patches.append(body["data"]["models.config"])


def parse(text: str) -> rollout.Config:
    return text_format.Parse(text, rollout.Config())


def served(config: rollout.Config) -> tuple[list[int], dict[str, int]]:
    model = config.model_config_list.config[0]
    return sorted(model.model_version_policy.specific.versions), dict(model.version_labels)


def test_canary_then_promote_through_the_configmap():
    api = ConfigMapApi(CONFIG)
    target = KubeConfigMap("serving", "serving-models", settle_seconds=0, api=api)
    for step in rollout.canary(target.read(), "m", 2, stable=1):
        target.apply(step, "m")
    steps, old = rollout.promote(target.read(), "m")
    for step in steps:
        target.apply(step, "m")
    assert old == 1
    assert [served(parse(p)) for p in api.patches] == [
        ([1, 2], {"stable": 1}),                 # load v2 next to stable first
        ([1, 2], {"stable": 1, "canary": 2}),    # then label it (labels need loaded versions)
        ([1, 2], {"stable": 2}),                 # promote: move the label while both serve
        ([2], {"stable": 2}),                    # only then drop v1
    ]


def test_rollback_after_promote_reloads_the_previous_version_before_moving_the_label():
    config = parse(CONFIG.replace("versions: 1", "versions: 2").replace("value: 1", "value: 2"))
    steps = rollout.rollback(config, "m", previous_stable=1)
    assert [served(s.config) for s in steps] == [([1, 2], {"stable": 2}),
                                                 ([1, 2], {"stable": 1}),
                                                 ([1], {"stable": 1})]
    assert steps[0].wait_available == (1,) and steps[-1].wait_unloaded == (2,)


@pytest.mark.parametrize(("move", "message"), [
    (lambda c: rollout.promote(c, "m"), "has no canary to promote"),
    (lambda c: rollout.rollback(c, "m", None), "nothing to roll back"),
    (lambda c: rollout.canary(c, "m", 1, stable=1), "already the stable version"),
    (lambda c: rollout.canary(c, "other", 2, stable=1), "model 'other' is not in the config"),
])
def test_moves_that_make_no_sense_are_refused(move, message):
    with pytest.raises(rollout.RolloutError, match=message):
        move(parse(CONFIG))
