"""The embedded engine as a KServe runtime (``k8s/kserve``) and the image it runs (``Dockerfile``).

No KServe API server exists here (nor a Docker engine), so the custom resources are checked the
way the rest of ``k8s/`` is where a schema exists: the ServingRuntime's containers and volumes
against Kubernetes' own Pod schema (strict), the ConfigMap as any object; the custom resources'
own fields against KServe's API types (``pkg/apis/serving/v1alpha1/servingruntime_types.go``,
``v1beta1/inference_service.go``); and the container's command line is run for real: the same
flags, on a test model, answer the probes the runtime declares.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.helpers import KUBERNETES_VERSIONS, metrics_page, send, serving
from tf_serving_platform.serving.engine.options import ServerOptions

ROOT = Path(__file__).resolve().parents[2]
# The fields of KServe's ServingRuntimeSpec (with its inlined ServingRuntimePodSpec) and of the
# InferenceService predictor's model spec that these manifests may use.
RUNTIME_FIELDS = {"annotations", "supportedModelFormats", "protocolVersions", "multiModel",
                  "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint", "replicas",
                  "storageHelper", "builtInAdapter", "disabled", "containers", "volumes",
                  "nodeSelector", "affinity", "tolerations", "labels", "imagePullSecrets"}
MODEL_FORMAT_FIELDS = {"name", "version", "autoSelect", "priority"}
PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
PREDICTOR_MODEL_FIELDS = {"modelFormat", "protocolVersion", "runtime", "storageUri", "args",
                          "env", "resources"}


@pytest.fixture(scope="module")
def objects() -> dict[str, dict]:
    text = subprocess.run(["kubectl", "kustomize", str(ROOT / "k8s" / "kserve")], check=True,
                          capture_output=True, text=True).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text)}


def test_the_runtime_pod_matches_kubernetes_schemas(objects):
    runtime = objects["ServingRuntime"]["spec"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runtime"},
           "spec": {"containers": runtime["containers"], "volumes": runtime["volumes"]}}
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)
        kubernetes_validate.validate(objects["ConfigMap"], version, strict=True)


def test_custom_resources_use_kserves_fields(objects):
    runtime, service = objects["ServingRuntime"], objects["InferenceService"]
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert set(runtime["spec"]) <= RUNTIME_FIELDS, set(runtime["spec"]) - RUNTIME_FIELDS
    for model_format in runtime["spec"]["supportedModelFormats"]:
        assert set(model_format) <= MODEL_FORMAT_FIELDS
    assert set(runtime["spec"]["protocolVersions"]) <= PROTOCOLS
    model = service["spec"]["predictor"]["model"]
    assert set(model) <= PREDICTOR_MODEL_FIELDS
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in
                                            runtime["spec"]["supportedModelFormats"]}
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert service["metadata"]["namespace"] == runtime["metadata"]["namespace"]


def test_the_container_is_pinned_non_root_and_read_only(objects):
    (container,) = objects["ServingRuntime"]["spec"]["containers"]
    tag = container["image"].rpartition(":")[2]
    assert tag and tag != "latest" and "/" not in tag
    context = container["securityContext"]
    assert context["runAsNonRoot"] and context["readOnlyRootFilesystem"]
    assert not context["allowPrivilegeEscalation"] and context["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # the only place the image writes (HOME, TMPDIR)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:[\d.]+-slim-\w+$", dockerfile, re.M)
    assert re.search(rf"^USER {context['runAsUser']}:{context['runAsGroup']}$", dockerfile,
                     re.M)
    assert 'ENTRYPOINT ["servectl", "serve"]' in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"^TRITONCLIENT\s*:=\s*(\S+)$", makefile, re.M).group(1)
    assert f"--no-deps {pinned}" in dockerfile


def test_the_monitoring_config_matches_the_scrape_annotation(objects):
    runtime = objects["ServingRuntime"]["spec"]
    config = objects["ConfigMap"]["data"]["monitoring.config"]
    path = re.search(r'path: "([^"]+)"', config).group(1)
    assert runtime["annotations"]["prometheus.kserve.io/path"] == path
    volume = next(v for v in runtime["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]


def test_the_runtimes_command_line_serves_and_answers_its_probes(objects, test_models,
                                                                  tmp_path):
    (container,) = objects["ServingRuntime"]["spec"]["containers"]
    known = {f"--{name}" for name in ServerOptions.__dataclass_fields__}
    flags = []
    for arg in container["args"]:
        name, _, value = arg.partition("=")
        assert name in known, f"{name} is not a servectl serve flag"
        if name in ("--port", "--rest_api_port"):
            continue  # EngineProcess picks free ports
        value = value.replace("{{.Name}}", "half_plus_two").replace(
            "/mnt/models", str(test_models["half_plus_two"]))
        if name == "--monitoring_config_file":
            (tmp_path / "monitoring.config").write_text(
                objects["ConfigMap"]["data"]["monitoring.config"])
            value = str(tmp_path / "monitoring.config")
        flags.append(f"{name}={value}" if value else name)
    with serving(*flags) as engine:
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert send(engine, f"GET {path}", timeout=10)[0] == 200, probe
        scrape = objects["ServingRuntime"]["spec"]["annotations"]["prometheus.kserve.io/path"]
        assert ":tensorflow:cc:saved_model:load_attempt_count" in metrics_page(engine.rest_url,
                                                                               scrape)
