"""``servectl rollout``: canary, promote and roll back model versions without dropping a request.

Uses TensorFlow Serving's own mechanisms (version policy + ``stable``/``canary`` labels, in the
order the docs require) by editing ``models.config`` — the copy ``servectl up`` runs from, or the
``serving-models`` ConfigMap with ``--kube`` — and applying it (HandleReloadConfigRequest on
local replicas; TensorFlow Serving's config polling in Kubernetes). Prints every change.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from tf_serving_platform.servectl import command
from tf_serving_platform.servectl.commands.up_cmd import DEFAULT_STATE
from tf_serving_platform.servectl.errors import UsageError
from tf_serving_platform.servectl.tensorflow_import import import_tensorflow
from tf_serving_platform.serving.tables import format_table

EXAMPLE = """examples:
  servectl rollout digits_cnn --canary 2      # load v2 next to stable, label it canary
  servectl rollout digits_cnn --promote       # stable -> v2, drop the old version after a drain
  servectl rollout digits_cnn --rollback      # drop the canary, or undo the last promote
  servectl rollout digits_cnn --auto 3 --slo-p99-ms 50   # canary, load test, decide
  servectl rollout status digits_cnn          # every replica's versions and the labels
  servectl rollout digits_cnn --canary 3 --kube --namespace serving"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="canary / promote / rollback model versions",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", help="model name, or 'status'")
    p.add_argument("model", nargs="?", help="with 'status': the model (all by default)")
    move = p.add_mutually_exclusive_group()
    move.add_argument("--canary", type=int, metavar="VERSION")
    move.add_argument("--promote", action="store_true")
    move.add_argument("--rollback", action="store_true")
    move.add_argument("--auto", type=int, metavar="VERSION",
                      help="canary VERSION, load-test the canary label, then promote or roll "
                           "back on the SLO verdict")
    p.add_argument("--slo-p99-ms", type=float, default=100.0, help="--auto: p99 limit (100)")
    p.add_argument("--slo-error-rate", type=float, default=0.0,
                   help="--auto: highest error rate (0)")
    p.add_argument("--load-seconds", type=float, default=10.0, help="--auto: load test length")
    p.add_argument("--rest", help="--auto: REST URL to load-test (the local nginx by default)")
    p.add_argument("--stable", type=int, help="stable version when no label says it yet")
    p.add_argument("--drain-seconds", type=float, default=5.0,
                   help="wait before unloading a version that lost its label (5)")
    p.add_argument("--state", type=Path, default=DEFAULT_STATE, help="`servectl up` state")
    p.add_argument("--kube", action="store_true", help="edit the Kubernetes ConfigMap")
    p.add_argument("--namespace", default="serving")
    p.add_argument("--configmap", default="serving-models")
    p.set_defaults(run=run)


def _local(args: argparse.Namespace):
    from tf_serving_platform.servectl.topology import apply, local

    try:
        topology = local.Topology.load(args.state)
    except local.TopologyError as e:
        raise UsageError(str(e)) from None
    targets = [r.grpc_target for r in topology.replicas]
    return apply.LocalReplicas(Path(topology.models_config), targets), targets


def _stable(args, config, targets: list[str]) -> int:
    from tf_serving_platform.servectl.topology import apply, rollout

    current = rollout.labels(config, args.target).get(rollout.STABLE) or args.stable
    if current is None and targets:
        available = [v for v, s in apply.version_states(targets[0], args.target).items()
                     if s == "AVAILABLE"]
        current = max(available, default=None)
    if current is None:
        raise UsageError(f"no stable version of {args.target} is known; pass --stable V")
    return current


def _plan(args, config, targets, history: dict[str, int]):
    from tf_serving_platform.servectl.topology import rollout

    if args.canary is not None:
        return rollout.canary(config, args.target, args.canary, _stable(args, config, targets))
    if args.promote:
        steps, old = rollout.promote(config, args.target)
        history[args.target] = old
        return steps
    if args.rollback:
        steps = rollout.rollback(config, args.target, history.get(args.target, args.stable))
        history.pop(args.target, None)
        return steps
    raise UsageError("choose one of --canary VERSION, --promote, --rollback")


def run(args: argparse.Namespace) -> int:
    if args.auto is not None:
        return _auto(args)
    import_tensorflow()
    from tf_serving_platform.servectl.topology import apply, rollout
    from tf_serving_platform.serving.engine import model_config

    if args.target == "status":
        return _status(args)
    if args.kube:
        target, targets = apply.KubeConfigMap(args.namespace, args.configmap), []
        config, history = target.read(), {}
    else:
        target, targets = _local(args)
        config = model_config.read_file(target.config_path)
        history = apply.read_history(target.config_path)
    try:
        steps = _plan(args, config, targets, history)
        for number, step in enumerate(steps, 1):
            if step.wait_unloaded:
                time.sleep(args.drain_seconds)
            print(f"[{number}/{len(steps)}] {step.description}", flush=True)
            target.apply(step, args.target)
    except rollout.RolloutError as e:
        raise UsageError(str(e)) from None
    if not args.kube:
        apply.write_history(target.config_path, history)
    final = rollout.labels(steps[-1].config, args.target)
    print(f"{args.target}: labels {final}")
    return 0


def _rollout(args: argparse.Namespace, **move) -> int:
    """Run this command again for one move (each move is its own config transaction)."""
    flags = [f"--{k}" if v is True else f"--{k}={v}" for k, v in move.items()]
    common = ["--state", str(args.state), "--drain-seconds", str(args.drain_seconds)]
    if args.kube:
        common += ["--kube", "--namespace", args.namespace, "--configmap", args.configmap]
    return subprocess.run(command("rollout", args.target, *flags, *common)).returncode


def _auto(args: argparse.Namespace) -> int:
    """Canary, then a load test on the ``canary`` label decides: promote or roll back."""
    from tf_serving_platform.servectl.topology import local

    rest = args.rest
    if rest is None:
        try:
            rest = f"http://127.0.0.1:{local.Topology.load(args.state).rest_port}"
        except local.TopologyError as e:
            raise UsageError(f"--auto needs --rest URL or a local topology: {e}") from None
    if _rollout(args, canary=args.auto):
        return 1
    verdict = subprocess.run(command(
        "loadtest", "--rest", rest, "--model", args.target, "--label", "canary",
        "--duration", f"{args.load_seconds}s", "--slo-p99-ms", str(args.slo_p99_ms),
        "--slo-error-rate", str(args.slo_error_rate),
        "--out", str(args.state / "auto-loadtest"))).returncode
    decision = "promote" if verdict == 0 else "rollback"
    print(f"canary {args.auto}: SLO {'met' if verdict == 0 else 'missed'} -> {decision}",
          flush=True)
    return _rollout(args, **{decision: True}) or (0 if verdict == 0 else 1)


def _status(args: argparse.Namespace) -> int:
    from tf_serving_platform.servectl.topology import apply
    from tf_serving_platform.serving.engine import model_config

    target, targets = _local(args)
    config = model_config.read_file(target.config_path)
    models = [m for m in config.model_config_list.config
              if args.model in (None, m.name)]
    rows = []
    for model in models:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(model.version_labels.items()))
        for index, replica in enumerate(targets):
            states = apply.version_states(replica, model.name)
            versions = ", ".join(f"{v}:{s}" for v, s in sorted(states.items(), reverse=True))
            rows.append((model.name, f"replica-{index}", versions, labels or "-"))
    print(format_table(["model", "replica", "versions", "labels"], rows))
    return 0
