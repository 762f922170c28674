"""The spot WebSocket API's user-data methods (`/ws-api/v3`): where spot's and margin's events come now.

Binance retired spot's and margin's listenKeys on 2026-02-20; an account's events now come on a
WebSocket API connection, each as `{"subscriptionId": N, "event": {...}}`
(https://github.com/binance/binance-spot-api-docs, web-socket-api.md "User Data Stream requests",
user-data-stream.md). A request is a JSON text frame `{"id", "method", "params"}` (`id` is
mandatory, an INT, a STRING or null, web-socket-api.md "Request format": a request without one is
refused -1102); its answer is
`{"id", "status", "result" | "error": {"code", "msg"}, "rateLimits"}` (`returnRateLimits=false`, in
the URL or the params, leaves `rateLimits` out). Methods served:

- `ping` → `{}`; `time` → `{"serverTime": <ms>}`, the simulator's clock (`wall_time`).
- `userDataStream.subscribe.signature` (apiKey, timestamp, signature, recvWindow?): any key type;
  the signature covers the params but `signature`, sorted, `k=v&...`, not percent-encoded (see
  `_signing`). Answers `{"subscriptionId": N}`, N counting from 0 on each connection.
- `session.logon` (Ed25519 keys only, as Binance documents), then `userDataStream.subscribe` (no
  params); `session.logout` ends the logon subscription; `session.status`; `session.subscriptions`
  → `[{"subscriptionId": 0}, ...]`.
- `userDataStream.unsubscribe` (`subscriptionId`, or none for all) → `{}`, and an
  `eventStreamTerminated` for each subscription it ended. `subscriptionId` is an INT, taken as a
  JSON number or as a string of digits, as production takes it: Binance's own SDK sends every
  param as a string (binance-common 4.7.0's `ws_api_payload` turns ints into str), so it sends
  `"0"`. A string that is no number is refused as Binance refuses such a value (errors.md, -1100).
- `userDataStream.subscribe.listenToken` (listenToken): a margin account's events (cross, or one
  symbol's isolated account), until the token expires: then `eventStreamTerminated`. A new token of
  the same margin account on the same connection extends the subscription (same subscriptionId, the
  new `expirationTime`): how a client renews without a gap. `expirationTime` is in milliseconds
  here; Binance's own example shows a 16-digit (microsecond-looking) value.

One active subscription per account (spot; each margin account: cross, or isolated per symbol) on a
connection (a second is -2035), at most 1000 active and 65,535 over the connection's life (-2042).

Error codes, where Binance documents none for the case (marked *): not JSON or not an object, 400
-1135 "Invalid JSON Request"; `params` not an object, -1135* (measured on Binance.US); an unknown
method, 400 -1020* "This operation is not supported."; a missing parameter -1102; an API key that
is not 1 to 128 letters and digits 401 -2014, one the simulator does not accept (or whose
credential it does not hold) 401 -2015, by the same rule as REST (`Exchange.key_account`); a bad
signature 400 -1022; a timestamp outside recvWindow, or 1 s ahead, 400 -1021; `session.logon`
with an HMAC or RSA key, 400 -2028* (measured by a third party); `userDataStream.subscribe` without
a logon, 401 -1193* (measured); an unknown subscriptionId 400 -2036, one that is no number 400
-1100; an invalid or expired listenToken 400 -1209* (its message here: "Invalid listenToken.").

The connections themselves are the streams' (`_streams`): pings every 20 s with a pong due within a
minute, the 24-hour cut, `drop_streams`/`cut_streams`/`stall_streams`, `serverShutdown` (as
`{"event": ...}`, without a subscriptionId) all apply, and they count as market "spot". Nothing
secret is logged: a request is logged by its method and status only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from aiohttp import web
from attrs import define, field

from binance_userstream._clock import wall_time
from binance_userstream.simulator._exchange import Exchange, where
from binance_userstream.simulator._limits import IpLimits
from binance_userstream.simulator._signing import (
    BAD_SIGNATURE,
    UNKNOWN_KEY,
    Credential,
    Refusal,
    check_time,
    missing,
)
from binance_userstream.simulator._streams import Connection, Streams

log = logging.getLogger("binance_userstream.simulator.wsapi")

PATH = "/ws-api/v3"
#: Seconds of the simulator's clock a ping's pong may take before the connection is closed.
PONG_TIMEOUT = 60.0
#: Active subscriptions on one connection at most, and subscriptions over its lifetime.
MAX_ACTIVE = 1000
MAX_LIFETIME = 65_535
#: Request weights (web-socket-api.md): connecting costs 2, `ping` and `time` 1, the others here 2.
_WEIGHTS = {"ping": 1, "time": 1}
CONNECT_WEIGHT = 2

Via = Literal["signature", "logon", "listenToken"]
_UNAUTHENTICATED = Refusal(401, -1193, "WebSocket session not authenticated.")
_INACTIVE = Refusal(400, -2036, "User Data Stream subscription not active.")
_ACTIVE = Refusal(400, -2035, "User Data Stream subscription already active.")
_MAXIMUM = Refusal(400, -2042, "Maximum subscription ID reached for this connection.")
_BAD_TOKEN = Refusal(400, -1209, "Invalid listenToken.")
_NOT_JSON = Refusal(400, -1135, "Invalid JSON Request")
#: Binance's -1000 (UNKNOWN): the answer when a method fails inside the simulator (logged at DEBUG).
_BROKEN = Refusal(500, -1000, "An unknown error occurred while processing the request.")
_DIGITS = re.compile(r"[0-9]{1,20}")


@define(repr=False)
class _Subscription:
    id: int
    #: "spot" (signature, logon) or "margin" (listenToken); with the account, and the isolated
    #: margin account's symbol (None: spot, or cross margin).
    market: str
    account: str
    symbol: str | None
    via: Via
    #: When it ends on the simulator's clock (a listenToken's expiry); None: never by itself.
    expires_at: float | None = None

    def __repr__(self) -> str:
        return f"_Subscription(id={self.id}, market={self.market!r}, via={self.via!r})"


@define(eq=False, repr=False)
class _Session:
    connection: Connection
    connected_since: int
    return_rate_limits: bool
    subscriptions: dict[int, _Subscription] = field(factory=dict)
    #: The same subscriptions by (market, account): a push to one account of the thousand a
    #: connection may carry finds its own at once, not by reading them all.
    by_account: dict[tuple[str, str], dict[int, _Subscription]] = field(factory=dict)
    issued: int = 0
    #: After `session.logon`: (API key, account, when, in ms).
    logon: tuple[str, str, int] | None = None

    def __repr__(self) -> str:
        return f"_Session(subscriptions={sorted(self.subscriptions)}, logged_on={self.logon is not None})"

    def add(self, subscription: _Subscription) -> None:
        self.subscriptions[subscription.id] = subscription
        self.by_account.setdefault((subscription.market, subscription.account), {})[subscription.id] = (
            subscription
        )

    def remove(self, subscription: _Subscription) -> None:
        del self.subscriptions[subscription.id]
        index = (subscription.market, subscription.account)
        held = self.by_account[index]
        del held[subscription.id]
        if not held:
            del self.by_account[index]

    def of(self, market: str, account: str | None) -> list[_Subscription]:
        """Its subscriptions of `market` and `account` (None: of every account), oldest first."""
        if account is None:
            return [s for s in self.subscriptions.values() if s.market == market]
        return list(self.by_account.get((market, account), {}).values())


class _Refused(Exception):
    """A request answered with an error."""

    def __init__(self, refusal: Refusal, data: Mapping[str, object] | None = None) -> None:
        super().__init__(refusal.code)
        self.refusal = refusal
        self.data = data


class WsApi:
    """Every WebSocket API connection of one simulator, and their subscriptions. Runs on the server's
    event loop, beside `Streams`, whose connections these are."""

    def __init__(self, exchange: Exchange, streams: Streams, limits: IpLimits) -> None:
        self.exchange = exchange
        self.streams = streams
        self.limits = limits
        self._sessions: set[_Session] = set()
        #: (market, account) -> the sessions with a subscription of it, so that a push to one of
        #: thousands of accounts finds its few subscriptions at once.
        self._by_account: dict[tuple[str, str], set[_Session]] = {}
        streams.on_step.append(self.step)

    def now_ms(self) -> int:
        return int(wall_time(self.streams.clock) * 1000)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Upgrade a connection on `/ws-api/v3` and answer its requests until it ends."""
        connection = self.streams.open(request, PATH, "spot", PONG_TIMEOUT)
        session = _Session(
            connection,
            self.now_ms(),
            return_rate_limits=request.rel_url.query.get("returnRateLimits", "true").lower() != "false",
        )
        connection.on_text = lambda text: self._request(session, text)
        connection.on_end = lambda: self._end(session)
        self._sessions.add(session)  # the connection's weight was counted before the upgrade
        return await self.streams.serve_connection(connection)

    # -- events ----------------------------------------------------------------------------------

    def push(
        self, market: str, events: Sequence[Mapping[str, object]], account: str | None, symbol: str | None
    ) -> list[int]:
        """Send each event to every subscription of `market` ("spot" or "margin"), of `account` (or
        every account's), and for margin of `symbol`'s isolated account (None: cross margin), as
        `{"subscriptionId": N, "event": ...}`; returns, per event, how many subscriptions got it."""
        counts = []
        for event in events:
            text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            count = 0
            sessions = self._sessions if account is None else self._by_account.get((market, account), ())
            for session in list(sessions):
                for subscription in session.of(market, account):
                    if market == "margin" and subscription.symbol != symbol:
                        continue
                    frame = f'{{"subscriptionId":{subscription.id},"event":{text}}}'
                    count += self.streams.send(session.connection, frame)
            self.streams.record(market, str(event.get("e", "")), text, count)
            counts.append(count)
        return counts

    def step(self) -> None:
        """End the subscriptions whose listenToken expired (the streams' scheduler calls it)."""
        now = self.streams.clock.now()
        for session in list(self._sessions):
            for subscription in list(session.subscriptions.values()):
                if subscription.expires_at is not None and subscription.expires_at <= now:
                    log.debug("listenToken subscription %d expired", subscription.id)
                    self._terminate(session, subscription)

    def _end(self, session: _Session) -> None:
        """A connection ended: its session and its subscriptions go."""
        self._sessions.discard(session)
        for index in list(session.by_account):
            holders = self._by_account.get(index)
            if holders is not None:
                holders.discard(session)
                if not holders:
                    del self._by_account[index]

    def _unindex(self, session: _Session, subscription: _Subscription) -> None:
        index = (subscription.market, subscription.account)
        if index in session.by_account:
            return  # another of its margin accounts (isolated, per symbol) is still subscribed here
        holders = self._by_account.get(index)
        if holders is not None:
            holders.discard(session)
            if not holders:
                del self._by_account[index]

    def revoke(self, account: str) -> int:
        """End every subscription of `account` (its API key was deleted) with eventStreamTerminated;
        returns how many ended."""
        ended = 0
        for market in ("spot", "margin"):
            for session in list(self._by_account.get((market, account), ())):
                for subscription in session.of(market, account):
                    self._terminate(session, subscription)
                    ended += 1
        return ended

    def _terminate(self, session: _Session, subscription: _Subscription) -> None:
        session.remove(subscription)
        self._unindex(session, subscription)
        event = {"e": "eventStreamTerminated", "E": self.now_ms()}
        text = json.dumps(event, separators=(",", ":"))
        count = self.streams.send(
            session.connection, f'{{"subscriptionId":{subscription.id},"event":{text}}}'
        )
        self.streams.record(subscription.market, "eventStreamTerminated", text, count)

    def terminate(self, market: str | None = None) -> int:
        """End every subscription (of `market`, "spot" or "margin") with eventStreamTerminated, as
        an expired listenToken or an unsubscribe would; returns how many ended."""
        ended = 0
        for session in list(self._sessions):
            for subscription in list(session.subscriptions.values()):
                if market in (None, subscription.market):
                    self._terminate(session, subscription)
                    ended += 1
        return ended

    def count(self, market: str | None = None) -> int:
        """How many subscriptions (of `market`, "spot" or "margin") are active, on every connection."""
        return sum(
            market in (None, subscription.market)
            for session in self._sessions
            for subscription in session.subscriptions.values()
        )

    # -- requests --------------------------------------------------------------------------------

    def _request(self, session: _Session, text: str) -> None:
        ident: object = None
        method = "?"
        try:
            try:
                request = json.loads(text)
            except (ValueError, RecursionError):
                raise _Refused(_NOT_JSON) from None
            if not isinstance(request, dict):
                raise _Refused(_NOT_JSON)
            ident = request.get("id")
            if (
                "id" not in request
                or not (ident is None or isinstance(ident, str | int))
                or isinstance(ident, bool)
            ):
                ident = None
                raise _Refused(missing("id"))
            params = request.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise _Refused(Refusal(400, -1135, "Invalid 'params' in JSON request; expected an object."))
            name = request.get("method")
            if not isinstance(name, str) or not name:
                raise _Refused(missing("method"))
            method = name
            handler = _METHODS.get(method)
            if handler is None:
                raise _Refused(Refusal(400, -1020, "This operation is not supported."))
            limited = self.limits.charge(session.connection.request.remote or "", _WEIGHTS.get(method, 2))
            if limited is not None:
                data = {"serverTime": self.now_ms(), "retryAfter": limited.retry_at_ms}
                raise _Refused(Refusal(limited.status, limited.code, limited.msg), data)
            try:
                result, after = handler(self, session, params)
            except _Refused:
                raise
            except Exception as exc:  # a bug here must cost one answer, not the connection
                log.debug("ws-api %s failed: %s", method, where(exc))
                raise _Refused(_BROKEN) from None
        except _Refused as refused:
            error = _error(refused.refusal)
            if refused.data is not None:
                error["data"] = refused.data
            self._answer(session, ident, refused.refusal.status, {"error": error}, params_of(text))
            log.debug(
                "ws-api %s: %d (%d)",
                method if method in _METHODS else "?",
                refused.refusal.status,
                refused.refusal.code,
            )
            return
        self._answer(session, ident, 200, {"result": result}, params)
        log.debug("ws-api %s: 200", method)
        for subscription in after:
            self._terminate(session, subscription)

    def _answer(
        self,
        session: _Session,
        ident: object,
        status: int,
        body: Mapping[str, object],
        params: Mapping[str, object],
    ) -> None:
        answer: dict[str, object] = {"id": ident, "status": status, **body}
        if session.return_rate_limits and params.get("returnRateLimits") is not False:
            used = self.limits.used(session.connection.request.remote or "")
            answer["rateLimits"] = [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.limits.ws_weight_limit,
                    "count": used,
                }
            ]
        self.streams.send(session.connection, json.dumps(answer, separators=(",", ":")), event=False)

    # -- the methods: each returns (result, subscriptions to terminate after the answer) ------------

    def _ping(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        return {}, []

    def _time(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        return {"serverTime": self.now_ms()}, []

    def _subscribe_signature(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        api_key, _ = self._verify(params)
        account = self.exchange.account_of(api_key)
        subscription = self._add(session, "spot", account, None, "signature")
        return {"subscriptionId": subscription.id}, []

    def _logon(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        api_key, _ = self._verify(params, logon=True)
        session.logon = (api_key, self.exchange.account_of(api_key), self.now_ms())
        return self._status(session), []

    def _session_status(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        return self._status(session), []

    def _logout(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        ended = [s for s in session.subscriptions.values() if s.via == "logon"]
        session.logon = None
        status = self._status(session)
        status["userDataStream"] = len(session.subscriptions) > len(ended)
        return status, ended

    def _status(self, session: _Session) -> dict[str, object]:
        return {
            "apiKey": session.logon[0] if session.logon else None,
            "authorizedSince": session.logon[2] if session.logon else None,
            "connectedSince": session.connected_since,
            "returnRateLimits": session.return_rate_limits,
            "serverTime": self.now_ms(),
            "userDataStream": bool(session.subscriptions),
        }

    def _subscribe(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        if session.logon is None:
            raise _Refused(_UNAUTHENTICATED)
        if isinstance(self.exchange.key_account(session.logon[0]), Refusal):
            raise _Refused(UNKNOWN_KEY)  # the logged-on key was deleted since
        subscription = self._add(session, "spot", session.logon[1], None, "logon")
        return {"subscriptionId": subscription.id}, []

    def _unsubscribe(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        given = params.get("subscriptionId")
        if given is None:
            return {}, list(session.subscriptions.values())
        if isinstance(given, str) and _DIGITS.fullmatch(given):
            given = int(given)
        if isinstance(given, bool) or not isinstance(given, int):
            raise _Refused(_illegal("subscriptionId"))
        if given not in session.subscriptions:
            raise _Refused(_INACTIVE)
        return {}, [session.subscriptions[given]]

    def _subscriptions(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        return [{"subscriptionId": ident} for ident in sorted(session.subscriptions)], []

    def _subscribe_token(self, session: _Session, params: Mapping[str, object]) -> _Outcome:
        value = params.get("listenToken")
        if not isinstance(value, str) or not value:
            raise _Refused(missing("listenToken"))
        token = self.exchange.tokens.get(value)
        if token is None:
            raise _Refused(_BAD_TOKEN)
        existing = self._find(session, "margin", token.account, token.symbol)
        if existing is not None and existing.via == "listenToken":
            existing.expires_at = token.expires_at  # renewed: the same subscription, on
            subscription = existing
        else:
            subscription = self._add(session, "margin", token.account, token.symbol, "listenToken")
            subscription.expires_at = token.expires_at
        return {"subscriptionId": subscription.id, "expirationTime": token.expiration_ms}, []

    # -- shared rules ----------------------------------------------------------------------------

    def _verify(self, params: Mapping[str, object], *, logon: bool = False) -> tuple[str, Credential]:
        """The API key of a signed request and its credential, once its signature and timestamp
        are checked; a refusal otherwise."""
        for name in ("apiKey", "signature", "timestamp"):
            if params.get(name) in (None, ""):
                raise _Refused(missing(name))
        api_key, signature = params["apiKey"], params["signature"]
        if not isinstance(api_key, str) or not isinstance(signature, str):
            raise _Refused(missing("apiKey" if not isinstance(api_key, str) else "signature"))
        account = self.exchange.key_account(api_key)
        if isinstance(account, Refusal):
            raise _Refused(account)
        credential = self.exchange.credential_of(api_key)
        if credential is None:
            raise _Refused(UNKNOWN_KEY)
        if logon and credential.type != "Ed25519":
            raise _Refused(Refusal(400, -2028, f"{credential.type} API key is not supported."))
        payload = "&".join(f"{name}={_text(params[name])}" for name in sorted(params) if name != "signature")
        if not credential.verify(payload, signature):
            raise _Refused(BAD_SIGNATURE)
        refused = check_time(params, wall_time(self.streams.clock) * 1000)
        if refused is not None:
            raise _Refused(refused)
        return api_key, credential

    @staticmethod
    def _find(session: _Session, market: str, account: str, symbol: str | None) -> _Subscription | None:
        for subscription in session.of(market, account):
            if subscription.symbol == symbol:
                return subscription
        return None

    def _add(
        self, session: _Session, market: str, account: str, symbol: str | None, via: Via
    ) -> _Subscription:
        """A new subscription: one per account on a connection, within the connection's limits."""
        if self._find(session, market, account, symbol) is not None:
            raise _Refused(_ACTIVE)
        if len(session.subscriptions) >= MAX_ACTIVE or session.issued >= MAX_LIFETIME:
            raise _Refused(_MAXIMUM)
        subscription = _Subscription(session.issued, market, account, symbol, via)
        session.issued += 1
        session.add(subscription)
        self._by_account.setdefault((market, account), set()).add(session)
        return subscription


_Outcome = tuple[object, list[_Subscription]]
_METHODS = {
    "ping": WsApi._ping,
    "time": WsApi._time,
    "userDataStream.subscribe.signature": WsApi._subscribe_signature,
    "userDataStream.subscribe.listenToken": WsApi._subscribe_token,
    "userDataStream.subscribe": WsApi._subscribe,
    "userDataStream.unsubscribe": WsApi._unsubscribe,
    "session.logon": WsApi._logon,
    "session.status": WsApi._session_status,
    "session.logout": WsApi._logout,
    "session.subscriptions": WsApi._subscriptions,
}


def _illegal(name: str) -> Refusal:
    """Binance's answer to an INT parameter given something else (errors.md, -1100 ILLEGAL_CHARS)."""
    return Refusal(
        400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
    )


def _text(value: object) -> str:
    """A param's value as it is signed: a string as it is, anything else as its JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


def _error(refusal: Refusal) -> dict[str, object]:
    return {"code": refusal.code, "msg": refusal.msg}


def params_of(text: str) -> Mapping[str, object]:
    """The params of a request's text, if it has any (to honour `returnRateLimits` in an error)."""
    try:
        request = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    params = request.get("params") if isinstance(request, dict) else None
    return params if isinstance(params, dict) else {}
