"""The WebSocket API's user-data subscription on one connection, without I/O.

Spot's and margin's events come from Binance's WebSocket API (`/ws-api/v3`) once a request has
subscribed the connection: `userDataStream.subscribe.signature` (spot: the API key, a timestamp and
a signature made afresh for every connection, since a replayed frame is refused once its
recvWindow has passed) or `userDataStream.subscribe.listenToken` (margin: a token minted by USER_STREAM
REST, presented again with a new token before it expires). A `Subscriber` says what to send on a
connection and what each answer means; the driver sends, reads and feeds it. It reads no clock:
the wall time of each answer is passed in.

The answers' rules (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-api and
errors.md): `-1021` (timestamp outside the recvWindow) asks the server's time once (`time`),
resyncs and subscribes again (a server time more than an hour off fails the connection instead:
see `_signing.MAX_CLOCK_OFFSET_MS`), and a second `-1021` is a TimestampError; `-1022` (bad signature)
and the API key's refusals (-2014, -2015, 401) are fatal; anything else (-1209 an invalid token,
-2042 subscription ids used up, 429, 5XX) fails the connection, which the stream replaces after
its backoff.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

from attrs import field, frozen

from binance_userstream._answers import error_from
from binance_userstream._gate import DEFAULT_BAN_SECONDS
from binance_userstream._markets import Subscription
from binance_userstream._policy import MAX_RETRY_AFTER
from binance_userstream._secrets import scrub
from binance_userstream._signing import ClockOffsetError
from binance_userstream.errors import AuthenticationError, BinanceAPIError, IPBannedError, RateLimitedError

#: The recvWindow sent with a signed subscription, in milliseconds (Binance's default is 5000).
RECV_WINDOW = 5000

_SUBSCRIBE: dict[Subscription, str] = {
    "signature": "userDataStream.subscribe.signature",
    "listen_token": "userDataStream.subscribe.listenToken",
}


class Signing(Protocol):
    """What a Subscriber needs of the client's credentials (`_signing.Credentials`)."""

    def sign_ws(self, params: Mapping[str, object], *, recv_window: float | None = None) -> dict[str, object]:
        """`params` plus apiKey, timestamp, recvWindow and their signature."""
        ...

    def resync(self, server_time_ms: int, sent_at_ms: float, received_at_ms: float) -> float:
        """Learn the clock offset from a server time read between the two local times; returns it.
        An offset too large to trust is a ClockOffsetError, and not learned."""
        ...


@frozen
class Send:
    """Send this text frame on the connection (it may hold the API key, a signature or a
    listenToken: kept out of the repr)."""

    text: str = field(repr=False)


@frozen
class Subscribed:
    """The connection receives the account's events now (`subscription_id` in their envelope)."""

    subscription_id: int


@frozen
class Renewed:
    """A new listenToken extended the subscription: no gap."""

    subscription_id: int


@frozen
class RenewFailed:
    """The new listenToken was not taken: the old one serves until it expires; replace the connection."""

    detail: str


@frozen
class Resynced:
    """The server's time was read after a -1021: the offset now applied to timestamps, in ms."""

    offset_ms: float


@frozen
class Refused:
    """A refusal no new connection can mend (the signature, the API key, the clock): the stream ends."""

    error: BinanceAPIError


@frozen
class Failed:
    """The subscription failed in a way a new connection may mend: close this one, retry later,
    and not sooner than `retry_after` seconds when the server said so (a 429 or 418; a 418 that
    says not: Binance's shortest ban, DEFAULT_BAN_SECONDS)."""

    detail: str
    retry_after: float | None = None
    banned: bool | None = None
    """Whether the server limited (False: a 429) or banned (True: a 418) this IP, for the backoff
    gate that REST calls to the host's group share; None for any other failure."""


Outcome = Send | Subscribed | Renewed | RenewFailed | Resynced | Refused | Failed

#: Refusals that a new connection would meet again.
_FATAL = (AuthenticationError,)

_Purpose = Literal["subscribe", "renew", "time", "unsubscribe"]


