"""The simulator's event streams: Binance's user-data WebSocket endpoints, on the REST server's port.

Routes (what a connection gets is decided by the key's market, as the hosts share one port here):

- `/private/ws?listenKey=K&events=A/B`: USD-M, raw event frames; `events` is an allow-list of wire
  event names (`e`). As Binance's USD-M Change Notice documents it (listenKey and events in the
  query, https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Important-WebSocket-Change-Notice)
  and as unicorn-binance-websocket-api's maintainers measured on production (their PR #446,
  2026-05-21: "Without `&events=...` Binance production delivers no payloads"), a stream opened
  without `events` gets nothing; `strict_events=False` (`--lenient-events`) delivers it every event
  instead, for clients that send no list. An empty `events=`, or one naming an event USD-M does not
  send (nor Options, on `/private/stream`, which serves its keys too), is refused before the
  upgrade. Binance documents no answer for either: the simulator answers 400 with the futures error
  codes closest to them (error-code page of the USD-M docs): -1102
  "Mandatory parameter 'events' was not sent, was empty/null, or malformed." for an empty list,
  -1130 "Data sent for parameter 'events' is not valid." for an unknown name.
- `/private/stream?listenKey=K1&events=..&listenKey=K2&events=..`: USD-M stream mode, frames
  `{"stream": <listenKey>, "data": <event>}`; a JSON `SUBSCRIBE` with listenKeys as params adds keys
  and is answered `{"result": null, "id": <id>}`. A bare listenKey subscribed so gets every event:
  that is what Binance's own SDKs send (binance-common 4.7.0's `WebSocketStreamBase`, for USD-M and
  for Options, whose keys are served here too), so production serves it.
- Combined streams (Binance's "Live Subscribing/Unsubscribing to streams", on each derivatives
  market's websocket-market-streams page): `/stream?streams=K1/K2` and `/stream` + JSON `SUBSCRIBE`,
  `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS` for COIN-M (dstream's `/stream`: what Binance's COIN-M SDK
  14.1.0 opens), `/pm/stream` likewise for Portfolio Margin (its page documents only `/pm/ws/<key>`,
  but Binance's PM SDK 16.1.0 opens `wss://fstream.binance.com/pm/stream` and subscribes the key),
  frames `{"stream": <listenKey>, "data": <event>}`; `/pm-classic/stream` likewise for Portfolio
  Margin Pro (Binance's SDK constant `wss://fstream.binance.com/pm-classic`, plus `/stream`), on
  USD-M keys. A USD-M key on `/stream` (fstream's legacy route, retired 2026-04-23) is accepted and
  gets nothing.
- Many keys on one connection (a fleet's): a SUBSCRIBE takes several keys, each a bare listenKey
  (every event) or `<listenKey>@<event>` (that event: the Change Notice's "listenKey event items",
  whose syntax Binance does not spell out); a key that ends ends its stream alone (its
  `listenKeyExpired` in its envelope), and a connection left with none is closed. At most
  MAX_STREAMS keys a connection (OPTIONS_MAX_STREAMS on Options' keys); Binance documents the
  limit, not its answer, so one past it is refused here as a bad request (`{"code": 2, ...}`, the
  error shape of the streams' "Error Messages" table, web-socket-streams.md), the connection kept.
- `/ws/<key>`: COIN-M delivers; a USD-M key is accepted and gets nothing (the legacy path, retired
  2026-04-23). `/pm/ws/<key>`: Portfolio Margin. `/private/ws/<key>`: Options; a USD-M key on the
  path form is accepted and gets nothing (production fails silently there). `/pm-classic/ws/<key>`:
  Portfolio Margin Pro (market "portfolio_pro"), whose key is a USD-M one (`POST /fapi/v1/listenKey`).
- `/public/ws|stream`, `/market/ws|stream`: USD-M's market-data routes, accepted and silent (no
  market data here); Binance's SDK opens all three routes, so it needs them to connect.
- `/ws-api/v3`: the spot WebSocket API, whose connections live here too (pings every 20 s, a pong
  due within a minute, the 24-hour cut, the faults) while `_wsapi` answers their requests and
  routes spot and margin events to their subscriptions.
- A key that is not live (unknown, expired, closed) is refused before the upgrade: 400
  `{"code": -1125, "msg": "This listenKey does not exist."}`, the REST answer for such a key
  (production's handshake answer is undocumented).

Time follows the simulator's clock: a scheduler on the server's loop looks at `clock.now()` every
TICK seconds of real time (and at once on `Simulator.tick()`): it sends pings at the market's
interval, closes a connection 24 hours after it opened, ends stalls, and sweeps expired keys (which
get `listenKeyExpired`, then their connections closed). On a VirtualClock, a test advances the clock
and calls `sim.tick()`; nothing waits for real time. Each event is serialised once and the same
text queued to every connection that gets it; each connection has a writer task of its own, so
one slow peer never holds up the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Literal

from aiohttp import WSMsgType, web
from attrs import define, field, frozen

from binance_userstream._clock import Clock, wall_time
from binance_userstream._secrets import redact
from binance_userstream.simulator._exchange import Ending, Exchange
from binance_userstream.simulator._markets import MARKETS

log = logging.getLogger("binance_userstream.simulator.streams")

#: Real seconds between two looks at the clock by the scheduler.
TICK = 0.05
#: A connection lives this long on the simulator's clock, then is closed (Binance: 24 hours).
CONNECTION_LIFETIME = 86400.0
#: Frames queued for one connection at most; a peer that falls this far behind is disconnected.
MAX_QUEUED = 10_000
#: Deliveries kept in `Streams.deliveries` (a simulator left running for days does not grow).
DELIVERIES_KEPT = 10_000
#: Close codes: a key ended (closed or expired) is a normal closure; the 24-hour cut, a cut fault,
#: and the simulator stopping are "going away".
KEY_ENDED = 1000
GOING_AWAY = 1001
TOO_SLOW = 1008
TOO_MANY_MESSAGES = 1008
#: Messages (requests, pings, pongs) a stream connection may send in a second of real time; one more
#: and it is closed, as Binance's futures streams close it ("WebSocket connections have a limit of
#: 10 incoming messages per second. A connection that goes beyond the limit will be disconnected",
#: each derivatives market's websocket-market-streams page, e.g. https://developers.binance.com/docs/
#: derivatives/options-trading/websocket-market-streams). It also bounds the answers a peer that
#: never reads can make the simulator queue.
MAX_INCOMING_PER_SECOND = 10
#: Market names the push API takes: the derivatives' listenKey streams, and spot and margin, whose
#: events go to the WebSocket API's subscriptions.
STREAM_MARKETS = ("usdm", "coinm", "portfolio", "portfolio_pro", "options", "spot", "margin")
#: Stream markets whose connections take another market's listenKeys: Portfolio Margin Pro's stream
#: takes USD-M's (https://developers.binance.com/docs/derivatives/portfolio-margin-pro/
#: portfolio-margin-pro-user-data-stream).
KEYS_OF = {"portfolio_pro": "usdm"}
#: Real seconds a ping's pong may take whatever the simulator's clock says, so that a jump of a
#: VirtualClock (or a fast AcceleratedClock) does not take a pong on its way for a missing one.
PONG_GRACE = 2 * TICK
_PING_INTERVAL = {market.name: market.ping_interval for market in MARKETS}
_PING_INTERVAL["portfolio_pro"] = _PING_INTERVAL["usdm"]  # fstream's 3 minutes
_NO_KEY = json.dumps({"code": -1125, "msg": "This listenKey does not exist."}).encode()
_PING = object()  # queued for a connection's writer: send a ping frame (in order with the frames)
_MISSING = object()


@frozen
class _Pong:
    """Queued for a connection's writer: answer a ping (connections that do not autoping)."""

    data: bytes


