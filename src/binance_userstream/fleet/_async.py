"""`AsyncFleet`: many accounts' events over a few shared connections, a thin asyncio driver.

The fleet's rules (`_core`, `_pool`) decide everything; this module opens and closes the shared
WebSocket connections when they say so, sends the subscriptions they release (signed with each
account's own credentials on the WebSocket API; the listenKeys in a SUBSCRIBE on the derivatives),
feeds frames, pings and closes to them with the loop's time, keeps each account's listenKey alive
(a keepalive session per account, its REST calls through one shared HTTP transport and the
process's weight budget) or mints its listenToken, and hands `(account id, item)` to the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from attrs import define, field
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from binance_userstream._budget import WeightBudget
from binance_userstream._client import AsyncUserDataStream
from binance_userstream._clock import Clock
from binance_userstream._gate import DEFAULT_BAN_SECONDS, SHARED_GATE, BackoffGate
from binance_userstream._hosts import resolve_base_url, resolve_stream_url
from binance_userstream._markets import Market, market_named
from binance_userstream._policy import RetryPolicy
from binance_userstream._policy import retry_after as retry_after_header
from binance_userstream._secrets import SERVER_TEXT_LIMIT, server_text, watch_secret
from binance_userstream._session import (
    FATAL,
    KEEPALIVE_INTERVAL,
    AsyncKeepaliveSession,
    EventKind,
    SessionEvent,
)
from binance_userstream._signing import Credentials
from binance_userstream.errors import (
    BinanceAPIError,
    IPBannedError,
    RateLimitedError,
    TimestampError,
    UserStreamError,
)
from binance_userstream.fleet._account import Account
from binance_userstream.fleet._core import (
    ACCOUNT_MAX_BYTES,
    ACCOUNT_MAXSIZE,
    FLEET_MAX_BYTES,
    FLEET_MAXSIZE,
    FleetAction,
    FleetCore,
    FleetItem,
    RenewKeyFor,
    RenewTokenFor,
)
from binance_userstream.fleet._limits import FleetLimits, start_time
from binance_userstream.fleet._pool import Member, Open, Shut, Subscribe, Unsubscribe
from binance_userstream.stream._async import (
    _LOUD,
    _WS_LOG,
    CLOSE_TIMEOUT,
    MAX_FRAME,
    MAX_TOKEN_VALIDITY_MS,
    OPEN_TIMEOUT,
    _close_detail,
    _Watched,
)
from binance_userstream.stream._core import StreamEvent, StreamEventKind, StreamTiming
from binance_userstream.stream._gap import StreamGap
from binance_userstream.stream._wsapi import (
    Failed,
    Refused,
    Renewed,
    RenewFailed,
    Resynced,
    Send,
    Subscribed,
    Subscriber,
)

log = logging.getLogger("binance_userstream.fleet")

FleetCallback = Callable[[str | None, SessionEvent | StreamEvent], object]
"""What `on_event` gets: the account a happening concerns (None: a shared connection) and the happening."""

#: The core's key for an account on the WebSocket API: its subscription names no key.
_WS_API = "ws-api"
#: listenKey and listenToken REST calls in flight at once (each also waits for the weight budget).
REST_CONCURRENCY = 16
#: The 4XX answers to a REST call that time can mend.
_MENDABLE = (RateLimitedError, IPBannedError, TimestampError)


class _Ids(Iterator[int]):
    """A connection's request ids, one count for every request on it; `last` is the latest given."""

    def __init__(self) -> None:
        self.last = 0

    def __next__(self) -> int:
        self.last += 1
        return self.last


@define(eq=False)
class _Member:
    """What the driver holds for one account: its credentials, its REST client and session
    (listenKey markets), its listenToken (margin), and its subscriptions' Subscribers."""

    account: Account
    credentials: Credentials
    uds: Any = None  # AsyncUserDataStream, made on first need
    session: AsyncKeepaliveSession | None = None
    token: str | None = None
    token_lock: asyncio.Lock = field(factory=asyncio.Lock)
    keys: list[str] = field(factory=list)
    starting: asyncio.Task[None] | None = None


@define(eq=False)
class _Socket:
    ws: _Watched
    ids: _Ids = field(factory=_Ids)
    # request id -> what it asked: the members of a SUBSCRIBE, or one member's Subscriber
    requests: dict[int, tuple[tuple[Member, ...], Subscriber | None]] = field(factory=dict)


