"""The internal request and result types both front ends translate to and from.

Front ends build these from their wire format and call :mod:`serving.engine.service`; nothing
here knows about JSON, protobuf services or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """Which servable a request is for: a version, a label, or (neither) the latest."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


@dataclass
class PredictCall:
    """A Predict request.

    ``json_row_format`` is None for gRPC (inputs already typed); for REST it says whether the
    request used ``instances`` (True) or ``inputs`` (False), and inputs still need binding to the
    signature's names and dtypes.
    """

    spec: ModelSpec
    inputs: dict[str, np.ndarray] | np.ndarray
    output_filter: tuple[str, ...] = ()
    json_row_format: bool | None = None
    deadline: float | None = None


@dataclass
class Served:
    """Which servable answered: echoed back as the response's ``model_spec``."""

    name: str
    version: int
    signature_name: str


@dataclass
class PredictResult:
    served: Served
    outputs: dict[str, np.ndarray]


@dataclass
class ClassifyResult:
    """Per example, ``classes`` ``[n, k]`` labels (bytes) and ``scores`` ``[n, k]``; either
    may be None when the signature lacks that output."""

    served: Served
    classes: np.ndarray | None
    scores: np.ndarray | None

    @property
    def num_examples(self) -> int:
        return len(self.scores if self.scores is not None else self.classes)


@dataclass
class RegressResult:
    served: Served
    values: np.ndarray


@dataclass
class VersionStatus:
    """One row of GetModelStatus."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""



@dataclass
class ModelListing:
    """One model of ``GET /v1/models``: its GetModelStatus rows and its version labels."""

    name: str
    versions: list[VersionStatus]
    labels: dict[str, int]
