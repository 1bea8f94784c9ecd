"""Render every kustomize target in k8s/ and check what it would apply.

A target is an overlay (``cpu``, ``gpu``) alone, with each component, and with all components.
Each is rendered once with ``kubectl kustomize`` (what ``kubectl apply -k`` applies), every
object is validated against the Kubernetes OpenAPI schemas with ``kubernetes-validate`` (strict:
unknown fields fail), and the serving policies are checked: pinned images, probes, resources,
a non-root read-only container, GPU settings only on the GPU target, ConfigMaps byte-for-byte
equal to ``serving/config/``, and ``tensorflow_model_server`` flags that are real and point at
files the pod actually mounts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers import KUBERNETES_VERSIONS


@pytest.fixture(autouse=True, scope="module")
def kubectl_is_installed():
    """kubectl is part of every build machine; its absence is a failure, not a skip."""
    assert shutil.which("kubectl"), "kubectl is needed: the manifests are rendered with it"

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SERVING_CONFIG = ROOT / "serving" / "config"
OVERLAYS = ("cpu", "gpu")
COMPONENTS = tuple(sorted(p.name for p in (K8S / "components").iterdir() if p.is_dir()))
TARGETS = [
    (overlay, extra)
    for overlay in OVERLAYS
    for extra in [(), *[(c,) for c in COMPONENTS], COMPONENTS]
]

# `tensorflow_model_server` flags (model_servers/main.cc).
SERVER_FLAGS = frozenset({
    "port", "grpc_socket_path", "rest_api_port", "rest_api_num_threads", "rest_api_timeout_in_ms",
    "rest_api_enable_cors_support", "model_name", "model_base_path", "model_config_file",
    "model_config_file_poll_wait_seconds", "file_system_poll_wait_seconds", "enable_batching",
    "batching_parameters_file", "enable_per_model_batching_parameters",
    "allow_version_labels_for_unavailable_models", "monitoring_config_file",
    "platform_config_file", "tensorflow_session_parallelism", "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism", "tensorflow_session_config_file",
    "per_process_gpu_memory_fraction", "saved_model_tags", "grpc_channel_arguments",
    "grpc_max_threads", "enable_model_warmup", "num_request_iterations_for_warmup",
    "num_load_threads", "num_unload_threads", "max_num_load_retries",
    "load_retry_interval_micros", "flush_filesystem_caches", "prefer_tflite_model",
    "num_tflite_pools", "num_tflite_interpreters_per_pool", "enable_signature_method_name_check",
    "remove_unused_fields_from_bundle_metagraph", "use_alts_credentials", "ssl_config_file",
    "enable_profiler", "enable_grpc_healthcheck_service",
    "enable_serialization_as_tensor_content", "thread_pool_factory_config_file",
    "mixed_precision", "xla_cpu_compilation_enabled", "xla_gpu_compilation_enabled",
    "skip_initialize_tpu",
})

# Metric names TensorFlow Serving and TensorFlow export (util/prometheus_exporter.cc).
_COUNTERS = ["request_count", "request_example_count_total", "model_warmup_records_read",
             "request_log_count", "batching_session:wrapped_run_count"]
_HISTOGRAMS = ["request_latency", "runtime_latency", "request_example_counts",
               "model_warmup_latency", "batching_session:queuing_latency",
               "batching_session:input_batch_size", "batching_session:processed_batch_size",
               "batching_session:padding_size"]
REAL_METRICS = frozenset(
    [f":tensorflow:serving:{n}" for n in _COUNTERS]
    + [f":tensorflow:serving:{n}_{s}" for n in _HISTOGRAMS for s in ("bucket", "sum", "count")]
    + [":tensorflow:cc:saved_model:load_attempt_count", ":tensorflow:cc:saved_model:load_latency"]
    + [f":tensorflow:cc:saved_model:load_latency_by_stage_{s}" for s in ("bucket", "sum", "count")]
)
# Read by Prometheus, Grafana and prometheus-adapter, so they live in the monitoring namespace.
MONITORING_CONFIGMAPS = frozenset(
    {"tf-serving-prometheus-rules", "tf-serving-grafana-dashboard", "tf-serving-prometheus-adapter"}
)
# PromQL tokens with a colon: TensorFlow Serving metrics or recording rules.
_COLON_NAME = re.compile(r"(?<![\w:])(:?[A-Za-z_]\w*(?::\w+)+)")


def _target_id(target: tuple[str, tuple[str, ...]]) -> str:
    overlay, extra = target
    return "+".join([overlay, *extra]) if len(extra) < 2 else f"{overlay}+all"


def _kustomize(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every target, rendered once; a target with components gets a throwaway kustomization."""
    out = {}
    for overlay, extra in TARGETS:
        path = K8S / "overlays" / overlay
        if extra:
            path = tmp_path_factory.mktemp(_target_id((overlay, extra)))
            _write_kustomization(path, overlay, extra)
        out[_target_id((overlay, extra))] = _kustomize(path)
    return out


