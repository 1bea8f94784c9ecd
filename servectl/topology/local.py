"""``servectl up`` / ``servectl down``: the production topology on one machine, without Docker.

N engine replicas (``servectl serve``) read one copy of ``models.config`` (base paths under
``/models`` mapped to a local models folder) and the batching/monitoring files of
``serving/config``; nginx balances REST and gRPC across them; Prometheus scrapes every replica.
Everything ``up`` starts is recorded in ``<state>/topology.json`` with its pid, and ``down`` stops
exactly those processes (checked against their command line, so a recycled pid is left alone).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from google.protobuf import text_format

from tf_serving_platform.servectl import command
from tf_serving_platform.servectl.engine_process import LoopbackPorts, free_port
from tf_serving_platform.servectl.topology import nginx

CONFIG_DIR = Path("serving/config")
CONTAINER_MODELS = "/models"
TOPOLOGY_FILE = "topology.json"
MODELS_CONFIG = "models.config"


class TopologyError(Exception):
    """Something ``up``/``down`` cannot do, in one line."""


@dataclass
class Process:
    name: str
    pid: int
    marker: str
    """A string its command line contains (the state folder): tells our process from a
    stranger that reused the pid."""
    log: str


@dataclass
class Replica(LoopbackPorts):
    grpc_port: int
    rest_port: int


@dataclass
class Topology:
    state_dir: str
    models_config: str
    replicas: list[Replica]
    rest_port: int
    grpc_port: int
    prometheus_port: int | None
    processes: list[Process] = field(default_factory=list)

    def save(self) -> None:
        Path(self.state_dir, TOPOLOGY_FILE).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, state_dir: Path) -> Topology:
        path = state_dir / TOPOLOGY_FILE
        if not path.exists():
            raise TopologyError(f"nothing is up in {state_dir} (no {TOPOLOGY_FILE})")
        data = json.loads(path.read_text())
        data["replicas"] = [Replica(**r) for r in data["replicas"]]
        data["processes"] = [Process(**p) for p in data["processes"]]
        return cls(**data)


def local_models_config(source: Path, models_dir: Path) -> str:
    """``models.config`` with base paths under ``/models`` moved to ``models_dir``."""
    from tf_serving_platform.serving.engine import model_config

    config = model_config.read_file(source)
    for model in config.model_config_list.config:
        if model.base_path.startswith(CONTAINER_MODELS + "/"):
            model.base_path = str(models_dir.resolve() / model.base_path[len(CONTAINER_MODELS)
                                                                         + 1:])
    return text_format.MessageToString(config)


def _spawn(name: str, argv: list[str], state: Path) -> Process:
    log = state / f"{name}.log"
    with open(log, "ab") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, env={**os.environ,
                                                              "TF_CPP_MIN_LOG_LEVEL": "2"})
    return Process(name, child.pid, str(state), str(log))


def _replica_argv(replica: Replica, config: Path, poll_s: int) -> list[str]:
    return command(
        "serve", f"--port={replica.grpc_port}", f"--rest_api_port={replica.rest_port}",
        "--host=127.0.0.1", f"--model_config_file={config}",
        f"--model_config_file_poll_wait_seconds={poll_s}",
        "--allow_version_labels_for_unavailable_models",
        "--enable_batching", f"--batching_parameters_file={CONFIG_DIR / 'batching.config'}",
        f"--monitoring_config_file={CONFIG_DIR / 'monitoring.config'}")


PROMETHEUS_CONFIG = """global:
  scrape_interval: 5s
scrape_configs:
  - job_name: serving
    metrics_path: /monitoring/prometheus/metrics
    static_configs:
      - targets: [{targets}]
"""


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                   else None)
    if not found:
        raise TopologyError(f"{name} is not installed (Debian package '{name}'; `make test` "
                            "installs it when run as root)")
    return found


def _wait_ready(url: str, timeout: float, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process and not _alive(process):
            raise TopologyError(f"{process.name} exited; see {process.log}")
        time.sleep(0.2)
    raise TopologyError(f"{url} did not answer 200 within {timeout:.0f}s")


def up(state: Path, models_dir: Path, replicas: int, rest_port: int, grpc_port: int,
       prometheus: bool = True, timeout: float = 300, config_poll_s: int = 2,
       source_config: Path = CONFIG_DIR / MODELS_CONFIG) -> Topology:
    """Start the topology and wait until every replica is ready behind nginx."""
    state = state.resolve()
    if (state / TOPOLOGY_FILE).exists():
        raise TopologyError(f"already up in {state}; run `servectl down --state {state}`")
    state.mkdir(parents=True, exist_ok=True)
    config = state / MODELS_CONFIG
    config.write_text(local_models_config(source_config, models_dir))
    topology = Topology(str(state), str(config),
                        [Replica(free_port(), free_port()) for _ in range(replicas)],
                        rest_port or free_port(), grpc_port or free_port(),
                        free_port() if prometheus else None)
    try:
        for i, replica in enumerate(topology.replicas):
            topology.processes.append(_spawn(f"replica-{i}",
                                             _replica_argv(replica, config, config_poll_s), state))
        topology.save()
        for replica, process in zip(topology.replicas, topology.processes, strict=True):
            _wait_ready(f"{replica.rest_url}/readyz", timeout, process)
        _start_nginx(topology, state)
        if prometheus:
            _start_prometheus(topology, state)
        topology.save()
        _wait_ready(f"http://127.0.0.1:{topology.rest_port}/readyz", 30)
    except BaseException:
        down(state)
        raise
    return topology


def _start_nginx(topology: Topology, state: Path) -> None:
    conf = state / "nginx.conf"
    conf.write_text(nginx.render([f"127.0.0.1:{r.rest_port}" for r in topology.replicas],
                                 [r.grpc_target for r in topology.replicas],
                                 f"127.0.0.1:{topology.rest_port}",
                                 f"127.0.0.1:{topology.grpc_port}", str(state)))
    result = subprocess.run([_binary("nginx"), "-c", str(conf), "-e",
                             str(state / "nginx-error.log")],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise TopologyError(f"nginx did not start: {result.stderr.strip().splitlines()[-1]}")
    pid = int((state / "nginx.pid").read_text())
    topology.processes.append(Process("nginx", pid, str(state), str(state / "nginx-error.log")))


def _start_prometheus(topology: Topology, state: Path) -> None:
    conf = state / "prometheus.yml"
    conf.write_text(PROMETHEUS_CONFIG.format(targets=", ".join(
        f'"127.0.0.1:{r.rest_port}"' for r in topology.replicas)))
    topology.processes.append(_spawn("prometheus", [
        _binary("prometheus"), f"--config.file={conf}",
        f"--storage.tsdb.path={state / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{topology.prometheus_port}"], state))


def _alive(process: Process) -> bool:
    """True while ``pid`` runs the command we started (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return process.marker.encode() in cmdline


def down(state: Path, timeout: float = 60) -> list[str]:
    """Stop everything ``up`` started in ``state`` (SIGTERM, then SIGKILL after ``timeout``)."""
    state = state.resolve()
    topology = Topology.load(state)
    stopped = []
    for process in reversed(topology.processes):
        if _alive(process):
            os.kill(process.pid, signal.SIGQUIT if process.name == "nginx" else signal.SIGTERM)
            stopped.append(process)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in stopped) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in stopped:
        if _alive(process):
            os.kill(process.pid, signal.SIGKILL)
    (state / TOPOLOGY_FILE).unlink()
    return [p.name for p in stopped]
