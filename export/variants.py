"""Building, evaluating and gating the TFLite variants of an export.

Every variant is scored on the held-out set with the primary head's metric and timed on
single-example calls, next to the float32 SavedModel it came from. A variant whose metric is
worse than the SavedModel's by more than ``max_drop`` (relative: 0.02 = 2 % lower accuracy or
2 % higher mean absolute error) is refused and not published: a quantized model that quietly
lost accuracy is worse than no quantized model.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tf_serving_platform.export import qat, tflite
from tf_serving_platform.export.errors import ExportError
from tf_serving_platform.export.savedmodel import directory_bytes, write_keras_saved_model
from tf_serving_platform.export.signatures import PREDICT_KEY
from tf_serving_platform.export.sources import ExportSource
from tf_serving_platform.export.verify import load_as_served, run_signature
from tf_serving_platform.models import evaluation
from tf_serving_platform.models.data import Arrays
from tf_serving_platform.serving.tables import format_table

DEFAULT_MAX_DROP = 0.02
LATENCY_ROWS = 50
TABLE_FILE = Path("assets.extra") / "variants.txt"
"""The variant table, written into the SavedModel's version before it is published."""


@dataclass
class VariantRow:
    """One line of the variant table."""

    variant: str
    size_bytes: int
    metric: str | None = None
    value: float | None = None
    delta: float | None = None
    latency_ms: float | None = None
    refused: str | None = None
    flatbuffer: bytes | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "flatbuffer"}


def variant_model(model: str, variant: str) -> str:
    """The model name a TFLite variant is published under (its own base path)."""
    return f"{model}_{variant}"


def variant_table(model: str, version: int, rows: list[VariantRow]) -> str:
    """What each variant scored and where it serves (``<model>_<variant>/<version>``)."""
    def served_as(row: VariantRow) -> str:
        if row.variant == "savedmodel":
            return f"{model}/{version}"
        return "refused" if row.refused else f"{variant_model(model, row.variant)}/{version}"
    metric = next((r.metric for r in rows if r.metric), None) or "metric"
    cells = [(r.variant, served_as(r), r.size_bytes or "",
              "" if r.value is None else f"{r.value:.4f}",
              "" if r.delta is None else f"{r.delta:+.4f}",
              "" if r.latency_ms is None else f"{r.latency_ms:.3f}") for r in rows]
    return format_table(["variant", "served as", "bytes", metric, "delta", "ms/example"], cells)


def mean_latency_ms(call: Callable[[Arrays], object], inputs: Arrays,
                    rows: int = LATENCY_ROWS) -> float:
    """Mean wall time of a single-example call over the first ``rows`` examples."""
    count = min(rows, len(next(iter(inputs.values()))))
    singles = [{k: v[i:i + 1] for k, v in inputs.items()} for i in range(count)]
    call(singles[0])  # first call traces / allocates: keep it out of the timing
    start = time.perf_counter()
    for single in singles:
        call(single)
    return (time.perf_counter() - start) * 1000 / count


def relative_drop(head, baseline: float, value: float) -> float:
    """How much worse ``value`` is than ``baseline``, as a fraction (negative: better)."""
    worse = baseline - value if evaluation.higher_is_better(head) else value - baseline
    return worse / max(abs(baseline), 1e-12)


class VariantBuilder:
    """Converts, scores and gates variants against the exported SavedModel."""

    def __init__(self, source: ExportSource, saved_model_dir: Path, inputs: Arrays,
                 max_drop: float = DEFAULT_MAX_DROP, progress: bool = True):
        self.source, self.saved_model_dir, self.inputs = source, saved_model_dir, inputs
        self.max_drop, self.progress = max_drop, progress
        self.head = source.heads[0] if source.heads and source.metrics else None

    def _score(self, call: Callable[[Arrays], dict[str, np.ndarray]]) -> float | None:
        if self.head is None:
            return None
        outputs = call(self.source.data.x_test)
        return evaluation.score(self.head, outputs[self.head.output],
                                self.source.data.y_test[self.head.output])

    def baseline(self) -> VariantRow:
        loaded = load_as_served(self.saved_model_dir)
        call = lambda x: run_signature(loaded, PREDICT_KEY, x)  # noqa: E731
        return VariantRow("savedmodel", directory_bytes(self.saved_model_dir),
                          self._metric_name(), self._score(call), 0.0,
                          mean_latency_ms(call, self.inputs))

    def _metric_name(self) -> str | None:
        return evaluation.metric_name(self.head) if self.head else None

    def build(self, variant: str, baseline: VariantRow) -> VariantRow:
        """Convert one variant; a variant that cannot be built or fails the gate is refused."""
        try:
            flatbuffer = self._convert(variant)
        except ExportError as e:
            return VariantRow(variant, 0, refused=str(e))
        runner = tflite.TfliteRunner(flatbuffer)
        row = VariantRow(variant, len(flatbuffer), self._metric_name(), self._score(runner),
                         latency_ms=mean_latency_ms(runner, self.inputs), flatbuffer=flatbuffer)
        if row.value is not None and baseline.value is not None:
            row.delta = row.value - baseline.value
            drop = relative_drop(self.head, baseline.value, row.value)
            if drop > self.max_drop:
                row.refused = (f"{variant} variant of {self.source.name} refused: {row.metric} "
                               f"{row.value:.4f} is {drop:.1%} worse than float32's "
                               f"{baseline.value:.4f} (limit {self.max_drop:.1%}, --max-drop)")
        return row

    def _convert(self, variant: str) -> bytes:
        spec = self.source.spec
        if spec is not None and not spec.tflite:
            raise ExportError(f"{variant}: {spec.name} has no TFLite variants (its string ops "
                              "are not TFLite builtins)")
        if variant == "qat":
            return self._convert_qat()
        if variant == "int8" and self.source.data is None:
            raise ExportError("int8: full-integer quantization needs calibration data, which "
                              "only zoo models carry")
        calibration = self.source.data.x_train if self.source.data else None
        try:
            return tflite.convert(self.saved_model_dir, variant, calibration)
        except Exception as e:  # the converter raises many types; report, don't crash
            raise ExportError(f"{variant}: TFLite conversion failed: {e}") from None

    def _convert_qat(self) -> bytes:
        model = qat.quantization_aware_model(self.source, self.progress)
        with tempfile.TemporaryDirectory() as tmp:
            write_keras_saved_model(model, self.source, Path(tmp) / "qat")
            return tflite.convert(Path(tmp) / "qat", "qat")
