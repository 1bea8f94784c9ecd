"""docker-compose.yml, checked by parsing it (there is no Docker engine here).

What a ``docker compose up`` would trip over, found without Docker: host paths that are bind-mounted
but missing, ports that do not line up between the serving flags, nginx, Prometheus and Locust,
unpinned images, a serving image or flags that drifted from k8s/, config paths that do not exist
in the mounted folder, a compose/nginx.conf that is not the template's render (or that nginx
rejects), a Prometheus config or rule file that promtool rejects, a Locust image that lacks what
the locustfile imports, and a GPU profile without its device reservation.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from tf_serving_platform.servectl.topology.nginx import render

ROOT = Path(__file__).resolve().parents[2]
IMPORT_PACKAGE = "tf_serving_platform"
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVING_CONFIG = ROOT / "serving" / "config"
K8S = ROOT / "k8s"
NGINX_CONF = ROOT / "compose" / "nginx.conf"
PROMETHEUS_YML = ROOT / "compose" / "prometheus.yml"
RULES = K8S / "components" / "monitoring" / "tf-serving.rules.yml"
SERVING_SERVICES = ("serving", "serving-gpu")
# Flags of the k8s/base Deployment that compose leaves out on purpose: they match the pod's
# 4-CPU limit, and compose sets no CPU limit (see the comment in docker-compose.yml).
K8S_ONLY_FLAGS = frozenset({"tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism"})
MAKE_TEST_INSTALLS = "`make test` installs it (Debian package {}; apt-get install {})"


# --- Parsing helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _service(compose: dict, name: str) -> dict:
    assert name in compose["services"], f"docker-compose.yml has no service {name!r}"
    return compose["services"][name]


def _binds(service: dict) -> list[tuple[str, str]]:
    """``(host source, container target)`` of each bind mount (named volumes left out)."""
    binds = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                binds.append((volume["source"], volume["target"]))
            continue
        # SOURCE:TARGET[:MODE], where SOURCE may be ${VAR:-default} (a colon of its own).
        source, target = re.split(r":(?![^{]*\})", volume)[:2]
        if source.startswith((".", "/", "~", "$")):
            binds.append((source, target))
    return binds


def _is_run_time(source: str) -> bool:
    """A host path chosen when compose runs (``${MODELS_DIR:-...}``), not one in the repo."""
    return "${" in source or source.startswith("$")


def _host_path(service: dict, container_path: str) -> Path:
    """The repository path behind ``container_path`` through the service's bind mounts."""
    path = PurePosixPath(container_path)
    for source, target in sorted(_binds(service), key=lambda b: -len(b[1])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            assert not _is_run_time(source), f"{container_path} is on a run-time mount"
            return ROOT / source / path.relative_to(target)
    raise AssertionError(f"nothing is bind-mounted at {container_path}")


def _flags(args: list[str]) -> dict[str, str]:
    """``--name=value`` arguments as a dict (names without dashes)."""
    flags = {}
    for arg in args:
        assert arg.startswith("--") and "=" in arg, f"not a --flag=value argument: {arg}"
        name, _, value = arg[2:].partition("=")
        assert name not in flags, f"--{name} given twice"
        flags[name] = value
    return flags


def _serving_flags(compose: dict, name: str = "serving") -> dict[str, str]:
    return _flags(_service(compose, name)["command"])


def _published(service: dict) -> list[tuple[int, int]]:
    """``(host port, container port)`` of each published port."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split(":")
        assert len(parts) >= 2, f"{port}: publish on a fixed host port, not a random one"
        ports.append((int(parts[-2]), int(parts[-1].split("/")[0])))
    return ports


def _image_pinned(image: str) -> bool:
    name = image.rsplit("/", 1)[-1]
    tag = name.partition(":")[2]
    return "@sha256:" in name or (bool(tag) and tag != "latest" and "$" not in tag)


def _dockerfile(service: dict) -> Path:
    build = service["build"]
    context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return context / dockerfile


def _base_images(dockerfile: Path) -> list[str]:
    return re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", dockerfile.read_text(), re.M)


def _k8s_tag(overlay: str) -> str:
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    tags = [i["newTag"] for i in kustomization["images"] if i["name"] == "tensorflow/serving"]
    assert len(tags) == 1, f"k8s/overlays/{overlay} pins tensorflow/serving {len(tags)} times"
    return tags[0]


def _k8s_container() -> dict:
    deployment = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "tensorflow-serving")


def _k8s_gpu_flags() -> dict[str, str]:
    """Flags the GPU overlay appends to the base Deployment's args (its JSON patches)."""
    kustomization = yaml.safe_load((K8S / "overlays" / "gpu" / "kustomization.yaml").read_text())
    args = []
    for patch in kustomization.get("patches", []):
        if "patch" not in patch:
            continue
        for op in yaml.safe_load(patch["patch"]):
            if op.get("path", "").endswith("/args/-"):
                args.append(op["value"])
    return _flags(args)


def _model_names() -> list[str]:
    return re.findall(r'name:\s*"([^"]+)"', (SERVING_CONFIG / "models.config").read_text())


def _nginx() -> dict:
    """Upstream servers and listen ports of compose/nginx.conf, by protocol."""
    text = NGINX_CONF.read_text()
    upstreams = dict(re.findall(r"upstream\s+(\w+)\s*\{(.*?)\}", text, re.S))
    servers = {name: re.findall(r"^\s*server\s+(\S+?):(\d+)\b", body, re.M)
               for name, body in upstreams.items()}
    listens = re.findall(r"^\s*listen\s+(\d+)(\s+http2)?\s*;", text, re.M)
    rest = [int(port) for port, http2 in listens if not http2]
    grpc = [int(port) for port, http2 in listens if http2]
    assert len(rest) == 1 and len(grpc) == 1, f"expected one REST and one gRPC listen: {listens}"
    assert set(servers) == {"rest_replicas", "grpc_replicas"}, set(servers)
    return {"rest_servers": servers["rest_replicas"], "grpc_servers": servers["grpc_replicas"],
            "rest_listen": rest[0], "grpc_listen": grpc[0]}


def _healthcheck(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if Path(p).exists()), None)
    if path is None:
        pytest.fail(f"{tool} is not installed: " + MAKE_TEST_INSTALLS.format(package, package))
    return path


