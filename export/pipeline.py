"""``servectl export``: write, verify, warm up, quantize, gate and publish one model version.

Everything is built and checked in staging first; only then is the SavedModel published, and
after it each accepted TFLite variant under ``<base_path>/<model>_<variant>/<version>/`` (where
TensorFlow Serving's ``--prefer_tflite_model`` finds ``model.tflite``). A failure before
publishing leaves the base path exactly as it was.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import keras
import tensorflow as tf

from tf_serving_platform.export import describe, publish, savedmodel, warmup
from tf_serving_platform.export.errors import ExportError, VersionExistsError
from tf_serving_platform.export.signatures import PREDICT_KEY
from tf_serving_platform.export.sources import ExportSource
from tf_serving_platform.export.variants import (
    DEFAULT_MAX_DROP,
    TABLE_FILE,
    VariantBuilder,
    VariantRow,
    variant_model,
    variant_table,
)
from tf_serving_platform.models.data import Arrays
from tf_serving_platform.serving.engine.request_log import read_logs
from tf_serving_platform.serving.engine.servable import TFLITE_FILE

AUTO_VERSION_ATTEMPTS = 10


@dataclass
class ExportReport:
    """What an export published, for the CLI to print and tests to check."""

    model: str
    version: int
    path: Path
    max_abs_diff: float | None
    warmup_records: int
    metrics: dict[str, float]
    variants: list[VariantRow] = field(default_factory=list)
    variant_paths: dict[str, Path] = field(default_factory=dict)


def _step(message: str, progress: bool) -> None:
    if progress:
        print(f"  {message}", file=sys.stderr, flush=True)


def verification_line(diff: float | None) -> str:
    if diff is None:
        return ("verification: loads as TensorFlow Serving loads it; serving_default takes "
                "strings, so it was not run")
    return f"verification: max abs diff {diff:.3g}"


def _metadata(source: ExportSource, keys: list[str], diff: float, records: int,
              rows: list[VariantRow], staged: Path) -> dict:
    return {
        "model": source.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source.origin,
        "signatures": [s.as_dict() for s in describe.saved_model_signatures(staged)],
        "signature_keys": keys,
        "metrics": source.metrics,
        "verification": {"max_abs_diff": diff, "tolerance": savedmodel.verify.FLOAT_TOLERANCE,
                         "relative_tolerance": savedmodel.verify.RELATIVE_TOLERANCE},
        "warmup_records": records,
        "size_bytes": savedmodel.directory_bytes(staged),
        "variants": [r.as_dict() for r in rows],
        "runtime": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }


def _write_metadata(version_dir: Path, metadata: dict) -> None:
    path = version_dir / describe.METADATA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metadata, indent=2, default=str) + "\n")


def _publish_auto(staged: Path, model_dir: Path, version: int | None, metadata: dict,
                  rows: list[VariantRow]) -> int:
    """Publish at ``version``, or at the next free one, retrying if a concurrent export wins.

    The metadata and the variant table are written with the final version number *before*
    the rename, so a published version directory is never modified afterwards.
    """
    for _ in range(AUTO_VERSION_ATTEMPTS):
        candidate = version if version is not None else publish.next_version(model_dir)
        metadata["version"] = candidate
        _write_metadata(staged, metadata)
        if rows:
            (staged / TABLE_FILE).write_text(
                variant_table(metadata["model"], candidate, rows) + "\n")
        try:
            publish.publish(staged, model_dir, candidate)
            return candidate
        except VersionExistsError:
            if version is not None:
                raise
    raise ExportError(f"could not find a free version in {model_dir} after "
                      f"{AUTO_VERSION_ATTEMPTS} attempts")


def _publish_variant(base_path: Path, source: ExportSource, row: VariantRow, version: int,
                     inputs: Arrays, metadata: dict) -> Path:
    model_name = variant_model(source.name, row.variant)
    model_dir = base_path / model_name
    with publish.staging_dir(model_dir) as staged:
        staged.mkdir()
        (staged / TFLITE_FILE).write_bytes(row.flatbuffer)
        warmup.write_warmup(staged, model_name, inputs, [PREDICT_KEY])
        _write_metadata(staged, {
            **metadata, "model": model_name, "variant": row.variant,
            "converted_from": f"{source.name}/{version}", "size_bytes": len(row.flatbuffer),
            "metrics": {} if row.value is None else {row.metric: row.value}})
        return publish.publish(staged, model_dir, version)


def export_model(source: ExportSource, base_path: Path, version: int | None = None,
                 tflite_variants: tuple[str, ...] = (), max_drop: float = DEFAULT_MAX_DROP,
                 progress: bool = True, warmup_from: Path | None = None) -> ExportReport:
    """Export ``source`` as a new version under ``base_path``; see the module docstring.
    ``warmup_from``: a request log whose requests become the warmup records (instead of
    held-out rows at fixed batch sizes).

    Raises:
        ExportError: anything the user can fix (existing version, unwritable path, failed
            verification); nothing is published then.
    """
    model_dir = Path(base_path) / source.name
    with _storage_errors(source.name, model_dir):
        return _export(source, base_path, model_dir, version, tflite_variants, max_drop,
                       progress, warmup_from)


@contextmanager
def _storage_errors(name: str, model_dir: Path) -> Iterator[None]:
    """A full disk, a quota, a read-only mount or a permission is the user's to fix: one line
    (and nothing published: staging is removed on the way out), never a traceback."""
    try:
        yield
    except OSError as e:
        raise ExportError(f"cannot export {name} to {model_dir}: {e.strerror or e}") from None
    except (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as e:
        reason = e.message.rpartition("; ")[2]  # TensorFlow's "<file>; No space left on device"
        raise ExportError(f"cannot export {name} to {model_dir}: {reason}") from None


def _export(source: ExportSource, base_path: Path, model_dir: Path, version: int | None,
            tflite_variants: tuple[str, ...], max_drop: float, progress: bool,
            warmup_from: Path | None) -> ExportReport:
    publish.ensure_writable(model_dir)
    publish.refuse_existing_version(model_dir, version)
    with publish.staging_dir(model_dir) as staged:
        _step(f"writing SavedModel of {source.name} to staging", progress)
        keys, diff, inputs = savedmodel.write_and_verify(source, staged)
        _step(verification_line(diff), progress)
        if warmup_from is not None:
            try:
                records = warmup.write_logged(staged, source.name, read_logs(warmup_from), keys)
            except ValueError as e:
                raise ExportError(f"--warmup-from {warmup_from}: {e}") from None
            _step(f"warmup: {records} records from the request log {warmup_from}", progress)
        else:
            records = warmup.write_warmup(staged, source.name, inputs, keys) if inputs else 0
        rows = []
        if tflite_variants and not inputs:
            raise ExportError(f"{source.name}: TFLite variants need numeric serving_default "
                              "inputs to be scored on")
        if tflite_variants:
            builder = VariantBuilder(source, staged, inputs, max_drop, progress)
            rows.append(builder.baseline())
            for variant in tflite_variants:
                _step(f"building TFLite variant {variant}", progress)
                rows.append(builder.build(variant, rows[0]))
        metadata = _metadata(source, keys, diff, records, rows, staged)
        published = _publish_auto(staged, model_dir, version, metadata, rows)
    report = ExportReport(source.name, published, model_dir / str(published), diff, records,
                          source.metrics, rows)
    for row in rows[1:]:
        if row.refused is None:
            report.variant_paths[row.variant] = _publish_variant(
                base_path, source, row, published, inputs, metadata)
    return report
