"""RetryPolicy: how hard to try, and which answers are worth another try.

Every operation here is idempotent in effect (a repeated create returns the same key, a repeated
keepalive extends it again, a repeated close answers -1125), so connection failures, 429 and 5XX
are retried; 418, 410 and every other 4XX are not.
"""

from __future__ import annotations

import email.utils
import time
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
)


def is_retryable_status(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


def retry_after(headers: httpx.Headers) -> float | None:
    """The `Retry-After` header in seconds (Binance sends seconds; an HTTP date is accepted too)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@frozen
class RetryPolicy:
    """Attempts, full-jitter exponential backoff, and an overall deadline for one call.

    The n-th wait is uniform in [0, min(backoff_cap, backoff_base * 2**(n-1))] seconds, or the
    server's Retry-After when it sent one. A wait that would pass `deadline` (seconds since the
    first attempt) is not waited: the call fails at once with the last answer.
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
