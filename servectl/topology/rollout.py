"""Rolling model versions with TensorFlow Serving's own mechanisms: version policy + labels.

Every move is a short sequence of complete ``ModelServerConfig`` texts, applied in the order
``g3doc/serving_config.md`` requires (a label may only move to a version that is already
loaded): first the config that loads the new version next to the old one, then the config that
moves the label, and only after a drain period the config that drops the old version.

* canary V: serve {stable, V}; then label ``canary`` -> V.
* promote: label ``stable`` -> the canary version, drop ``canary``; after the drain, serve only it.
* rollback: with a canary, drop it (serve only stable); after a promote, load the previous
  stable version again, move ``stable`` back to it, then drop the promoted one.

The functions here are pure (config in, configs out); :mod:`servectl.topology.apply` pushes
them to replicas or to a Kubernetes ConfigMap.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from tensorflow_serving.config import model_server_config_pb2

STABLE, CANARY = "stable", "canary"
Config = model_server_config_pb2.ModelServerConfig


class RolloutError(Exception):
    """A move that makes no sense in the current state (one line)."""


@dataclass
class Step:
    """One config to apply, why, and what must be true on every replica before the next."""

    description: str
    config: Config
    wait_available: tuple[int, ...] = ()
    wait_unloaded: tuple[int, ...] = ()


def _model(config: Config, name: str):
    for model in config.model_config_list.config:
        if model.name == name:
            return model
    raise RolloutError(f"model {name!r} is not in the config")


def _with(config: Config, name: str, versions: set[int], labels: dict[str, int]) -> Config:
    """A copy of ``config`` where ``name`` serves exactly ``versions`` with ``labels``."""
    updated = copy.deepcopy(config)
    model = _model(updated, name)
    model.model_version_policy.specific.Clear()
    model.model_version_policy.specific.versions.extend(sorted(versions))
    model.version_labels.clear()
    model.version_labels.update(labels)
    return updated


def labels(config: Config, name: str) -> dict[str, int]:
    return dict(_model(config, name).version_labels)


def canary(config: Config, name: str, version: int, stable: int) -> list[Step]:
    """Load ``version`` next to ``stable`` and label it ``canary``."""
    if version == stable:
        raise RolloutError(f"version {version} of {name} is already the stable version")
    both = {stable, version}
    return [Step(f"{name}: load version {version} next to stable {stable}",
                 _with(config, name, both, {STABLE: stable}), wait_available=(version,)),
            Step(f"{name}: label canary -> {version}",
                 _with(config, name, both, {STABLE: stable, CANARY: version}))]


def promote(config: Config, name: str) -> tuple[list[Step], int]:
    """Move ``stable`` to the canary version; returns the steps and the old stable version."""
    current = labels(config, name)
    if CANARY not in current:
        raise RolloutError(f"{name} has no canary to promote (run rollout --canary V first)")
    old, new = current[STABLE], current[CANARY]
    return [Step(f"{name}: label stable -> {new} (was {old}), drop the canary label",
                 _with(config, name, {old, new}, {STABLE: new})),
            Step(f"{name}: after the drain, unload version {old}",
                 _with(config, name, {new}, {STABLE: new}), wait_unloaded=(old,))], old


def rollback(config: Config, name: str, previous_stable: int | None) -> list[Step]:
    """Undo the last move: drop the canary, or return to the stable version before a promote."""
    current = labels(config, name)
    stable = current.get(STABLE)
    if CANARY in current:
        return [Step(f"{name}: drop canary {current[CANARY]}, keep stable {stable}",
                     _with(config, name, {stable}, {STABLE: stable}),
                     wait_unloaded=(current[CANARY],))]
    if previous_stable is None or previous_stable == stable:
        raise RolloutError(f"{name} has nothing to roll back (no canary, no earlier promote)")
    both = {previous_stable, stable}
    return [Step(f"{name}: load version {previous_stable} again next to {stable}",
                 _with(config, name, both, {STABLE: stable}), wait_available=(previous_stable,)),
            Step(f"{name}: label stable -> {previous_stable} (was {stable})",
                 _with(config, name, both, {STABLE: previous_stable})),
            Step(f"{name}: after the drain, unload version {stable}",
                 _with(config, name, {previous_stable}, {STABLE: previous_stable}),
                 wait_unloaded=(stable,))]
