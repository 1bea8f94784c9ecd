"""``servectl train NAME``: train a zoo model and save it as a ``.keras`` file."""

from __future__ import annotations

import argparse
from pathlib import Path

from tf_serving_platform.models import zoo
from tf_serving_platform.servectl.errors import UsageError
from tf_serving_platform.servectl.tensorflow_import import import_tensorflow

EXAMPLE = """examples:
  servectl train digits_cnn                    # -> artifacts/digits_cnn.keras
  servectl train wide_deep --seed 7 --output /tmp/wd.keras

models:
""" + "\n".join(f"  {m.name:<16} {m.summary}" for m in zoo.ZOO.values())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a zoo model", description=__doc__,
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="zoo model name")
    p.add_argument("--seed", type=int, default=zoo.DEFAULT_SEED, help="random seed (%(default)s)")
    p.add_argument("--output", type=Path, help="where to save (artifacts/NAME.keras)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        spec = zoo.get(args.name)
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    output = args.output or Path("artifacts") / f"{spec.name}.keras"
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {output.parent}: {e.strerror}") from None
    import_tensorflow()
    from tf_serving_platform.models import train

    trained = train.train(spec, seed=args.seed)
    trained.model.save(output)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in trained.metrics.items()) or "not evaluated"
    print(f"{spec.name}: held-out {metrics} ({trained.data.num_test} examples); saved {output}")
    return 0
