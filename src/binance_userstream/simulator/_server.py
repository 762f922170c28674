"""Simulator: the Exchange behind a real HTTP server, with fault injection and control requests.

The server is aiohttp's, on an asyncio event loop in a thread of its own (or the caller's thread in
`serve_forever`), so the API stays synchronous. aiohttp serves plain HTTP and WebSocket upgrades on
one port (room for the event streams), bounds request heads and bodies, answers malformed requests
with 400, and sets TCP_NODELAY. The port is bound when the Simulator is made, so `url` is known
before `start` and a busy port fails at once, with a message that names it.

The same port serves the derivatives' user-data event streams (see `_streams`) and spot's WebSocket
API at `/ws-api/v3` (see `_wsapi`), where spot's and margin's events come: events come from `push`
(or `POST /_simulator/events`) and `traffic`; pings, the 24-hour cut, key and listenToken expiry
follow the simulator's clock; stream faults are `drop_streams`, `stall_streams`, `cut_streams`,
`expire_key`, and apply to WebSocket API connections (market "spot") too. Signed requests verify
against the keys' credentials: the test account's (`TEST_API_KEY`, `TEST_API_SECRET`), and those
`register_key` (or `POST /_simulator/keys`) adds.

Besides Binance's endpoints it answers a few control requests under `/_simulator/` (see `_http`:
this machine only, with the `X-Simulator-Control` header), so that another process (the demo, a
user's test) can inject faults into a running simulator, push events or an order's traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import math
import random
import socket
import threading
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import attrs
from aiohttp import web

from binance_userstream._clock import Clock
from binance_userstream.simulator._exchange import Answer, Exchange, error
from binance_userstream.simulator._faults import Fault
from binance_userstream.simulator._http import (
    MAX_BODY,
    MAX_LINE,
    QuietLog,
    handler,
    is_loopback_origin,
    log,
)
from binance_userstream.simulator._ledger import LedgerOrder, LedgerView
from binance_userstream.simulator._limits import IpLimits
from binance_userstream.simulator._markets import COINM, MARKETS, Market
from binance_userstream.simulator._orders import STEP_MARKETS, Steps
from binance_userstream.simulator._signing import TEST_API_KEY, Credential
from binance_userstream.simulator._streams import (
    CONNECTION_LIFETIME,
    KEYS_OF,
    STREAM_MARKETS,
    Delivery,
    Streams,
)
from binance_userstream.simulator._tokens import ISOLATED_SYMBOLS
from binance_userstream.simulator._traffic import Traffic
from binance_userstream.simulator._wsapi import PATH as WS_API_PATH
from binance_userstream.simulator._wsapi import WsApi

_T = TypeVar("_T")
#: What `traffic` (and `POST /_simulator/traffic`) takes to shape the order.
TRAFFIC_ORDER = ("symbol", "side", "quantity", "price", "asset", "balance")
REQUESTS_KEPT = 10_000
#: Seconds a peer has to send a request's head (from connecting, or from the previous answer) and,
#: separately, its body; an idle kept-alive connection is closed after as long.
REQUEST_TIMEOUT = 10.0
#: Seconds `stop` lets answers in progress finish before it cuts them off (a `slow` fault, say).
STOP_GRACE = 0.5


class Simulator:
    """A local Binance user-data-stream endpoint: `with Simulator() as sim: ... sim.url ...`.

    `port=0` picks a free port. `clock` drives key validity and weight windows (a VirtualClock in
    tests, an AcceleratedClock in the demo). `inject` queues faults that replace the next answers.
    `request_timeout` bounds how long a peer may take to send a request (see REQUEST_TIMEOUT).
    A USD-M stream opened on `/private/ws` without an `events` allow-list gets no event, as
    production delivers none there (measured by unicorn-binance-websocket-api's maintainers, see
    `_streams`); `strict_events=False` delivers it every event instead, for clients that send no
    list (production gives them nothing).

    A WebSocket upgrade that carries an `Origin` (a web page's: browsers always send one, Python
    clients do not) is refused 403 unless the origin is this machine's (localhost, a loopback
    address) or one of `allowed_origins` (`"https://app.example"`); `allowed_origins=None` allows
    any, which lets every web page you visit open the WebSocket API with the published test key.

    By default it answers as production does today; two switches serve what production no longer
    does, for programs written before: `retired=False` serves spot's listenKey lifecycle (retired
    on 2026-02-20, answered 410 by default), and `isolated_symbols=None` mints a listenToken for any
    isolated margin pair (by default only `ISOLATED_SYMBOLS`, or the pairs given, have an isolated
    margin account; any other is refused -11001, as Binance refuses it).

    COIN-M's keepalive answers `{"listenKey": <the key extended>}`, as Binance's own COIN-M SDK has
    modelled it since 2026-01-13 (the newest evidence of production's answer; see `_markets`);
    `coinm_keepalive_echoes_key=False` answers `{}`, as the older pages showed, so that a client's
    handling of both can be tested.

    Streams ping at each market's documented interval and are cut after 24 hours, as Binance's
    are; `ping_interval` (seconds, one for every market) and `connection_lifetime` shorten them,
    so that a test sees a stall found by the ping rules, or a 24-hour rotation, in a second.

    Per client IP, over every WebSocket connection it serves (streams and WebSocket API), it holds
    Binance's limits on its clock: `connection_limit` new connections per `connection_window`
    seconds (None: Binance's 300 per 5 minutes; past it the handshake is refused 429 with
    `Retry-After`), and `ws_weight_limit` WebSocket API request weight per minute (None: 6000; past
    it 429 -1003, then 418 bans after `violations_before_ban`); `connections_opened` and
    `ws_weight_used` tell how much is used.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock | None = None,
        api_keys: Collection[str] | Mapping[str, str] | None = None,
        retired: bool = True,
        weight_limit: int | None = None,
        violations_before_ban: int = 3,
        request_timeout: float = REQUEST_TIMEOUT,
        strict_events: bool = True,
        isolated_symbols: Collection[str] | None = ISOLATED_SYMBOLS,
        allowed_origins: Collection[str] | None = (),
        coinm_keepalive_echoes_key: bool = True,
        ping_interval: float | None = None,
        connection_lifetime: float = CONNECTION_LIFETIME,
        connection_limit: int | None = None,
        connection_window: float | None = None,
        ws_weight_limit: int | None = None,
    ) -> None:
        _check_int("port", port, 0, 65535)
        for name, seconds in (
            ("ping_interval", ping_interval),
            ("connection_lifetime", connection_lifetime),
            ("connection_window", connection_window),
        ):
            if seconds is not None and not (isinstance(seconds, int | float) and 0 < seconds < math.inf):
                raise ValueError(f"{name} must be a finite number of seconds > 0, not {seconds!r}")
        self.allowed_origins = _origins(allowed_origins)
        for name, limit in (
            ("weight_limit", weight_limit),
            ("connection_limit", connection_limit),
            ("ws_weight_limit", ws_weight_limit),
        ):
            if limit is not None:
                _check_int(name, limit, 1)
        _check_int("violations_before_ban", violations_before_ban, 0)
        if not (isinstance(request_timeout, int | float) and 0 < request_timeout < math.inf):
            raise ValueError(
                f"request_timeout must be a finite number of seconds > 0, not {request_timeout!r}"
            )
        self.exchange = Exchange(
            clock,
            api_keys=api_keys,
            retired=retired,
            weight_limit=weight_limit,
            violations_before_ban=violations_before_ban,
            isolated_symbols=isolated_symbols,
            markets=MARKETS if coinm_keepalive_echoes_key else _empty_coinm_keepalive(),
        )
        self.request_timeout = float(request_timeout)
        self.streams = Streams(
            self.exchange,
            self.exchange.clock,
            strict_events=strict_events,
            ping_interval=ping_interval,
            connection_lifetime=connection_lifetime,
        )
        #: Per client IP: new connections per window, WebSocket API weight per minute (see `_limits`).
        self.limits = IpLimits(
            self.exchange.clock,
            connection_limit=connection_limit,
            connection_window=connection_window,
            ws_weight_limit=ws_weight_limit,
            violations_before_ban=violations_before_ban,
        )
        self.wsapi = WsApi(self.exchange, self.streams, self.limits)
        self._traffic = Traffic()
        self._steps = Steps(self._traffic)
        self._ledger_lock = threading.Lock()  # an order's events are made and applied as one
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        #: The latest requests that reached the server, as (method, path), oldest first; bounded,
        #: so that a simulator left running for days does not grow. `request_count` counts all.
        self.requests: deque[tuple[str, str]] = deque(maxlen=REQUESTS_KEPT)
        self.request_count = 0
        #: How many times each fault was served.
        self.faults_served: dict[Fault, int] = {}
        self._chaos: tuple[random.Random, float, tuple[Fault, ...]] | None = None
        self._socket = _listen(host, port)
        self._address: tuple[str, int] = self._socket.getsockname()[:2]
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server is bound to (`0.0.0.0` or `::` when on all interfaces)."""
        return self._address

    @property
    def all_interfaces(self) -> bool:
        """Whether it listens on every interface of the machine (a wildcard host)."""
        return ipaddress.ip_address(self._address[0]).is_unspecified

    @property
    def url(self) -> str:
        """The URL to give a client; for a wildcard bind, the loopback address (a client cannot
        connect to 0.0.0.0, and refuses plain http to anything but loopback)."""
        host, port = self._address
        if self.all_interfaces:
            host = "::1" if ":" in host else "127.0.0.1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def stream_url(self) -> str:
        """The event streams' base URL on this simulator (`ws://HOST:PORT`): `url` for WebSockets."""
        return "ws" + self.url.removeprefix("http")

    @property
    def ws_api_url(self) -> str:
        """The spot WebSocket API's URL on this simulator (`ws://HOST:PORT/ws-api/v3`)."""
        return self.stream_url + WS_API_PATH

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a WebSocket upgrade with this `Origin` header (None: none sent) is served."""
        return (
            origin is None
            or self.allowed_origins is None
            or is_loopback_origin(origin)
            or origin.rstrip("/").lower() in self.allowed_origins
        )

    def register_key(
        self,
        api_key: str,
        *,
        secret: str | None = None,
        public_key: bytes | str | None = None,
        account: str | None = None,
    ) -> str:
        """Let `api_key` sign requests: with an HMAC `secret`, or an RSA or Ed25519 `public_key` (PEM),
        one of them. Returns its account: the same for its REST listenKeys, its listenTokens and its
        WebSocket API subscriptions. With `api_keys=` the key is accepted from now on, as its own
        account, or `account`'s (to share one). ValueError for a malformed key or credential."""
        return self.exchange.register_key(api_key, Credential.of(secret, public_key), account)

    def inject(self, *faults: Fault) -> None:
        """Answer the next len(faults) requests with these faults, in order."""
        with self._lock:
            self._faults.extend(faults)

    def chaos(self, rate: float, faults: Sequence[Fault], seed: int | None = None) -> None:
        """From now on, replace each answer with one of `faults`, at random, with probability `rate`.

        Seeded, so a failing soak can be replayed. Queued faults (`inject`) still come first.
        """
        if not 0 <= rate <= 1 or not faults:
            raise ValueError("chaos needs a rate in [0, 1] and at least one fault")
        with self._lock:
            self._chaos = (random.Random(seed), rate, tuple(faults))

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    # -- event streams ---------------------------------------------------------------------------

    def push(
        self,
        market: str,
        event: Mapping[str, object],
        api_key: str | None = None,
        *,
        symbol: str | None = None,
    ) -> int:
        """Send `event` (a JSON object, as Binance sends it) to every listener of `market`, or of one
        account's (`api_key`): on the derivatives ("usdm", "coinm", "portfolio", "options"), the
        streams of every live listenKey; on "spot", the WebSocket API's spot subscriptions
        (`subscribe.signature`, logon); on "margin", its listenToken subscriptions of cross margin,
        or of `symbol`'s isolated margin account (margin only).

        Serialised once; the same text goes to every connection whose allow-list lets it through
        (on the WebSocket API, wrapped as `{"subscriptionId": N, "event": ...}`). Returns how many
        connections (subscriptions) it was queued to (0 if none listens); `deliveries` records it.
        """
        return self.push_many(market, [event], api_key, symbol=symbol)[0]

    def push_many(
        self,
        market: str,
        events: Sequence[Mapping[str, object]],
        api_key: str | None = None,
        *,
        symbol: str | None = None,
    ) -> list[int]:
        """`push` for several events, in order; returns how many connections got each."""
        _check_market(market)
        if symbol is not None and (market != "margin" or not isinstance(symbol, str) or not symbol):
            raise ValueError(
                "symbol= names an isolated margin account: a non-empty str, market 'margin' only"
            )
        events = list(events)
        for event in events:
            if not isinstance(event, Mapping):
                raise ValueError(f"an event is a JSON object (a dict), not {type(event).__name__}")
        account = None if api_key is None else self.exchange.account_of(api_key)

        def push() -> list[int]:
            if market in ("spot", "margin"):
                return self.wsapi.push(market, events, account, symbol)
            keys = self.exchange.live_listen_keys(KEYS_OF.get(market, market), account)
            return self.streams.push(market, events, keys)

        return self._on_loop(push)

    def push_accounts(
        self, market: str, events: Mapping[str, Sequence[Mapping[str, object]]]
    ) -> dict[str, list[int]]:
        """`push_many` for many accounts at once: `events` maps each API key to its events, each
        account's sent in order; returns, per API key, how many connections got each event. One
        call crosses to the server's thread once, so 5,000 accounts cost milliseconds, not the
        second that 5,000 `push` calls cost."""
        _check_market(market)
        batches: list[tuple[str, str, list[Mapping[str, object]]]] = []
        for api_key, batch in events.items():
            batch = list(batch)
            for event in batch:
                if not isinstance(event, Mapping):
                    raise ValueError(f"an event is a JSON object (a dict), not {type(event).__name__}")
            batches.append((api_key, self.exchange.account_of(api_key), batch))

        def push() -> dict[str, list[int]]:
            counts = {}
            for api_key, account, batch in batches:
                if market in ("spot", "margin"):
                    counts[api_key] = self.wsapi.push(market, batch, account, None)
                else:
                    keys = self.exchange.live_listen_keys(KEYS_OF.get(market, market), account)
                    counts[api_key] = self.streams.push(market, batch, keys)
            return counts

        return self._on_loop(push)

    def listeners(self, market: str, api_key: str | None = None) -> int:
        """How many connections are subscribed to `market`'s live listenKeys (of one account's,
        `api_key`), whatever their allow-lists; on "spot" and "margin", how many WebSocket API
        subscriptions are active. A client that subscribes without waiting for the answer (Binance's
        SDKs send `SUBSCRIBE` half a second after connecting) can be waited for before a push."""
        _check_market(market)
        account = None if api_key is None else self.exchange.account_of(api_key)

        def count() -> int:
            if market in ("spot", "margin"):
                return self.wsapi.count(market)
            keys = self.exchange.live_listen_keys(KEYS_OF.get(market, market), account)
            return self.streams.listeners(market, keys)

        return self._on_loop(count)

    def traffic(
        self, market: str = "usdm", api_key: str | None = None, *, isolated: bool = False, **order: object
    ) -> list[int]:
        """Push one realistic order's events with increasing `E` and order ids; returns how many
        connections got each. USD-M and the other derivatives: placed, partly filled, filled, with
        the ACCOUNT_UPDATEs the fills cause (`Traffic.order`; Portfolio Margin's shapes on "portfolio",
        `Traffic.portfolio_order`; on "coinm" a BTCUSD_PERP order in contracts, its commission in the
        coin, `Traffic.coinm_order`); Options in its own shapes, with the BALANCE_POSITION_UPDATEs,
        ACCOUNT_UPDATE and GREEK_UPDATE (`Traffic.options_order`); on "portfolio_pro" the
        PM_PRO_ACCOUNT_UPDATE its stream carries (`Traffic.account_status`, which takes asset and
        balance only); spot and margin: the executionReports (NEW, TRADE PARTIALLY_FILLED, TRADE
        FILLED) each with its outboundAccountPosition (`Traffic.spot_order`), to cross margin or,
        `isolated=True`, to the order symbol's isolated margin account. `order` overrides: symbol,
        side, quantity, price, asset, balance (decimal strings; ValueError for others). Another
        process sends `POST /_simulator/traffic`.

        The order moves the ledger of `api_key`'s account (none: the test account's) on `market`,
        connected or not, starting from what the ledger holds (`balance` only sets an asset the
        account has not traded on that market); its REST reads then say what the events said."""
        _check_market(market)
        if isolated and market != "margin":
            raise ValueError("isolated=True is for market 'margin' (an isolated margin account)")
        account = self._ledger_account(api_key)
        book = "usdm" if market == "portfolio_pro" else market
        symbol = None
        if isolated:
            symbol = str(order.get("symbol", "BTCUSDT"))
        with self._ledger_lock:
            self._load_traffic(self.exchange.ledger.view(account, book, symbol), market)
            events = self._generate(market, order)
            if market != "portfolio_pro":
                self.exchange.ledger.apply(account, market, events, symbol)
        return self.push_many(market, events, api_key, symbol=symbol)

    def _generate(self, market: str, order: Mapping[str, object]) -> list[dict[str, object]]:
        """The events of `traffic`'s order on `market` (see `traffic`)."""
        now = self.streams.event_time()
        if market in ("spot", "margin"):
            events = self._traffic.spot_order(now, **order)  # type: ignore[arg-type]
        elif market == "options":
            events = self._traffic.options_order(now, **order)  # type: ignore[arg-type]
        elif market == "portfolio":
            events = self._traffic.portfolio_order(now, **order)  # type: ignore[arg-type]
        elif market == "coinm":
            events = self._traffic.coinm_order(now, **order)  # type: ignore[arg-type]
        elif market == "portfolio_pro":
            if set(order) - {"asset", "balance"}:
                raise ValueError(
                    "portfolio_pro's stream carries no order: its traffic takes asset and balance only"
                )
            events = self._traffic.account_status(now, **order)  # type: ignore[arg-type]
        else:
            events = self._traffic.order(now, **order)  # type: ignore[arg-type]
        return events

    def _load_traffic(self, view: LedgerView, market: str) -> None:
        """Start `Traffic`'s next order from the account's ledger on `market` (nothing there: from the
        order's `balance`), so that its events continue what the account's REST reads say."""
        balances, positions, locked = {}, {}, {}
        for asset, balance in view.balances.items():
            if market in ("spot", "margin") and balance.free is not None:
                balances[f"spot:{asset}"] = balance.free
                locked[f"spot:{asset}"] = balance.locked or Decimal(0)
            elif market == "options" and balance.wallet is not None:
                balances[f"options:{asset}"] = balance.wallet
            elif market == "portfolio" and balance.um_wallet is not None:
                balances[asset] = balance.um_wallet
            elif balance.wallet is not None:
                balances[asset] = balance.wallet
        for (symbol, _), position in view.positions.items():
            positions[f"options:{symbol}" if market == "options" else symbol] = position.amount
        self._traffic.load(balances, positions, locked)

    def _ledger_account(self, api_key: str | None) -> str:
        """The account whose ledger an order moves: `api_key`'s, or with none the test account's."""
        if api_key is not None:
            return self.exchange.account_of(api_key)
        account = self.exchange.key_account(TEST_API_KEY)
        return account if isinstance(account, str) else TEST_API_KEY

    def ledger(self, market: str, api_key: str | None = None, *, symbol: str | None = None) -> LedgerView:
        """A frozen copy of an account's ledger on `market` (`api_key`'s account, or with none the
        test account's; `symbol`: that pair's isolated margin account): its balances, positions,
        open orders, every order and trade. What the account's REST reads answer."""
        _check_market(market)
        return self.exchange.ledger.view(self._ledger_account(api_key), market, symbol)

    def place_order(
        self,
        market: str,
        *,
        symbol: str,
        side: str,
        quantity: str,
        price: str,
        api_key: str | None = None,
        isolated: bool = False,
    ) -> int:
        """Place a LIMIT order for `api_key`'s account (none: the test account's) and send its events:
        the order NEW and, on spot and margin, the outboundAccountPosition of the funds it locks
        (ValueError if the account has too little free). Returns its order id. Markets: spot,
        margin (`isolated=True`: `symbol`'s isolated account), usdm, coinm (`quantity` in
        contracts), portfolio (UM; a COIN-M symbol: CM)."""
        account, book, market = self._step_target(market, api_key, isolated, symbol)
        with self._ledger_lock:
            view = self.exchange.ledger.view(account, market, book)
            order_id, events = self._steps.place(
                market, view, self.streams.event_time(), symbol, side, quantity, price
            )
            self.exchange.ledger.apply(account, market, events, book)
        self.push_many(market, events, api_key, symbol=book)
        return order_id

    def fill_order(
        self,
        market: str,
        order_id: int,
        quantity: str | None = None,
        *,
        symbol: str | None = None,
        api_key: str | None = None,
        isolated: bool = False,
    ) -> int:
        """Fill `quantity` of an open order (None: the rest) and send its TRADE and the balance and
        position events it causes; returns the trade id. `symbol` names the order's symbol when two
        symbols share the id (on isolated margin it names the account)."""
        account, book, market = self._step_target(market, api_key, isolated, symbol)
        with self._ledger_lock:
            view = self.exchange.ledger.view(account, market, book)
            order = self._open_order(view, order_id, symbol)
            trade_id, events = self._steps.fill(market, view, self.streams.event_time(), order, quantity)
            self.exchange.ledger.apply(account, market, events, book)
        self.push_many(market, events, api_key, symbol=book)
        return trade_id

    def cancel_order(
        self,
        market: str,
        order_id: int,
        *,
        symbol: str | None = None,
        api_key: str | None = None,
        isolated: bool = False,
    ) -> None:
        """Cancel an open order: its CANCELED event and, on spot and margin, the funds unlocked."""
        account, book, market = self._step_target(market, api_key, isolated, symbol)
        with self._ledger_lock:
            view = self.exchange.ledger.view(account, market, book)
            order = self._open_order(view, order_id, symbol)
            events = self._steps.cancel(market, view, self.streams.event_time(), order)
            self.exchange.ledger.apply(account, market, events, book)
        self.push_many(market, events, api_key, symbol=book)

    def _step_target(
        self, market: str, api_key: str | None, isolated: bool, symbol: str | None
    ) -> tuple[str, str | None, str]:
        if market not in STEP_MARKETS:
            raise ValueError(f"market must be one of {', '.join(STEP_MARKETS)}, not {market!r}")
        if isolated and (market != "margin" or not symbol):
            raise ValueError("isolated=True is for market 'margin', with the pair's symbol")
        return self._ledger_account(api_key), symbol if isolated else None, market

    @staticmethod
    def _open_order(view: LedgerView, order_id: int, symbol: str | None) -> LedgerOrder:
        found = [
            o for o in view.open_orders.values() if o.order_id == order_id and symbol in (None, o.symbol)
        ]
        if len(found) != 1:
            raise ValueError(
                f"no open order {order_id}"
                if not found
                else f"orders of several symbols have id {order_id}: give symbol="
            )
        return found[0]

    def shutdown_notice(self, market: str | None = None) -> int:
        """Send `{"e": "serverShutdown", "E": ...}` on every stream (of `market`) that gets events, as
        Binance does before a planned close; returns to how many connections."""
        if market is not None:
            _check_market(market)
        return self._on_loop(
            lambda: self.streams.broadcast(market, {"e": "serverShutdown", "E": self.streams.event_time()})
        )

    def drop_streams(self, market: str | None = None) -> int:
        """Fault: drop every stream connection (of `market`) without a close frame; returns how many."""
        return self._on_loop(lambda: self.streams.drop(market))

    def cut_streams(self, market: str | None = None) -> int:
        """Fault: close every stream connection (of `market`) cleanly (1001); returns how many."""
        return self._on_loop(lambda: self.streams.cut(market))

    def stall_streams(self, seconds: float, market: str | None = None) -> int:
        """Fault: send no frame and no ping on every stream connection (of `market`) for `seconds` of
        the simulator's clock; events pushed meanwhile are lost to them. Returns how many stalled."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf:
            raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
        return self._on_loop(lambda: self.streams.stall(float(seconds), market))

    def expire_key(self, listen_key: str | None = None, *, market: str | None = None) -> int:
        """Fault: expire a listenKey now (or every live key, of `market` if named), as an hour without
        keepalive would: its streams get `listenKeyExpired`, then are closed. Returns how many expired."""
        count = self._on_loop(lambda: self.exchange.expire(listen_key, market=market))
        self.tick()
        return count

    def subscriptions(self) -> int:
        """How many WebSocket API user-data subscriptions are active (spot's and margin's)."""
        return self._on_loop(self.wsapi.count)

    def end_subscriptions(self, market: str | None = None) -> int:
        """Fault: end every WebSocket API subscription (of `market`: "spot" or "margin") with
        `eventStreamTerminated`, and revoke every listenToken, as if they had all expired: a client
        must subscribe again, margin's with a new token. The connections stay open. Returns how
        many subscriptions ended."""
        if market not in (None, "spot", "margin"):
            raise ValueError(f"market must be 'spot' or 'margin' (or None for both), not {market!r}")

        def end() -> int:
            if market in (None, "margin"):
                self.exchange.tokens.revoke()
            return self.wsapi.terminate(market)

        return self._on_loop(end)

    def revoke_key(self, api_key: str) -> int:
        """Delete `api_key`, as its owner would on Binance: from now on every REST request and
        WebSocket API request with it is refused 401 -2015, as a deleted key is. What its account
        streams ends now (unless another accepted key of the same account remains, see
        `api_keys`): its listenKeys, as expired ones (`listenKeyExpired` on their streams,
        single-key and multi-key alike; a keepalive then answers -1125), its listenTokens, and its
        WebSocket API subscriptions (`eventStreamTerminated`; subscribing again is refused -2015).
        Binance documents what a deleted key's requests get, not what its open streams do; ending
        them is the simulator's choice, the one a client must survive. Returns how many streams
        (listenKeys and subscriptions) ended. ValueError for a key the simulator does not accept."""

        def revoke() -> int:
            account, keys = self.exchange.revoke_key(api_key)  # the streams hear of its keys
            return keys + (0 if account is None else self.wsapi.revoke(account))

        return self._on_loop(revoke)

    def connections_opened(self, within: float | None = None, ip: str | None = None) -> int:
        """How many WebSocket connections were opened (streams and WebSocket API) in the last
        `within` seconds of the simulator's clock (None: the whole `connection_window`; at most
        it), from `ip` or from every client IP."""
        return self._on_loop(lambda: self.limits.opened(within, ip))

    def ws_weight_used(self, ip: str | None = None) -> int:
        """The WebSocket API request weight used this minute (the simulator's clock), by `ip` or by
        every client IP."""
        return self._on_loop(lambda: self.limits.used(ip))

    def tick(self) -> None:
        """Look at the clock now, rather than at the next TICK: send the pings due, close connections
        24 hours old, expire keys whose time is up. Tests on a VirtualClock call it after advancing."""
        self._on_loop(self.streams.step)

    def stream_connections(self, market: str | None = None) -> int:
        """How many event-stream connections are open (of `market`; the WebSocket API's are "spot")."""
        return self._on_loop(lambda: self.streams.count(market))

    @property
    def deliveries(self) -> list[Delivery]:
        """The latest events sent on the streams (pushed, generated, listenKeyExpired,
        serverShutdown), oldest first, each with how many connections got it."""
        return self._on_loop(lambda: list(self.streams.deliveries))

    def _on_loop(self, function: Callable[[], _T]) -> _T:
        return self.streams.call(function)  # type: ignore[return-value]

    def start(self) -> Self:
        """Serve in a background thread until `stop`."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        if self._socket.fileno() < 0:
            raise RuntimeError("a stopped simulator cannot start again: make a new one")
        ready = threading.Event()
        self._failure = None
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="binance-userstream-simulator", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            raise self._failure
        return self

    def stop(self) -> None:
        """Stop serving: answers in progress get STOP_GRACE seconds, then every connection is cut."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is not None:
            if loop is not None and stopping is not None:
                with contextlib.suppress(RuntimeError):  # the loop has ended already
                    loop.call_soon_threadsafe(stopping.set)
            thread.join()
            self._thread = None
        self._socket.close()

    def serve_forever(self) -> None:
        """Serve until interrupted (the CLI's `simulator` command); the server stops on the way out."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()
        if self._failure is not None:
            raise self._failure

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready.set))
        except BaseException as exc:  # handed to start or serve_forever, never lost
            self._failure = exc
            if ready.is_set():
                log.error("the simulator's server stopped: %r", exc)
        finally:
            ready.set()

    async def _serve(self, ready: Callable[[], None]) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{path:.*}", handler(self))
        runner = web.AppRunner(
            app,
            access_log=None,  # _http logs each request at DEBUG, its listenKey scrubbed
            logger=QuietLog(),
            keepalive_timeout=self.request_timeout,
            shutdown_timeout=STOP_GRACE,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
        )
        await runner.setup()
        scheduler = asyncio.create_task(self.streams.run())
        try:
            await web.SockSite(runner, self._socket).start()
            ready()
            await self._stopping.wait()
        finally:
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
            await self.streams.close_all()
            await runner.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if fault is None and self._chaos is not None:
                rng, rate, faults = self._chaos
                if rng.random() < rate:
                    fault = rng.choice(faults)
            if fault is not None:
                self.faults_served[fault] = self.faults_served.get(fault, 0) + 1
            return fault

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))
            self.request_count += 1

    def _control(self, method: str, action: str, body: bytes) -> Answer:
        """The `/_simulator/` requests (already allowed by `_http`): inject faults, lose keys, look."""
        if method == "POST" and action == "faults":
            try:
                faults = _faults(body)
            except ValueError as exc:
                return error(400, -1100, f"bad faults: {exc}")
            self.inject(*faults)
            return Answer(200, json.dumps({"queued": self.pending_faults()}).encode())
        if method == "POST" and action == "events":
            return self._control_events(body)
        if method == "POST" and action == "traffic":
            return self._control_traffic(body)
        if method == "POST" and action == "streams":
            return self._control_streams(body)
        if method == "POST" and action == "keys":
            return self._control_keys(body)
        if method == "POST" and action == "forget-keys":
            return Answer(200, json.dumps({"forgotten": self.exchange.forget_keys()}).encode())
        if method == "GET" and action == "state":
            state = {
                "live_keys": self.exchange.live_keys(),
                "pending_faults": self.pending_faults(),
                "requests": self.request_count,
                "retired": self.exchange.retired,
                "isolated_symbols": _sorted_or_none(self.exchange.tokens.isolated_symbols),
                "stream_connections": self.streams.count(),
                "ws_api_subscriptions": self._on_loop(self.wsapi.count),
                "events_sent": self.streams.events_sent,
            }
            return Answer(200, json.dumps(state).encode())
        return error(404, -1000, f"unknown control request {method} /_simulator/{action}")

    def _control_keys(self, body: bytes) -> Answer:
        """`POST /_simulator/keys` `{"api_key": "...", "secret": "..." | "public_key": "<PEM>",
        "account"?: "..."}`: `register_key` from another process. The answer is `{"registered": true}`:
        it repeats neither the key nor its credential. `{"api_key": "...", "revoke": true}` is
        `revoke_key`, answered `{"ended": N}`."""
        try:
            request = _json_object(body)
            if request.get("revoke") is True and isinstance(request.get("api_key"), str):
                return Answer(200, json.dumps({"ended": self.revoke_key(str(request["api_key"]))}).encode())
            api_key, secret, public_key, account = (
                request.get(k) for k in ("api_key", "secret", "public_key", "account")
            )
            if not isinstance(api_key, str) or not all(
                v is None or isinstance(v, str) for v in (secret, public_key, account)
            ):
                raise ValueError(
                    'give {"api_key": "...", "secret": "..."} or {"api_key": "...", "public_key": "<PEM>"}'
                )
            assert secret is None or isinstance(secret, str)
            assert public_key is None or isinstance(public_key, str)
            assert account is None or isinstance(account, str)
            self.register_key(api_key, secret=secret, public_key=public_key, account=account)
        except ValueError as exc:
            return error(400, -1100, f"bad key: {exc}")
        return Answer(200, json.dumps({"registered": True}).encode())

    def _control_events(self, body: bytes) -> Answer:
        """`POST /_simulator/events` `{"market": "usdm", "events": [...], "api_key"?: "...",
        "symbol"?: "..." (margin: an isolated account)}`."""
        try:
            request = _json_object(body)
            market, events, api_key = request.get("market"), request.get("events"), request.get("api_key")
            symbol = request.get("symbol")
            if not isinstance(market, str) or not isinstance(events, list):
                raise ValueError('give {"market": "usdm", "events": [...]} and, optionally, "api_key"')
            if api_key is not None and not isinstance(api_key, str):
                raise ValueError("api_key must be a string")
            if symbol is not None and not isinstance(symbol, str):
                raise ValueError("symbol must be a string")
            delivered = self.push_many(market, events, api_key, symbol=symbol)
        except ValueError as exc:
            return error(400, -1100, f"bad events: {exc}")
        return Answer(200, json.dumps({"delivered": delivered}).encode())

    def _control_traffic(self, body: bytes) -> Answer:
        """`POST /_simulator/traffic` `{"market": "usdm", "api_key"?, "isolated"?: true (margin),
        "symbol"?, "side"?, "quantity"?, "price"?, "asset"?, "balance"?}`: `traffic` from another
        process. Answers `{"delivered": [...]}`, how many connections got each event."""
        try:
            request = _json_object(body)
            action = request.pop("action", "traffic")
            if action != "traffic":
                return self._control_step(action, request)
            market, api_key, isolated = (
                request.pop(k, d) for k, d in (("market", "usdm"), ("api_key", None), ("isolated", False))
            )
            unknown = set(request) - set(TRAFFIC_ORDER)
            if unknown:
                fields = ", ".join(("market", "api_key", "isolated", *TRAFFIC_ORDER))
                raise ValueError(f"unknown field {sorted(unknown)[0]!r}: use {fields}")
            if not isinstance(market, str) or not (api_key is None or isinstance(api_key, str)):
                raise ValueError("market and api_key are strings")
            if not isinstance(isolated, bool):
                raise ValueError("isolated is true or false")
            if not all(isinstance(value, str) for value in request.values()):
                raise ValueError(f"{', '.join(TRAFFIC_ORDER)} are strings, as Binance's decimals are")
            _check_market(market)
            delivered = self.traffic(market, api_key, isolated=isolated, **request)
        except ValueError as exc:
            return error(400, -1100, f"bad traffic: {exc}")
        return Answer(200, json.dumps({"delivered": delivered}).encode())

    def _control_step(self, action: object, request: dict[str, object]) -> Answer:
        """`POST /_simulator/traffic` with `"action"`: "place" (`market`, `symbol`, `side`, `quantity`,
        `price`, `api_key`?, `isolated`?; answers `{"order_id": N}`), "fill" (`market`, `order_id`,
        `quantity`?, `symbol`?, ...; answers `{"trade_id": N}`) or "cancel" (`market`, `order_id`,
        `symbol`?, ...; answers `{}`): `place_order`, `fill_order`, `cancel_order` from another process."""
        fields = {
            "place": {"market", "symbol", "side", "quantity", "price", "api_key", "isolated"},
            "fill": {"market", "order_id", "quantity", "symbol", "api_key", "isolated"},
            "cancel": {"market", "order_id", "symbol", "api_key", "isolated"},
        }
        try:
            if action not in fields:
                raise ValueError(f"unknown action {action!r}: use traffic, place, fill or cancel")
            assert isinstance(action, str)
            unknown = set(request) - fields[action]
            if unknown:
                raise ValueError(
                    f"unknown field {sorted(unknown)[0]!r}: use {', '.join(sorted(fields[action]))}"
                )
            market = request.pop("market", "usdm")
            order_id = request.pop("order_id", None)
            if not isinstance(market, str) or not all(
                isinstance(v, str) for k, v in request.items() if k != "isolated"
            ):
                raise ValueError("market, symbol, side, quantity, price and api_key are strings")
            if not isinstance(request.get("isolated", False), bool):
                raise ValueError("isolated is true or false")
            if action != "place" and (isinstance(order_id, bool) or not isinstance(order_id, int)):
                raise ValueError("order_id is an integer")
            assert isinstance(order_id, int | None)
            arguments: Any = request
            if action == "place":
                for name in ("symbol", "side", "quantity", "price"):
                    if name not in request:
                        raise ValueError(f"place needs {name}")
                answer: dict[str, int] = {"order_id": self.place_order(market, **arguments)}
            elif action == "fill":
                answer = {"trade_id": self.fill_order(market, order_id or 0, **arguments)}
            else:
                self.cancel_order(market, order_id or 0, **arguments)
                answer = {}
        except ValueError as exc:
            return error(400, -1100, f"bad {action}: {exc}")
        return Answer(200, json.dumps(answer).encode())

    def _control_streams(self, body: bytes) -> Answer:
        """`POST /_simulator/streams` `{"fault": "drop"|"cut"|"stall"|"expire"|"shutdown", "market"?,
        "seconds"? (stall)}`: a stream fault, or a serverShutdown notice."""
        try:
            request = _json_object(body)
            fault, market, seconds = request.get("fault"), request.get("market"), request.get("seconds")
            if market is not None:
                _check_market(market)
                assert isinstance(market, str)
            if fault == "drop":
                count = self.drop_streams(market)
            elif fault == "cut":
                count = self.cut_streams(market)
            elif fault == "stall":
                count = self.stall_streams(seconds, market)  # type: ignore[arg-type]
            elif fault == "expire":
                count = self.expire_key(market=market)
            elif fault == "shutdown":
                count = self.shutdown_notice(market)
            else:
                raise ValueError(f"unknown stream fault {fault!r}: use drop, cut, stall, expire or shutdown")
        except ValueError as exc:
            return error(400, -1100, f"bad stream fault: {exc}")
        return Answer(200, json.dumps({"affected": count}).encode())


def _json_object(body: bytes) -> dict[str, object]:
    try:
        value = json.loads(body or b"{}")
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"the body is not JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _origins(origins: Collection[str] | None) -> frozenset[str] | None:
    """The allowed origins, as browsers send them (`scheme://host[:port]`, lower case); ValueError
    for anything else."""
    if origins is None:
        return None
    if isinstance(origins, str):
        raise ValueError("allowed_origins is a collection of origins, such as ['https://app.example']")
    allowed = set()
    for origin in origins:
        parts = urlsplit(origin.rstrip("/")) if isinstance(origin, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path
            or parts.query
            or parts.fragment
        ):
            raise ValueError(f"an allowed origin is scheme://host[:port] (https://app.example): {origin!r}")
        allowed.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(allowed)


def _empty_coinm_keepalive() -> tuple[Market, ...]:
    """The markets, COIN-M's keepalive answering `{}` (its older pages' answer)."""
    return tuple(attrs.evolve(m, keepalive_echoes_key=False) if m is COINM else m for m in MARKETS)


def _sorted_or_none(values: Collection[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def _check_market(market: object) -> None:
    if market not in STREAM_MARKETS:
        raise ValueError(f"market must be one of {', '.join(STREAM_MARKETS)}, not {market!r}")


def _faults(body: bytes) -> list[Fault]:
    """The faults a control request lists: a JSON list of `Fault.to_json()` objects."""
    try:
        items = json.loads(body or b"[]")
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[...", deeper than Python goes
        raise ValueError(f"the body is not JSON ({type(exc).__name__})") from None
    if not isinstance(items, list):
        raise ValueError("the body must be a JSON list of faults (Fault.to_json())")
    faults = []
    for number, item in enumerate(items, 1):
        try:
            faults.append(Fault.from_json(item))
        except ValueError as exc:
            raise ValueError(f"fault {number}: {exc}") from None
    return faults


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {span}, not {value!r}")


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); an error says which address could not be had, and why."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        failure = OSError(f"cannot listen on {where}: {reason}")
        failure.errno = exc.errno
        raise failure from None
