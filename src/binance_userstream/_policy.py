"""RetryPolicy: how hard to try, and which answers are worth another try.

Every operation here is idempotent in effect (a repeated create returns the same key, a repeated
keepalive extends it again, a repeated close answers -1125), so connection failures, 429 and 5XX
are retried; 418, 410 and every other 4XX are not.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx
import tenacity
from attrs import field, frozen, validators

#: httpx failures after which the request may be sent again. Others (an unsupported scheme, a
#: request httpx itself refused to send) would fail again the same way.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,  # a body that does not decode (bad gzip): a damaged answer, like a cut one
)

#: The longest wait a Retry-After can impose: Binance's longest IP ban, 3 days ("bans scale from
#: 2 minutes to 3 days": https://github.com/binance/binance-spot-api-docs, rest-api.md, LIMITS).
#: A longer or infinite value is taken as this; without a cap a `Retry-After: 1e12` (or a far HTTP
#: date) would close the host for every client of the process for good.
MAX_RETRY_AFTER = 3 * 24 * 3600.0


def is_retryable_status(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The `Retry-After` header in seconds, at most MAX_RETRY_AFTER (3 days, Binance's longest ban).
    `headers`: httpx's, or websockets' for a refused handshake (both look names up case-blind).

    Binance sends seconds; an HTTP date is accepted too. None when there is no usable wait: no
    header, garbage, NaN, or a wait of zero or less (a date in the past): the caller then backs off
    as it would without the header (the policy's jittered backoff), rather than retrying at once.
    """
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    if math.isnan(seconds) or seconds <= 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


@frozen
class RetryPolicy:
    """Attempts, full-jitter exponential backoff, and an overall deadline for one call.

    The n-th wait is uniform in [0, min(backoff_cap, backoff_base * 2**(n-1))] seconds, or the
    server's Retry-After when it sent a positive one (capped at 3 days). `deadline` bounds the
    whole call, attempts and their answers' bodies included: each attempt's timeouts are cut to
    the time left, and a wait that would pass the deadline is not waited: the call fails at once
    with the last answer.
    """

    attempts: int = field(default=5, validator=validators.ge(1))
    backoff_base: float = field(default=0.5, validator=validators.ge(0))
    backoff_cap: float = field(default=8.0, validator=validators.ge(0))
    deadline: float = field(default=30.0, validator=validators.gt(0))

    @classmethod
    def off(cls) -> RetryPolicy:
        """One attempt, no retries."""
        return cls(attempts=1)

    def tenacity_kwargs(self) -> dict[str, Any]:
        """The arguments of a tenacity.Retrying (or AsyncRetrying) that enforces this policy."""
        jitter = tenacity.wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_cap)

        def wait(state: tenacity.RetryCallState) -> float:
            outcome = state.outcome
            if outcome is not None and not outcome.failed:
                server_says = retry_after(outcome.result().headers)
                if server_says is not None:
                    return server_says
            return float(jitter(state))

        return {
            "stop": tenacity.stop_after_attempt(self.attempts) | tenacity.stop_before_delay(self.deadline),
            "wait": wait,
            "retry": (
                tenacity.retry_if_exception_type(RETRYABLE_ERRORS)
                | tenacity.retry_if_result(lambda r: is_retryable_status(r.status_code))
            ),
            # Out of attempts or time: hand back the last answer, or raise the last error.
            "retry_error_callback": lambda state: state.outcome.result(),
        }
