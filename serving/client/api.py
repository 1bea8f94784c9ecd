"""The public methods of the clients: ``SyncApi`` (blocking) and ``AsyncApi`` (awaitable).

Both expose one shape of API over either wire. The logic of each method is a plan in
``ClientCore``; these classes only run plans, each attempt through the transport's ``_attempt``
under the call's deadline and retry policy.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, Unpack

import numpy as np

from tf_serving_platform.serving.client.core import (
    Call,
    CallOptions,
    ClientCore,
    ExamplesOptions,
    PredictOptions,
    VersionOptions,
)
from tf_serving_platform.serving.client.queries import Inputs
from tf_serving_platform.serving.client.results import (
    ClassifyResult,
    ModelListing,
    ModelMetadata,
    ModelVersionStatus,
)
from tf_serving_platform.serving.client.retry import call_with_retries, call_with_retries_async

__all__ = ["AsyncApi", "SyncApi"]

T = TypeVar("T")


class SyncApi(ClientCore):
    """Blocking calls to TensorFlow Serving's API. Errors are ``ServingClientError``."""

    def _attempt(self, call: Call[T], timeout: float) -> T:
        raise NotImplementedError

    def close(self) -> None:
        """Closes the connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, plan: Any, *args: Any, **options: Any) -> Any:
        steps, deadline = self._start(plan, args, options)
        answer = None
        while True:
            try:
                call = steps.send(answer)
            except StopIteration as done:
                return done.value
            answer = call_with_retries(functools.partial(self._attempt, call), self.retry,
                                       deadline, call.model)

    def predict(self, model: str, inputs: Inputs, **options: Unpack[PredictOptions]
                ) -> dict[str, np.ndarray]:
        """Runs a signature (``Predict``).

        Args:
            model: the model name.
            inputs: ``{alias: array-like}``, or one array-like for a single-input signature.
                Any dtype the wire carries: numbers, bool, str and bytes (object arrays keep
                bytes exactly; REST sends bytes that are not UTF-8 as ``{"b64": ...}``).
            **options: ``version`` or ``label``, ``signature``, ``output_filter``, ``timeout``.

        Returns:
            ``{alias: array}`` in the signature's dtypes; strings as object arrays of bytes.

        Raises:
            ServingClientError: NOT_FOUND (unknown model or version), INVALID_ARGUMENT (bad
                inputs, unknown output alias, unknown label), UNAVAILABLE after the retries,
                DEADLINE_EXCEEDED.

        Example:
            >>> client.predict("half_plus_two", {"x": [1.0, 2.0]})["y"]
            array([2.5, 3. ], dtype=float32)
        """
        return self._run(self._predict, model, inputs, **options)

    def classify(self, model: str, examples: Sequence[Mapping[str, Any]],
                 **options: Unpack[ExamplesOptions]) -> ClassifyResult:
        """Runs a classify signature on ``tf.Example`` messages, each given as a
        ``{feature: value(s)}`` dict.

        Ints become ``int64_list``, other numbers ``float_list``, str and bytes ``bytes_list``.
        ``options`` are those of ``predict`` without ``output_filter``, plus ``context``.
        """
        return self._run(self._examples, self._calls.classify, model, examples,
                       **options)

    def regress(self, model: str, examples: Sequence[Mapping[str, Any]],
                **options: Unpack[ExamplesOptions]) -> np.ndarray:
        """Runs a regress signature; returns one float32 value per example (see ``classify``)."""
        return self._run(self._examples, self._calls.regress, model, examples,
                       **options)

    def status(self, model: str, version: int | None = None,
               **options: Unpack[CallOptions]) -> list[ModelVersionStatus]:
        """Every tracked version of ``model`` (or just ``version``), highest first."""
        return self._run(self._status, model, version, **options)

    def metadata(self, model: str, **options: Unpack[VersionOptions]) -> ModelMetadata:
        """The signatures of the version that answers (the latest unless one is named)."""
        return self._run(self._metadata, model, **options)

    def list_models(self, **options: Unpack[CallOptions]) -> list[ModelListing]:
        """Every model the server is configured with, its versions and labels.

        Raises:
            ServingClientError: UNIMPLEMENTED on gRPC (TensorFlow Serving's API has no list);
                INVALID_ARGUMENT ("Missing model name in request.") from a TensorFlow
                Serving binary, whose REST API has none either.
        """
        return self._run(self._list_models, **options)

    def reload_config(self, config: Any, **options: Unpack[CallOptions]) -> None:
        """Replaces the server's model config (``ModelService/HandleReloadConfigRequest``).

        Args:
            config: a ``ModelServerConfig`` or its text format, as in ``models.config``.

        Raises:
            ServingClientError: UNIMPLEMENTED on REST (TensorFlow Serving's REST API has no
                such endpoint); the server's error when it refuses the config.
        """
        return self._run(self._reload_config, config, **options)


class AsyncApi(ClientCore):
    """The same API as ``SyncApi``, every method a coroutine; use it inside one event loop."""

    async def _attempt(self, call: Call[T], timeout: float) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        """Closes the connections."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self, plan: Any, *args: Any, **options: Any) -> Any:
        steps, deadline = self._start(plan, args, options)
        answer = None
        while True:
            try:
                call = steps.send(answer)
            except StopIteration as done:
                return done.value
            answer = await call_with_retries_async(functools.partial(self._attempt, call),
                                                   self.retry, deadline, call.model)

    async def predict(self, model: str, inputs: Inputs, **options: Unpack[PredictOptions]
                      ) -> dict[str, np.ndarray]:
        """``SyncApi.predict``, awaited."""
        return await self._run(self._predict, model, inputs, **options)

    async def classify(self, model: str, examples: Sequence[Mapping[str, Any]],
                       **options: Unpack[ExamplesOptions]) -> ClassifyResult:
        """``SyncApi.classify``, awaited."""
        return await self._run(self._examples, self._calls.classify, model, examples,
                             **options)

    async def regress(self, model: str, examples: Sequence[Mapping[str, Any]],
                      **options: Unpack[ExamplesOptions]) -> np.ndarray:
        """``SyncApi.regress``, awaited."""
        return await self._run(self._examples, self._calls.regress, model, examples,
                             **options)

    async def status(self, model: str, version: int | None = None,
                     **options: Unpack[CallOptions]) -> list[ModelVersionStatus]:
        """``SyncApi.status``, awaited."""
        return await self._run(self._status, model, version, **options)

    async def metadata(self, model: str, **options: Unpack[VersionOptions]) -> ModelMetadata:
        """``SyncApi.metadata``, awaited."""
        return await self._run(self._metadata, model, **options)

    async def list_models(self, **options: Unpack[CallOptions]) -> list[ModelListing]:
        """``SyncApi.list_models``, awaited."""
        return await self._run(self._list_models, **options)

    async def reload_config(self, config: Any, **options: Unpack[CallOptions]) -> None:
        """``SyncApi.reload_config``, awaited."""
        return await self._run(self._reload_config, config, **options)