Mode = Literal["ws", "stream"]


@frozen
class Delivery:
    """One event the simulator sent: its market, its type (`e`), the frame text (ws mode), and how
    many connections it was queued to (0: nobody was listening, or the allow-lists kept it out)."""

    market: str
    event: str
    text: str
    connections: int

    def __repr__(self) -> str:  # the text may carry a listenKey (listenKeyExpired)
        return f"Delivery(market={self.market!r}, event={self.event!r}, connections={self.connections})"


@define(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    route: str
    mode: Mode
    #: The market whose stream this is (its key's market; usdm for a bare /private/stream).
    market: str
    #: listenKey -> its allow-list of event names (None: every event). Empty for a connection that
    #: is accepted and gets nothing (legacy /ws/<usdm key>).
    subscriptions: dict[str, frozenset[str] | None]
    opened_at: float
    next_ping: float
    queue: asyncio.Queue[object] = field(factory=asyncio.Queue)
    stalled_until: float = -math.inf
    pings_sent: int = 0
    closing: bool = False
    #: A WebSocket API connection: its requests go to `on_text`, and `on_end` is told when it ends.
    on_text: Callable[[str], None] | None = None
    on_end: Callable[[], None] | None = None
    #: Seconds of the simulator's clock a ping's pong may take (None: not enforced), and when the
    #: oldest ping still unanswered was sent (the clock's time, and real time).
    pong_timeout: float | None = None
    ping_unanswered: tuple[float, float] | None = None
    #: When (real time) its latest messages came, to hold it to MAX_INCOMING_PER_SECOND.
    received: deque[float] = field(factory=lambda: deque(maxlen=MAX_INCOMING_PER_SECOND))

    @property
    def wsapi(self) -> bool:
        return self.on_text is not None


#: What other modules of the simulator (the WebSocket API) hold of a connection.
Connection = _Connection


#: USD-M's market-data routes: accepted, and silent (the simulator has no market data), so that a
#: client that opens all three routes (Binance's own SDK does) connects; a listenKey subscribed
#: there gets nothing, as production's mis-routed subscriptions.
MARKET_DATA = ("/public/ws", "/public/stream", "/market/ws", "/market/stream")
#: Combined-stream routes: `?streams=` names the listenKeys, and JSON SUBSCRIBE adds more.
COMBINED = ("/stream", "/pm/stream", "/pm-classic/stream")
#: Streams (listenKeys) one connection may carry at most: 1024 on USD-M, COIN-M and Portfolio Margin's
#: hosts, 200 on Options ("A single connection can listen to a maximum of 1024 streams" / "200
#: streams", each derivatives market's websocket-market-streams page).
MAX_STREAMS = 1024
OPTIONS_MAX_STREAMS = 200
#: The event names USD-M's user-data stream sends (its user-data-streams pages), which an `events`
#: allow-list may name.
USDM_EVENTS = frozenset(
    {
        "ORDER_TRADE_UPDATE",
        "ACCOUNT_UPDATE",
        "MARGIN_CALL",
        "ACCOUNT_CONFIG_UPDATE",
        "TRADE_LITE",
        "ALGO_UPDATE",
        "STRATEGY_UPDATE",
        "GRID_UPDATE",
        "CONDITIONAL_ORDER_TRIGGER_REJECT",
        "listenKeyExpired",
    }
)
#: Options' (https://developers.binance.com/docs/derivatives/options-trading/user-data-streams), whose
#: keys /private/stream serves beside USD-M's.
OPTIONS_EVENTS = frozenset(
    {
        "ORDER_TRADE_UPDATE",
        "ACCOUNT_UPDATE",
        "BALANCE_POSITION_UPDATE",
        "GREEK_UPDATE",
        "RISK_LEVEL_CHANGE",
        "listenKeyExpired",
    }
)
#: Market -> the names an `events` allow-list may give for its keys.
_EVENT_NAMES = {"usdm": USDM_EVENTS, "options": OPTIONS_EVENTS}
_EMPTY_EVENTS = json.dumps(
    {"code": -1102, "msg": "Mandatory parameter 'events' was not sent, was empty/null, or malformed."}
).encode()
_UNKNOWN_EVENTS = json.dumps(
    {"code": -1130, "msg": "Data sent for parameter 'events' is not valid."}
).encode()


def _stream_path(path: str) -> tuple[str, str | None] | None:
    """(route, key in the path) for a stream path, None for any other path."""
    if path in ("/private/ws", "/private/stream", *COMBINED, *MARKET_DATA):
        return path, None
    for prefix in ("/private/ws/", "/pm/ws/", "/pm-classic/ws/", "/ws/"):
        if path.startswith(prefix) and len(path) > len(prefix) and "/" not in path[len(prefix) :]:
            return prefix, path[len(prefix) :]
    return None


def is_stream_path(path: str) -> bool:
    return _stream_path(path) is not None


#: Route (path form) -> the markets whose keys it delivers, the first its own (a connection with no
#: key is of that market); other live keys are accepted and get nothing.
_DELIVERS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(MARKET_DATA, ()),
    "/private/ws": ("usdm",),
    "/private/stream": ("usdm", "options"),
    "/private/ws/": ("options",),
    "/pm/ws/": ("portfolio",),
    "/pm/stream": ("portfolio",),
    "/pm-classic/ws/": ("usdm",),
    "/pm-classic/stream": ("usdm",),
    "/ws/": ("coinm",),
    "/stream": ("coinm",),
}
#: Route (path form) -> the stream market its connections are, where it is not the key's market.
_STREAM_MARKET = {"/pm-classic/ws/": "portfolio_pro", "/pm-classic/stream": "portfolio_pro"}


