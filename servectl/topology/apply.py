"""Pushing rollout steps: to local replicas (config file + HandleReloadConfigRequest, waiting on
GetModelStatus) or to a Kubernetes ConfigMap that TensorFlow Serving re-reads."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
)

from tf_serving_platform.servectl.topology.rollout import Config, RolloutError, Step

HISTORY_SUFFIX = ".rollout.json"


def write_config(path: Path, config: Config) -> None:
    """Replace the file atomically, so a poller never reads half of it."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text_format.MessageToString(config))
    os.replace(staging, path)


def read_history(config_path: Path) -> dict[str, int]:
    """``{model: stable version before the last promote}``, kept beside the config."""
    path = config_path.with_name(config_path.name + HISTORY_SUFFIX)
    return json.loads(path.read_text()) if path.exists() else {}


def write_history(config_path: Path, history: dict[str, int]) -> None:
    config_path.with_name(config_path.name + HISTORY_SUFFIX).write_text(json.dumps(history))


def version_states(target: str, model: str, timeout: float = 10) -> dict[int, str]:
    """``{version: state}`` of one replica (GetModelStatus)."""
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(target))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    response = stub.GetModelStatus(request, timeout=timeout)
    names = get_model_status_pb2.ModelVersionStatus.State.Name
    return {s.version: names(s.state) for s in response.model_version_status}


class LocalReplicas:
    """Replicas started by ``servectl up``, all reading ``config_path``."""

    def __init__(self, config_path: Path, targets: list[str], timeout: float = 120):
        self.config_path, self.targets, self.timeout = config_path, targets, timeout

    def _reload(self, target: str, config: Config) -> None:
        stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(target))
        request = model_management_pb2.ReloadConfigRequest(config=config)
        try:
            stub.HandleReloadConfigRequest(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise RolloutError(f"{target} refused the config: {e.details()}") from None

    def apply(self, step: Step, model: str) -> None:
        write_config(self.config_path, step.config)
        with ThreadPoolExecutor(len(self.targets)) as pool:
            list(pool.map(lambda t: self._reload(t, step.config), self.targets))
        deadline = time.monotonic() + self.timeout
        while not all(self._settled(t, step, model) for t in self.targets):
            if time.monotonic() > deadline:
                raise RolloutError(f"replicas did not settle within {self.timeout:.0f}s after: "
                                   f"{step.description}")
            time.sleep(0.2)

    @staticmethod
    def _settled(target: str, step: Step, model: str) -> bool:
        states = version_states(target, model)
        return all(states.get(v) == "AVAILABLE" for v in step.wait_available) and all(
            states.get(v) in (None, "END") for v in step.wait_unloaded)


class KubeConfigMap:
    """The ConfigMap TensorFlow Serving's pods read ``models.config`` from (k8s/base).

    Pods re-read it every ``--model_config_file_poll_wait_seconds``; the kubelet refreshes the
    mounted file within about a minute, so each step waits ``settle_seconds`` before the next.
    """

    def __init__(self, namespace: str, name: str, key: str = "models.config",
                 settle_seconds: float = 90, api=None):
        self.namespace, self.name, self.key = namespace, name, key
        self.settle_seconds = settle_seconds
        if api is None:
            from kubernetes import client, config

            config.load_kube_config()
            api = client.CoreV1Api()
        self.api = api

    def read(self) -> Config:
        configmap = self.api.read_namespaced_config_map(self.name, self.namespace)
        return text_format.Parse(configmap.data[self.key], Config())

    def apply(self, step: Step, model: str) -> None:
        body = {"data": {self.key: text_format.MessageToString(step.config)}}
        self.api.patch_namespaced_config_map(self.name, self.namespace, body)
        time.sleep(self.settle_seconds)