# --- The file and its images -------------------------------------------------------------------


def test_compose_spec_without_version_key(compose):
    assert "version" not in compose, "the Compose spec has no `version:` key"
    assert set(compose["services"]) >= {"serving", "serving-gpu", "nginx", "prometheus", "locust"}


def test_every_image_is_pinned(compose):
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        if "image" in service and "build" not in service:
            assert _image_pinned(service["image"]), f"{name}: unpinned image {service['image']}"
        if "build" in service:
            dockerfile = _dockerfile(service)
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
            bases = _base_images(dockerfile)
            assert bases, f"{dockerfile} has no FROM"
            for base in bases:
                assert _image_pinned(base), f"{dockerfile}: unpinned base image {base}"


def test_serving_images_equal_the_k8s_overlays(compose):
    cpu = _service(compose, "serving")["image"]
    gpu = _service(compose, "serving-gpu")["image"]
    assert cpu == f"tensorflow/serving:{_k8s_tag('cpu')}", "serving vs k8s/overlays/cpu"
    assert gpu == f"tensorflow/serving:{_k8s_tag('gpu')}", "serving-gpu vs k8s/overlays/gpu"
    assert gpu == f"{cpu}-gpu", "the CPU and GPU replicas must run the same release"


# --- Mounts and config paths -------------------------------------------------------------------


def test_bind_mounted_host_paths_exist(compose):
    for name, service in compose["services"].items():
        for source, target in _binds(service):
            if _is_run_time(source):
                # Only the models may come from outside the repo (exported at run time).
                assert target == "/models", f"{name}: run-time host path for {target}"
                continue
            assert (ROOT / source).exists(), f"{name}: {source} (mounted at {target}) is missing"
    for path in ("serving/config", "compose/nginx.conf", "compose/prometheus.yml", "loadtest",
                 "loadtest/locustfile.py"):
        assert (ROOT / path).exists(), f"{path} is missing"