class AsyncFleet:
    """Many accounts' events over few connections: `async with AsyncFleet(accounts, market=...) as
    fleet: async for account_id, item in fleet:`; `item` is an event model, a `StreamGap` for that
    account, or the error that ended that account (delivered once, as an item: the others go on).

    Accounts are checked (ids unique, credentials loadable, a signer where the market signs) before
    anything is sent; `add` and `remove` change the fleet while it runs. `limits` keeps Binance's
    per-IP limits (`FleetLimits`); `timing`, `jitter` and `clock` bend the clock rules as for
    `events()`; `maxsize` and `max_bytes` bound what the whole fleet buffers, `account_maxsize` and
    `account_max_bytes` what one account does.
    """

    def __init__(
        self,
        accounts: Iterable[Account],
        *,
        market: str = "spot",
        base_url: str | None = None,
        stream_url: str | None = None,
        limits: FleetLimits = FleetLimits(),  # noqa: B008 (frozen)
        timing: StreamTiming | None = None,
        rotate_spread: float = 3600.0,
        maxsize: int = FLEET_MAXSIZE,
        max_bytes: int = FLEET_MAX_BYTES,
        account_maxsize: int = ACCOUNT_MAXSIZE,
        account_max_bytes: int = ACCOUNT_MAX_BYTES,
        interval: float = KEEPALIVE_INTERVAL,
        on_event: FleetCallback | None = None,
        jitter: Callable[[], float] | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 (frozen)
        gate: BackoffGate | None = None,
        budget: WeightBudget | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rest_concurrency: int = REST_CONCURRENCY,
    ) -> None:
        self.market: Market = market_named(market)
        if self.market.fleet_target is None:
            raise ValueError(f"market {self.market.name!r} has no event stream")
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, not {type(on_event).__name__}")
        if account_max_bytes < MAX_FRAME:
            raise ValueError(f"account_max_bytes must be at least {MAX_FRAME}, the largest frame accepted")
        self._base_url = resolve_base_url(base_url, self.market)
        self._stream_url = resolve_stream_url(stream_url, self.market)
        self._url = f"{self._stream_url}{self.market.fleet_target}"
        self._members: dict[str, _Member] = {}
        for account in accounts:
            self._check(account)
            self._members[account.id] = self._member(account)
        self._core = FleetCore(
            self.market,
            limits=limits,
            random=jitter or random.random,
            timing=timing,
            rotate_spread=rotate_spread,
            account_maxsize=account_maxsize,
            account_max_bytes=account_max_bytes,
            maxsize=maxsize,
            max_bytes=max_bytes,
        )
        self.limits = limits
        self._on_event = on_event
        self._clock = clock
        self._interval = interval
        self._retry = retry
        self._gate = SHARED_GATE if gate is None else gate
        self._budget = budget
        self._transport = transport
        self._own_transport: httpx.AsyncHTTPTransport | None = None
        self._rest_concurrency = rest_concurrency
        self._sockets: dict[int, _Socket] = {}
        self._connections: dict[int, asyncio.Task[None]] = {}
        self._helpers: set[asyncio.Task[Any]] = set()
        self._subscribers: dict[int, Subscriber] = {}  # subscription -> its Subscriber (WebSocket API)
        self._ended = False
        self._entered = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._poke = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    # -- accounts ----------------------------------------------------------------------------------

    def _check(self, account: Account) -> None:
        if not isinstance(account, Account):
            raise TypeError(f"a fleet takes Account objects, not {type(account).__name__}")
        if account.id in self._members:
            raise ValueError(f"account id {account.id!r} appears twice")
        if account.symbol is not None and self.market.name != "margin":
            raise ValueError(f"account {account.id!r}: symbol= is for market='margin' (isolated margin)")

    def _member(self, account: Account) -> _Member:
        """The driver's record of `account`, its credentials loaded now: anything wrong is refused
        before anything is sent."""
        credentials = account.credentials()
        if self.market.subscription == "signature" and credentials.signer is None:
            raise ValueError(
                f"account {account.id!r}: market {self.market.name!r}'s events need a signature: "
                "give it api_secret= or private_key="
            )
        return _Member(account, credentials)

    def add(self, account: Account) -> None:
        """Add `account` to the running fleet (or before it runs): its events follow, from its
        subscription on; the other accounts are not disturbed."""
        self._check(account)
        member = self._member(account)
        member.credentials.clock = self._clock
        self._members[account.id] = member
        if self._loop is not None and not self._ended:
            self._start(member)

    def remove(self, account_id: str) -> None:
        """Remove an account: its subscriptions end (no gap: it left); what it had buffered is
        still handed out. KeyError if it is not in the fleet."""
        member = self._members.pop(account_id)
        if member.starting is not None:
            member.starting.cancel()
        if self._loop is not None and account_id in self._core.accounts():
            self._apply(self._core.remove(account_id, self._now()))
        self._retire(member)

    @property
    def accounts(self) -> list[str]:
        """The ids of the accounts in the fleet."""
        return list(self._members)

    def connections(self) -> int:
        """Shared connections open or opening now."""
        return self._core.pool.connections()

    @property
    def start_estimate(self) -> float:
        """The least seconds the fleet's accounts take to be subscribed from nothing within
        `limits` (on listenKey markets, plus their keys' creation, paced by the REST weight budget)."""
        return start_time(
            self.limits, len(self._members), self._core.pool.capacity, ws_api=not self.market.uses_listen_key
        )

    def _announce(self) -> None:
        """Say, before it begins, how long starting every account will take within the limits."""
        count = len(self._members)
        per_connection = self._core.pool.capacity
        keys = ", plus creating their listenKeys (REST weight)" if self.market.uses_listen_key else ""
        self._core.note(
            None,
            StreamEventKind.CONNECTING,
            self._now(),
            f"starting {count} accounts on {-(-count // per_connection)} connections: at least "
            f"{self.start_estimate:.0f}s within the limits ({self.limits.connections} connections per "
            f"{self.limits.connection_window:g}s, {self.limits.request_weight} weight per "
            f"{self.limits.weight_window:g}s){keys}",
        )
        self._apply([])

    # -- the consumer's side -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise UserStreamError("a fleet can be entered once; make another")
        self._entered = True
        self._loop = asyncio.get_running_loop()
        self._rest = asyncio.Semaphore(self._rest_concurrency)
        self._announce()
        for member in self._members.values():
            member.credentials.clock = self._clock
            self._start(member)
        self._runner = asyncio.create_task(self._run(), name="binance-userstream-fleet")
        return self

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, FleetItem]:
        popped = self._core.pop(self._now())
        while popped is None:
            if self._ended:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
            popped = self._core.pop(self._now())
        account_id, item = popped
        if isinstance(item, StreamGap):
            log.warning("fleet: account %s: stream %s", account_id, item.describe())
        elif isinstance(item, BaseException):
            log.error("fleet: account %s ended: %s", account_id, item)
        return popped

    def close(self) -> None:
        """End the iteration (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._ended = True
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._end)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end()
        sockets = [s.ws for s in self._sockets.values()]
        if sockets:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        tasks = [t for t in (self._runner, *self._connections.values(), *self._helpers) if t is not None]
        tasks += [m.starting for m in self._members.values() if m.starting is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connections.clear()
        self._sockets.clear()
        for member in self._members.values():
            await self._stop_session(member)
            self._retire(member)
        if self._own_transport is not None:
            await self._own_transport.aclose()

    def __repr__(self) -> str:
        return (
            f"AsyncFleet(market={self.market.name!r}, accounts={len(self._members)}, "
            f"connections={self._core.pool.connections()})"
        )

    # -- the driver --------------------------------------------------------------------------------

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock.now()
        assert self._loop is not None
        return self._loop.time()

    def _end(self) -> None:
        self._ended = True
        self._ready.set()
        self._poke.set()

    async def _run(self) -> None:
        """Wake at the rules' deadlines (or when they may have moved) and let them act."""
        while not self._ended:
            wait = self._core.next_deadline() - self._now()
            self._poke.clear()
            if wait > 0:
                await self._until(wait)
            if not self._ended:
                self._apply(self._core.tick(self._now()))

    async def _until(self, wait: float) -> None:
        if self._clock is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if math.isinf(wait) else wait):
                    await self._poke.wait()
            return
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._poke.wait())}
        if not math.isinf(wait):
            waiters.add(asyncio.ensure_future(self._clock.sleep(wait)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _apply(self, actions: list[FleetAction]) -> None:
        """Carry out the rules' actions, then report what they noted and wake whoever waits."""
        if self._ended:
            return
        for action in actions:
            if isinstance(action, Open):
                task = asyncio.create_task(
                    self._connection(action.conn), name=f"binance-userstream-fleet-connection-{action.conn}"
                )
                self._connections[action.conn] = task
            elif isinstance(action, Shut):
                closing = self._connections.pop(action.conn, None)
                socket = self._sockets.pop(action.conn, None)
                if socket is not None and closing is not None:
                    self._track(closing)
                    self._spawn(socket.ws.close(), "close")
                elif closing is not None:
                    closing.cancel()
            elif isinstance(action, Subscribe):
                self._spawn(self._subscribe(action), "subscribe")
            elif isinstance(action, Unsubscribe):
                self._spawn(self._unsubscribe(action), "unsubscribe")
            elif isinstance(action, RenewKeyFor):
                self._spawn(self._renew_key(action.account), "renew")
            elif isinstance(action, RenewTokenFor):
                self._spawn(self._renew_token(action.account), "renew-token")
        notes, self._core.notes = self._core.notes, []
        for account_id, note in notes:
            level = logging.WARNING if note.kind in _LOUD else logging.INFO
            log.log(
                level, "fleet: %s%s", "" if account_id is None else f"account {account_id}: ", note.describe()
            )
            self._report(account_id, note)
        if len(self._core):
            self._ready.set()
        self._poke.set()

    def _report(self, account_id: str | None, event: SessionEvent | StreamEvent) -> None:
        if self._on_event is None:
            return
        try:
            result = self._on_event(account_id, event)
        except Exception:
            log.exception("fleet: the on_event callback raised; the fleet goes on")
            return
        if inspect.iscoroutine(result):
            result.close()
            log.error("fleet: on_event returned a coroutine; the fleet calls plain functions only")

    def _spawn(self, coroutine: Any, what: str) -> None:
        self._track(asyncio.create_task(coroutine, name=f"binance-userstream-fleet-{what}"))

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    # -- starting an account -----------------------------------------------------------------------

    def _start(self, member: _Member) -> None:
        watch_secret(member.account.api_key, True)
        if self.market.uses_listen_key:
            member.starting = asyncio.create_task(
                self._start_session(member), name=f"binance-userstream-fleet-start-{member.account.id}"
            )
        else:
            self._apply(self._core.add(member.account.id, _WS_API, self._now()))

    async def _start_session(self, member: _Member) -> None:
        """Create the account's listenKey (a keepalive session keeps it alive from then on), then
        add it to the rules. A refusal no retry mends ends the account; any other failure is retried."""
        account_id = member.account.id
        failures = 0
        while True:
            try:
                async with self._rest:
                    session = self._client(member).session(
                        interval=self._interval,
                        on_event=functools.partial(self._session_event, account_id),
                        clock=self._clock,
                    )
                    await session.__aenter__()
                break
            except FATAL as error:
                self._apply(self._core.ended(account_id, error, self._now()))
                return
            except UserStreamError as error:
                failures += 1
                wait = min(60.0, 2.0 ** min(failures, 6)) * random.random()
                self._core.note(
                    account_id,
                    StreamEventKind.RECONNECTING,
                    self._now(),
                    f"creating the listenKey failed: {error}",
                )
                self._apply([])
                await (self._clock.sleep(wait) if self._clock is not None else asyncio.sleep(wait))
        member.session = session
        member.starting = None
        assert session.listen_key is not None
        self._watch(member, session.listen_key)
        if account_id in self._members:
            self._apply(self._core.add(account_id, session.listen_key, self._now()))

    def _client(self, member: _Member) -> Any:
        """The account's REST client: its own key, the fleet's shared HTTP transport and budget."""
        if member.uds is None:
            if self._transport is None and self._own_transport is None:
                self._own_transport = httpx.AsyncHTTPTransport()
            account = member.account
            member.uds = AsyncUserDataStream(
                account.api_key,
                self._base_url,
                market=self.market.name,
                retry=self._retry,
                transport=self._transport or self._own_transport,
                gate=self._gate,
                budget=self._budget,
                stream_url=self._stream_url,
                api_secret=account.api_secret,
                private_key=account.private_key,
                private_key_passphrase=account.private_key_passphrase,
                symbol=account.symbol,
            )
        return member.uds

    def _session_event(self, account_id: str, event: SessionEvent) -> None:
        """An account's session: a replaced key is resubscribed; a failure ends the account."""
        member = self._members.get(account_id)
        if member is not None and self._loop is not None and not self._ended:
            if event.kind is EventKind.REPLACED and event.listen_key is not None:
                self._watch(member, event.listen_key)
                if account_id in self._core.accounts():
                    self._apply(self._core.key_replaced(account_id, event.listen_key, self._now()))
            elif event.kind is EventKind.FAILED and event.error is not None:
                self._apply(self._core.fail(account_id, event.error, self._now()))
        self._report(account_id, event)

    async def _renew_key(self, account_id: str) -> None:
        member = self._members.get(account_id)
        if member is None or member.session is None:
            return
        try:
            key = await member.session.renew()
        except FATAL as error:
            self._apply(self._core.fail(account_id, error, self._now()))
            return
        except UserStreamError as error:
            self._apply(self._core.renew_failed(account_id, self._now(), f"renewing the key failed: {error}"))
            return
        self._watch(member, key)
        self._apply(self._core.key_replaced(account_id, key, self._now()))

    def _watch(self, member: _Member, key: str) -> None:
        if key not in member.keys:
            member.keys.append(key)
            watch_secret(key, True)
            if len(member.keys) > 4:
                watch_secret(member.keys.pop(0), False)

    def _retire(self, member: _Member) -> None:
        """Stop scrubbing a member's secrets by name once it is gone (key-shaped text still is)."""
        for key in member.keys:
            watch_secret(key, False)
        member.keys.clear()
        if member.session is not None and self._loop is not None and not self._ended:
            self._spawn(self._stop_session(member), "stop-session")
        watch_secret(member.account.api_key, False)

    async def _stop_session(self, member: _Member) -> None:
        session, member.session = member.session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.__aexit__(None, None, None)

    # -- the shared connections --------------------------------------------------------------------

    async def _connection(self, conn_id: int) -> None:
        """One shared connection, from opening to its close, fed to the rules."""
        detail: str | None = None
        retry_after: float | None = None
        host = urlsplit(self._url).netloc
        try:
            self._gate.check(host)
            async with connect(
                self._url,
                create_connection=functools.partial(_Watched, on_text=self._texts_of(conn_id)),  # type: ignore[arg-type]
                open_timeout=OPEN_TIMEOUT,
                close_timeout=CLOSE_TIMEOUT,
                max_size=MAX_FRAME,
                proxy=None,
                logger=_WS_LOG,
            ) as ws:
                assert isinstance(ws, _Watched)
                core, now = self._core, self._now
                ws.on_ping = lambda: core.ping(conn_id, now())
                self._sockets[conn_id] = _Socket(ws)
                self._apply(self._core.opened(conn_id, self._now()))
                handle = self._texts_of(conn_id)
                try:
                    async for message in ws:  # what the library assembled: none from Binance
                        handle(message if isinstance(message, str) else message.decode("utf-8", "replace"))
                except ConnectionClosed:
                    pass
            protocol = ws.protocol
            detail = _close_detail(
                protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent, []
            )
        except asyncio.CancelledError:
            raise
        except InvalidStatus as error:
            detail, retry_after = self._refused_upgrade(host, error)
        except (IPBannedError, RateLimitedError) as error:
            detail, retry_after = str(error), error.retry_after
        except Exception as error:
            what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            detail = server_text(what, [])
        finally:
            if self._connections.get(conn_id) is asyncio.current_task():
                self._sockets.pop(conn_id, None)
        if self._connections.get(conn_id) is asyncio.current_task():
            del self._connections[conn_id]
            self._apply(self._core.closed(conn_id, self._now(), detail, retry_after))

    def _refused_upgrade(self, host: str, error: InvalidStatus) -> tuple[str, float | None]:
        """A handshake refused with an HTTP answer: its detail and the least wait; a 429 or 418
        closes the host's backoff gate for its Retry-After."""
        response = error.response
        status = response.status_code
        body = (
            response.body[: 4 * SERVER_TEXT_LIMIT].decode("utf-8", "replace").strip() if response.body else ""
        )
        detail = f"the handshake was refused: HTTP {status}" + (f" ({server_text(body, [])})" if body else "")
        if status in (418, 429):
            wait = retry_after_header(response.headers)
            if status == 418 and wait is None:
                wait = DEFAULT_BAN_SECONDS
            if wait is not None:
                self._gate.close(host, wait, banned=status == 418)
            return detail, wait
        return detail, None

    def _texts_of(self, conn_id: int) -> Callable[[str], None]:
        """What takes a connection's text frames: events to the rules, at once (the hot path);
        answers to the requests they answer."""
        core, frame, now, ready, apply = self._core, self._core.frame, self._now, self._ready, self._apply
        combined = self.market.uses_listen_key
        answer = self._answer

        def text(frame_text: str) -> None:
            if frame_text.startswith('{"stream"' if combined else '{"subscriptionId"'):
                actions = frame(conn_id, frame_text, now())
                if actions or core.notes:
                    apply(actions)
                else:
                    ready.set()
            else:
                answer(conn_id, frame_text)

        return text

    def _answer(self, conn_id: int, text: str) -> None:
        """A frame that is no event envelope: an answer to a request, or a connection event."""
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            payload = None
        request_id = payload.get("id") if isinstance(payload, dict) else None
        socket = self._sockets.get(conn_id)
        asked = (
            None if socket is None or type(request_id) is not int else socket.requests.pop(request_id, None)
        )
        if asked is None:
            self._apply(self._core.frame(conn_id, text, self._now()))
            return
        assert isinstance(payload, dict)
        members, subscriber = asked
        if subscriber is None:
            self._answer_subscribe(members, payload)
        else:
            self._answer_subscriber(conn_id, members[0], subscriber, payload)

    def _answer_subscribe(self, members: tuple[Member, ...], payload: dict[str, Any]) -> None:
        """The answer to a SUBSCRIBE (derivatives): `{"result": null, "id": N}` subscribes them all."""
        now = self._now()
        actions: list[FleetAction] = []
        if "error" in payload:
            error = payload["error"]
            msg = error.get("msg") if isinstance(error, dict) else None
            detail = server_text(f"SUBSCRIBE refused: {msg if isinstance(msg, str) else error}", [])
            for member in members:
                # The key may be what is refused (closed elsewhere, expired): ask for the account's
                # key, which is the same one if it lives (then the account backs off and retries).
                actions += self._core.key_refused(member.account, now, detail)
                actions += self._core.subscription_failed(member.sub, now, detail)
        else:
            for member in members:
                actions += self._core.subscribed(member.sub, member.target, now)
        self._apply(actions)

    def _answer_subscriber(
        self, conn_id: int, member: Member, subscriber: Subscriber, payload: dict[str, Any]
    ) -> None:
        """An answer to one account's WebSocket API request: what its Subscriber says it means."""
        account_id = member.account
        owner = self._members.get(account_id)
        wall = owner.credentials.wall_ms() if owner is not None else 0.0
        now = self._now()
        for outcome in subscriber.answered(payload, wall):
            if isinstance(outcome, Send):
                self._send(conn_id, outcome.text, (member,), subscriber)
            elif isinstance(outcome, Subscribed):
                self._subscribers[member.sub] = subscriber
                self._apply(
                    self._core.subscribed(
                        member.sub, str(outcome.subscription_id), now, outcome.subscription_id
                    )
                )
            elif isinstance(outcome, Renewed):
                self._core.core_of(account_id).subscribed(member.sub, outcome.subscription_id)
            elif isinstance(outcome, RenewFailed):
                why = f"the new listenToken was refused: {outcome.detail}"
                self._apply(self._core.replace_subscription(account_id, now, why))
            elif isinstance(outcome, Resynced):
                self._core.note(
                    account_id,
                    StreamEventKind.RESYNCED,
                    now,
                    f"clock offset {round(outcome.offset_ms):+d} ms (-1021)",
                )
                self._apply([])
            elif isinstance(outcome, Refused):
                self._apply(self._core.fail(account_id, outcome.error, now))
            elif isinstance(outcome, Failed):
                if outcome.banned is not None and outcome.retry_after is not None:
                    self._gate.close(urlsplit(self._url).netloc, outcome.retry_after, banned=outcome.banned)
                self._apply(
                    self._core.subscription_failed(member.sub, now, outcome.detail, outcome.retry_after)
                )

    def _send(
        self,
        conn_id: int,
        text: str,
        members: tuple[Member, ...],
        subscriber: Subscriber | None,
        *,
        answer: bool = True,
    ) -> None:
        """Send a request on a connection (in a task: the frame handler cannot wait), its answer
        expected by `subscriber` (None: a SUBSCRIBE of `members`)."""
        socket = self._sockets.get(conn_id)
        if socket is None:
            return
        if answer:
            socket.requests[socket.ids.last] = (members, subscriber)
        self._spawn(self._write(socket, text), "send")

    async def _write(self, socket: _Socket, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await socket.ws.send(text)

    async def _subscribe(self, action: Subscribe) -> None:
        """Send the subscriptions the rules released on one connection."""
        socket = self._sockets.get(action.conn)
        if socket is None:
            return  # closed meanwhile: its loss reports them
        if self.market.uses_listen_key:
            request_id = next(socket.ids)
            socket.requests[request_id] = (action.members, None)
            body = {"method": "SUBSCRIBE", "params": [m.target for m in action.members], "id": request_id}
            await self._write(socket, json.dumps(body, separators=(",", ":")))
            return
        how = self.market.subscription
        for member in action.members:
            owner = self._members.get(member.account)
            if owner is None:
                continue
            token = None
            if how == "listen_token":
                try:
                    token = await self._listen_token(owner)
                except FATAL as error:
                    self._apply(self._core.fail(member.account, error, self._now()))
                    continue
                except UserStreamError as error:
                    self._apply(
                        self._core.subscription_failed(
                            member.sub, self._now(), f"minting a listenToken failed: {error}"
                        )
                    )
                    continue
                socket = self._sockets.get(action.conn)
                if socket is None:
                    return
            subscriber = Subscriber(how, owner.credentials, ids=socket.ids)
            request = subscriber.subscribe(owner.credentials.wall_ms(), token)
            socket.requests[socket.ids.last] = ((member,), subscriber)
            await self._write(socket, request.text)

    async def _unsubscribe(self, action: Unsubscribe) -> None:
        socket = self._sockets.get(action.conn)
        if socket is None:
            return
        if self.market.uses_listen_key:
            body = {
                "method": "UNSUBSCRIBE",
                "params": [m.target for m in action.members],
                "id": next(socket.ids),
            }
            await self._write(socket, json.dumps(body, separators=(",", ":")))
            return
        for member in action.members:
            subscriber = self._subscribers.pop(member.sub, None)
            owner = self._members.get(member.account)
            if subscriber is not None:
                wall = owner.credentials.wall_ms() if owner is not None else 0.0
                await self._write(socket, subscriber.unsubscribe(wall).text)

    # -- listenTokens (margin) ---------------------------------------------------------------------

    async def _listen_token(self, member: _Member) -> str:
        """A new listenToken for a new subscription; its expiry goes to the account's rules."""
        async with member.token_lock, self._rest:
            answer = await self._client(member).create_listen_token(member.account.symbol)
        token, expiration_ms = answer.token, answer.expiration_time
        self._watch(member, token)
        member.token = token
        now = self._now()
        valid_ms = min(max(expiration_ms - member.credentials.timestamp(), 0), MAX_TOKEN_VALIDITY_MS)
        self._apply(self._core.token_valid(member.account.id, now + valid_ms / 1000, now))
        return str(token)

    async def _renew_token(self, account_id: str) -> None:
        """The account's token is due: mint one and present it on each of its subscriptions."""
        member = self._members.get(account_id)
        if member is None:
            return
        try:
            token = await self._listen_token(member)
        except FATAL as error:
            self._apply(self._core.fail(account_id, error, self._now()))
            return
        except BinanceAPIError as error:
            if 400 <= error.status_code < 500 and not isinstance(error, _MENDABLE):
                self._apply(self._core.fail(account_id, error, self._now()))
                return
            self._apply(
                self._core.token_renew_failed(
                    account_id, self._now(), f"minting a listenToken failed: {error}"
                )
            )
            return
        except UserStreamError as error:
            self._apply(
                self._core.token_renew_failed(
                    account_id, self._now(), f"minting a listenToken failed: {error}"
                )
            )
            return
        for sub_id, subscriber in list(self._subscribers.items()):
            if self._core.account_of(sub_id) != account_id:
                continue
            conn_id = self._core.pool.conn_of(sub_id)
            socket = None if conn_id is None else self._sockets.get(conn_id)
            placed = self._core.pool.member(sub_id)
            if socket is None or placed is None or conn_id is None:
                continue
            request = subscriber.renew(member.credentials.wall_ms(), token)
            socket.requests[socket.ids.last] = ((placed,), subscriber)
            await self._write(socket, request.text)
