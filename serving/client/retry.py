"""Deadlines and retries shared by the four clients.

Every call has a deadline that spans all its attempts, so ``timeout`` bounds the whole call,
backoff sleeps included. Only UNAVAILABLE is retried: on both wires it means the request did
not run (connection refused or reset, HTTP 503 / 502, a full batch queue), so trying again is
safe for every TensorFlow Serving API, while INVALID_ARGUMENT, NOT_FOUND and the rest would
fail the same way again. DEADLINE_EXCEEDED is not retried either: the budget is spent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from tf_serving_platform.serving.client.errors import ServingClientError

__all__ = ["Deadline", "RetryPolicy", "Retrying", "call_with_retries", "call_with_retries_async"]

log = logging.getLogger("serving.client")
T = TypeVar("T")
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS's "Exponential Backoff and Jitter").

    Retry ``n`` (1-based) sleeps a uniform random time in ``[0, min(max_backoff_s,
    initial_backoff_s * multiplier ** (n - 1))]``: clients that failed together do not retry
    together. The call's deadline bounds the total time; ``max_attempts`` bounds the attempts.

    Attributes:
        max_attempts: attempts in all, the first included; 1 turns retries off.
        initial_backoff_s: the cap of the first sleep.
        max_backoff_s: the cap no sleep exceeds.
        multiplier: how much the cap grows per retry.

    Example:
        >>> RestClient(url, retry=RetryPolicy(max_attempts=10, max_backoff_s=1.0))
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1. Received: {self.max_attempts}")
        if not 0 < self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("expected 0 < initial_backoff_s <= max_backoff_s. Received: "
                             f"{self.initial_backoff_s}, {self.max_backoff_s}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1. Received: {self.multiplier}")

    def backoff_cap(self, retry: int) -> float:
        """The longest sleep before retry number ``retry`` (1-based)."""
        return min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retry - 1))


class Deadline:
    """The point in time a call (all its attempts) must finish by."""

    def __init__(self, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout must be > 0 seconds. Received: timeout={timeout_s}")
        self.timeout_s = timeout_s
        self.expires_at = time.monotonic() + timeout_s

    def remaining(self, model: str = "") -> float:
        """Seconds left, for the next attempt's own timeout.

        Raises:
            ServingClientError: DEADLINE_EXCEEDED when none are left.
        """
        left = self.expires_at - time.monotonic()
        if left <= 0:
            raise ServingClientError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                     f"Deadline of {self.timeout_s:g} s exceeded", model)
        return left


class Retrying:
    """The retry state of one call: which attempt this is and how long to sleep next."""

    def __init__(self, policy: RetryPolicy, deadline: Deadline, model: str) -> None:
        self.policy, self.deadline, self.model = policy, deadline, model
        self.attempt = 1
        self.started = time.monotonic()

    def remaining(self) -> float:
        return self.deadline.remaining(self.model)

    def delay_after(self, error: ServingClientError) -> float:
        """The sleep before the next attempt after ``error``.

        Raises:
            ServingClientError: ``error`` itself when it is not retryable; when the attempts are
                used up or the sleep would end past the deadline, ``error`` with how many
                attempts were made in how long.
        """
        if error.code not in RETRYABLE or self.policy.max_attempts == 1:
            raise error
        delay = random.uniform(0.0, self.policy.backoff_cap(self.attempt))
        if (self.attempt >= self.policy.max_attempts
                or time.monotonic() + delay >= self.deadline.expires_at):
            spent = time.monotonic() - self.started
            attempts = f"{self.attempt} attempt{'s' if self.attempt > 1 else ''}"
            raise ServingClientError(error.code, f"{error.message} (gave up after {attempts} "
                                     f"in {spent:.2f} s)", error.model)
        log.info("retrying %s in %.3f s (attempt %d of %d failed): %s", self.model or "call",
                 delay, self.attempt, self.policy.max_attempts, error.message)
        self.attempt += 1
        return delay


def call_with_retries(attempt: Callable[[float], T], policy: RetryPolicy,
                      deadline: Deadline, model: str) -> T:
    """Calls ``attempt(seconds_left)`` until it returns, retrying UNAVAILABLE per ``policy``."""
    state = Retrying(policy, deadline, model)
    while True:
        try:
            return attempt(state.remaining())
        except ServingClientError as e:
            delay = state.delay_after(e)
        time.sleep(delay)


async def call_with_retries_async(attempt: Callable[[float], Awaitable[T]], policy: RetryPolicy,
                                  deadline: Deadline, model: str) -> T:
    """``call_with_retries`` for coroutines."""
    state = Retrying(policy, deadline, model)
    while True:
        try:
            return await attempt(state.remaining())
        except ServingClientError as e:
            delay = state.delay_after(e)
        await asyncio.sleep(delay)
