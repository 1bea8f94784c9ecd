"""``servectl export``: publish a model as a new, verified, immutable SavedModel version."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tf_serving_platform.export import publish
from tf_serving_platform.export.variant_names import VARIANTS
from tf_serving_platform.models import zoo
from tf_serving_platform.servectl.arguments import fraction, version_number
from tf_serving_platform.servectl.errors import UsageError
from tf_serving_platform.servectl.tensorflow_import import import_tensorflow

EXIT_REFUSED = 1

EXAMPLE = """examples:
  servectl export digits_cnn --base-path models_dir --tflite fp16,dynamic,int8
  servectl export artifacts/wide_deep.keras --base-path models_dir --version 3
  servectl export /path/to/saved_model --base-path models_dir --name legacy

The version lands in BASE_PATH/<model>/<version>/ (next free number without --version), each
TFLite variant in BASE_PATH/<model>_<variant>/<version>/model.tflite. Exit status: 0 when
everything asked for was published, 1 when a variant was refused by the --max-drop gate (the
SavedModel and the other variants are still published), 2 on bad input."""


def variant_list(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown TFLite variant {', '.join(unknown) or text!r}; choose from "
            f"{','.join(VARIANTS)}")
    return names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model as a new SavedModel version",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="zoo model name, .keras/.h5 file, or SavedModel directory")
    p.add_argument("--base-path", type=Path, required=True, help="model base path")
    p.add_argument("--version", type=version_number(1), help="version number (next free one)")
    p.add_argument("--name", help="model name under the base path (the model's own name)")
    p.add_argument("--tflite", type=variant_list, default=(),
                   help=f"comma-separated TFLite variants: {','.join(VARIANTS)}")
    p.add_argument("--max-drop", type=fraction, default=0.02,
                   help="refuse a variant whose metric is worse by more than this fraction "
                        "(%(default)s)")
    p.add_argument("--seed", type=int, default=zoo.DEFAULT_SEED,
                   help="training seed of zoo models (the held-out split never changes)")
    p.add_argument("--warmup-from", type=Path, metavar="LOGS",
                   help="warmup records from a request log (logging_config's files: a file, "
                        "folder or filename_prefix): a spread of its batch sizes and signatures")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def _check_arguments(args: argparse.Namespace) -> None:
    """Fail fast, before any training, on what can be checked without TensorFlow."""
    if args.source not in zoo.ZOO and not Path(args.source).exists():
        raise UsageError(f"unknown model {args.source!r}: not a zoo model "
                         f"({', '.join(zoo.ZOO)}) nor an existing path")
    base = args.base_path
    existing = next((p for p in (base, *base.parents) if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK) or (
            existing == base and not base.is_dir()):
        raise UsageError(f"cannot write to base path {base}")
    if args.warmup_from is not None:
        from tf_serving_platform.serving.engine.request_log import log_files

        if not log_files(args.warmup_from):
            raise UsageError(f"--warmup-from {args.warmup_from}: no request log files there")
    name = args.name or (args.source if args.source in zoo.ZOO else None)
    if name:  # known before training: refuse an existing version now, not minutes later
        publish.refuse_existing_version(base / name, args.version)


def _print_report(report) -> None:
    print(f"published {report.model} version {report.version} at {report.path}")
    from tf_serving_platform.export.pipeline import verification_line

    print(f"  {verification_line(report.max_abs_diff)}; warmup: {report.warmup_records} records")
    if report.metrics:
        print("  held-out: " + ", ".join(f"{k} {v:.4f}" for k, v in report.metrics.items()))
    if report.variants:
        from tf_serving_platform.export.variants import variant_table

        print(variant_table(report.model, report.version, report.variants))
    for row in report.variants:
        if row.refused:
            print(f"refused: {row.refused}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    _check_arguments(args)
    import_tensorflow()
    from tf_serving_platform.export import pipeline, sources

    source = sources.resolve(args.source, seed=args.seed, progress=not args.quiet,
                             name=args.name)
    report = pipeline.export_model(source, args.base_path, args.version, args.tflite,
                                   args.max_drop, progress=not args.quiet,
                                   warmup_from=args.warmup_from)
    _print_report(report)
    return EXIT_REFUSED if any(r.refused for r in report.variants) else 0