def test_serving_config_flags_point_at_files_in_the_mounted_folder(compose):
    for name in SERVING_SERVICES:
        service = _service(compose, name)
        assert ("./serving/config", "/config") in _binds(service), f"{name}: serving/config"
        file_flags = {k: v for k, v in _serving_flags(compose, name).items()
                      if k.endswith("_file")}
        assert set(file_flags) == {"model_config_file", "batching_parameters_file",
                                   "monitoring_config_file"}, f"{name}: {sorted(file_flags)}"
        for flag, path in file_flags.items():
            host = _host_path(service, path)
            assert host.is_file(), f"{name}: --{flag}={path} is {host}, which does not exist"
            assert host.parent == SERVING_CONFIG, f"{name}: --{flag} is not from serving/config"


def test_models_live_on_the_models_mount(compose):
    models_config = (SERVING_CONFIG / "models.config").read_text()
    base_paths = re.findall(r'base_path:\s*"([^"]+)"', models_config)
    assert base_paths
    for name in SERVING_SERVICES:
        targets = [t for s, t in _binds(_service(compose, name)) if _is_run_time(s)]
        assert targets == ["/models"], f"{name}: the models mount is {targets}"
        for base_path in base_paths:
            assert base_path.startswith("/models/"), f"models.config base_path {base_path}"


# --- Consistency with k8s/ ---------------------------------------------------------------------


def test_serving_flags_match_the_k8s_deployment(compose):
    k8s = _flags(_k8s_container()["args"])
    ours = _serving_flags(compose)
    assert set(ours) == set(k8s) - K8S_ONLY_FLAGS, (
        f"flags only in compose: {sorted(set(ours) - set(k8s))}; "
        f"only in k8s: {sorted(set(k8s) - K8S_ONLY_FLAGS - set(ours))}")
    for flag, value in ours.items():
        if flag.endswith("_file"):
            # One mounted directory here, one ConfigMap directory per file in k8s: same file.
            assert PurePosixPath(value).name == PurePosixPath(k8s[flag]).name, flag
        else:
            assert value == k8s[flag], f"--{flag}: compose {value}, k8s {k8s[flag]}"


def test_gpu_flags_are_the_cpu_flags_plus_the_gpu_overlay(compose):
    gpu, cpu = _serving_flags(compose, "serving-gpu"), _serving_flags(compose, "serving")
    assert gpu == {**cpu, **_k8s_gpu_flags()}
    assert "per_process_gpu_memory_fraction" in gpu


def test_serving_replicas_share_one_definition(compose):
    cpu, gpu = _service(compose, "serving"), _service(compose, "serving-gpu")
    for key in ("entrypoint", "volumes", "healthcheck", "user", "read_only", "expose"):
        assert cpu.get(key) == gpu.get(key), f"serving and serving-gpu differ in {key}"
    assert cpu["entrypoint"] == [_k8s_container()["command"][0]]
    assert cpu["deploy"]["replicas"] == 2
    assert "container_name" not in cpu, "a fixed container_name prevents replicas"


def test_healthchecks_ask_for_a_served_model(compose):
    flags = _serving_flags(compose)
    readiness = _k8s_container()["readinessProbe"]["httpGet"]["path"]
    for name in SERVING_SERVICES:
        check = _healthcheck(_service(compose, name))
        assert "curl" not in check and "wget" not in check, "the TF Serving image has neither"
        assert f"/dev/tcp/127.0.0.1/{flags['rest_api_port']}" in check, check
        assert f"GET {readiness} " in check, f"{name}: not the k8s readiness path {readiness}"
    model = readiness.rsplit("/", 1)[-1]
    assert model in _model_names(), f"health checks ask for {model}, not in models.config"
    assert f":{_nginx()['rest_listen']}{readiness}" in _healthcheck(_service(compose, "nginx"))


# --- Ports -------------------------------------------------------------------------------------


