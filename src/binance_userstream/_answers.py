"""Turning Binance's error answers into the exceptions of `errors`, for every operation alike."""

from __future__ import annotations

import json

import httpx
from binance_userstream_client.models import BinanceError

from binance_userstream._gate import DEFAULT_BAN_SECONDS
from binance_userstream._policy import retry_after
from binance_userstream._secrets import scrub
from binance_userstream.errors import (
    RETIREMENT_NOTICE,
    AuthenticationError,
    BinanceAPIError,
    EndpointRetiredError,
    IPBannedError,
    ListenKeyNotFoundError,
    RateLimitedError,
    ServerError,
)

#: Binance error codes with a class of their own (binance-facts.md, Errors).
_BY_CODE: dict[int, type[BinanceAPIError]] = {
    -1125: ListenKeyNotFoundError,
    -2014: AuthenticationError,
    -2015: AuthenticationError,
    -1002: AuthenticationError,
}


def _code_and_msg(response: httpx.Response) -> tuple[int | None, str]:
    """Binance's `{code, msg}` body via the generated model, or the reason phrase for any other body."""
    try:
        body = BinanceError.from_dict(json.loads(response.content))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, response.reason_phrase or "error"
    if not isinstance(body.code, int) or not isinstance(body.msg, str):
        return None, response.reason_phrase or "error"
    return body.code, scrub(body.msg)


def error_for(response: httpx.Response) -> BinanceAPIError:
    """The exception for an error answer (status >= 400) whose body has been read."""
    status = response.status_code
    operation = f"{response.request.method} {response.request.url.path}"
    if status == 410:
        # Production's front proxy answers with HTML since 2026-02-20: whatever the body, say why.
        return EndpointRetiredError(status, None, f"{operation}: {RETIREMENT_NOTICE}")
    code, msg = _code_and_msg(response)
    msg = f"{operation}: {msg}"
    if status == 418:
        return IPBannedError(status, code, msg, retry_after(response.headers) or DEFAULT_BAN_SECONDS)
    if status == 429:
        return RateLimitedError(status, code, msg, retry_after(response.headers))
    if status >= 500:
        return ServerError(status, code, msg)
    if status == 401:
        return AuthenticationError(status, code, msg)
    cls = _BY_CODE.get(code, BinanceAPIError) if code is not None else BinanceAPIError
    return cls(status, code, msg)