def _write_kustomization(path: Path, overlay: str, components: tuple[str, ...]) -> None:
    def rel(p: Path) -> str:  # kustomize refuses absolute paths
        return os.path.relpath(p, path)

    (path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [rel(K8S / "overlays" / overlay)],
        "components": [rel(K8S / "components" / c) for c in components],
    }))


def _all_targets(test):
    return pytest.mark.parametrize("target", [_target_id(t) for t in TARGETS])(test)


def _find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def _one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = _find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _pod(docs: list[dict]) -> dict:
    return _one(docs, "Deployment", "tf-serving")["spec"]["template"]


def _server(docs: list[dict]) -> dict:
    return _pod(docs)["spec"]["containers"][0]


def _flags(docs: list[dict]) -> dict[str, str]:
    args = _server(docs)["args"]
    assert all(a.startswith("--") and "=" in a for a in args), args
    flags = dict(a[2:].split("=", 1) for a in args)
    assert len(flags) == len(args), f"a flag is given twice: {args}"
    return flags


def _containers(docs: list[dict]) -> list[dict]:
    return [
        c
        for d in docs if "template" in d.get("spec", {})
        for key in ("initContainers", "containers")
        for c in d["spec"]["template"]["spec"].get(key, [])
    ]


def _is_custom_resource(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


# --- Kubernetes schemas ------------------------------------------------------------------------


@_all_targets
def test_objects_match_kubernetes_schemas(rendered, target):
    errors, skipped = [], []
    for doc in rendered[target]:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                # Only custom resources (CRDs) may lack a schema; a built-in kind must have one.
                assert _is_custom_resource(doc["apiVersion"]), f"no schema for {where}"
                skipped.append(where)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                errors.append(f"{where} ({version}) at {path}: {e.message}")
    assert not errors, "\n".join(errors)
    assert len(skipped) < len(rendered[target]) * len(KUBERNETES_VERSIONS)


@_all_targets
def test_namespaced_objects_land_in_their_namespace(rendered, target):
    """Components are applied after the base's namespace transformer, so they must say it."""
    for doc in rendered[target]:
        meta = doc["metadata"]
        if doc["kind"] != "Namespace":
            monitoring = doc["kind"] == "ConfigMap" and meta["name"] in MONITORING_CONFIGMAPS
            expected = "monitoring" if monitoring else "tf-serving"
            assert meta.get("namespace") == expected, f"{doc['kind']}/{meta['name']}"


# --- Pod policies ------------------------------------------------------------------------------


@_all_targets
def test_images_are_pinned(rendered, target):
    for c in _containers(rendered[target]):
        name = c["image"].rsplit("/", 1)[-1]
        tag = name.partition(":")[2]
        assert "@sha256:" in name or (tag and tag != "latest"), f"unpinned image {c['image']}"


@_all_targets
def test_containers_have_probes_and_resources(rendered, target):
    for c in _containers(rendered[target]):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in c, f"{c['name']} has no {probe}"
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{c['name']} {kind}: {res}"


@_all_targets
def test_containers_run_as_non_root_with_read_only_root(rendered, target):
    pod_spec = _pod(rendered[target])["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    for c in _containers(rendered[target]):
        ctx = {**pod_spec.get("securityContext", {}), **c.get("securityContext", {})}
        assert ctx.get("runAsNonRoot") is True, c["name"]
        assert ctx.get("runAsUser", 0) != 0, c["name"]
        assert ctx.get("readOnlyRootFilesystem") is True, c["name"]
        assert ctx.get("allowPrivilegeEscalation") is False, c["name"]
        assert ctx.get("capabilities", {}).get("drop") == ["ALL"], c["name"]
        assert ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", c["name"]


@_all_targets
def test_gpu_settings_only_on_the_gpu_target(rendered, target):
    docs = rendered[target]
    spec, server, flags = _pod(docs)["spec"], _server(docs), _flags(docs)
    if target.startswith("gpu"):
        assert int(server["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
            spec["tolerations"]
        assert any(k.startswith("nvidia.com/gpu") for k in spec["nodeSelector"])
        assert server["image"].endswith("-gpu")
        assert 0 < float(flags["per_process_gpu_memory_fraction"]) <= 1
    else:
        assert "nvidia" not in yaml.safe_dump_all(docs)
        assert not server["image"].endswith("-gpu")
        assert "per_process_gpu_memory_fraction" not in flags


# --- The pod and serving/config ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmaps_equal_serving_config_files(rendered, overlay):
    data = {
        key: value
        for cm in _find(rendered[overlay], "ConfigMap")
        for key, value in cm.get("data", {}).items()
    }
    files = sorted(SERVING_CONFIG.glob("*.config"))
    assert [f.name for f in files] == ["batching.config", "models.config", "monitoring.config"]
    for f in files:
        assert data[f.name].encode() == f.read_bytes(), f"{f.name} differs from serving/config"


@_all_targets
def test_config_flags_point_at_files_in_mounted_configmaps(rendered, target):
    docs = rendered[target]
    volumes = {v["name"]: v for v in _pod(docs)["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in _server(docs)["volumeMounts"]}
    file_flags = {k: v for k, v in _flags(docs).items() if k.endswith("_file")}
    assert set(file_flags) >= {"model_config_file", "batching_parameters_file",
                               "monitoring_config_file"}
    for flag, path in file_flags.items():
        directory, name = path.rsplit("/", 1)
        mount = mounts.get(directory)
        assert mount, f"--{flag}={path}: nothing is mounted at {directory}"
        # A subPath mount never sees ConfigMap updates, which the hot reload depends on.
        assert "subPath" not in mount, f"--{flag}: {directory} is a subPath mount"
        config_map = volumes[mount["name"]]["configMap"]["name"]
        assert name in _one(docs, "ConfigMap", config_map)["data"], f"--{flag}={path}"


@_all_targets
def test_pod_references_exist(rendered, target):
    docs = rendered[target]
    spec = _pod(docs)["spec"]
    _one(docs, "ServiceAccount", spec["serviceAccountName"])
    for volume in spec["volumes"]:
        if "configMap" in volume:
            _one(docs, "ConfigMap", volume["configMap"]["name"])
        if "persistentVolumeClaim" in volume:
            _one(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    mounted = {m["name"] for m in _server(docs)["volumeMounts"]}
    assert mounted == {v["name"] for v in spec["volumes"]}


@_all_targets
def test_flags_are_real_and_consistent(rendered, target):
    flags = _flags(rendered[target])
    assert set(flags) <= SERVER_FLAGS, f"unknown flags: {set(flags) - SERVER_FLAGS}"
    assert flags["port"] != flags["rest_api_port"]
    assert flags["enable_batching"] == "true"  # a batching file without it aborts the server
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0
    # Labels in models.config must not keep a new replica from starting: TF Serving refuses a
    # label on a version that is not yet available unless this flag is set.
    assert flags["allow_version_labels_for_unavailable_models"] == "true"
    # TensorFlow sizes its thread pools from the node; match the container's CPU limit.
    limit = str(_server(rendered[target])["resources"]["limits"]["cpu"])
    assert flags["tensorflow_intra_op_parallelism"] == flags["tensorflow_inter_op_parallelism"] \
        == limit
    assert "tensorflow_session_parallelism" not in flags


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_models_config_hot_reloads_and_the_rest_rolls(rendered, overlay):
    """models.config keeps its name (pods re-read it); the others are hashed (pods roll)."""
    names = {cm["metadata"]["name"] for cm in _find(rendered[overlay], "ConfigMap")}
    assert "serving-config-models" in names
    for stem in ("serving-config-batching", "serving-config-monitoring"):
        assert any(re.fullmatch(rf"{stem}-[a-z0-9]{{10}}", n) for n in names), (stem, names)


@_all_targets
def test_probes_and_scrape_match_the_serving_config(rendered, target):
    docs = rendered[target]
    server, flags, pod = _server(docs), _flags(docs), _pod(docs)
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"grpc": int(flags["port"]), "http": int(flags["rest_api_port"])}
    models = re.findall(r'\bname:\s*"([^"]+)"', (SERVING_CONFIG / "models.config").read_text())
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = server[probe]["httpGet"]
        assert get["port"] == "http"
        model = re.fullmatch(r"/v1/models/([^/:]+)", get["path"])
        assert model and model[1] in models, f"{probe} {get['path']} is not in models.config"
    monitoring = (SERVING_CONFIG / "monitoring.config").read_text()
    assert re.search(r"enable:\s*true", monitoring)
    path = re.search(r'path:\s*"([^"]*)"', monitoring)
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == flags["rest_api_port"]
    assert annotations["prometheus.io/path"] == ((path and path[1]) or
                                                  "/monitoring/prometheus/metrics")


@_all_targets
def test_termination_drains_before_the_kill(rendered, target):
    """TF Serving ignores SIGTERM: the preStop sleep must outlast every request and connection."""
    docs = rendered[target]
    server, flags = _server(docs), _flags(docs)
    deployment = _one(docs, "Deployment", "tf-serving")
    grpc_args = dict(a.split("=", 1) for a in flags["grpc_channel_arguments"].split(","))
    sleep = int(server["lifecycle"]["preStop"]["exec"]["command"][-1])
    longest = max(int(flags["rest_api_timeout_in_ms"]),
                  int(grpc_args["grpc.max_connection_age_ms"])) / 1000
    assert longest < sleep < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    startup = server["startupProbe"]
    assert deployment["spec"]["progressDeadlineSeconds"] > \
        startup["periodSeconds"] * startup["failureThreshold"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


# --- Traffic, availability, scaling ------------------------------------------------------------


@_all_targets
def test_services_and_policies_select_the_pods(rendered, target):
    docs = rendered[target]
    labels = _pod(docs)["metadata"]["labels"]
    port_names = {p["name"] for p in _server(docs)["ports"]}
    services = {s["metadata"]["name"]: s for s in _find(docs, "Service")}
    for svc in services.values():
        assert svc["spec"]["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names
    rest, grpc = services["tf-serving"]["spec"], services["tf-serving-grpc"]["spec"]
    assert rest["type"] == "LoadBalancer" and rest["ports"][0]["port"] == 8501
    assert grpc["clusterIP"] == "None" and grpc["ports"][0]["port"] == 8500
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for doc in _find(docs, kind):
            key = "selector" if kind == "PodDisruptionBudget" else "podSelector"
            assert doc["spec"][key]["matchLabels"].items() <= labels.items(), kind
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "tf-serving"}
    assert hpa["minReplicas"] > _one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"]
    for ingress in _find(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports


@_all_targets
def test_models_volume_is_the_pvc_or_the_bucket(rendered, target):
    docs = rendered[target]
    volume = next(v for v in _pod(docs)["spec"]["volumes"] if v["name"] == "models")
    if "object-store" in target or target.endswith("+all"):
        assert "persistentVolumeClaim" not in volume and volume["csi"]["readOnly"] is True
        assert not _find(docs, "PersistentVolumeClaim")
        assert "file_system_poll_wait_seconds" in _flags(docs)
    else:
        assert volume["persistentVolumeClaim"]["readOnly"] is True
    mount = next(m for m in _server(docs)["volumeMounts"] if m["name"] == "models")
    assert mount["mountPath"] == "/models" and mount["readOnly"] is True


# --- Monitoring component ----------------------------------------------------------------------


def test_monitoring_queries_use_real_metrics_and_defined_rules(rendered):
    docs = rendered["gpu+monitoring"]
    assert {cm["metadata"]["name"] for cm in _find(docs, "ConfigMap")} >= MONITORING_CONFIGMAPS
    data = {k: v for cm in _find(docs, "ConfigMap") for k, v in cm.get("data", {}).items()}
    rules = [r for g in yaml.safe_load(data["tf-serving.rules.yml"])["groups"] for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    dashboard = json.loads(data["tf-serving-dashboard.json"])
    exprs = [r["expr"] for r in rules] + [
        t["expr"] for p in dashboard["panels"] for t in p["targets"]
    ]
    adapter = yaml.safe_load(data["config.yaml"])["rules"]
    exprs += [a["seriesQuery"] for a in adapter]
    used = set()
    for expr in exprs:
        used |= set(_COLON_NAME.findall(re.sub(r'"[^"]*"', '""', expr)))
    assert used <= REAL_METRICS | recorded, f"unknown metrics: {used - REAL_METRICS - recorded}"
    assert {":tensorflow:serving:request_count", ":tensorflow:serving:request_latency_bucket",
            ":tensorflow:serving:batching_session:queuing_latency_bucket"} <= used
    assert any("NOT_FOUND" in r["expr"] for r in rules if "alert" in r)
    # The HPA's Pods metric is one the adapter rule serves.
    pods_metrics = [m["pods"]["metric"]["name"] for m in
                    _one(docs, "HorizontalPodAutoscaler")["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods_metrics and set(pods_metrics) <= {a["name"]["as"] for a in adapter}


# --- Static policy scan (checkov) --------------------------------------------------------------

# checkov pins its own dependency tree, so `make test` installs it into a venv of its own.
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))
# A row of the accepted-findings table in k8s/README.md: | `CKV_K8S_43` | ... |
_ACCEPTED_ROW = re.compile(r"^\| `(CKV2?_K8S_\d+)` \|", re.MULTILINE)


@pytest.fixture(scope="module")
def checkov_report(rendered, tmp_path_factory) -> dict[str, Any]:
    """One checkov run over every rendered target, a file each: its JSON report."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make test` installs checkov in its own venv"
    scanned = tmp_path_factory.mktemp("checkov")
    for target, docs in rendered.items():
        (scanned / f"{target}.yaml").write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(scanned), "--framework", "kubernetes",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, check=False, cwd=scanned,
    )
    # Exit status 1 means "failed checks", which the tests below report one by one.
    assert result.returncode in (0, 1), f"checkov failed:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report["check_type"] == "kubernetes", report
    return report


def test_checkov_scans_every_target(checkov_report, rendered):
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0, summary
    passed = checkov_report["results"]["passed_checks"]
    assert {Path(c["file_path"]).stem for c in passed} == set(rendered)
    assert {c["check_id"] for c in passed} >= {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28",
                                                 "CKV_K8S_37", "CKV_K8S_40"}


def test_checkov_finds_nothing(checkov_report):
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} in {Path(c['file_path']).name}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert not failed, "fix these or accept them in k8s/README.md:\n" + "\n".join(failed)


def test_checkov_suppressions_are_the_ones_justified_in_the_readme(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    assert all(c["check_result"].get("suppress_comment") for c in skipped)
    accepted = set(_ACCEPTED_ROW.findall((K8S / "README.md").read_text()))
    assert accepted, "k8s/README.md has no accepted-findings table"
    assert {c["check_id"] for c in skipped} == accepted
