"""Exchange: Binance's listenKey semantics for every market, request weights and bans, on an injectable clock.

Pure logic, no sockets: `handle` takes a parsed request and returns an Answer, so the HTTP server
(and, later, a WebSocket event-stream server) can share one state. What differs between markets
(path, weight, limit, how keepalive finds the key, what it answers, retirement) is data, in
`_markets.MARKETS`; the rules they share are here.

The accounts are shared by everything the simulator serves: an API key is the same account for its
REST listenKeys, its margin listenTokens (`POST /sapi/v1/userListenToken`, see `_tokens`) and its
WebSocket API subscriptions (see `_wsapi`). Signed requests need the key's credential (`keys`, see
`_signing`): the test account's (`TEST_API_KEY`, its HMAC secret `TEST_API_SECRET`) is known from
the start, `register_key` adds more.

Besides the user-data routes, the metadata routes other clients read before they stream (ping,
server time, exchangeInfo, ...; see `_metadata`) are answered here, their weight counted as any
other request's on their market's host; so are the signed account reads (account, positions, open
orders, trades; see `_account_routes`), from `ledger`, each account's book per market, which the
simulator's orders move by the events they push.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Literal

from attrs import define, evolve, frozen

from binance_userstream._clock import Clock, SystemClock, wall_time
from binance_userstream.simulator import _account_routes, _metadata
from binance_userstream.simulator._ledger import Ledger
from binance_userstream.simulator._markets import MARKETS, METHODS, SPOT, Market
from binance_userstream.simulator._signing import (
    BAD_KEY_FORMAT,
    UNKNOWN_KEY,
    Credential,
    Keys,
    Refusal,
    refuse_signed,
    request_params,
)
from binance_userstream.simulator._tokens import ISOLATED_SYMBOLS, ListenTokens
from binance_userstream.simulator._tokens import PATH as LISTEN_TOKEN_PATH

#: A signed route, for the checks the account reads share with the metadata routes.
_SIGNED = _metadata.Route("spot", 0, "SIGNED", lambda _: None)
PATH = SPOT.path
WEIGHT = SPOT.weight
VALIDITY = 3600.0  # a listenKey lives 60 minutes after creation or keepalive
FIRST_BAN = 120.0  # bans last from 2 minutes ...
LONGEST_BAN = 3 * 86400.0  # ... to 3 days
RETIRED_HTML = (
    b"<html>\r\n<head><title>410 Gone</title></head>\r\n<body>\r\n"
    b"<center><h1>410 Gone</h1></center>\r\n</body>\r\n</html>\r\n"
)
_API_KEY = re.compile(r"[A-Za-z0-9]{1,128}")
_ALPHABET = string.ascii_letters + string.digits


@frozen
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


#: Production's answer since 2026-02-20: 410 Gone, an HTML page from the front proxy.
RETIRED = Answer(410, RETIRED_HTML, content_type="text/html")


def error(status: int, code: int, msg: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return Answer(status, json.dumps({"code": code, "msg": msg}).encode(), headers=headers)


def where(exc: BaseException) -> str:
    """An exception's type and where it was raised: enough to find the bug, and no data (its
    message could quote a request, and so a key)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__name__}{place}"


def _code_msg(answer: Answer) -> tuple[int, str]:
    body = json.loads(answer.body)
    return int(body["code"]), str(body["msg"])


def _ok(body: Mapping[str, str | int]) -> Answer:
    return Answer(200, json.dumps(body).encode())


#: Why a listenKey ended: it expired (60 minutes without a keepalive, or lost), or it was closed (DELETE).
Ending = Literal["expired", "closed"]
#: Told of every listenKey that ends: (listenKey, its market's name, why). Called on whichever thread
#: ended the key, after the Exchange's lock is released; it must not block.
KeyListener = Callable[[str, str, Ending], None]


@define
class _Key:
    market: str
    account: str
    expires_at: float


