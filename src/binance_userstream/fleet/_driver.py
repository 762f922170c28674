"""The asyncio driver of the fleet's rules: `AsyncFleet` and `events()` (a fleet of one) both run it.

The rules (`_core`, `_pool`) decide everything; the driver opens and closes WebSocket connections
when they say so (a shared one at the market's fleet URL, or a dedicated one at one listenKey's
stream), sends the subscriptions they release (signed with each account's own credentials on the
WebSocket API; listenKeys in a SUBSCRIBE on the derivatives' combined streams), feeds frames, pings
and closes to them with the clock's time, has each account's `Services` keep its listenKey alive or
mint its listenToken, and wakes the consumer when an item waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

from attrs import define, field
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close as CloseFrame

from binance_userstream._clock import Clock
from binance_userstream._gate import DEFAULT_BAN_SECONDS, BackoffGate
from binance_userstream._markets import Market
from binance_userstream._policy import retry_after as retry_after_header
from binance_userstream._secrets import SERVER_TEXT_LIMIT, server_text, watch_secret
from binance_userstream._session import FATAL, EventKind, SessionEvent
from binance_userstream._signing import Credentials
from binance_userstream.errors import (
    BinanceAPIError,
    IPBannedError,
    RateLimitedError,
    TimestampError,
    UserStreamError,
)
from binance_userstream.fleet._core import FleetAction, FleetCore, RenewKeyFor, RenewTokenFor
from binance_userstream.fleet._pool import SUBSCRIBE_WEIGHT, Member, Open, Shut, Subscribe, Unsubscribe
from binance_userstream.stream._core import StreamEvent, StreamEventKind
from binance_userstream.stream._socket import (
    _LOUD,
    _WS_LOG,
    CLOSE_TIMEOUT,
    MAX_FRAME,
    MAX_HELD_CHARS,
    MAX_HELD_FRAMES,
    MAX_TOKEN_VALIDITY_MS,
    OPEN_TIMEOUT,
    _Backoff,
    _close_detail,
    _resync_detail,
    _Watched,
)
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

FleetCallback = Callable[[str | None, SessionEvent | StreamEvent], object]
"""What `on_event` gets: the account a happening concerns (None: a shared connection) and the happening."""

#: The rules' key for an account on the WebSocket API: its subscription names no key.
WS_API = "ws-api"
#: The 4XX answers to a listenToken mint that time can mend: any other 4XX ends the account.
_MENDABLE = (RateLimitedError, IPBannedError, TimestampError)
#: The latest keys and tokens of an account scrubbed from logs by name.
KEYS_WATCHED = 8


class Services(Protocol):
    """What the driver needs of an account's REST side: its credentials (the WebSocket API signs
    with them), its listenKey kept alive (`open`, `renew`, `close`), its listenTokens (`token`)."""

    credentials: Credentials
    symbol: str | None

    async def open(self, on_event: Callable[[SessionEvent], None]) -> str:
        """Create (or adopt) the account's listenKey and keep it alive from now on; the key."""
        ...

    async def renew(self) -> str:
        """Get the account's key again (the same if it lives) and keep that one alive."""
        ...

    async def token(self) -> Any:
        """Mint a listenToken (the generated ListenToken model)."""
        ...

    async def close(self) -> None:
        """Stop keeping the key alive (nothing is sent: it lives until it expires)."""
        ...


class _Refused(Exception):
    """A refusal no retry mends, met while minting a token: the account ends with `error`."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class _Ids(Iterator[int]):
    """A connection's request ids, one count for every request on it; `last` is the latest given."""

    def __init__(self) -> None:
        self.last = 0

    def __next__(self) -> int:
        self.last += 1
        return self.last


@define(eq=False)
class Tenant:
    """What the driver holds for one account: its services, its latest listenToken, the keys and
    tokens it watches in logs, and the task creating its key."""

    account_id: str
    services: Services
    api_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    token_lock: asyncio.Lock = field(factory=asyncio.Lock)
    keys: list[str] = field(factory=list, repr=False)
    starting: asyncio.Task[None] | None = None