def test_nginx_upstreams_are_the_serving_ports(compose):
    flags, nginx = _serving_flags(compose), _nginx()
    aliases = _service(compose, "serving-gpu")["networks"]["default"]["aliases"]
    assert "serving" in aliases, "GPU replicas must join the pool nginx and Prometheus resolve"
    assert nginx["rest_servers"] == [("serving", flags["rest_api_port"])]
    assert nginx["grpc_servers"] == [("serving", flags["port"])]
    exposed = {int(p) for p in _service(compose, "serving")["expose"]}
    assert exposed == {int(flags["rest_api_port"]), int(flags["port"])}


def test_nginx_publishes_its_listen_ports(compose):
    nginx = _nginx()
    published = dict((container, host) for host, container in
                     _published(_service(compose, "nginx")))
    assert set(published) == {nginx["rest_listen"], nginx["grpc_listen"]}
    assert published[nginx["rest_listen"]] == 8080
    assert published[nginx["grpc_listen"]] == 8081


def test_host_ports_are_unique(compose):
    hosts = [host for service in compose["services"].values() for host, _ in _published(service)]
    assert len(hosts) == len(set(hosts)), f"a host port is published twice: {sorted(hosts)}"
    for name in SERVING_SERVICES:
        assert not _service(compose, name).get("ports"), f"{name}: replicas cannot share ports"


def test_prometheus_scrapes_every_replica_on_the_rest_port(compose):
    flags = _serving_flags(compose)
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "tf-serving"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["serving"] and sd["type"] == "A"
    assert str(sd["port"]) == flags["rest_api_port"]
    monitoring = (SERVING_CONFIG / "monitoring.config").read_text()
    assert job["metrics_path"] == re.search(r'path:\s*"([^"]+)"', monitoring)[1]
    annotations = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())[
        "spec"]["template"]["metadata"]["annotations"]
    assert job["metrics_path"] == annotations["prometheus.io/path"]


def test_locust_targets_nginx_rest_port(compose):
    locust = _service(compose, "locust")
    command = locust["command"]
    host = urlsplit(command[command.index("--host") + 1])
    assert host.scheme == "http" and host.hostname == "nginx", host.geturl()
    assert host.port == _nginx()["rest_listen"], host.geturl()
    assert command[command.index("--model") + 1] in _model_names()
    assert locust["profiles"] == ["loadtest"]
    assert locust["depends_on"]["nginx"]["condition"] == "service_healthy"


# --- Rendered and referenced files -------------------------------------------------------------


def test_nginx_conf_is_the_templates_render(compose):
    flags, nginx = _serving_flags(compose), _nginx()
    fresh = render([f"serving:{flags['rest_api_port']}"], [f"serving:{flags['port']}"],
                   str(nginx["rest_listen"]), str(nginx["grpc_listen"]), "/tmp")
    assert NGINX_CONF.read_text() == fresh, (
        "compose/nginx.conf drifted from servectl/topology/nginx.conf.template: re-render it "
        "(the command is in docker-compose.yml)")
    assert ("./compose/nginx.conf", "/etc/nginx/nginx.conf") in _binds(
        _service(compose, "nginx"))