def is_event_frame(text: str) -> bool:
    """True for a frame carrying an event (`{"subscriptionId": .., "event": ..}` or a connection
    event `{"event": ..}`), False for an answer to a request (`{"id": .., "status": ..}`).

    Binance sends events with their envelope first, so the common case costs a prefix test; a
    frame shaped otherwise is parsed to tell.
    """
    if text.startswith(('{"subscriptionId"', '{"event"')):
        return True
    if text.startswith('{"id"'):
        return False
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return True  # not an answer: the stream delivers it as an UnknownEvent
    return not (isinstance(payload, dict) and "id" in payload and "status" in payload)


class Subscriber:
    """One connection's subscription: what to send, and what each answer means."""

    def __init__(
        self,
        how: Subscription,
        signing: Signing | None,
        *,
        recv_window: float | None = RECV_WINDOW,
        ids: Iterator[int] | None = None,
    ) -> None:
        """`ids`: the request ids to use (a connection that carries many subscriptions numbers all
        their requests from one count, so that each answer names one request)."""
        if how not in _SUBSCRIBE:
            raise ValueError(f"a {how!r} stream does not subscribe on the WebSocket API")
        if how == "signature" and signing is None:
            raise ValueError("a signed subscription needs credentials (api_secret= or private_key=)")
        self.how = how
        self._signing = signing
        self._recv_window = recv_window
        self._ids = itertools.count(1) if ids is None else ids
        self._pending: dict[int, tuple[_Purpose, float]] = {}
        self._resynced = False
        self.subscription_id: int | None = None

    def __repr__(self) -> str:
        return f"Subscriber(how={self.how!r}, subscription_id={self.subscription_id!r})"

    # -- what to send ------------------------------------------------------------------------------

    def subscribe(self, now_ms: float, token: str | None = None) -> Send:
        """The subscription request: signed afresh, or with `token` (a listenToken)."""
        if self.how == "listen_token":
            if token is None:
                raise ValueError("a listenToken subscription needs a token")
            return self._request("subscribe", now_ms, {"listenToken": token})
        assert self._signing is not None
        return self._request("subscribe", now_ms, self._signing.sign_ws({}, recv_window=self._recv_window))

    def renew(self, now_ms: float, token: str) -> Send:
        """Present a new listenToken on the same connection: the subscription goes on, extended."""
        return self._request("renew", now_ms, {"listenToken": token})

    def unsubscribe(self, now_ms: float) -> Send:
        """End the subscription (what leaving the stream sends before closing)."""
        params = {} if self.subscription_id is None else {"subscriptionId": self.subscription_id}
        return self._request("unsubscribe", now_ms, params)

    def _request(self, purpose: _Purpose, now_ms: float, params: Mapping[str, object]) -> Send:
        request_id = next(self._ids)
        self._pending[request_id] = (purpose, now_ms)
        body: dict[str, Any] = {"id": request_id, "method": self._method(purpose)}
        if params:
            body["params"] = dict(params)
        return Send(json.dumps(body, separators=(",", ":")))

    def _method(self, purpose: _Purpose) -> str:
        if purpose in ("subscribe", "renew"):
            return _SUBSCRIBE[self.how]
        return "time" if purpose == "time" else "userDataStream.unsubscribe"

    # -- what an answer means ----------------------------------------------------------------------

    def answer(self, text: str, now_ms: float) -> list[Outcome]:
        """The outcomes of one answer frame (none for an answer to nothing asked)."""
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            return []
        if not isinstance(payload, dict):
            return []
        return self.answered(payload, now_ms)

    def asks(self, request_id: object) -> bool:
        """Whether `request_id` names a request of this subscriber still unanswered."""
        return isinstance(request_id, int) and request_id in self._pending

    def answered(self, payload: Mapping[str, object], now_ms: float) -> list[Outcome]:
        """The outcomes of one answer, already parsed (see `answer`)."""
        request_id = payload.get("id")
        if not isinstance(request_id, int) or request_id not in self._pending:
            return []
        purpose, sent_at = self._pending.pop(request_id)
        status = payload.get("status")
        result = payload.get("result")
        if status == 200:
            return self._succeeded(purpose, result, sent_at, now_ms)
        return self._failed(purpose, _error(payload, self._method(purpose)), now_ms)

    def _succeeded(self, purpose: _Purpose, result: object, sent_at: float, now_ms: float) -> list[Outcome]:
        if purpose == "time":
            server_time = result.get("serverTime") if isinstance(result, dict) else None
            if not isinstance(server_time, int) or isinstance(server_time, bool) or self._signing is None:
                return [Failed("the server's time answer had no serverTime")]
            try:
                offset = self._signing.resync(server_time, sent_at, now_ms)
            except ClockOffsetError as refused:
                return [Failed(str(refused))]
            return [Resynced(offset), self.subscribe(now_ms)]
        if purpose == "unsubscribe":
            self.subscription_id = None
            return []
        subscription = result.get("subscriptionId") if isinstance(result, dict) else None
        if not isinstance(subscription, int) or isinstance(subscription, bool):
            return [Failed(f"{self._method(purpose)}: the answer had no subscriptionId")]
        self.subscription_id = subscription
        return [Renewed(subscription) if purpose == "renew" else Subscribed(subscription)]

    def _failed(self, purpose: _Purpose, error: BinanceAPIError, now_ms: float) -> list[Outcome]:
        if purpose == "unsubscribe":
            return []
        if isinstance(error, _FATAL):
            return [Refused(error)]
        if purpose == "renew":
            return [RenewFailed(str(error))]
        if error.code == -1021 and self.how == "signature" and purpose == "subscribe":
            if self._resynced:
                return [Refused(error)]  # a TimestampError: the resync did not help
            self._resynced = True
            return [self._request("time", now_ms, {})]
        limited = isinstance(error, IPBannedError | RateLimitedError)
        banned = isinstance(error, IPBannedError) if limited else None
        wait = getattr(error, "retry_after", None)
        if banned and wait is None:  # a ban that says not when it ends: Binance's shortest, as for REST
            wait = DEFAULT_BAN_SECONDS
        return [Failed(str(error), wait, banned)]


