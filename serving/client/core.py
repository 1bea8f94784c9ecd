"""What the four clients share: each call written once, as a plan of wire calls.

A plan is a generator: it yields the ``Call`` objects it needs (the REST client's predict first
asks for the model's metadata, once per cache period) and returns the result. ``SyncApi`` runs a
plan by sending each call and blocking; ``AsyncApi`` awaits each one. So the logic of every API
method lives here once, the wire formats live in ``rest_calls`` / ``grpc_calls``, and the four
client classes only move bytes (``_attempt``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypedDict, TypeVar

import numpy as np

from tf_serving_platform.serving.client.errors import client_errors
from tf_serving_platform.serving.client.queries import (
    Inputs,
    MetadataCache,
    ModelRef,
    PredictQuery,
    examples_body,
)
from tf_serving_platform.serving.client.results import (
    ModelListing,
    ModelMetadata,
    ModelVersionStatus,
)
from tf_serving_platform.serving.client.retry import Deadline, RetryPolicy

__all__ = ["Call", "CallOptions", "ClientCore", "ExamplesOptions", "Plan", "PredictOptions",
           "VersionOptions"]

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request on one wire, and how to read its answer.

    Attributes:
        request: what the transport sends (``rest_calls.HttpRequest`` or ``grpc_calls.RpcRequest``).
        parse: turns the transport's answer into the result; raises the client error for a
            failed call, which is how an HTTP 503 reaches the retry loop.
        model: the model, for error messages.
    """

    request: Any
    parse: Callable[[Any], T]
    model: str

    def finish(self, answer: Any) -> T:
        with client_errors(self.model):
            return self.parse(answer)


Plan = Generator[Call, Any, T]


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """A unary gRPC call: the method's name (as in its ``.proto``) and its request message."""

    method: str
    message: Any


class Calls(Protocol):
    """One wire's request builders (``RestCalls``, ``GrpcCalls``)."""

    def needs_metadata(self, query: PredictQuery) -> bool: ...
    def predict(self, query: PredictQuery, metadata: ModelMetadata | None) -> Call: ...
    def classify(self, ref: ModelRef, body: bytes) -> Call: ...
    def regress(self, ref: ModelRef, body: bytes) -> Call: ...
    def status(self, ref: ModelRef) -> Call: ...
    def metadata(self, ref: ModelRef) -> Call: ...
    def reload_config(self, config: Any) -> Call: ...
    def list_models(self) -> Call: ...


class CallOptions(TypedDict, total=False):
    """Options of every call."""

    timeout: float | None
    """Seconds for the whole call, retries included; None: the client's ``timeout_s``."""


class VersionOptions(CallOptions, total=False):
    """Which version answers: the latest when neither is given."""

    version: int | None
    label: str | None


class ModelOptions(VersionOptions, total=False):
    signature: str | None
    """The signature key; None: ``serving_default``."""


class PredictOptions(ModelOptions, total=False):
    output_filter: Sequence[str] | None
    """The output aliases to return; None: every output of the signature."""


class ExamplesOptions(ModelOptions, total=False):
    context: Mapping[str, Any] | None
    """Features shared by every example (``ExampleListWithContext``)."""


class ClientCore:
    """State and plans shared by the four clients.

    Args:
        calls: the wire's request builders.
        timeout_s: the default deadline of a call, retries included.
        retry: when and how often to try again (UNAVAILABLE only).
        metadata_ttl_s: how long a model's metadata is reused (see ``MetadataCache``).
    """

    def __init__(self, calls: Calls, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retry: RetryPolicy | None = None, metadata_ttl_s: float = 60.0) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0. Received: timeout_s={timeout_s}")
        self._calls = calls
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._metadata_cache = MetadataCache(metadata_ttl_s)

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(self.timeout_s if timeout is None else timeout)

    def _cached_metadata(self, ref: ModelRef) -> Plan[ModelMetadata]:
        metadata = self._metadata_cache.get(ref)
        if metadata is None:
            metadata = yield self._calls.metadata(ref)
            self._metadata_cache.put(ref, metadata)
        return metadata

    def _predict(self, model: str, inputs: Inputs, *, version: int | None = None,
                 label: str | None = None, signature: str | None = None,
                 output_filter: Sequence[str] | None = None) -> Plan[dict[str, np.ndarray]]:
        query = PredictQuery.build(ModelRef(model, version, label, signature), inputs,
                                   output_filter)
        metadata = None
        if self._calls.needs_metadata(query):
            metadata = yield from self._cached_metadata(query.ref)
        return (yield self._calls.predict(query, metadata))

    def _examples(self, build: Callable[[ModelRef, bytes], Call[T]], model: str,
                  examples: Sequence[Mapping[str, Any]], *,
                  context: Mapping[str, Any] | None = None, version: int | None = None,
                  label: str | None = None, signature: str | None = None) -> Plan[T]:
        """Classify or regress (``build`` is ``calls.classify`` or ``calls.regress``)."""
        ref = ModelRef(model, version, label, signature)
        return (yield build(ref, examples_body(examples, context, signature, model)))

    def _status(self, model: str, version: int | None = None) -> Plan[list[ModelVersionStatus]]:
        return (yield self._calls.status(ModelRef(model, version)))

    def _metadata(self, model: str, *, version: int | None = None,
                  label: str | None = None) -> Plan[ModelMetadata]:
        ref = ModelRef(model, version, label)
        metadata = yield self._calls.metadata(ref)
        self._metadata_cache.put(ref, metadata)
        return metadata

    def _reload_config(self, config: Any) -> Plan[None]:
        return (yield self._calls.reload_config(config))

    def _list_models(self) -> Plan[list[ModelListing]]:
        return (yield self._calls.list_models())

    def _start(self, plan: Callable[..., Plan[T]], args: tuple, options: dict
               ) -> tuple[Plan[T], Deadline]:
        """The plan's generator and the call's deadline, for ``SyncApi`` / ``AsyncApi`` to run."""
        deadline = self._deadline(options.pop("timeout", None))
        return plan(*args, **options), deadline
