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


#: Characters of a body that is not Binance's `{code, msg}` kept in an error's msg at most.
OTHER_TEXT_LIMIT = 1000


def _code_and_msg(response: httpx.Response, secrets: Iterable[str]) -> tuple[int | None, str]:
    """Binance's `{code, msg}` body via the generated model, or for any other body the reason phrase
    and what the body says (see `_other_text`).

    The msg is kept as Binance sent it but for secrets (a gateway may echo the request's headers);
    escaping and bounding it for printing is the exception's `__str__`'s job.
    """
    try:
        value: object = json.loads(response.content)
    except (ValueError, RecursionError):
        value = None
    try:
        body = BinanceError.from_dict(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        body = None
    if body is None or not isinstance(body.code, int) or not isinstance(body.msg, str):
        return None, _other_text(response, value, secrets)
    return body.code, scrub(body.msg, secrets)


def _other_text(response: httpx.Response, value: object, secrets: Iterable[str]) -> str:
    """The reason phrase, and the text of an answer that is not Binance's `{code, msg}` when it says
    more: a JSON object's `msg` (the simulator's 404 names what it serves) or a plain-text body,
    whitespace folded, scrubbed of secrets and then cut to OTHER_TEXT_LIMIT (scrubbing finds a
    secret whole: a cut first could leave a piece of one). Not an HTML page (a proxy's), which says
    no more than its status. `value`: the body as JSON, None where it is none. The body is at most
    MAX_BODY_BYTES (the transport's cap)."""
    reason = scrub(response.reason_phrase or "error", secrets)
    content_type = response.headers.get("Content-Type", "")
    text = ""
    if "json" in content_type:
        if isinstance(value, dict) and isinstance(value.get("msg"), str):
            text = value["msg"]
    elif content_type.startswith("text/plain"):
        text = response.content.decode("utf-8", "replace")
    text = scrub(" ".join(text.split()), secrets)[:OTHER_TEXT_LIMIT]
    return f"{reason}: {text}" if text else reason


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
