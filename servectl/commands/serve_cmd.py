"""``servectl serve``: TensorFlow Serving's model server, with ``tensorflow_model_server``'s flags.

``--engine embedded`` runs the wire-compatible Python engine, ``--engine tfserving`` execs a real
``tensorflow_model_server`` binary with the same flags, ``--engine auto`` (the default) prefers
the binary when it is on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys

from tf_serving_platform.servectl.errors import UsageError
from tf_serving_platform.servectl.tensorflow_import import import_tensorflow

TFSERVING_BINARY = "tensorflow_model_server"

EXAMPLE = """examples:
  servectl serve --rest_api_port=8501 --model_name=digits_cnn \\
      --model_base_path=$PWD/demo-output/models/digits_cnn
  servectl serve --port=8500 --rest_api_port=8501 \\
      --model_config_file=serving/config/models.config --model_config_file_poll_wait_seconds=5

Health: GET /healthz (liveness), GET /readyz (200 once every configured model is AVAILABLE),
and grpc.health.v1 on the gRPC port (SERVING under the same condition)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tf_serving_platform.serving.engine.options import add_flags

    p = sub.add_parser("serve", help="serve models with TensorFlow Serving's REST and gRPC APIs",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=("auto", "embedded", "tfserving"), default="auto",
                   help="which engine runs the flags (default: auto)")
    add_flags(p)
    p.set_defaults(run=run)


def _tfserving_argv(argv: list[str]) -> list[str]:
    """The command line minus the flags only the embedded engine knows."""
    from tf_serving_platform.serving.engine.options import ServerOptions

    embedded_only = ("--engine", *ServerOptions.embedded_only_flags())
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in embedded_only:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def _stop_while_starting(signum: int, _frame) -> None:
    """SIGTERM before the engine's own handler is in place: stop now, as asked, with status 0."""
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_while_starting)
    from tf_serving_platform.serving.engine.options import FlagError, options_from_args

    binary = shutil.which(TFSERVING_BINARY)
    if args.engine == "tfserving" and not binary:
        raise UsageError(f"--engine tfserving: {TFSERVING_BINARY} is not on PATH; use "
                         "--engine embedded (or auto)")
    try:
        options = options_from_args(args)
    except FlagError as e:
        raise UsageError(str(e)) from None
    if binary and args.engine in ("auto", "tfserving"):
        argv = sys.argv[sys.argv.index("serve") + 1:]
        os.execv(binary, [binary, *_tfserving_argv(argv)])
    if options.workers > 1:
        from tf_serving_platform.servectl.workers import run_workers

        return run_workers(options.workers, sys.argv[sys.argv.index("serve") + 1:])
    import_tensorflow(keras=False)  # the engine runs graphs: no Keras (1.5-2 s of start-up)
    from tf_serving_platform.serving.engine import server, settings

    try:
        engine_settings = settings.load(options)
    except settings.SettingsError as e:
        raise UsageError(str(e)) from None
    return server.run(engine_settings)
