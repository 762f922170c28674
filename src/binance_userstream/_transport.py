"""The HTTP layer: httpx transports that apply the retry policy, the backoff gate and weight tracking.

They wrap an ordinary httpx transport, so every request the generated client sends goes through
them, including operations added to the spec later. Retries are tenacity's (full-jitter
exponential wait, attempt and deadline stops, injectable sleep, sync and async alike); the custom
part is small: reading Retry-After into the wait, and the per-host gate of `_gate`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import tenacity

from binance_userstream._answers import error_for
from binance_userstream._gate import DEFAULT_BAN_SECONDS, BackoffGate
from binance_userstream._policy import RETRYABLE_ERRORS, RetryPolicy, is_retryable_status, retry_after
from binance_userstream._secrets import scrub
from binance_userstream.errors import NetworkError

log = logging.getLogger("binance_userstream")

_WEIGHT_PREFIX = b"x-mbx-used-weight-"
_PREFIX_LENGTH = len(_WEIGHT_PREFIX)


class UsedWeight:
    """The last `X-MBX-USED-WEIGHT-<interval>` values seen, by interval ("1M", ...)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def update(self, headers: httpx.Headers) -> None:
        seen = {}
        for name, value in headers.raw:  # raw bytes: no decoding of the headers we skip
            if (
                len(name) > _PREFIX_LENGTH
                and name[:_PREFIX_LENGTH].lower() == _WEIGHT_PREFIX
                and value.isdigit()
            ):
                seen[name[_PREFIX_LENGTH:].decode("ascii").upper()] = int(value)
        if seen:
            with self._lock:
                self._values.update(seen)

    def snapshot(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._values)


class _Layer:
    """What the sync and async transports share: the gate, the weights, the policy, the log lines."""

    def __init__(self, policy: RetryPolicy, gate: BackoffGate, weights: UsedWeight) -> None:
        self.gate = gate
        self.weights = weights
        self.retrying_kwargs: dict[str, Any] = {
            **policy.tenacity_kwargs(),
            "before_sleep": self._before_sleep,
        }

    def before_attempt(self, request: httpx.Request, attempt: int) -> None:
        self.gate.check(request.url.netloc.decode("ascii"), bans_only=attempt > 1)

    def after_response(self, request: httpx.Request, response: httpx.Response, started: float) -> None:
        response.request = request
        self.weights.update(response.headers)
        status = response.status_code
        if status in (418, 429):
            wait = retry_after(response.headers)
            if status == 418 and wait is None:
                wait = DEFAULT_BAN_SECONDS
            if wait is not None:
                self.gate.close(request.url.netloc.decode("ascii"), wait, banned=status == 418)
        log.debug(
            "%s %s answered %d in %.1f ms",
            request.method,
            request.url.path,
            status,
            (time.perf_counter() - started) * 1000,
        )

    def after_error(self, request: httpx.Request, error: Exception) -> None:
        log.debug("%s %s failed: %s", request.method, request.url.path, type(error).__name__)

    @staticmethod
    def _before_sleep(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        assert outcome is not None
        what = (
            type(outcome.exception()).__name__ if outcome.failed else f"HTTP {outcome.result().status_code}"
        )
        log.debug(
            "attempt %d ended in %s; retrying in %.2f s", state.attempt_number, what, state.upcoming_sleep
        )

    @staticmethod
    def started_at(started: float) -> Callable[[tenacity.RetryCallState], None]:
        """A `before` hook that dates the call from its real first attempt.

        Retries start only once the first attempt has failed (so a call that succeeds never pays
        for tenacity); tenacity replays that attempt, and this keeps the deadline honest.
        """

        def before(state: tenacity.RetryCallState) -> None:
            if state.attempt_number == 1:
                state.start_time = started

        return before

    @staticmethod
    def finish(response: httpx.Response) -> httpx.Response:
        """The response, or its typed error (the body was read in the attempt)."""
        if response.status_code >= 400:
            response.close()
            raise error_for(response)
        return response

    @staticmethod
    async def afinish(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            await response.aclose()
            raise error_for(response)
        return response

    @staticmethod
    def network_error(request: httpx.Request, error: Exception, attempts: int) -> NetworkError:
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        detail = scrub(str(error)) or "no detail"
        return NetworkError(f"{request.method} {request.url.path}: {type(error).__name__}{tried}: {detail}")


class RetryingTransport(httpx.BaseTransport):
    """Sends each request through `inner` under the retry policy and the backoff gate."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        policy: RetryPolicy,
        gate: BackoffGate,
        weights: UsedWeight,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._inner = inner
        self._layer = _Layer(policy, gate, weights)
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        layer = self._layer
        started = time.monotonic()
        try:
            first: httpx.Response | BaseException | None = self._attempt(request, 1)
        except RETRYABLE_ERRORS as error:
            first = error
        except httpx.TransportError as error:
            raise layer.network_error(request, error, 1) from error
        if isinstance(first, httpx.Response) and not is_retryable_status(first.status_code):
            return layer.finish(first)  # the common case: no retry machinery at all
        attempts = 1

        def attempt() -> httpx.Response:
            nonlocal attempts, first
            if attempts == 1 and first is not None:
                outcome, first = first, None  # replay attempt 1 to tenacity
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome
            attempts += 1
            return self._attempt(request, attempts)

        retrying = tenacity.Retrying(
            sleep=self._sleep, before=layer.started_at(started), **layer.retrying_kwargs
        )
        try:
            response: httpx.Response = retrying(attempt)
        except httpx.TransportError as error:
            raise layer.network_error(request, error, attempts) from error
        return layer.finish(response)

    def _attempt(self, request: httpx.Request, number: int) -> httpx.Response:
        self._layer.before_attempt(request, number)
        started = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
        except Exception as error:
            self._layer.after_error(request, error)
            raise
        if response.status_code >= 400:
            response.read()  # frees the connection for a retry, keeps the body for the error
        self._layer.after_response(request, response, started)
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncRetryingTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of RetryingTransport."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy,
        gate: BackoffGate,
        weights: UsedWeight,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._layer = _Layer(policy, gate, weights)
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        layer = self._layer
        started = time.monotonic()
        try:
            first: httpx.Response | BaseException | None = await self._attempt(request, 1)
        except RETRYABLE_ERRORS as error:
            first = error
        except httpx.TransportError as error:
            raise layer.network_error(request, error, 1) from error
        if isinstance(first, httpx.Response) and not is_retryable_status(first.status_code):
            return await layer.afinish(first)
        attempts = 1

        async def attempt() -> httpx.Response:
            nonlocal attempts, first
            if attempts == 1 and first is not None:
                outcome, first = first, None
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome
            attempts += 1
            return await self._attempt(request, attempts)

        retrying = tenacity.AsyncRetrying(
            sleep=self._sleep, before=layer.started_at(started), **layer.retrying_kwargs
        )
        try:
            response: httpx.Response = await retrying(attempt)
        except httpx.TransportError as error:
            raise layer.network_error(request, error, attempts) from error
        return await layer.afinish(response)

    async def _attempt(self, request: httpx.Request, number: int) -> httpx.Response:
        self._layer.before_attempt(request, number)
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as error:
            self._layer.after_error(request, error)
            raise
        if response.status_code >= 400:
            await response.aread()
        self._layer.after_response(request, response, started)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