@define
class _Weight:
    minute: int = -1
    used: int = 0
    violations: int = 0
    banned_until: float = 0.0
    next_ban: float = FIRST_BAN


class Exchange:
    """The state of the simulated exchange: accounts, their listenKeys per market, and per-IP weight.

    `api_keys`: None accepts any well-formed key as an account of its own; a collection accepts
    only those keys (each its own account); a mapping names each key's account, so that two keys
    can share one account (and so one listenKey per market). Each account has at most one active
    key per market. Weight is counted per IP and per market host, as production's hosts count it
    apart: `weight_limit` left alone is each market's documented limit, an int is one limit for
    every market. `violations_before_ban` 429s in one minute, and the next request earns a 418
    ban, doubling from 2 minutes up to 3 days. Spot answers as production has since 2026-02-20
    (410, HTML); `retired=False` serves its old lifecycle instead, for programs written before.
    Margin's paths always answer 410, the derivatives markets never. `isolated_symbols`: the pairs
    whose isolated margin accounts exist, for every account (None: any pair), see `ListenTokens`.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        api_keys: Collection[str] | Mapping[str, str] | None = None,
        retired: bool = True,
        weight_limit: int | None = None,
        violations_before_ban: int = 3,
        markets: Iterable[Market] = MARKETS,
        isolated_symbols: Collection[str] | None = ISOLATED_SYMBOLS,
    ) -> None:
        self.clock = clock or SystemClock()
        self.retired = retired
        self.weight_limit = weight_limit  # None: each market's documented limit
        self.violations_before_ban = violations_before_ban
        self.markets: dict[str, Market] = {market.path: market for market in markets}
        if api_keys is None:
            self._accounts: dict[str, str] | None = None
        elif isinstance(api_keys, Mapping):
            self._accounts = dict(api_keys)
        else:
            self._accounts = {key: key for key in api_keys}
        #: The credentials of the API keys whose signatures can be verified (signed requests).
        self.keys = Keys()
        #: Margin's listenTokens (`POST /sapi/v1/userListenToken`).
        self.tokens = ListenTokens(self.clock, isolated_symbols)
        #: Every account's orders, trades, balances and positions, which the account reads answer.
        self.ledger = Ledger()
        self._keys: dict[str, _Key] = {}
        #: API keys deleted (`revoke_key`): refused -2015 from then on, as Binance refuses them.
        self._revoked: set[str] = set()
        self._active: dict[tuple[str, str], str] = {}  # (market name, account) -> its listenKey
        self._weights: dict[tuple[str, str], _Weight] = {}  # (host, IP) -> its weight this minute
        self._lock = threading.Lock()
        self._listeners: list[KeyListener] = []
        self._ended: list[tuple[str, str, Ending]] = []  # keys ended under the lock, told after it

    def register_key(self, api_key: str, credential: Credential, account: str | None = None) -> str:
        """Let `api_key` sign requests with `credential`; returns its account. A key the simulator
        already accepts keeps its account (or takes `account`); with a list of accepted keys, the key
        joins it, as its own account unless `account` names one."""
        if not isinstance(api_key, str) or not _API_KEY.fullmatch(api_key):
            raise ValueError("an API key is 1 to 128 letters and digits")
        with self._lock:
            if self._accounts is not None:
                if account is not None or api_key not in self._accounts:
                    self._accounts[api_key] = account or api_key
                account = self._accounts[api_key]
            elif account is not None and account != api_key:
                raise ValueError(
                    "account= needs a simulator made with api_keys= (else each key is its own account)"
                )
            else:
                account = api_key
        self.keys.register(api_key, credential)
        return account

    def credential_of(self, api_key: str) -> Credential | None:
        """The credential that verifies `api_key`'s signatures; None if the simulator holds none (then
        its signed requests are refused -2015) or does not accept the key."""
        return self.keys.get(api_key) if isinstance(self.key_account(api_key), str) else None

    def key_account(self, api_key: str | None) -> str | Refusal:
        """The one key rule, for REST and the WebSocket API alike: a key is 1 to 128 letters and
        digits (else -2014); with `api_keys` it must be one of them (else -2015). Returns its account.
        A signed request needs more, the key's credential (`credential_of`), on both."""
        if isinstance(api_key, str) and api_key in self._revoked:
            return UNKNOWN_KEY
        return self._lookup(api_key)

    def _lookup(self, api_key: str | None) -> str | Refusal:
        """`key_account`, whether or not the key was revoked."""
        if not isinstance(api_key, str) or not _API_KEY.fullmatch(api_key):
            return BAD_KEY_FORMAT
        if self._accounts is None:
            return api_key
        return self._accounts.get(api_key, UNKNOWN_KEY)

    def revoke_key(self, api_key: str) -> tuple[str | None, int]:
        """Delete `api_key`, as its owner deleting it on Binance: every request with it is refused
        401 -2015 from now on. If no other accepted key serves its account (with `api_keys` as a
        mapping, two keys may share one), the account's listenKeys end as expired ones do (the
        streams send `listenKeyExpired`, a keepalive is -1125) and its listenTokens are forgotten;
        returns that account (None if another key still serves it) and how many listenKeys ended.
        ValueError for a key the simulator does not accept."""
        account = self._lookup(api_key)
        if not isinstance(account, str):
            raise ValueError("the simulator accepts no such API key")
        with self._lock:
            self._revoked.add(api_key)
            orphaned = self._accounts is None or not any(
                other == account and key not in self._revoked for key, other in self._accounts.items()
            )
            ended = [value for value, key in self._keys.items() if orphaned and key.account == account]
            for value in ended:
                self._drop(value, "expired")
        self._tell()
        if not orphaned:
            return None, 0
        self.tokens.revoke(account)
        return account, len(ended)

    def add_listener(self, listener: KeyListener) -> None:
        """Tell `listener` of every listenKey that ends from now on (the event streams close theirs)."""
        self._listeners.append(listener)

    def _tell(self) -> None:
        """Tell the listeners of the keys that ended; called with the lock released."""
        with self._lock:
            ended, self._ended = self._ended, []
        for listen_key, market, why in ended:
            for listener in self._listeners:
                listener(listen_key, market, why)

    # -- what tests and the demo use to look and to meddle -----------------------------------------

    def served_paths(self) -> frozenset[tuple[str, str]]:
        """Every (method, path) whose listenKey lifecycle the simulator serves, whatever the mode
        (in retired mode spot's answer 410), and margin's `POST /sapi/v1/userListenToken`. Margin's
        retired paths, always 410, are not among them; nor are the account reads (`_account_routes`)
        and the metadata routes (`_metadata`), which its 404 lists apart."""
        return frozenset(
            operation
            for market in self.markets.values()
            if market.retired != "always"
            for operation in market.operations()
        ) | {("POST", LISTEN_TOKEN_PATH)}

    def retired_paths(self) -> frozenset[str]:
        """The paths answered 410 Gone whatever the mode and method (margin's, since 2026-02-20)."""
        return frozenset(market.path for market in self.markets.values() if market.retired == "always")

    def live_keys(self) -> int:
        """How many listenKeys are valid now, in every market."""
        now = self.clock.now()
        with self._lock:
            return sum(1 for key in self._keys.values() if key.expires_at > now)

    def is_live(self, listen_key: str) -> bool:
        return self.market_of(listen_key) is not None

    def market_of(self, listen_key: str) -> str | None:
        """The name of the market whose live listenKey this is; None if no such key is live."""
        with self._lock:
            key = self._keys.get(listen_key)
            return key.market if key is not None and key.expires_at > self.clock.now() else None

    def account_of(self, api_key: str) -> str:
        """The account an API key belongs to; ValueError if the simulator does not accept it."""
        account = self._lookup(api_key)  # a revoked key's account still exists (and its ledger)
        if not isinstance(account, str):
            raise ValueError("the simulator accepts no such API key")
        return account

    def live_listen_keys(self, market: str, account: str | None = None) -> list[str]:
        """The live listenKeys of `market` (a market's name), of every account or of one."""
        now = self.clock.now()
        with self._lock:
            if account is not None:  # an account has one active key per market: found at once
                value = self._active.get((market, account))
                key = self._keys.get(value) if value is not None else None
                return [value] if value is not None and key is not None and key.expires_at > now else []
            return [
                value for value, key in self._keys.items() if key.market == market and key.expires_at > now
            ]

    def forget_keys(self) -> int:
        """Lose every listenKey of every market, as if each had expired; returns how many there were."""
        with self._lock:
            count = len(self._keys)
            for value in list(self._keys):
                self._drop(value, "expired")
            self._active.clear()
        self._tell()
        return count

    def expire(self, listen_key: str | None = None, *, market: str | None = None) -> int:
        """Expire now one listenKey, or every live key (of one market, if named), as 60 minutes
        without a keepalive would; returns how many expired."""
        now = self.clock.now()
        with self._lock:
            ended = [
                value
                for value, key in self._keys.items()
                if key.expires_at > now and listen_key in (None, value) and market in (None, key.market)
            ]
            for value in ended:
                self._drop(value, "expired")
        self._tell()
        return len(ended)

    def sweep(self) -> int:
        """Drop every key whose time is up, telling the listeners; returns how many. The stream
        server calls it as its clock moves, so that an expiry is noticed without a request."""
        now = self.clock.now()
        with self._lock:
            ended = [value for value, key in self._keys.items() if key.expires_at <= now]
            for value in ended:
                self._drop(value, "expired")
        self._tell()
        return len(ended)

    # -- the API ---------------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        form: Mapping[str, list[str]],
        api_key: str | None,
        ip: str,
        *,
        raw_query: str = "",
        raw_body: str = "",
    ) -> Answer:
        """Answer one REST request. `raw_query` and `raw_body` are the query string and form body as
        sent, which a signature covers (a signed listenToken mint)."""
        if path == LISTEN_TOKEN_PATH:
            account = self._account(api_key)
            status, body, headers = self.tokens.handle(
                method,
                raw_query,
                raw_body,
                Refusal(account.status, *_code_msg(account)) if isinstance(account, Answer) else account,
                lambda: self.keys.get(api_key or ""),
            )
            return Answer(status, body, headers=headers)
        account_route = _account_routes.ROUTES.get(path)
        if account_route is not None:
            return self._serve_account(method, path, account_route, api_key, ip, raw_query, raw_body)
        route = _metadata.ROUTES.get(path)
        if route is not None:
            return self._serve_metadata(method, path, route, api_key, ip, raw_query, raw_body)
        market = self.markets.get(path)
        if market is None:
            return self._not_served(method, path)
        if market.retired == "always" or (self.retired and market.retired == "in retired mode"):
            return RETIRED  # the front proxy answers before anything else is looked at
        if method not in METHODS:
            allowed = (("Allow", ", ".join(METHODS)),)
            return error(405, -1000, f"Method {method} is not allowed on {path}.", allowed)
        try:
            with self._lock:
                now = self.clock.now()
                weight = self._weights.setdefault((market.host, ip), _Weight())
                limited = self._charge(market, weight, now)
                if limited is not None:
                    return limited
                account = self._account(api_key)
                answer = (
                    account
                    if isinstance(account, Answer)
                    else self._operate(market, method, account, query, form, now)
                )
                return evolve(answer, headers=(("X-MBX-USED-WEIGHT-1M", str(weight.used)),))
        finally:
            self._tell()

    def _serve_metadata(
        self,
        method: str,
        path: str,
        route: _metadata.Route,
        api_key: str | None,
        ip: str,
        raw_query: str,
        raw_body: str,
    ) -> Answer:
        """A metadata route (ping, time, exchangeInfo, ...): GET only, its weight counted on its
        market's host, its API key or signature checked when Binance checks them."""
        if method != "GET":
            return error(405, -1000, f"Method {method} is not allowed on {path}.", (("Allow", "GET"),))
        market = next((m for m in self.markets.values() if m.name == route.market), None)
        if market is None:  # an Exchange made without the route's market serves none of its routes
            return self._not_served(method, path)
        with self._lock:
            now = self.clock.now()
            weight = self._weights.setdefault((market.host, ip), _Weight())
            limited = self._charge(market, weight, now, route.weight)
            used = weight.used
        if limited is not None:
            return limited
        answer = self._refuse_metadata(route, api_key, raw_query, raw_body)
        if answer is None:
            answer = Answer(200, _metadata.body(route, int(wall_time(self.clock) * 1000)))
        return evolve(answer, headers=((_metadata.weight_header(path), str(used)),))

    def _serve_account(
        self,
        method: str,
        path: str,
        route: _account_routes.AccountRoute,
        api_key: str | None,
        ip: str,
        raw_query: str,
        raw_body: str,
    ) -> Answer:
        """A signed account read (see `_account_routes`): GET only, its weight (by the parameters
        sent) counted on its market's host, answered from the ledger."""
        if method != "GET":
            return error(405, -1000, f"Method {method} is not allowed on {path}.", (("Allow", "GET"),))
        market = next((m for m in self.markets.values() if m.name == route.market), None)
        if market is None:
            return self._not_served(method, path)
        params = request_params(raw_query, raw_body)
        with self._lock:
            now = self.clock.now()
            weight = self._weights.setdefault((market.host, ip), _Weight())
            limited = self._charge(market, weight, now, route.cost(params))
            used = weight.used
        if limited is not None:
            return limited
        headers = [(_metadata.weight_header(path), str(used))]
        if path.startswith("/sapi/"):  # the IP weight SAPI shares with api/v3, under both names
            headers.append(("X-MBX-USED-WEIGHT-1M", str(used)))
        refused = self._refuse_metadata(_SIGNED, api_key, raw_query, raw_body)
        if refused is not None:
            return evolve(refused, headers=tuple(headers))
        account = self.account_of(api_key or "")
        server_ms = int(wall_time(self.clock) * 1000)
        try:
            body = route.answer(_account_routes.Request(account, params, self.ledger, server_ms))
        except _account_routes.BadParameter as exc:
            return error(400, exc.code, exc.msg, tuple(headers))
        return Answer(200, json.dumps(body).encode(), headers=tuple(headers))

    def _refuse_metadata(
        self, route: _metadata.Route, api_key: str | None, raw_query: str, raw_body: str
    ) -> Answer | None:
        if route.security == "NONE":
            return None
        account = self._account(api_key)
        if isinstance(account, Answer) or route.security == "API_KEY":
            return account if isinstance(account, Answer) else None
        refusal = refuse_signed(
            raw_query, raw_body, self.keys.get(api_key or ""), wall_time(self.clock) * 1000
        )
        return None if refusal is None else error(refusal.status, refusal.code, refusal.msg)

    def _not_served(self, method: str, path: str) -> Answer:
        """A 404 that cannot be taken for Binance's: it names the simulator and what it does serve."""
        served = sorted(self.served_paths(), key=lambda op: (op[1], METHODS.index(op[0])))
        lifecycles = sorted({p for m, p in served if m == "PUT"})
        body = {
            "simulator": "binance-userstream",
            "msg": f"The binance-userstream simulator does not serve {method} {path}; it serves "
            f"{', '.join(METHODS)} on {', '.join(lifecycles)}, and POST {LISTEN_TOKEN_PATH}, "
            "and GET on the metadata routes clients read before they stream ('metadata').",
            "served": [f"{m} {p}" for m, p in served],
            "metadata": sorted(_metadata.ROUTES),
            "account": sorted(_account_routes.ROUTES),
            "retired": sorted(self.retired_paths()),
        }
        return Answer(404, json.dumps(body).encode())

    def _limit(self, market: Market) -> int:
        return market.weight_limit if self.weight_limit is None else self.weight_limit

    def _charge(self, market: Market, weight: _Weight, now: float, cost: int | None = None) -> Answer | None:
        """Count the request's weight (`cost`, or the market's listenKey weight) against its IP on the
        market's host, or answer 429/418."""
        if weight.banned_until > now:
            return self._banned(weight, now)
        minute = math.floor(now / 60)
        if minute != weight.minute:
            weight.minute, weight.used, weight.violations = minute, 0, 0
        limit = self._limit(market)
        cost = market.weight if cost is None else cost
        if weight.used + cost <= limit:
            weight.used += cost
            return None
        weight.violations += 1
        if weight.violations > self.violations_before_ban:
            weight.banned_until = now + weight.next_ban
            weight.next_ban = min(weight.next_ban * 2, LONGEST_BAN)
            return self._banned(weight, now)
        wait = max(1, math.ceil((minute + 1) * 60 - now))
        return error(
            429,
            -1003,
            f"Too much request weight used; current limit is {limit} request weight per "
            "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            (("Retry-After", str(wait)), ("X-MBX-USED-WEIGHT-1M", str(weight.used))),
        )

    @staticmethod
    def _banned(weight: _Weight, now: float) -> Answer:
        left = weight.banned_until - now
        until_ms = int((time.time() + left) * 1000)
        return error(
            418,
            -1003,
            f"Way too much request weight used; IP banned until {until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            (("Retry-After", str(max(1, math.ceil(left)))),),
        )

    def _account(self, api_key: str | None) -> str | Answer:
        account = self.key_account(api_key)
        return account if isinstance(account, str) else error(account.status, account.code, account.msg)

    def _operate(
        self,
        market: Market,
        method: str,
        account: str,
        query: Mapping[str, list[str]],
        form: Mapping[str, list[str]],
        now: float,
    ) -> Answer:
        active = (market.name, account)
        if method == "POST":
            value = self._active.get(active)
            key = self._keys.get(value) if value else None
            if value is None or key is None or key.expires_at <= now:
                if value is not None and value in self._keys:
                    self._drop(value, "expired")  # the expired key: forget it, do not hoard it
                value = "".join(secrets.choice(_ALPHABET) for _ in range(60))
                self._active[active] = value
            self._keys[value] = _Key(market.name, account, now + VALIDITY)
            if market.create_answers_expiration:  # when the key expires, on the simulator's clock
                return _ok({"listenKey": value, "expiration": int((wall_time(self.clock) + VALIDITY) * 1000)})
            return _ok({"listenKey": value})
        if market.key_in_request:
            # Binance takes a parameter from the query string or the form body; the query wins.
            given = (query.get("listenKey") or form.get("listenKey") or [""])[0]
            if not given:
                return error(
                    400, -1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed."
                )
        else:
            # No parameter: the API key implies the account, and so its one active key here.
            given = self._active.get(active, "")
        key = self._keys.get(given)
        if key is None or (key.market, key.account) != active or key.expires_at <= now:
            if key is not None and key.expires_at <= now:
                self._drop(given, "expired")
            return error(400, -1125, "This listenKey does not exist.")
        if method == "DELETE":
            self._drop(given, "closed")
            return _ok({})
        key.expires_at = now + VALIDITY
        return _ok({"listenKey": given} if market.keepalive_echoes_key else {})

    def _drop(self, value: str, why: Ending) -> None:
        """Forget a key (the lock held) and note it for the listeners, told once the lock is released."""
        key = self._keys.pop(value)
        if self._active.get((key.market, key.account)) == value:
            del self._active[key.market, key.account]
        self._ended.append((value, key.market, why))