def test_nginx_accepts_the_config(tmp_path):
    nginx = _require("nginx", "nginx")
    text = NGINX_CONF.read_text().replace(" serving:", " 127.0.0.1:")
    assert "serving:" not in text
    text = text.replace(" /tmp/", f" {tmp_path}/")  # pid, error log and temp paths
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                             "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_prometheus_config_and_rules_are_valid(compose, tmp_path):
    promtool = _require("promtool", "prometheus")
    prometheus = _service(compose, "prometheus")
    binds = dict((target, source) for source, target in _binds(prometheus))
    # The rule file of the k8s monitoring component itself, mounted, never a copy.
    rules = [t for t, s in binds.items() if (ROOT / s).resolve() == RULES.resolve()]
    assert rules, "k8s/components/monitoring/tf-serving.rules.yml is not mounted"
    assert not list((ROOT / "compose").glob("*rules*")), "a copy of the rule file in compose/"
    # The container's /etc/prometheus, rebuilt from the mounts: promtool resolves rule_files
    # relative to the config file, as Prometheus does.
    config_path = PurePosixPath(next(a[len("--config.file="):] for a in prometheus["command"]
                                     if a.startswith("--config.file=")))
    for target, source in binds.items():
        if PurePosixPath(target).is_relative_to(config_path.parent):
            copy = tmp_path / target.lstrip("/")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / source, copy)
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    resolved = [str(config_path.parent / f) for f in config["rule_files"]]
    assert resolved == rules, f"rule_files {resolved} are not the mounted {rules}"
    result = subprocess.run([promtool, "check", "config",
                             str(tmp_path / str(config_path).lstrip("/"))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


# --- Locust ------------------------------------------------------------------------------------


def _module_imports(path: Path) -> set[str]:
    """Modules imported at module level (deferred imports inside functions left out)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _project_module(name: str) -> Path | None:
    """The checkout's file of ``tf_serving_platform.<folder>...`` (the layout's folders under
    the one import package), or None for a module of another distribution."""
    top, _, rest = name.partition(".")
    if top != IMPORT_PACKAGE or not rest:
        return None
    path = ROOT.joinpath(*rest.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").is_file() else None


def _locustfile_imports(locustfile: Path) -> tuple[set[str], set[str]]:
    """The project folders (``loadtest``, ``serving``) and the top-level third-party modules
    the locustfile needs, following project modules it imports at module level."""
    project, third_party, seen, todo = set(), set(), set(), [locustfile]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _module_imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names:
                continue
            module = _project_module(name)
            if module is not None:
                project.add(name.split(".")[1])
                todo.append(module)
            elif top != IMPORT_PACKAGE:
                third_party.add(top)
    return project, third_party


def _normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_locust_image_runs_the_locustfile(compose):
    locust = _service(compose, "locust")
    command = locust["command"]
    locustfile = _host_path(locust, command[command.index("-f") + 1])
    assert locustfile == ROOT / "loadtest" / "locustfile.py"
    assert locustfile.is_file(), "loadtest/locustfile.py is missing"
    # The locustfile's project packages are mounted on the container's PYTHONPATH.
    project, third_party = _locustfile_imports(locustfile)
    pythonpath = locust["environment"]["PYTHONPATH"].split(":")
    for folder in project:
        assert any(_host_path(locust, f"{d}/{IMPORT_PACKAGE}/{folder}") == ROOT / folder
                   for d in pythonpath), \
            f"the locustfile imports {IMPORT_PACKAGE}.{folder}, which is not mounted on PYTHONPATH"
    # Its third-party imports are Locust's own dependencies or installed by the Dockerfile.
    dockerfile = _dockerfile(locust)
    (base,) = _base_images(dockerfile)
    assert base.startswith("locustio/locust:")
    installed = {_normalize(d) for d in re.findall(r"([A-Za-z0-9_.-]+)==", dockerfile.read_text())}
    try:
        assert importlib.metadata.version("locust") == base.partition(":")[2], (
            f"{dockerfile} builds on {base}, .venv has another Locust")
        requirements = importlib.metadata.requires("locust") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("locust is not installed in .venv: `make test` installs it")
    available = installed | {"locust"} | {
        _normalize(re.match(r"[A-Za-z0-9_.-]+", r)[0]) for r in requirements if "extra" not in r}
    distributions = importlib.metadata.packages_distributions()
    for module in third_party:
        needed = {_normalize(d) for d in distributions.get(module, [module])}
        assert needed & available, (
            f"the locustfile imports {module} ({sorted(needed)}): not in {base}; "
            f"add it to {dockerfile.relative_to(ROOT)}")


# --- GPU profile -------------------------------------------------------------------------------


def test_gpu_profile_reserves_nvidia_devices(compose):
    gpu, cpu = _service(compose, "serving-gpu"), _service(compose, "serving")
    assert gpu["profiles"] == ["gpu"]
    assert gpu["image"].endswith("-gpu")
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices
    assert "profiles" not in cpu, "the CPU replicas run by default"
    assert "nvidia" not in yaml.safe_dump(cpu)
    assert not cpu["image"].endswith("-gpu")