def _takes(connection: _Connection, market: str) -> bool:
    """Whether a push of `market` may reach `connection`, whose keys then decide: a route whose
    stream is a market of its own (PM Pro's, on USD-M keys) takes that market's pushes alone, and
    every other route the other markets' (so a USD-M key's events stay off its PM Pro stream)."""
    own = _STREAM_MARKET.get(connection.route)
    return own == market if own is not None else market not in _STREAM_MARKET.values()


def _over_rate(connection: _Connection, now: float) -> bool:
    """Note a message from `connection` at `now` (the simulator's clock, which a stepped test and its
    client's pacing share): whether it is one more than MAX_INCOMING_PER_SECOND in the last second."""
    received = connection.received
    over = len(received) == received.maxlen and now - received[0] < 1.0
    received.append(now)
    return over


def _allow_list(values: list[str]) -> frozenset[str]:
    return frozenset(name for value in values for name in value.split("/") if name)


def _events_refusal(route: str, values: list[str]) -> bytes | None:
    """The answer to an `events` list Binance would not take (empty, or naming an event that no
    market whose keys `route` delivers sends), None for a good one."""
    names = [name for value in values for name in value.split("/")]
    if not names or "" in names:
        return _EMPTY_EVENTS
    known = {name for market in _DELIVERS[route] for name in _EVENT_NAMES[market]}
    if not known.issuperset(names):
        return _UNKNOWN_EVENTS
    return None


