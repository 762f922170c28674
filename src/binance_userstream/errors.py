"""The exceptions the client raises: one class per thing a caller may want to handle differently.

Every message is safe to log: it names the operation and Binance's code, never the API key or a
full listenKey, and server text in it is scrubbed, control characters escaped, length bounded.
"""

from __future__ import annotations

from binance_userstream._secrets import printable

__all__ = [
    "AuthenticationError",
    "BinanceAPIError",
    "EndpointRetiredError",
    "IPBannedError",
    "ListenKeyNotFoundError",
    "MalformedAnswerError",
    "NetworkError",
    "RateLimitedError",
    "ServerError",
    "SignatureError",
    "SignerMissingError",
    "TimestampError",
    "UserStreamError",
    "WeightBudgetError",
]

from binance_userstream._markets import live_markets, ws_api_markets

RETIREMENT_NOTICE = (
    "Binance retired spot and margin listenKeys (/api/v3/userDataStream, /sapi/v1/userDataStream) on "
    "2026-02-20 07:00 UTC. Derivatives listenKeys are live: "
    + live_markets()
    + ". Spot's and margin's user data come from the WebSocket API (wss://ws-api.binance.com:443/ws-api/v3): "
    "events() on "
    + ws_api_markets()
    + " subscribes there, with userDataStream.subscribe.signature (spot: pass api_secret= or "
    "private_key=) or a listenToken from POST /sapi/v1/userListenToken and "
    "userDataStream.subscribe.listenToken (margin)"
)


def _then(message: str, advice: str) -> str:
    """`message`, then `advice` as the next sentence: one period between them, not two when
    Binance's message ends with its own ("Signature for this request is not valid.")."""
    return f"{message.rstrip('.')}. {advice}"


class UserStreamError(Exception):
    """Base class of every error this package raises."""


class BinanceAPIError(UserStreamError):
    """Binance answered with an error: `status_code`, and Binance's `code` and `msg` when it sent them.

    A 3XX is one too: redirects are never followed (the API key would go wherever they point), and
    the error names only the Location's origin.

    `msg` is Binance's `msg` as sent (only a secret in it is redacted), or the HTTP reason phrase
    for an answer that is not Binance's `{code, msg}`; `operation` ("PUT /api/v3/userDataStream")
    is the request it answered, shown by `str(error)` with the message made safe to print.
    """

    def __init__(self, status_code: int, code: int | None, msg: str, *, operation: str | None = None) -> None:
        self.status_code = status_code
        self.code = code
        self.msg = msg
        self.operation = operation
        super().__init__(status_code, code, msg)

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        code = f", code {self.code}" if self.code is not None else ""
        return f"{where}HTTP {self.status_code}{code}: {printable(self.msg)}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
            f"msg={printable(self.msg)!r})"
        )


class ListenKeyNotFoundError(BinanceAPIError):
    """-1125: the listenKey does not exist (never created, expired after 60 minutes, or closed)."""


class AuthenticationError(BinanceAPIError):
    """The API key was refused: -2014 (malformed), -2015 (unknown, IP or permission), or HTTP 401."""


class SignatureError(AuthenticationError):
    """-1022: Binance computed another signature for the request than the one it carries."""

    def __str__(self) -> str:
        return _then(
            super().__str__(),
            "Check that the secret (api_secret=) or private key (private_key=) is the one of this API "
            "key, that the key type matches (HMAC, RSA or Ed25519), and that the local clock is right",
        )


class TimestampError(BinanceAPIError):
    """-1021: the request's `timestamp` was outside `recvWindow` or ahead of Binance's clock.

    A signed REST call that meets it learns the offset from the answer's `Date` and is sent once
    more; this is raised when that did not help (or the answer had no `Date`).
    """

    def __str__(self) -> str:
        return _then(super().__str__(), "The local clock differs from Binance's: synchronise it (NTP)")


class SignerMissingError(UserStreamError, ValueError):
    """A SIGNED operation was called on a client that has neither a secret nor a private key.

    Raised before anything is sent. A ValueError too: the client's configuration is incomplete.
    """


class _RetryAfterError(BinanceAPIError):
    def __init__(
        self,
        status_code: int,
        code: int | None,
        msg: str,
        retry_after: float | None,
        *,
        operation: str | None = None,
    ) -> None:
        super().__init__(status_code, code, msg, operation=operation)
        #: Seconds to wait before sending anything to this host again, when known.
        self.retry_after = retry_after

    def __str__(self) -> str:
        wait = f" (retry after {self.retry_after:g} s)" if self.retry_after is not None else ""
        return super().__str__() + wait


class RateLimitedError(_RetryAfterError):
    """HTTP 429: a rate limit was broken and the wait (`retry_after`) would pass the retry deadline."""


class WeightBudgetError(RateLimitedError):
    """The call's request weight would cross its host's limit for this minute (see WeightBudget),
    and waiting for the next minute (`retry_after`) would pass the call's deadline. Nothing was sent."""


class IPBannedError(_RetryAfterError):
    """HTTP 418: the IP is banned for `retry_after` seconds; nothing is sent to that host meanwhile."""


class EndpointRetiredError(BinanceAPIError):
    """HTTP 410: the endpoint is gone (spot user data streams were retired on 2026-02-20). Never retried.

    `msg` is the answer's own text (production sends an HTML page, so its reason phrase, "Gone");
    `str(error)` adds what replaces the endpoint, whole: it is this package's text, not the server's.
    """

    def __str__(self) -> str:
        return _then(super().__str__(), RETIREMENT_NOTICE)


class ServerError(BinanceAPIError):
    """HTTP 5XX, still failing after the retries: the outcome on Binance's side is unknown."""


class MalformedAnswerError(UserStreamError):
    """The server answered with something no client should use: a body over the size cap (1 MiB
    decoded), a success body the spec does not describe, or a listenKey that is not letters and
    digits (at most 256), which would change the stream URL it stands in. Never retried: a server
    that sends it once will likely send it again."""


class NetworkError(UserStreamError):
    """The request could not be sent or answered (connect, read or timeout failures), after the retries."""
