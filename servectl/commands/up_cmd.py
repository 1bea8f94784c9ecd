"""``servectl up`` / ``servectl down``: N engine replicas behind nginx, scraped by Prometheus,
on this machine, from the files of ``serving/config``."""

from __future__ import annotations

import argparse
from pathlib import Path

from tf_serving_platform.servectl.errors import UsageError
from tf_serving_platform.servectl.tensorflow_import import import_tensorflow
from tf_serving_platform.serving.tables import format_table

DEFAULT_STATE = Path(".servectl/up")
EXAMPLE = """examples:
  servectl up --models-dir demo-output/models --replicas 2
  curl localhost:8080/v1/models/digits_cnn          # REST through nginx
  servectl down

Base paths under /models in serving/config/models.config are mapped to --models-dir; the replicas
read the copy in STATE/models.config, which `servectl rollout` edits."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start replicas + nginx + Prometheus locally",
                        description=__doc__, epilog=EXAMPLE,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--models-dir", type=Path, required=True, help="what /models maps to")
    up.add_argument("--replicas", type=int, default=2)
    up.add_argument("--rest-port", type=int, default=8080,
                    help="nginx REST port (8080; 0 picks a free one)")
    up.add_argument("--grpc-port", type=int, default=8081,
                    help="nginx gRPC port (8081; 0 picks a free one)")
    up.add_argument("--config", type=Path, default=Path("serving/config/models.config"),
                    help="the models.config to copy (serving/config/models.config)")
    up.add_argument("--no-prometheus", action="store_true")
    up.add_argument("--state", type=Path, default=DEFAULT_STATE, help="where pids/logs go")
    up.set_defaults(run=run_up)
    down = sub.add_parser("down", help="stop what `servectl up` started, and nothing else",
                          description="Stop what `servectl up` started, and nothing else.")
    down.add_argument("--state", type=Path, default=DEFAULT_STATE)
    down.set_defaults(run=run_down)


def run_up(args: argparse.Namespace) -> int:
    from tf_serving_platform.servectl.topology import local

    if not args.config.is_file():
        raise UsageError(f"--config {args.config} is not a file")
    if not args.models_dir.is_dir():
        raise UsageError(f"--models-dir {args.models_dir} is not a directory")
    if args.replicas < 1:
        raise UsageError("--replicas must be at least 1")
    import_tensorflow()
    try:
        topology = local.up(args.state, args.models_dir, args.replicas, args.rest_port,
                            args.grpc_port, prometheus=not args.no_prometheus,
                            source_config=args.config)
    except local.TopologyError as e:
        raise UsageError(str(e)) from None
    rows = [(f"replica-{i}", p.pid, r.grpc_target, r.rest_url) for i, (r, p) in
            enumerate(zip(topology.replicas, topology.processes, strict=False))]
    print(format_table(["process", "pid", "gRPC", "REST"], rows))
    print(f"nginx: REST http://127.0.0.1:{topology.rest_port}  gRPC 127.0.0.1:{topology.grpc_port}")
    if topology.prometheus_port:
        print(f"prometheus: http://127.0.0.1:{topology.prometheus_port}")
    print(f"config: {topology.models_config}; stop with: servectl down --state {args.state}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    from tf_serving_platform.servectl.topology import local

    try:
        stopped = local.down(args.state)
    except local.TopologyError as e:
        raise UsageError(str(e)) from None
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0