class Streams:
    """Every event-stream connection of one simulator, and what is sent on them. Runs on the
    server's event loop; the Simulator's thread-safe methods call in through `call`."""

    def __init__(
        self,
        exchange: Exchange,
        clock: Clock,
        *,
        strict_events: bool = True,
        ping_interval: float | None = None,
        connection_lifetime: float = CONNECTION_LIFETIME,
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self.strict_events = strict_events
        #: Seconds between pings, per market: Binance's unless one interval is given for all.
        self.ping_intervals = (
            dict(_PING_INTERVAL) if ping_interval is None else dict.fromkeys(_PING_INTERVAL, ping_interval)
        )
        #: Seconds a connection lives before the server cuts it (Binance: 24 hours).
        self.connection_lifetime = connection_lifetime
        #: The latest deliveries, oldest first (bounded); `events_sent` counts every one.
        self.deliveries: deque[Delivery] = deque(maxlen=DELIVERIES_KEPT)
        self.events_sent = 0
        self.frames_sent = 0
        self._connections: set[_Connection] = set()
        #: listenKey -> the connections subscribed to it, so that a push finds its few connections
        #: among thousands without looking at every one.
        self._by_key: dict[str, set[_Connection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        #: Called at each step, after the streams' own work (the WebSocket API expires listenTokens).
        self.on_step: list[Callable[[], None]] = []
        # Millisecond event times: the wall clock when the simulator was made, moved by its clock.
        exchange.add_listener(self._key_ended)

    # -- life on the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """The scheduler: a step at every TICK of real time, or at once when woken."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while True:
            self.step()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self._wake.wait()
            self._wake.clear()

    async def close_all(self) -> None:
        """Close every connection (going away) and wait for their tasks: the simulator is stopping."""
        for connection in list(self._connections):
            self._close(connection, GOING_AWAY, "the simulator is stopping")
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        for task in set(self._tasks):
            task.cancel()

    def call(self, function: Callable[[], object]) -> object:
        """Run `function` on the loop (from any thread) and return what it returned. When the server
        is not running there is no connection to meddle with, so it runs here."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return function()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return function()

        # A callback, not a coroutine: no task to make, so a test pushing to thousands of accounts
        # one by one pays the hop between threads and little more.
        result: concurrent.futures.Future[object] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(function())
            except BaseException as exc:  # handed to the caller's thread
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        while True:
            try:
                return result.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if loop.is_closed():  # stopped before it ran: the caller is told, not left waiting
                    raise RuntimeError("the simulator stopped") from None

    def step(self) -> None:
        """Look at the clock: sweep expired keys, end stalls, send pings due, cut 24-hour-old
        connections. (Called on the loop.)"""
        self.exchange.sweep()  # expired keys come back through _key_ended
        now = self.clock.now()
        for connection in list(self._connections):
            if connection.closing:
                continue
            if now >= connection.opened_at + self.connection_lifetime:
                self._close(connection, GOING_AWAY, "24-hour connection limit reached")
            elif self._pong_overdue(connection, now):
                self._close(connection, TOO_SLOW, "no pong received in time")
            elif now >= connection.stalled_until and now >= connection.next_ping:
                connection.next_ping = now + self.ping_intervals[connection.market]
                connection.queue.put_nowait(_PING)
        for hook in self.on_step:
            hook()

    @staticmethod
    def _pong_overdue(connection: _Connection, now: float) -> bool:
        if connection.pong_timeout is None or connection.ping_unanswered is None:
            return False
        sent, sent_real = connection.ping_unanswered
        return now - sent > connection.pong_timeout and time.monotonic() - sent_real > PONG_GRACE

    # -- connections -----------------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Answer a WebSocket upgrade on a stream path (a key that is not live: 400 before it)."""
        route, path_key = _stream_path(request.path) or ("", None)
        subscriptions: list[tuple[str, frozenset[str] | None]] = []
        query = request.rel_url.query
        if path_key is not None:
            subscriptions.append((path_key, None))
        elif route in COMBINED:
            names = [name for value in query.getall("streams", []) for name in value.split("/") if name]
            subscriptions.extend((name.partition("@")[0], None) for name in names)
        elif route not in MARKET_DATA:
            refusal = _events_refusal(route, query.getall("events")) if "events" in query else None
            if refusal is not None:
                why = "empty" if refusal is _EMPTY_EVENTS else "unknown"
                log.debug("stream %s refused: %s events", route, why)
                return web.Response(status=400, body=refusal, content_type="application/json")
            for name, value in query.items():
                if name == "listenKey":
                    subscriptions.append((value, None))
                elif name == "events" and subscriptions:
                    key, allowed = subscriptions[-1]
                    subscriptions[-1] = (key, (allowed or frozenset()) | _allow_list([value]))
        markets = [self.exchange.market_of(key) for key, _ in subscriptions]
        if None in markets or (route == "/private/ws" and not subscriptions):
            log.debug("stream %s refused: no such listenKey", route)
            return web.Response(status=400, body=_NO_KEY, content_type="application/json")
        delivering: dict[str, frozenset[str] | None] = {}
        for (key, allowed), market in zip(subscriptions, markets, strict=True):
            if market not in _DELIVERS[route]:
                continue  # accepted, and nothing delivered: the wrong host or a retired path
            if allowed is None and route.startswith("/private/") and path_key is None and self.strict_events:
                allowed = frozenset()  # listenKey= without events: production delivers nothing
            delivering[key] = allowed
        market = _STREAM_MARKET.get(route) or next(
            (m for m in markets if m is not None), (*_DELIVERS[route], "usdm")[0]
        )
        limit = OPTIONS_MAX_STREAMS if market == "options" else MAX_STREAMS
        if len(delivering) > limit:
            log.debug("stream %s refused: more than %d streams", route, limit)
            body = {"code": 2, "msg": f"Invalid request: at most {limit} streams per connection"}
            return web.Response(status=400, body=json.dumps(body).encode(), content_type="application/json")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, timeout=2.0, max_msg_size=64 * 1024)
        now = self.clock.now()
        connection = _Connection(
            ws,
            request,
            route,
            "stream" if route.endswith("/stream") else "ws",
            market,
            delivering,
            opened_at=now,
            next_ping=now + self.ping_intervals[market],
        )
        return await self.serve_connection(connection)

    def open(self, request: web.Request, route: str, market: str, pong_timeout: float | None) -> _Connection:
        """A WebSocket API connection (not yet upgraded): its requests are answered by whoever sets
        `on_text`; it is pinged at its market's interval and must pong within `pong_timeout`."""
        ws = web.WebSocketResponse(autoping=False, heartbeat=None, timeout=2.0, max_msg_size=64 * 1024)
        now = self.clock.now()
        return _Connection(
            ws,
            request,
            route,
            "ws",
            market,
            {},
            opened_at=now,
            next_ping=now + self.ping_intervals[market],
            pong_timeout=pong_timeout,
        )

    async def serve_connection(self, connection: _Connection) -> web.WebSocketResponse:
        """Upgrade, then serve `connection` until it ends: its writer sends the queue, its requests
        are read and answered."""
        ws, request, route, market = connection.ws, connection.request, connection.route, connection.market
        subscriptions = list(connection.subscriptions)
        # Registered before the handshake's answer goes out: a client that pushes as soon as it is
        # connected must find it (frames queue until the writer starts).
        self._connections.add(connection)
        for key in connection.subscriptions:
            self._by_key.setdefault(key, set()).add(connection)
        try:
            await ws.prepare(request)
        except BaseException:
            self._connections.discard(connection)
            self._forget(connection)
            raise
        if connection.closing:  # cut or dropped during the handshake
            self._connections.add(connection)
            connection.closing = False
            self._close(connection, GOING_AWAY, "closed by the simulator")
        writer = self._spawn(self._write(connection))
        log.debug(
            "stream %s opened for %s (%s)",
            route,
            ", ".join(redact(key) for key in subscriptions) or "no key",
            market,
        )
        try:
            async for message in ws:
                if connection.closing:
                    continue  # closed by the simulator: what it still sends is not answered
                if connection.on_text is None and _over_rate(connection, self.clock.now()):
                    log.debug(
                        "stream %s closed: more than %d messages a second", route, MAX_INCOMING_PER_SECOND
                    )
                    self._close(connection, TOO_MANY_MESSAGES, "too many messages: more than 10 a second")
                elif message.type == WSMsgType.TEXT:
                    if connection.on_text is not None:
                        connection.on_text(message.data)
                    else:
                        self._request(connection, message.data)
                elif message.type == WSMsgType.PING:
                    connection.queue.put_nowait(_Pong(message.data))
                elif message.type == WSMsgType.PONG:
                    connection.ping_unanswered = None
        finally:
            self._connections.discard(connection)
            self._forget(connection)
            writer.cancel()
            if connection.on_end is not None:
                connection.on_end()
            log.debug("stream %s ended (%s)", route, market)
        return ws

    def _request(self, connection: _Connection, text: str) -> None:
        """A JSON request on a stream: SUBSCRIBE / UNSUBSCRIBE listenKeys (several per request; a
        param is a listenKey, or `<listenKey>@<event>` for one event of it), LIST_SUBSCRIPTIONS. The
        errors are those of Binance's "Live Subscribing/Unsubscribing to streams" table
        (web-socket-streams.md "Error Messages"), which the derivatives' pages share."""
        try:
            request = json.loads(text)
        except (ValueError, RecursionError):
            self._answer(connection, {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
            return
        if not isinstance(request, dict):
            self._answer(connection, {"code": 2, "msg": "Invalid request: expected a JSON object"})
            return
        method, ident, params = request.get("method"), request.get("id"), request.get("params", [])
        if not isinstance(params, list):
            self._answer(
                connection, {"code": 2, "msg": "Invalid request: params must be a list", "id": ident}
            )
            return
        names = [param for param in params if isinstance(param, str)]
        if method == "SUBSCRIBE":
            wanted: dict[str, frozenset[str] | None] = {}
            for name in names:
                key, _, event = name.partition("@")
                market = self.exchange.market_of(key)
                if market is None or market not in _DELIVERS[connection.route]:
                    continue  # acknowledged, and nothing delivered, as production's mis-routed ones
                if not connection.subscriptions and not wanted:
                    connection.market = market  # a bare /private/stream that takes an Options key
                allowed = wanted.get(key, connection.subscriptions.get(key, frozenset()))
                wanted[key] = None if not event or allowed is None else allowed | _allow_list([event])
            limit = self.max_streams(connection)
            if len(connection.subscriptions.keys() | wanted.keys()) > limit:
                # Binance documents the limit, not its answer: refused whole, the connection kept.
                log.debug("stream %s: SUBSCRIBE past %d streams refused", connection.route, limit)
                self._answer(
                    connection,
                    {
                        "code": 2,
                        "msg": f"Invalid request: at most {limit} streams per connection",
                        "id": ident,
                    },
                )
                return
            for key, allowed in wanted.items():
                self._subscribe(connection, key, allowed)
            self._answer(connection, {"result": None, "id": ident})
        elif method == "UNSUBSCRIBE":
            for name in names:
                self._unsubscribe(connection, name.partition("@")[0])
            self._answer(connection, {"result": None, "id": ident})
        elif method == "LIST_SUBSCRIPTIONS":
            self._answer(connection, {"result": sorted(connection.subscriptions), "id": ident})
        else:
            self._answer(
                connection,
                {
                    "code": 2,
                    "msg": f"Invalid request: unknown variant {json.dumps(method)}, expected one of "
                    "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
                    "id": ident,
                },
            )

    @staticmethod
    def max_streams(connection: _Connection) -> int:
        """How many listenKeys `connection` may carry: 200 on Options' keys, 1024 on the others'."""
        return OPTIONS_MAX_STREAMS if connection.market == "options" else MAX_STREAMS

    def _subscribe(self, connection: _Connection, key: str, allowed: frozenset[str] | None) -> None:
        connection.subscriptions[key] = allowed
        self._by_key.setdefault(key, set()).add(connection)

    def _unsubscribe(self, connection: _Connection, key: str) -> None:
        if connection.subscriptions.pop(key, _MISSING) is _MISSING:
            return
        holders = self._by_key.get(key)
        if holders is not None:
            holders.discard(connection)
            if not holders:
                del self._by_key[key]

    def _forget(self, connection: _Connection) -> None:
        """Take an ended connection out of the key index (its subscriptions stay, for the record)."""
        for key in connection.subscriptions:
            holders = self._by_key.get(key)
            if holders is not None:
                holders.discard(connection)
                if not holders:
                    del self._by_key[key]

    def _answer(self, connection: _Connection, body: Mapping[str, object]) -> None:
        connection.queue.put_nowait(json.dumps(body, separators=(",", ":")))

    async def _write(self, connection: _Connection) -> None:
        """Send the connection's queue in order: frames, and pings when due."""
        while True:
            item = await connection.queue.get()
            try:
                if item is _PING:
                    # Noted before it is written: once on the wire, the peer may move the clock (a test
                    # advancing a VirtualClock past the pong deadline) before this thread reads it.
                    if connection.ping_unanswered is None:
                        connection.ping_unanswered = (self.clock.now(), time.monotonic())
                    connection.pings_sent += 1
                    await connection.ws.ping()
                elif isinstance(item, _Pong):
                    await connection.ws.pong(item.data)
                else:
                    assert isinstance(item, str)
                    await connection.ws.send_str(item)
                    self.frames_sent += 1
            except (ConnectionError, RuntimeError):
                return  # the peer is gone; the handler ends the connection

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _close(self, connection: _Connection, code: int, reason: str) -> None:
        """Close one connection cleanly (a close frame with `code` and `reason`), in a task."""
        if connection.closing:
            return
        connection.closing = True
        self._connections.discard(connection)

        async def close() -> None:
            with contextlib.suppress(Exception):
                await connection.ws.close(code=code, message=reason.encode())

        self._spawn(close())

    def _abort(self, connection: _Connection) -> None:
        """Drop one connection: the TCP connection closed without a close frame."""
        connection.closing = True
        self._connections.discard(connection)
        transport = connection.request.transport
        if transport is not None:
            transport.abort()

    def _matching(self, market: str | None) -> list[_Connection]:
        return [c for c in self._connections if not c.closing and market in (None, c.market)]

    # -- events ----------------------------------------------------------------------------------

    def event_time(self) -> int:
        """Now, in milliseconds since the epoch, as the simulator's clock tells it (event `E`)."""
        return int(wall_time(self.clock) * 1000)

    def push(self, market: str, events: Iterable[Mapping[str, object]], keys: Iterable[str]) -> list[int]:
        """Queue each event to every connection subscribed to one of `keys` whose allow-list lets it
        through; returns, per event, how many connections it was queued to. (Called on the loop.)"""
        targets = set(keys)
        counts = []
        for event in events:
            text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            kind = str(event.get("e", ""))
            wrapped: dict[str, str] = {}
            count = 0
            now = self.clock.now()
            for key in targets:  # the keys say whose: a stream may mix markets
                holders = self._by_key.get(key)
                if not holders:
                    continue
                for connection in holders:
                    if connection.closing or not _takes(connection, market):
                        continue
                    if now < connection.stalled_until:
                        continue  # stalled: this frame is lost to it
                    allowed = connection.subscriptions.get(key)
                    if allowed is not None and kind not in allowed:
                        continue
                    frame = text
                    if connection.mode == "stream":
                        frame = wrapped.setdefault(key, f'{{"stream":{json.dumps(key)},"data":{text}}}')
                    count += self._queue(connection, frame)
            self._record(market, kind, text, count)
            counts.append(count)
        return counts

    def broadcast(self, market: str | None, event: Mapping[str, object]) -> int:
        """Queue a connection event (serverShutdown) to every connection (of `market`), whatever its
        allow-list, as it is about the connection, not the account; returns to how many. On the
        WebSocket API it comes as `{"event": ...}`, without a subscriptionId (web-socket-api.md)."""
        text = json.dumps(event, separators=(",", ":"))
        wrapped = f'{{"event":{text}}}'
        count = sum(
            self._queue(c, wrapped if c.wsapi else text)
            for c in self._matching(market)
            if c.subscriptions or c.wsapi
        )
        self._record(market or "*", str(event.get("e", "")), text, count)
        return count

    def send(self, connection: _Connection, frame: str, *, event: bool = True) -> int:
        """Queue `frame` for `connection`; an event (not an answer) is lost to a stalled connection.
        Returns 1 if queued, 0 if not (stalled, closing, or too far behind: then it is closed)."""
        if connection.closing or (event and self.clock.now() < connection.stalled_until):
            return 0
        return self._queue(connection, frame)

    def record(self, market: str, kind: str, text: str, count: int) -> None:
        """Note an event sent (`deliveries`), by whichever module sent it."""
        self._record(market, kind, text, count)

    def _queue(self, connection: _Connection, frame: str) -> int:
        if connection.queue.qsize() >= MAX_QUEUED:
            log.debug("stream closed: the peer fell %d frames behind", MAX_QUEUED)
            self._close(connection, TOO_SLOW, "too slow: the send queue overflowed")
            return 0
        connection.queue.put_nowait(frame)
        return 1

    def _record(self, market: str, kind: str, text: str, count: int) -> None:
        self.deliveries.append(Delivery(market, kind, text, count))
        self.events_sent += 1

    def _key_ended(self, listen_key: str, market: str, why: Ending) -> None:
        """Exchange's listener (any thread): push listenKeyExpired if it expired, then close the key's
        streams."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._end_key(listen_key, market, why)
        else:
            loop.call_soon_threadsafe(self._end_key, listen_key, market, why)

    def _end_key(self, listen_key: str, market: str, why: Ending) -> None:
        holders = [c for c in self._by_key.get(listen_key, ()) if not c.closing]
        if why == "expired":
            event = {"e": "listenKeyExpired", "E": self.event_time(), "listenKey": listen_key}
            self.push(market, [event], [listen_key])
            for stream_market, keys_market in KEYS_OF.items():  # the same key on another stream
                if keys_market == market and any(c.market == stream_market for c in holders):
                    self.push(stream_market, [event], [listen_key])
        for connection in holders:
            self._unsubscribe(connection, listen_key)
            # The key's stream ends alone: a connection that carries other keys goes on for them;
            # one left with none is closed, as a single key's stream is (Binance documents neither).
            if not connection.subscriptions:
                self._close(connection, KEY_ENDED, f"listenKey {why}")

    # -- faults ----------------------------------------------------------------------------------

    def drop(self, market: str | None = None) -> int:
        """Drop every connection (of `market`) without a close frame; returns how many."""
        connections = self._matching(market)
        for connection in connections:
            self._abort(connection)
        return len(connections)

    def cut(self, market: str | None = None) -> int:
        """Close every connection (of `market`) cleanly, going away; returns how many."""
        connections = self._matching(market)
        for connection in connections:
            self._close(connection, GOING_AWAY, "closed by the simulator")
        return len(connections)

    def stall(self, seconds: float, market: str | None = None) -> int:
        """Send nothing (no frame, no ping) on every connection (of `market`) for `seconds` of the
        simulator's clock; events pushed meanwhile are lost to them. Returns how many stalled."""
        until = self.clock.now() + seconds
        connections = self._matching(market)
        for connection in connections:
            connection.stalled_until = until
            connection.next_ping = max(connection.next_ping, until)
        return len(connections)

    def listeners(self, market: str, keys: Iterable[str]) -> int:
        """How many open connections a push of `market` may reach are subscribed to one of `keys`."""
        found = {c for key in set(keys) for c in self._by_key.get(key, ())}
        return sum(1 for c in found if not c.closing and _takes(c, market))

    def count(self, market: str | None = None) -> int:
        """How many connections are open (of `market`)."""
        return len(self._matching(market))

    def pings(self, market: str | None = None) -> int:
        """How many pings the open connections (of `market`) have been sent."""
        return sum(c.pings_sent for c in self._matching(market))