def _error(payload: Mapping[str, object], operation: str) -> BinanceAPIError:
    """The typed error of a WebSocket API error answer (a key-like token in its text redacted). A
    429 or 418 carries its wait: `error.data.retryAfter` (when the ban ends, ms) less `serverTime`."""
    status = payload.get("status")
    body = payload.get("error")
    code = body.get("code") if isinstance(body, dict) else None
    msg = body.get("msg") if isinstance(body, dict) else None
    status = status if isinstance(status, int) and not isinstance(status, bool) else 0
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    text = scrub(msg) if isinstance(msg, str) else "error"
    if status in (418, 429):
        data = body.get("data") if isinstance(body, dict) else None
        until = data.get("retryAfter") if isinstance(data, dict) else None
        now = data.get("serverTime") if isinstance(data, dict) else None
        cls = IPBannedError if status == 418 else RateLimitedError
        return cls(status, code, text, _wait(until, now), operation=operation)
    return error_from(status, code, text, operation)


def _wait(until: object, now: object) -> float | None:
    """Seconds from `now` to `until` (both ms), within [0, MAX_RETRY_AFTER]; None without two numbers.

    Any JSON number is taken: an integer too large for a float (10**400) or an infinity is further
    away than the cap, so it is the cap, as a `Retry-After: 1e400` is for REST."""
    until, now = _ms(until), _ms(now)
    if until is None or now is None:
        return None
    try:
        ms = until - now
    except OverflowError:  # an integer beyond a float's range, against a float
        ms = math.inf if until > now else -math.inf
    if ms != ms:  # infinity less infinity (math.isnan would overflow on a large integer)
        return None
    return float(min(max(0, ms), MAX_RETRY_AFTER * 1000)) / 1000


def _ms(value: object) -> int | float | None:
    """A JSON number (not a boolean, not NaN), or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return value
    return None
