"""``servectl inspect``: what a model directory serves, like ``saved_model_cli show --all``; or
what a request log (``logging_config``) holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from tf_serving_platform.export.publish import staging_dirs
from tf_serving_platform.servectl.errors import UsageError
from tf_serving_platform.servectl.tensorflow_import import import_tensorflow
from tf_serving_platform.serving.versions import parse_version

EXAMPLE = """examples:
  servectl inspect models_dir                  # every model under a base path
  servectl inspect models_dir/digits_cnn       # every version of one model
  servectl inspect models_dir/digits_cnn/2     # one version
  servectl inspect /var/log/serving/mlp        # a request log (file, folder or prefix)"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show versions, signatures, inputs and outputs",
                       description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path, help="base path, model directory, version directory or "
                                           "request log")
    p.set_defaults(run=run)


def _is_version(path: Path) -> bool:
    return (path / "saved_model.pb").exists() or (path / "model.tflite").exists()


def _versions(model_dir: Path) -> list[Path]:
    return sorted((p for p in model_dir.iterdir()
                   if parse_version(p.name) is not None and p.is_dir()),
                  key=lambda p: int(p.name))


def _describe_version(version_dir: Path) -> list[str]:
    from tf_serving_platform.export import describe, warmup
    from tf_serving_platform.serving.engine.servable import TFLITE_FILE

    meta = describe.read_metadata(version_dir)
    if (version_dir / TFLITE_FILE).exists():
        kind, sigs = "TFLite", describe.tflite_signatures(version_dir / TFLITE_FILE)
    elif (version_dir / "saved_model.pb").exists():
        kind, sigs = "SavedModel", describe.saved_model_signatures(version_dir)
    else:
        return [f"  version {version_dir.name}: incomplete (no saved_model.pb or model.tflite)"]
    facts = [kind] + [f"{k} {meta[k]}" for k in ("created", "source") if k in meta]
    facts += [f"{k} {v:.4f}" for k, v in meta.get("metrics", {}).items()]
    lines = [f"  version {version_dir.name}: " + ", ".join(facts)]
    for sig in sigs:
        lines.append(f"    signature {sig.key!r} ({sig.method})")
        lines += [f"      in   {t}" for t in sig.inputs]
        lines += [f"      out  {t}" for t in sig.outputs]
    records = warmup.read_warmup(version_dir)
    if records:
        kinds = sorted({r.WhichOneof("log_type") for r in records})
        lines.append(f"    warmup: {len(records)} records ({', '.join(kinds)})")
    return lines


def describe_model(model_dir: Path) -> list[str]:
    versions = _versions(model_dir)
    lines = [f"{model_dir.name}: versions {', '.join(v.name for v in versions) or 'none'}"]
    for version in versions:
        lines += _describe_version(version)
    for staging in staging_dirs(model_dir):
        state = f"stale ({staging.why_stale}; the next export removes it)" \
            if staging.why_stale else "an export in progress"
        lines.append(f"  {staging.path.name}: {state}")
    return lines


def _is_request_log(path: Path) -> bool:
    """A request log's file, folder of files or ``filename_prefix`` (``logging_config``)."""
    if path.is_file():
        return path.suffix == ".tfrecord"
    if path.is_dir():
        return any(path.glob("*.tfrecord")) and not _versions(path)
    return path.parent.is_dir() and any(p.name.startswith(path.name) and p.suffix == ".tfrecord"
                                        for p in path.parent.iterdir())


def describe_request_log(path: Path) -> list[str]:
    """Files, records, time span, and the mix of calls, models and signatures."""
    from tf_serving_platform.serving.engine.request_log import summarize

    try:
        summary = summarize(path)
    except ValueError as e:  # a corrupt record: say where
        raise UsageError(str(e)) from None

    def mix(counts: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    span = f", {summary['first']} .. {summary['last']}" if summary["first"] else ""
    return [f"request log {path}: {summary['files']} file(s), {summary['records']} records, "
            f"{summary['bytes']} bytes{span}",
            f"  calls:      {mix(summary['by_kind'])}",
            f"  models:     {mix(summary['by_model'])}",
            f"  signatures: {mix(summary['by_signature'])}"]


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    if _is_request_log(path):
        import_tensorflow()  # its protos (TensorFlow's chatter kept off stderr)
        print("\n".join(describe_request_log(path)))
        return 0
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")
    import_tensorflow()
    if _is_version(path):
        lines = [f"{path.parent.name}:"] + _describe_version(path)
    elif _versions(path):
        lines = describe_model(path)
    else:
        models = [p for p in sorted(path.iterdir()) if p.is_dir() and _versions(p)]
        if not models:
            raise UsageError(f"{path} holds no model versions (numbered directories)")
        lines = [line for m in models for line in describe_model(m)]
    print("\n".join(lines))
    return 0