#: The most requests one connection remembers awaiting their answers: a server that answers none
#: would otherwise grow the record for a connection's whole life (24 hours). Past it the oldest is
#: forgotten: its answer, should it ever come, is a stray frame (noted); the rules gave up on it
#: long before (`Pool`'s answer timeout).
MAX_ASKED = 4096


@define(eq=False)
class _Socket:
    ws: _Watched
    ids: _Ids = field(factory=_Ids)
    # request id -> what it asked: the members of a SUBSCRIBE, or one member's Subscriber
    requests: dict[int, tuple[tuple[Member, ...], Subscriber | None]] = field(factory=dict)

    def asked(self, request_id: int, members: tuple[Member, ...], subscriber: Subscriber | None) -> None:
        """Request `request_id` was sent: its answer concerns `members` (read by `subscriber`)."""
        requests = self.requests
        if len(requests) >= MAX_ASKED:
            del requests[next(iter(requests))]  # the oldest: dicts keep their insertion order
        requests[request_id] = (members, subscriber)


@define(eq=False)
class _Early:
    """Frames that came on a connection before the rules counted it open (bounded)."""

    texts: list[str] = field(factory=list)
    chars: int = 0


class Driver:
    """The asyncio driver (see the module docstring), made by `AsyncFleet` and by `AsyncEventStream`."""

    def __init__(
        self,
        market: Market,
        core: FleetCore,
        *,
        url: str,
        stream_base: str,
        gate: BackoffGate,
        clock: Clock | None,
        on_event: FleetCallback | None,
        log: logging.Logger,
        tag_accounts: bool,
        open_timeout: float = OPEN_TIMEOUT,
        close_timeout: float = CLOSE_TIMEOUT,
        compression: str | None = "deflate",
    ) -> None:
        self.market = market
        self.compression = compression
        self.core = core
        self.url = url
        self.stream_base = stream_base
        self.gate = gate
        self.clock = clock
        self.on_event = on_event
        self.log = log
        self.tag_accounts = tag_accounts
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.tenants: dict[str, Tenant] = {}
        self.sockets: dict[int, _Socket] = {}
        self.connections: dict[int, asyncio.Task[None]] = {}
        self.helpers: set[asyncio.Task[Any]] = set()
        self.subscribers: dict[int, Subscriber] = {}  # subscription -> its Subscriber (WebSocket API)
        self.early: dict[int, _Early] = {}
        self.ended = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = asyncio.Event()
        self.waiting = 0  # consumers waiting on `ready`: a frame sets it only then (`wait_ready`)
        self.poke = asyncio.Event()
        self.runner: asyncio.Task[None] | None = None
        self.rest: asyncio.Semaphore | None = None

    # -- running ---------------------------------------------------------------------------------

    def enter(self, rest_concurrency: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.rest = asyncio.Semaphore(rest_concurrency)
        if self.clock is not None:
            self.now = self.clock.now  # type: ignore[method-assign]
        elif type(self.loop).time is asyncio.BaseEventLoop.time:  # time.monotonic(), less a call
            self.now = time.monotonic  # type: ignore[method-assign]
        else:
            self.now = self.loop.time  # type: ignore[method-assign]
        self.runner = asyncio.create_task(self._run(), name="binance-userstream-driver")

    def now(self) -> float:
        if self.clock is not None:
            return self.clock.now()
        assert self.loop is not None
        return self.loop.time()

    async def wait_ready(self) -> None:
        """Until the driver wakes the consumer: an item may wait, or the stream ended. Frames wake
        consumers only while one waits (`waiting`, a count: two may): an Event.set per event was a
        cost of its own."""
        self.ready.clear()
        self.waiting += 1
        try:
            await self.ready.wait()
        finally:
            self.waiting -= 1

    def end(self) -> None:
        self.ended = True
        self.ready.set()
        self.poke.set()

    def close_threadsafe(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            self.ended = True
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.end()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.end)

    async def aclose(self) -> None:
        """Leaving: end what the weight allows of the WebSocket API subscriptions, close every
        connection with a close handshake (bounded), cancel every task, stop keeping keys alive."""
        self.end()
        await self._unsubscribe_all()
        sockets = [s.ws for s in self.sockets.values()]
        if sockets:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.close_timeout):
                    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        tasks = [t for t in (self.runner, *self.connections.values(), *self.helpers) if t is not None]
        tasks += [m.starting for m in self.tenants.values() if m.starting is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.connections.clear()
        self.sockets.clear()
        for tenant in list(self.tenants.values()):
            await self.stop_tenant(tenant)

    async def _run(self) -> None:
        """Wake at the rules' deadlines (or when they may have moved) and let them act."""
        while not self.ended:
            wait = self.core.next_deadline() - self.now()
            self.poke.clear()
            if wait > 0:
                await self._until(wait)
            if not self.ended:
                self.apply(self.core.tick(self.now()))

    async def _until(self, wait: float) -> None:
        if self.clock is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if math.isinf(wait) else wait):
                    await self.poke.wait()
            return
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.poke.wait())}
        if not math.isinf(wait):
            waiters.add(asyncio.ensure_future(self.clock.sleep(wait)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def apply(self, actions: list[FleetAction]) -> None:
        """Carry out the rules' actions, then report what they noted and wake whoever waits. Once
        ended, nothing is carried out: leaving opens no connection and renews nothing."""
        if self.ended:
            return
        for action in actions:
            if isinstance(action, Open):
                name = f"binance-userstream-connection-{action.conn}"
                self.connections[action.conn] = asyncio.create_task(
                    self._connection(action.conn, action.target), name=name
                )
            elif isinstance(action, Shut):
                closing = self.connections.pop(action.conn, None)
                socket = self.sockets.pop(action.conn, None)
                self.early.pop(action.conn, None)
                if socket is not None and closing is not None:  # a clean close (1000); its task then ends
                    self._track(closing)
                    self.spawn(socket.ws.close(), "close")
                elif closing is not None:
                    closing.cancel()  # still connecting
            elif isinstance(action, Subscribe):
                self.spawn(self._subscribe(action), "subscribe")
            elif isinstance(action, Unsubscribe):
                self.spawn(self._unsubscribe(action), "unsubscribe")
            elif isinstance(action, RenewKeyFor):
                self.spawn(self._renew_key(action.account), "renew")
            elif isinstance(action, RenewTokenFor):
                self.spawn(self._renew_token(action.account), "renew-token")
        notes, self.core.notes = self.core.notes, []
        for account_id, note in notes:
            level = logging.WARNING if note.kind in _LOUD else logging.INFO
            self.log.log(level, "%s%s", self.tag(account_id), note.describe())
            self.report(account_id, note)
        self.ready.set()
        self.poke.set()

    def tag(self, account_id: str | None) -> str:
        """How a log line names the account it concerns (nothing for a fleet of one)."""
        if not self.tag_accounts:
            return ""
        return "shared connection: " if account_id is None else f"account {account_id}: "

    def report(self, account_id: str | None, event: SessionEvent | StreamEvent) -> None:
        if self.on_event is None:
            return
        try:
            result = self.on_event(account_id, event)
        except Exception:
            self.log.exception("the on_event callback raised; the stream goes on")
            return
        if inspect.iscoroutine(result):
            result.close()
            self.log.error("on_event returned a coroutine; the stream calls plain functions only")

    def spawn(self, coroutine: Coroutine[Any, Any, Any], what: str) -> None:
        self._track(asyncio.create_task(coroutine, name=f"binance-userstream-{what}"))

    def _track(self, task: asyncio.Task[Any]) -> None:
        """Keep `task` until it ends, so that leaving can cancel and await it."""
        self.helpers.add(task)
        task.add_done_callback(self.helpers.discard)

    # -- accounts --------------------------------------------------------------------------------

    def begin(self, tenant: Tenant, key: str) -> None:
        """Hand an account whose key is known (anything on the WebSocket API) to the rules."""
        self.apply(self.core.add(tenant.account_id, key, self.now()))

    def start(self, tenant: Tenant) -> None:
        """Start an account of a fleet: on listenKey markets its key is created in a task (a
        refusal ends the account alone; any other failure is retried), then it joins the rules."""
        watch_secret(tenant.api_key, True)
        if not self.market.uses_listen_key:
            self.begin(tenant, WS_API)
            return
        tenant.starting = asyncio.create_task(
            self._start_session(tenant), name=f"binance-userstream-start-{tenant.account_id}"
        )

    async def _start_session(self, tenant: Tenant) -> None:
        account_id = tenant.account_id
        failures = 0
        while True:
            try:
                assert self.rest is not None
                async with self.rest:
                    key = await tenant.services.open(functools.partial(self.session_event, account_id))
                break
            except FATAL as error:
                self.apply(self.core.ended(account_id, error, self.now()))
                return
            except UserStreamError as error:
                failures += 1
                wait = min(60.0, 2.0 ** min(failures, 6)) * self.core.random()
                server_says = getattr(error, "retry_after", None)  # a 429, or the budget's own wait
                if isinstance(server_says, int | float) and server_says > wait:
                    wait = float(server_says)
                self.core.note(
                    account_id,
                    StreamEventKind.RECONNECTING,
                    self.now(),
                    f"creating the listenKey failed: {error}; again in {wait:.3g}s",
                )
                self.apply([])
                await (self.clock.sleep(wait) if self.clock is not None else asyncio.sleep(wait))
        tenant.starting = None
        self.watch(tenant, key)
        if account_id in self.tenants:
            self.begin(tenant, key)

    def session_event(self, account_id: str, event: SessionEvent) -> None:
        """An account's session: a replaced key is resubscribed; a failure ends the account."""
        tenant = self.tenants.get(account_id)
        if tenant is not None and self.loop is not None and not self.ended:
            if event.kind is EventKind.REPLACED and event.listen_key is not None:
                self.watch(tenant, event.listen_key)
                if account_id in self.core.accounts():
                    self.apply(self.core.key_replaced(account_id, event.listen_key, self.now()))
            elif event.kind is EventKind.FAILED and event.error is not None:
                self.apply(self.core.fail(account_id, event.error, self.now()))
        self.report(account_id, event)

    async def _renew_key(self, account_id: str) -> None:
        """The key expired or was refused: get the account's key (which its session keeps alive
        from then on) and give it to the rules."""
        tenant = self.tenants.get(account_id)
        if tenant is None:
            return
        try:
            key = await tenant.services.renew()
        except FATAL as error:
            self.apply(self.core.fail(account_id, error, self.now()))
            return
        except UserStreamError as error:
            self.apply(self.core.renew_failed(account_id, self.now(), f"renewing the key failed: {error}"))
            return
        self.watch(tenant, key)
        self.apply(self.core.key_replaced(account_id, key, self.now()))

    def watch(self, tenant: Tenant, key: str) -> None:
        """Scrub `key` from the WebSocket library's log records by name (the latest few per account)."""
        if key not in tenant.keys:
            tenant.keys.append(key)
            watch_secret(key, True)
            if len(tenant.keys) > KEYS_WATCHED:  # an account that runs for months renews many
                watch_secret(tenant.keys.pop(0), False)

    async def stop_tenant(self, tenant: Tenant) -> None:
        """Stop keeping an account's key alive, and stop scrubbing its secrets by name (key-shaped
        text still is)."""
        try:
            await tenant.services.close()
        finally:
            for key in tenant.keys:
                watch_secret(key, False)
            tenant.keys.clear()
            watch_secret(tenant.api_key, False)

    # -- connections -----------------------------------------------------------------------------

    async def _connection(self, conn_id: int, target: str | None) -> None:
        """One connection, from opening to its close, fed to the rules."""
        detail: str | None = None
        retry_after: float | None = None
        key_gone = False  # a dedicated listenKey connection refused, or closed saying the key is gone
        url = self.url if target is None else f"{self.stream_base}{self.market.stream_target(target)}"
        host = urlsplit(url).netloc
        secrets = self._secrets(conn_id)
        try:
            self.gate.check(host)  # a ban or Retry-After seen by any client of this host's group
            self.early[conn_id] = _Early()
            async with connect(
                url,
                create_connection=functools.partial(_Watched, on_text=self._texts_of(conn_id)),  # type: ignore[arg-type]
                open_timeout=self.open_timeout,
                close_timeout=self.close_timeout,
                max_size=MAX_FRAME,
                compression=self.compression,
                proxy=None,
                logger=_WS_LOG,
            ) as ws:
                assert isinstance(ws, _Watched)
                core, clock_now = self.core, self.now
                ws.on_ping = lambda: core.ping(conn_id, clock_now())
                self.sockets[conn_id] = _Socket(ws)
                early = self.early.pop(conn_id, None)
                self.apply(self.core.opened(conn_id, self.now()))
                if early is not None:
                    for text in early.texts:
                        self._texts_of(conn_id)(text)
                handle = self._texts_of(conn_id)
                try:
                    async for message in ws:  # what the library assembled: none from Binance
                        handle(message if isinstance(message, str) else message.decode("utf-8", "replace"))
                except ConnectionClosed as closed:
                    if isinstance(closed.__cause__, _Backoff):  # dropped (`_Watched.drop`): why
                        raise closed.__cause__ from None
                protocol = ws.protocol
                detail = _close_detail(
                    protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent, secrets
                )
                key_gone = target is not None and _says_key_gone(protocol.close_rcvd)
        except asyncio.CancelledError:
            raise
        except ConnectionClosed as error:
            if isinstance(error.__cause__, _Backoff):
                detail = str(error.__cause__)
            else:
                detail = _close_detail(error.rcvd, error.sent, error.rcvd_then_sent, secrets)
                key_gone = target is not None and _says_key_gone(error.rcvd)
        except InvalidStatus as error:
            detail, retry_after, refused = self._refused_upgrade(host, error, secrets)
            key_gone = target is not None and refused
        except (IPBannedError, RateLimitedError) as error:  # the gate: nothing was sent
            detail, retry_after = str(error), error.retry_after
        except _Backoff as error:
            detail, retry_after = str(error), error.retry_after
        except Exception as error:
            what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            detail = server_text(what, secrets)
        finally:
            self.early.pop(conn_id, None)
            if self.connections.get(conn_id) is asyncio.current_task():
                self.sockets.pop(conn_id, None)
        if self.connections.get(conn_id) is asyncio.current_task():
            del self.connections[conn_id]
            now = self.now()
            asked: list[FleetAction] = []
            if key_gone:
                for account_id in self.core.accounts_on(conn_id):
                    asked += self.core.key_refused(account_id, now, detail)
            self.apply([*asked, *self.core.closed(conn_id, now, detail, retry_after)])

    def _secrets(self, conn_id: int) -> list[str]:
        """The keys scrubbed by name from a connection's close reasons: every account's in a fleet of one."""
        if len(self.tenants) == 1:
            return next(iter(self.tenants.values())).keys
        return []

    def _refused_upgrade(
        self, host: str, error: InvalidStatus, secrets: list[str]
    ) -> tuple[str, float | None, bool]:
        """A handshake refused with an HTTP answer: its detail, the least wait, and whether the key
        is to blame. A 429 or 418 closes the host's gate for its Retry-After (REST calls to the
        host's group wait too); any other 4XX blames the key of a dedicated listenKey connection,
        the only part of its URL that changes (the simulator answers 400 -1125 for a dead key)."""
        response = error.response
        status = response.status_code
        body = (
            response.body[: 4 * SERVER_TEXT_LIMIT].decode("utf-8", "replace").strip() if response.body else ""
        )
        detail = f"the handshake was refused: HTTP {status}" + (
            f" ({server_text(body, secrets)})" if body else ""
        )
        if status in (418, 429):
            wait = retry_after_header(response.headers)
            if status == 418 and wait is None:
                wait = DEFAULT_BAN_SECONDS
            if wait is not None:
                self.gate.close(host, wait, banned=status == 418)
            return detail, wait, False
        return detail, None, 400 <= status < 500

    def _texts_of(self, conn_id: int) -> Callable[[str], None]:
        """What takes a connection's text frames: events to the rules at once (the hot path),
        answers to what they answer; held until the rules count the connection open."""
        core, frame, now, ready, apply = self.core, self.core.frame, self.now, self.ready, self.apply
        driver = self
        sockets, early_of = self.sockets, self.early
        prefix = (
            None
            if self.core.pool.dedicated and self.market.uses_listen_key
            else ('{"stream"' if self.market.uses_listen_key else '{"subscriptionId"')
        )
        answer = self._answer

        def text(frame_text: str) -> None:
            if conn_id not in sockets:  # before the connection is counted open
                early = early_of.get(conn_id)
                if early is not None:
                    early.texts.append(frame_text)
                    early.chars += len(frame_text)
                    if len(early.texts) > MAX_HELD_FRAMES or early.chars > MAX_HELD_CHARS:
                        early_of.pop(conn_id, None)
                        raise _Backoff(
                            f"dropped: {len(early.texts)} frames ({early.chars} characters) came before "
                            f"the connection opened, more than the {MAX_HELD_FRAMES} frames or "
                            f"{MAX_HELD_CHARS // 2**20} MiB a connection holds",
                            None,
                        )
                return
            if prefix is None or frame_text.startswith(prefix):
                actions = frame(conn_id, frame_text, now())
                if actions or core.notes:
                    apply(actions)
                elif driver.waiting:
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
        socket = self.sockets.get(conn_id)
        asked = (
            None if socket is None or type(request_id) is not int else socket.requests.pop(request_id, None)
        )
        if asked is None or not isinstance(payload, dict):
            self.apply(self.core.frame(conn_id, text, self.now()))
            return
        members, subscriber = asked
        if subscriber is None:
            self._answer_subscribe(conn_id, members, payload)
        else:
            self._answer_subscriber(conn_id, members[0], subscriber, payload)

    def _answer_subscribe(self, conn_id: int, members: tuple[Member, ...], payload: dict[str, Any]) -> None:
        """The answer to a SUBSCRIBE (derivatives): `{"result": null, "id": N}` subscribes them all."""
        now = self.now()
        actions: list[FleetAction] = []
        if "error" in payload:
            error = payload["error"]
            msg = error.get("msg") if isinstance(error, dict) else None
            detail = server_text(f"SUBSCRIBE refused: {msg if isinstance(msg, str) else error}", [])
            for member in members:
                # The key may be what is refused (closed elsewhere, expired): ask for the account's
                # key, which is the same one if it lives (then the account backs off and retries).
                actions += self.core.key_refused(member.account, now, detail)
                actions += self.core.subscription_failed(member.sub, now, detail)
        else:
            late: list[Member] = []
            for member in members:
                if self.core.pool.member(member.sub) is None:
                    late.append(member)  # given up (unanswered in time) before this answer came
                else:
                    actions += self.core.subscribed(member.sub, member.target, now)
            if late and (socket := self.sockets.get(conn_id)) is not None:
                request_id = next(socket.ids)
                socket.asked(request_id, (), None)
                body = {"method": "UNSUBSCRIBE", "params": [m.target for m in late], "id": request_id}
                self.spawn(_write(socket, json.dumps(body, separators=(",", ":"))), "unsubscribe")
        self.apply(actions)

    def _answer_subscriber(
        self, conn_id: int, member: Member, subscriber: Subscriber, payload: dict[str, Any]
    ) -> None:
        """An answer to one account's WebSocket API request: what its Subscriber says it means."""
        account_id = member.account
        owner = self.tenants.get(account_id)
        wall = owner.services.credentials.wall_ms() if owner is not None else 0.0
        for outcome in subscriber.answered(payload, wall):
            now = self.now()
            if isinstance(outcome, Send):
                self._send(conn_id, outcome.text, (member,), subscriber)
            elif isinstance(outcome, Subscribed):
                if self.core.pool.member(member.sub) is None:  # given up before this answer came
                    self._send(conn_id, subscriber.unsubscribe(wall).text, (member,), subscriber)
                    continue
                self.subscribers[member.sub] = subscriber
                self.core.note(
                    account_id,
                    StreamEventKind.SUBSCRIBED,
                    now,
                    f"subscriptionId={outcome.subscription_id}",
                    conn_id=member.sub,
                )
                self.apply(
                    self.core.subscribed(
                        member.sub, str(outcome.subscription_id), now, outcome.subscription_id
                    )
                )
            elif isinstance(outcome, Renewed):
                self.log.debug("%sthe subscription took the new listenToken", self.tag(account_id))
                self.core.renewed(member.sub, outcome.subscription_id)
            elif isinstance(outcome, RenewFailed):
                why = f"the new listenToken was refused: {outcome.detail}"
                self.apply(self.core.replace_subscription(account_id, now, why))
            elif isinstance(outcome, Resynced):
                self.core.note(
                    account_id,
                    StreamEventKind.RESYNCED,
                    now,
                    _resync_detail(outcome.offset_ms),
                    conn_id=member.sub,
                )
                self.apply([])
            elif isinstance(outcome, Refused):
                self.apply(self.core.fail(account_id, outcome.error, now))
            elif isinstance(outcome, Failed):
                if outcome.banned is not None and outcome.retry_after is not None:
                    self.gate.close(urlsplit(self.url).netloc, outcome.retry_after, banned=outcome.banned)
                self.apply(
                    self.core.subscription_failed(member.sub, now, outcome.detail, outcome.retry_after)
                )

    def _send(self, conn_id: int, text: str, members: tuple[Member, ...], subscriber: Subscriber) -> None:
        """Send a Subscriber's request (in a task: a frame's handler cannot wait), its answer
        expected by `subscriber`."""
        socket = self.sockets.get(conn_id)
        if socket is None:
            return
        socket.asked(socket.ids.last, members, subscriber)
        self.spawn(_write(socket, text), "send")

    async def _subscribe(self, action: Subscribe) -> None:
        """Send the subscriptions the rules released on one connection."""
        socket = self.sockets.get(action.conn)
        if socket is None:
            return  # closed meanwhile: its loss reports them
        if self.market.uses_listen_key:
            request_id = next(socket.ids)
            socket.asked(request_id, action.members, None)
            body = {"method": "SUBSCRIBE", "params": [m.target for m in action.members], "id": request_id}
            await _write(socket, json.dumps(body, separators=(",", ":")))
            return
        how = self.market.subscription
        for placed in action.members:
            tenant = self.tenants.get(placed.account)
            if tenant is None:
                continue
            token = None
            if how == "listen_token":
                try:
                    token = await self._listen_token(tenant)
                except _Refused as refused:
                    self.apply(self.core.fail(placed.account, refused.error, self.now()))
                    continue
                except UserStreamError as error:
                    detail = f"minting a listenToken failed: {error}"
                    self.apply(self.core.subscription_failed(placed.sub, self.now(), detail))
                    continue
                socket = self.sockets.get(action.conn)
                if socket is None:
                    return
            subscriber = Subscriber(how, tenant.services.credentials, ids=socket.ids)
            request = subscriber.subscribe(tenant.services.credentials.wall_ms(), token)
            socket.asked(socket.ids.last, (placed,), subscriber)
            await _write(socket, request.text)

    async def _unsubscribe(self, action: Unsubscribe) -> None:
        socket = self.sockets.get(action.conn)
        if socket is None:
            return
        if self.market.uses_listen_key:
            request_id = next(socket.ids)
            socket.asked(request_id, (), None)  # its answer says nothing to act on
            params = [m.target for m in action.members]
            body = {"method": "UNSUBSCRIBE", "params": params, "id": request_id}
            await _write(socket, json.dumps(body, separators=(",", ":")))
            return
        for placed in action.members:
            subscriber = self.subscribers.pop(placed.sub, None)
            tenant = self.tenants.get(placed.account)  # gone already if the account was removed
            if subscriber is not None:
                wall = tenant.services.credentials.wall_ms() if tenant is not None else 0.0
                request = subscriber.unsubscribe(wall)
                socket.asked(socket.ids.last, (placed,), subscriber)
                await _write(socket, request.text)

    async def _unsubscribe_all(self) -> None:
        """Leaving: end each WebSocket API subscription before its connection closes, as far as the
        weight window allows now (bounded; errors ignored). A connection's close ends the rest."""
        now = self.now()
        window = self.core.pool.weight_window
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                for sub_id, subscriber in list(self.subscribers.items()):
                    conn_id = self.core.pool.conn_of(sub_id)
                    socket = None if conn_id is None else self.sockets.get(conn_id)
                    tenant = self.tenants.get(self.core.account_of(sub_id) or "")
                    if socket is None or tenant is None or subscriber.subscription_id is None:
                        continue
                    if window.wait(now, SUBSCRIBE_WEIGHT) > 0:
                        break
                    window.take(now, SUBSCRIBE_WEIGHT)
                    await socket.ws.send(subscriber.unsubscribe(tenant.services.credentials.wall_ms()).text)

    # -- listenTokens (margin) ---------------------------------------------------------------------

    async def _listen_token(self, tenant: Tenant) -> str:
        """A new listenToken for a new subscription (the one in use may be what ended the last);
        its expiry goes to the account's rules. A refusal no retry mends raises _Refused."""
        async with tenant.token_lock:
            try:
                assert self.rest is not None
                async with self.rest:
                    answer = await tenant.services.token()
            except BinanceAPIError as error:
                if isinstance(error, FATAL) or (
                    400 <= error.status_code < 500 and not isinstance(error, _MENDABLE)
                ):
                    raise _Refused(error) from None  # -11001 (no such isolated account): nothing mends it
                raise
        token, expiration_ms = answer.token, answer.expiration_time
        self.watch(tenant, token)
        tenant.token = token
        now = self.now()
        # Believed for Binance's longest validity at most: an absurd expirationTime (10**400) is no
        # OverflowError, and no token outlives the renewal it is due.
        valid_ms = min(max(expiration_ms - tenant.services.credentials.timestamp(), 0), MAX_TOKEN_VALIDITY_MS)
        self.apply(self.core.token_valid(tenant.account_id, now + valid_ms / 1000, now))
        return str(token)

    async def _renew_token(self, account_id: str) -> None:
        """The account's token is due: mint one and present it on each of its subscriptions."""
        tenant = self.tenants.get(account_id)
        if tenant is None:
            return
        try:
            token = await self._listen_token(tenant)
        except _Refused as refused:
            self.apply(self.core.fail(account_id, refused.error, self.now()))
            return
        except UserStreamError as error:
            detail = f"minting a listenToken failed: {error}"
            self.apply(self.core.token_renew_failed(account_id, self.now(), detail))
            return
        for sub_id, subscriber in list(self.subscribers.items()):
            if self.core.account_of(sub_id) != account_id:
                continue
            conn_id = self.core.pool.conn_of(sub_id)
            socket = None if conn_id is None else self.sockets.get(conn_id)
            placed = self.core.pool.member(sub_id)
            if socket is None or placed is None:
                continue
            request = subscriber.renew(tenant.services.credentials.wall_ms(), token)
            socket.asked(socket.ids.last, (placed,), subscriber)
            await _write(socket, request.text)


async def _write(socket: _Socket, text: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        await socket.ws.send(text)


def _says_key_gone(rcvd: CloseFrame | None) -> bool:
    """Whether the server's close frame says the listenKey is gone (closed elsewhere, expired): a
    reason that mentions the listenKey or Binance's -1125. Production's wording is undocumented;
    the simulator's is "listenKey closed" and "listenKey expired"."""
    if rcvd is None:
        return False
    return "listenkey" in rcvd.reason.lower() or "-1125" in rcvd.reason
