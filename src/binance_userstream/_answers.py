"""Turning Binance's error answers into the exceptions of `errors`, for every operation alike."""

from __future__ import annotations

import json
from collections.abc import Iterable

import httpx
from binance_userstream_client.models import BinanceError

from binance_userstream._gate import DEFAULT_BAN_SECONDS
from binance_userstream._policy import retry_after
from binance_userstream._secrets import scrub
from binance_userstream.errors import (
    AuthenticationError,
    BinanceAPIError,
    EndpointRetiredError,
    IPBannedError,
    ListenKeyNotFoundError,
    RateLimitedError,
    ServerError,
    SignatureError,
    TimestampError,
)

#: Binance error codes with a class of their own (https://github.com/binance/binance-spot-api-docs,
#: errors.md).
_BY_CODE: dict[int, type[BinanceAPIError]] = {
    -1125: ListenKeyNotFoundError,
    -2014: AuthenticationError,
    -2015: AuthenticationError,
    -1002: AuthenticationError,
    -1022: SignatureError,
    -1021: TimestampError,
}


def _code_and_msg(response: httpx.Response, secrets: Iterable[str]) -> tuple[int | None, str]:
    """Binance's `{code, msg}` body via the generated model, or the reason phrase for any other body.

    The msg is kept as Binance sent it but for secrets (a gateway may echo the request's headers);
    escaping and bounding it for printing is the exception's `__str__`'s job.
    """
    try:
        body = BinanceError.from_dict(json.loads(response.content))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        body = None
    if body is None or not isinstance(body.code, int) or not isinstance(body.msg, str):
        return None, scrub(response.reason_phrase or "error", secrets)
    return body.code, scrub(body.msg, secrets)


def error_code(response: httpx.Response) -> int | None:
    """Binance's error code in an answer whose body has been read, or None."""
    return _code_and_msg(response, ())[0]


def error_for(response: httpx.Response, operation: str, secrets: Iterable[str] = ()) -> BinanceAPIError:
    """The exception for an error answer (status >= 400) whose body has been read.

    `operation` ("DELETE /api/v3/userDataStream") goes into `str(error)`; `secrets` (the API key,
    the request's listenKey) are redacted from whatever server text the error quotes.
    """
    status = response.status_code
    code, msg = _code_and_msg(response, secrets)
    if status == 410:
        # Production's front proxy answers with HTML since 2026-02-20: whatever the body, say why.
        return EndpointRetiredError(status, code, msg, operation=operation)
    if status == 418:
        wait = retry_after(response.headers) or DEFAULT_BAN_SECONDS
        return IPBannedError(status, code, msg, wait, operation=operation)
    if status == 429:
        return RateLimitedError(status, code, msg, retry_after(response.headers), operation=operation)
    if status >= 500:
        return ServerError(status, code, msg, operation=operation)
    return error_from(status, code, msg, operation)


def error_from(status: int, code: int | None, msg: str, operation: str) -> BinanceAPIError:
    """The exception for a status and Binance's code and msg that carry no header to read: the
    WebSocket API's error answers, and the REST answers with no wait or retirement to report."""
    if status == 401:
        unauthorized = SignatureError if code == -1022 else AuthenticationError
        return unauthorized(status, code, msg, operation=operation)
    cls = _BY_CODE.get(code, BinanceAPIError) if code is not None else BinanceAPIError
    return cls(status, code, msg, operation=operation)
