"""The locustfile's own options, defined once.

The locustfile adds them to Locust's parser (so they work on Locust's command line, in its web
UI and in ``locust.conf``) and reads them back as a ``LocustfileOptions``; ``loadtest.runner``
writes the same dataclass as the child's command line. A field's name is its option
(``model_version`` -> ``--model-version``) and its default is the parser's, so the two sides
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from tf_serving_platform.loadtest.stages import SHAPES
from tf_serving_platform.serving.client import ModelRef


def _option(default: Any, help: str, **argparse: Any) -> Any:
    return field(default=default, metadata={"help": help, **argparse})


@dataclass(frozen=True)
class LocustfileOptions:
    """What one Locust process needs besides Locust's own options (``-u``, ``--host``...)."""

    model: str = _option("", "model name to load-test")
    model_version: int | None = _option(None, "a version number", type=int)
    model_label: str = _option("", "a version label (stable, canary)")
    signature: str = _option("serving_default", "signature key")
    grpc_target: str = _option("", "gRPC HOST:PORT (runs GrpcUser)")
    batch_size: int = _option(1, "examples per request", type=int)
    payload_npz: str = _option("", ".npz of real rows, one array per input")
    replay: str = _option("", "a request log to replay, in logged order")
    api_protocol: str = _option("tfserving", "TensorFlow Serving's API or the Open Inference "
                                "Protocol (V2)", choices=("tfserving", "v2"))
    shape: str = _option("constant", "load shape", choices=SHAPES)
    step_users: int | None = _option(None, "step of steps/base of spike", type=int)
    step_duration: float | None = _option(None, "measured seconds per stage (default: "
                                          "--run-time, else 60)", type=float)
    levels: str = _option("", "explicit user counts for steps: 1,4,16")
    samples_dir: str = _option("loadtest-results/samples",
                               "where each process writes its raw samples")
    slo_p99_ms: float | None = _option(None, "SLO: p99 latency limit", type=float)
    slo_error_rate: float | None = _option(None, "SLO: max error share", type=float)
    slo_min_rps: float | None = _option(None, "SLO: min throughput", type=float)

    @classmethod
    def from_parsed(cls, parsed: Any) -> LocustfileOptions:
        """The options out of Locust's parsed command line."""
        return cls(**{f.name: getattr(parsed, f.name) for f in fields(cls)})

    def argv(self) -> list[str]:
        """The command line that parses back into these options (defaults left out)."""
        args = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                args += [_flag(f.name), str(value)]
        return args

    def target(self) -> ModelRef | None:
        """The servable the synthetic requests go to; None when replaying the logged ones."""
        if not self.model:
            return None
        return ModelRef(self.model, self.model_version, self.model_label or None,
                        self.signature)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: Any) -> None:
    """Adds every ``LocustfileOptions`` field to Locust's parser."""
    for f in fields(LocustfileOptions):
        parser.add_argument(_flag(f.name), default=f.default, **f.metadata)
