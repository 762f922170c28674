"""The asyncio event stream: `AsyncUserDataStream.events()`, a thin driver over the sans-I/O core.

The core (`_core`) decides everything; this module opens and closes WebSocket connections
(the `websockets` asyncio client) when it says so, feeds it frames, pings and closes with the loop's
time, keeps the listenKey alive with the client's session, and hands the items to the consumer.
On the WebSocket API (spot, margin) a connection is first subscribed, as its `Subscriber`
(`_wsapi`) says: signed afresh, or with a listenToken this module mints and renews; its answers go
to the Subscriber, its events to the core, and leaving the stream unsubscribes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import random
import sys
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast
from urllib.parse import urlsplit

from attrs import define, field
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close as CloseFrame
from websockets.frames import Frame, Opcode

from binance_userstream._clock import Clock
from binance_userstream._gate import DEFAULT_BAN_SECONDS
from binance_userstream._policy import retry_after as retry_after_header
from binance_userstream._secrets import SERVER_TEXT_LIMIT, printable, redact, server_text, watch_secret
from binance_userstream._session import FATAL, AsyncKeepaliveSession, EventKind, SessionEvent
from binance_userstream.errors import (
    BinanceAPIError,
    IPBannedError,
    RateLimitedError,
    TimestampError,
    UserStreamError,
)
from binance_userstream.stream._core import (
    DEFAULT_MAX_BYTES,
    Action,
    Close,
    Connect,
    Item,
    RenewKey,
    StreamCore,
    StreamEvent,
    StreamEventKind,
    StreamTiming,
)
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
    is_event_frame,
)

if TYPE_CHECKING:
    from binance_userstream._client import AsyncUserDataStream, _Base
    from binance_userstream._signing import Credentials

log = logging.getLogger("binance_userstream.stream")
#: websockets logs each handshake's request line (the URL, with the listenKey) at DEBUG: it logs
#: here instead, through the redacting filter (see `watch_secret`).
_WS_LOG = logging.getLogger("binance_userstream.stream.websockets")


class _EscapingFilter(logging.Filter):
    """Escapes control characters in the WebSocket library's records: it logs a close frame's
    reason as the server sent it, terminal escapes and a CR/LF that would forge a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = printable(message, limit=sys.maxsize)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


_WS_LOG.addFilter(_EscapingFilter())

StreamCallback = Callable[[SessionEvent | StreamEvent], object]
"""What `events(on_event=...)` calls with each session and connection happening (a plain function)."""

_LOUD = {
    StreamEventKind.DISCONNECTED,
    StreamEventKind.STALLED,
    StreamEventKind.KEY_EXPIRED,
    StreamEventKind.OVERFLOW,
    StreamEventKind.RECONNECTING,
    StreamEventKind.TERMINATED,
    StreamEventKind.RESYNCED,
    StreamEventKind.TOKEN_RENEW_FAILED,
    StreamEventKind.KEY_REFUSED,
    StreamEventKind.OTHER_SUBSCRIPTION,
}
#: The 4XX answers to a listenToken mint that time can mend: a wait the server asked for, a clock
#: that drifted. Any other 4XX ends the stream: sent again, the request would be refused again.
_MENDABLE = (RateLimitedError, IPBannedError, TimestampError)
#: The core's key for a WebSocket API stream: its URL names no key, and its credential is per
#: connection (a signature) or a listenToken held here.
_WS_API = "ws-api"
#: The largest frame accepted: Binance's events are a few KB; 1 MiB is websockets' default.
MAX_FRAME = 2**20
OPEN_TIMEOUT = 10.0
#: A listenToken lives 24 hours at most (`validity` on POST /sapi/v1/userListenToken: default and maximum).
MAX_TOKEN_VALIDITY_MS = 24 * 3600 * 1000
#: Seconds leaving a stream waits for its connections' close handshakes.
CLOSE_TIMEOUT = 2.0
#: The latest keys and tokens scrubbed from logs by name (older ones are long out of any URL or
#: frame; key-shaped text is scrubbed whatever it is).
KEYS_WATCHED = 8
#: The most a connection may have written and not yet sent, in bytes: past it the connection is
#: dropped. A server reads at once what this client writes (pongs, a subscription, a close); one
#: that pings and never reads would grow the pongs without bound (1.09 GB in 40 s was measured).
#: websockets' `write_limit` holds back `send()` alone: its automatic pongs are written regardless.
MAX_UNSENT = 2**20
#: The most frames a connection holds for later, and their characters: events that came before
#: its subscription was confirmed, or answers its task has not read. Binance starts the events with
#: the subscription and answers each request once, so a handful is the most ever held; past it
#: (a flood, 2.4 GB in a subscription's timeout was measured) the attempt fails.
MAX_HELD_FRAMES = 1_000
MAX_HELD_CHARS = 4 * 2**20


_TEXT, _PING, _DATA = Opcode.TEXT, Opcode.PING, (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class _Watched(ClientConnection):
    """A client connection that reports each ping frame the server sends (a sign of life), and hands
    each text frame to `on_text` as the parser yields it, in order.

    Binance sends every message as one unfragmented text frame, so there is nothing to assemble:
    skipping the library's message queue saves a hop through it and a task switch per event (the
    stream benchmark measured that queue at about a quarter of the client's time). A fragmented
    or binary message switches the connection to the library's own assembly for good, so that the
    messages stay in order; `_Inbox.read_assembled` then hands them on.

    A connection whose unsent bytes would pass MAX_UNSENT, or whose inbox would hold more than it
    may, is dropped (`drop`): what waits on it then raises the `_Backoff` that says why.
    """

    def __init__(self, *args: Any, on_text: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_text = on_text
        self.on_ping: Callable[[], None] | None = None
        self.assembling = False

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            opcode = event.opcode
            if opcode is _TEXT and event.fin and not self.assembling:  # every event: first
                try:
                    text = str(event.data, "utf-8")
                except UnicodeDecodeError:
                    pass  # the library closes the connection with 1007, as it should
                else:
                    try:
                        self.on_text(text)
                    except _Backoff as failure:  # the frame past the inbox's bounds
                        self.drop(failure)
                    return
            elif opcode is _PING:
                if self.on_ping is not None:
                    self.on_ping()
            elif opcode in _DATA:
                self.assembling = True
        super().process_event(event)

    def send_data(self) -> None:
        """Write what the protocol has to send, unless that would leave more than MAX_UNSENT bytes
        unsent: then the server is not reading, and the connection is dropped instead."""
        writes = self.protocol.writes
        if writes:
            unsent = self.transport.get_write_buffer_size() + sum(map(len, writes))
            if unsent > MAX_UNSENT:
                self.drop(
                    _Backoff(
                        f"dropped: the server does not read what this client sends (its pongs): "
                        f"{unsent} bytes would be unsent, more than the {MAX_UNSENT} a connection may hold",
                        None,
                    )
                )
                return
            super().send_data()

    def drop(self, failure: _Backoff) -> None:
        """Abort the connection at once (a server that floods it would not answer a close) and
        have whatever waits on it raise `failure`."""
        self.protocol.data_to_send()  # discarded: nothing more is sent
        self.set_connection_exc(failure)  # the cause of the ConnectionClosed that waiters raise
        self.transport.abort()


@define(eq=False)
class _Inbox:
    """Where one connection's text frames go: events to the core once it counts the connection
    open (`live`), kept in `early` until then; the WebSocket API's answers to `answers`, for the
    connection's task, which sends what they call for.

    What it holds is bounded (MAX_HELD_FRAMES, MAX_HELD_CHARS, for `early` and `answers` each):
    the frame past a bound raises `failure`, a `_Backoff` that fails the attempt, and the
    connection is dropped (a server that floods it would not answer a close handshake in time);
    what still comes is let go."""

    deliver: Callable[[str], None]
    answers_wanted: bool
    live: bool = False
    early: list[str] = field(factory=list)
    early_chars: int = 0
    answers: asyncio.Queue[str] = field(factory=asyncio.Queue)
    answer_chars: int = 0
    failure: _Backoff | None = None

    def put(self, text: str) -> None:
        if self.answers_wanted and not is_event_frame(text):
            if self.failure is None:
                self.answers.put_nowait(text)
                self.answer_chars += len(text)
                if self.answers.qsize() > MAX_HELD_FRAMES or self.answer_chars > MAX_HELD_CHARS:
                    self._fail(f"{self.answers.qsize()} answers ({self.answer_chars} characters) came unread")
        elif self.live:
            self.deliver(text)
        elif self.failure is None:
            self.early.append(text)
            self.early_chars += len(text)
            if len(self.early) > MAX_HELD_FRAMES or self.early_chars > MAX_HELD_CHARS:
                self._fail(
                    f"{len(self.early)} events ({self.early_chars} characters) came before the "
                    "subscription was confirmed"
                )

    def _fail(self, what: str) -> None:
        self.failure = _Backoff(
            f"dropped: {what}, more than the {MAX_HELD_FRAMES} frames or {MAX_HELD_CHARS // 2**20} MiB "
            "a connection holds",
            None,
        )
        self.early.clear()
        raise self.failure

    def go_live(self) -> None:
        if self.failure is not None:
            raise self.failure
        self.live = True
        early, self.early, self.early_chars = self.early, [], 0
        for text in early:
            self.deliver(text)

    async def read_assembled(self, ws: _Watched) -> None:
        """Until the connection closes: the messages the library assembled (none from Binance).
        Raises what ended the connection: ConnectionClosed, or the `_Backoff` it was dropped for."""
        try:
            async for message in ws:
                try:
                    self.put(message if isinstance(message, str) else message.decode("utf-8", "replace"))
                except _Backoff as failure:
                    ws.drop(failure)
                    raise
        except ConnectionClosed as closed:
            if isinstance(closed.__cause__, _Backoff):
                raise closed.__cause__ from None
            raise

    async def answer(self, reader: asyncio.Future[None]) -> str | None:
        """The next answer, or None once the connection has closed (`reader` has ended); raises the
        `_Backoff` that failed the attempt (the inbox's bounds passed, the connection dropped)."""
        if self.failure is None:
            getter = asyncio.ensure_future(self.answers.get())
            waiters: set[asyncio.Future[Any]] = {getter, reader}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
            if self.failure is None and getter.done() and not getter.cancelled():
                text = getter.result()
                self.answer_chars -= len(text)
                return text
        if self.failure is not None:
            raise self.failure
        ended = reader.exception() if reader.done() and not reader.cancelled() else None
        if isinstance(ended, _Backoff):
            raise ended
        return None


class AsyncEventStream:
    """The account's events, in order, with StreamGap markers: `async with` it, then `async for`.

    Made by `AsyncUserDataStream.events()`. Leaving the block, or `close()` (from any thread),
    ends the iteration; a fatal session answer (the API key refused, the endpoint retired) makes
    it raise that error.
    """

    def __init__(
        self,
        uds: _Base,
        *,
        listen_key: str | None,
        interval: float,
        maxsize: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_event: StreamCallback | None,
        timing: StreamTiming | None,
        jitter: Callable[[], float] | None,
        clock: Clock | None = None,
    ) -> None:
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, not {type(on_event).__name__}")
        if isinstance(max_bytes, int) and not isinstance(max_bytes, bool) and max_bytes < MAX_FRAME:
            raise ValueError(
                f"max_bytes must be at least {MAX_FRAME}, the largest frame accepted, not {max_bytes}"
            )
        if uds.stream_url is None:
            raise ValueError(f"market {uds.market.name!r} has no listenKey event stream")
        market = uds.market
        self._credentials: Credentials = uds._credentials
        if not market.uses_listen_key:
            if listen_key is not None:
                raise ValueError(
                    f"market {market.name!r} subscribes on the WebSocket API: listen_key= does not apply"
                )
            if market.subscription == "signature" and self._credentials.signer is None:
                raise ValueError(
                    f"market {market.name!r}'s events need a signature: pass api_secret= or private_key= "
                    "to the client (or set $BINANCE_API_SECRET or $BINANCE_PRIVATE_KEY_FILE)"
                )
            if clock is not None:
                self._credentials.clock = clock  # signed timestamps on the stream's clock
        self._uds = uds
        self._on_event = on_event
        base, target = uds.stream_url, uds.market.stream_target
        self._core = StreamCore(
            lambda key: f"{base}{target(key)}",
            timing or StreamTiming.for_market(uds.market),
            random=jitter or random.random,
            maxsize=maxsize,
            max_bytes=max_bytes,
            events=market.event_types,
        )
        self._listen_key, self._interval = listen_key, interval
        self._clock = clock  # None: the loop's own clock
        self._connections: dict[int, asyncio.Task[None]] = {}
        self._sockets: dict[int, ClientConnection] = {}
        self._helpers: set[asyncio.Task[Any]] = set()
        self._error: BaseException | None = None
        self._ended = False
        self._entered = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()  # an item, an error or the end is waiting for the consumer
        self._poke = asyncio.Event()  # the core's deadline may have moved
        self._runner: asyncio.Task[None] | None = None
        self._keys: list[str] = []
        self._subscribers: dict[int, Subscriber] = {}
        self._token: str | None = None  # the listenToken minted last
        self._token_lock = asyncio.Lock()

    # -- the consumer's side ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise UserStreamError("an event stream can be entered once; call events() again")
        self._entered = True
        self._loop = asyncio.get_running_loop()
        self._now = self._clock.now if self._clock is not None else self._loop.time  # type: ignore[method-assign]
        if self._uds.market.uses_listen_key:
            key = await self._open_session()
            self._watch(key)
        else:
            key = _WS_API
        watch_secret(self._credentials.api_key, True)  # a server's error frame may echo it
        self._apply(self._core.start(key, self._now()))
        self._runner = asyncio.create_task(self._run(), name="binance-userstream-events")
        return self

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Item:
        item = self._core.pop(self._now())
        while item is None:
            await self._until_ready()
            item = self._core.pop(self._now())
        if isinstance(item, StreamGap):
            log.warning("stream %s", item.describe())
        return item

    def buffered(self) -> list[Item]:
        """Every item the stream holds now, in order, without waiting (the account mirror reads
        them before it reports a heal, so that a trade they carry is not also reported recovered)."""
        items: list[Item] = []
        while (item := self._core.pop(self._now())) is not None:
            if isinstance(item, StreamGap):
                log.warning("stream %s", item.describe())
            items.append(item)
        return items

    async def _until_ready(self) -> None:
        """Until an item waits; once none is left, the error that ended the stream (after every
        item buffered before it, the gap of the loss in progress included), or StopAsyncIteration."""
        while not len(self._core):
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        """End the iteration (thread-safe): the consumer's `async for` ends once it has been woken."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._ended = True
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._end()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._end)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end()
        await self._unsubscribe()
        await self._close_sockets()
        tasks = [t for t in (self._runner, *self._connections.values(), *self._helpers) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connections.clear()
        self._sockets.clear()
        self._helpers.clear()
        try:
            await self._close_session(exc_type, exc, tb)
        finally:
            watch_secret(self._credentials.api_key, False)
            for key in self._keys:
                watch_secret(key, False)

    def __repr__(self) -> str:
        key = self._core.key
        return f"AsyncEventStream(market={self._uds.market.name!r}, listen_key={key and redact(key)!r})"

    # -- the session: an asyncio task here, a thread for the sync client (_sync) ---

    async def _open_session(self) -> str:
        """Start keeping a key alive; the key."""
        uds = cast("AsyncUserDataStream", self._uds)
        self._session: AsyncKeepaliveSession = uds.session(
            listen_key=self._listen_key,
            interval=self._interval,
            on_event=self._session_event,
            clock=self._clock,
        )
        await self._session.__aenter__()
        assert self._session.listen_key is not None
        return self._session.listen_key

    async def _close_session(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if hasattr(self, "_session"):
            await self._session.__aexit__(exc_type, exc, tb)

    async def _renew_key(self) -> str:
        """The account's key, got now by the session, which keeps it alive from then on."""
        return await self._session.renew()

    async def _create_token(self) -> Any:
        """Mint a listenToken (USER_STREAM REST, unsigned); the generated ListenToken model."""
        uds = cast("AsyncUserDataStream", self._uds)
        return await uds.create_listen_token(uds.symbol)

    # -- the driver ---------------------------------------------------------------------------

    def _now(self) -> float:
        """The stream's clock: the loop's, unless a clock was given (`__aenter__` binds it once,
        so that the hot path calls it directly)."""
        if self._clock is not None:
            return self._clock.now()
        assert self._loop is not None
        return self._loop.time()

    def _wall_ms(self) -> float:
        """The wall time in ms on the stream's clock, before any resync offset (what a Subscriber
        dates its requests and answers with, and `Credentials.resync` takes)."""
        return self._credentials.wall_ms()

    def _end(self) -> None:
        self._ended = True
        self._ready.set()
        self._poke.set()

    def _fail(self, error: BaseException) -> None:
        """End the stream with `error`, raised once the consumer has what was buffered before it."""
        if self._error is None and not self._ended:
            self._apply(self._core.failed(self._now()))
        if self._error is None:
            self._error = error
        self._end()

    def _watch(self, key: str) -> None:
        if key not in self._keys:
            self._keys.append(key)
            if len(self._keys) > KEYS_WATCHED:  # a stream that runs for months renews many
                watch_secret(self._keys.pop(0), False)
            watch_secret(key, True)

    async def _run(self) -> None:
        """Wake at the core's deadlines (or when it may have moved) and let the core act."""
        while not self._ended:
            wait = self._core.next_deadline() - self._now()
            self._poke.clear()
            if wait > 0:
                await self._until(wait)
            if not self._ended:
                self._apply(self._core.tick(self._now()))

    async def _until(self, wait: float) -> None:
        """Until `wait` seconds have passed on the stream's clock, or the core was poked."""
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

    def _apply(self, actions: list[Action]) -> None:
        """Carry out the core's actions, then report what it noted and wake whoever waits. Once the
        stream has ended nothing is carried out: leaving it opens no connection, renews nothing,
        and reports no disconnection of its own making."""
        if self._ended:
            return
        for action in actions:
            if isinstance(action, Connect):
                name = f"binance-userstream-connection-{action.conn_id}"
                task = asyncio.create_task(self._connection(action.conn_id, action.url), name=name)
                self._connections[action.conn_id] = task
            elif isinstance(action, Close):
                self._subscribers.pop(action.conn_id, None)
                closing = self._connections.pop(action.conn_id, None)
                ws = self._sockets.pop(action.conn_id, None)
                if ws is not None and closing is not None:  # a clean close (1000); its task then ends
                    self._track(closing)
                    self._spawn(ws.close(), "close")
                elif closing is not None:
                    closing.cancel()  # still connecting
            elif isinstance(action, RenewKey):
                self._spawn(self._renew(), "renew")
            else:
                self._spawn(self._renew_token(), "renew-token")
        notes, self._core.notes = self._core.notes, []
        for note in notes:
            log.log(logging.WARNING if note.kind in _LOUD else logging.INFO, "%s", note.describe())
            self._report(note)
        if len(self._core):
            self._ready.set()
        self._poke.set()

    def _report(self, event: SessionEvent | StreamEvent) -> None:
        if self._on_event is None:
            return
        try:
            result = self._on_event(event)
        except Exception:
            log.exception("stream: the on_event callback raised; the stream goes on")
            return
        if inspect.iscoroutine(result):
            result.close()
            log.error("stream: on_event returned a coroutine; the stream calls plain functions only")

    def _spawn(self, coroutine: Any, what: str) -> None:
        self._track(asyncio.create_task(coroutine, name=f"binance-userstream-{what}"))

    def _track(self, task: asyncio.Task[Any]) -> None:
        """Keep `task` until it ends, so that leaving the block can cancel and await it."""
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    async def _connection(self, conn_id: int, url: str) -> None:
        """One WebSocket connection, from opening to its close, fed to the core."""
        detail: str | None = None
        retry_after: float | None = None
        key_gone = False  # the server refused the key, or closed the connection saying it is gone
        host = urlsplit(url).netloc
        try:
            self._uds.gate.check(host)  # a ban or Retry-After seen by any client of this host's group
            inbox = _Inbox(
                deliver=self._events_of(conn_id),
                answers_wanted=not self._uds.market.uses_listen_key,
            )
            async with connect(
                url,
                create_connection=functools.partial(_Watched, on_text=inbox.put),  # type: ignore[arg-type]
                open_timeout=OPEN_TIMEOUT,
                close_timeout=CLOSE_TIMEOUT,
                max_size=MAX_FRAME,
                proxy=None,
                logger=_WS_LOG,
            ) as ws:
                assert isinstance(ws, _Watched)
                ws.on_ping = lambda: self._pinged(conn_id)
                self._sockets[conn_id] = ws
                reader = asyncio.ensure_future(inbox.read_assembled(ws))
                try:
                    subscriber = await self._subscribe(conn_id, ws, inbox, reader)
                    subscription = None if subscriber is None else subscriber.subscription_id
                    self._apply(self._core.connected(conn_id, self._now(), subscription))
                    inbox.go_live()
                    if subscriber is None:  # a listenKey stream: every frame is an event, straight on
                        ws.on_text = inbox.deliver
                    while subscriber is not None and (text := await inbox.answer(reader)) is not None:
                        await self._answered(conn_id, ws, subscriber, text)
                    await reader  # until the connection closes; raises what ended it
                finally:
                    reader.cancel()
                    if reader.done() and not reader.cancelled():
                        reader.exception()  # retrieved: what ended the connection is reported below
            protocol = ws.protocol
            detail = _close_detail(
                protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent, self._keys
            )
            key_gone = self._says_key_gone(protocol.close_rcvd)
        except asyncio.CancelledError:
            raise
        except _Refused as refused:
            self._fail(refused.error)  # now that the connection is closed: nothing to reconnect
            return
        except ConnectionClosed as error:
            if isinstance(error.__cause__, _Backoff):  # a send found it dropped (`_Watched.drop`): why
                detail = str(error.__cause__)
            else:
                detail = _close_detail(error.rcvd, error.sent, error.rcvd_then_sent, self._keys)
                key_gone = self._says_key_gone(error.rcvd)
        except InvalidStatus as error:
            detail, retry_after, key_gone = self._refused_upgrade(host, error)
        except (IPBannedError, RateLimitedError) as error:  # the gate: nothing was sent
            detail, retry_after = str(error), error.retry_after
        except _Backoff as error:
            detail, retry_after = str(error), error.retry_after
            if error.banned is not None and retry_after is not None:  # a 429 or 418 answer
                self._uds.gate.close(host, retry_after, banned=error.banned)
        except Exception as error:
            what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            detail = server_text(what, self._keys)
        finally:
            if (
                self._sockets.get(conn_id) is not None
                and self._connections.get(conn_id) is asyncio.current_task()
            ):
                del self._sockets[conn_id]
                self._subscribers.pop(conn_id, None)
        if self._connections.get(conn_id) is asyncio.current_task():
            del self._connections[conn_id]
            now = self._now()
            asked = self._core.key_refused(now, detail) if key_gone else []
            self._apply([*asked, *self._core.closed(conn_id, now, detail, retry_after)])

    def _says_key_gone(self, rcvd: CloseFrame | None) -> bool:
        """Whether the server's close frame says the listenKey is gone (closed elsewhere, expired):
        a reason that mentions the listenKey or Binance's -1125. Production's wording is
        undocumented; the simulator's is "listenKey closed" and "listenKey expired"."""
        if rcvd is None or not self._uds.market.uses_listen_key:
            return False
        return "listenkey" in rcvd.reason.lower() or "-1125" in rcvd.reason

    def _refused_upgrade(self, host: str, error: InvalidStatus) -> tuple[str, float | None, bool]:
        """What a handshake refused with an HTTP answer means: its detail, the least wait before
        the next try, and whether the key is to blame. A 429 or 418 closes the backoff gate of the
        host's ban group for its Retry-After (capped as for REST), so that REST calls to the group
        wait too; any other 4XX on a listenKey stream blames the key, the only part of the URL
        that changes (Binance's answer for a dead key is undocumented; the simulator's is 400 with
        -1125), and a create tells whether it lives."""
        response = error.response
        status = response.status_code
        body = (
            response.body[: 4 * SERVER_TEXT_LIMIT].decode("utf-8", "replace").strip() if response.body else ""
        )
        detail = f"the handshake was refused: HTTP {status}" + (
            f" ({server_text(body, self._keys)})" if body else ""
        )
        if status in (418, 429):
            wait = retry_after_header(response.headers)
            if status == 418 and wait is None:
                wait = DEFAULT_BAN_SECONDS
            if wait is not None:
                self._uds.gate.close(host, wait, banned=status == 418)
            return detail, wait, False
        return detail, None, self._uds.market.uses_listen_key and 400 <= status < 500

    def _events_of(self, conn_id: int) -> Callable[[str], None]:
        """What takes connection `conn_id`'s text frames carrying events: to the core, at once.
        A closure over what it needs, since it runs for every event."""
        core, frame, now, ready, apply = self._core, self._core.frame, self._now, self._ready, self._apply

        def event(text: str) -> None:
            actions = frame(conn_id, text, now())
            if actions or core.notes:
                apply(actions)
            else:  # the hot path: an event for the consumer, no deadline moved earlier
                ready.set()

        return event

    # -- the WebSocket API's subscription ------------------------------------------------------------

    async def _subscribe(
        self, conn_id: int, ws: ClientConnection, inbox: _Inbox, reader: asyncio.Future[None]
    ) -> Subscriber | None:
        """Subscribe a WebSocket API connection (None for a listenKey stream, which needs nothing):
        send the request and read answers until it is subscribed; events that come first wait in
        the inbox. A failure raises (the attempt failed: the core retries after its backoff)."""
        how = self._uds.market.subscription
        if how == "listen_key":
            return None
        subscriber = Subscriber(how, self._credentials)
        token = await self._listen_token() if how == "listen_token" else None
        if inbox.failure is not None:  # flooded while it opened: dropped, and this says why
            raise inbox.failure
        await ws.send(subscriber.subscribe(self._wall_ms(), token).text)
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                while (text := await inbox.answer(reader)) is not None:
                    if await self._answered(conn_id, ws, subscriber, text):
                        if conn_id in self._sockets:  # not closed by the core meanwhile
                            self._subscribers[conn_id] = subscriber
                        return subscriber
        except TimeoutError:
            raise ConnectionError(f"the subscription was not answered within {OPEN_TIMEOUT:g} s") from None
        raise ConnectionError("the connection closed before the subscription was answered")

    async def _answered(self, conn_id: int, ws: ClientConnection, subscriber: Subscriber, text: str) -> bool:
        """Carry out what an answer means; True once it subscribed the connection."""
        subscribed = False
        for outcome in subscriber.answer(text, self._wall_ms()):
            if isinstance(outcome, Send):
                await ws.send(outcome.text)
            elif isinstance(outcome, Subscribed):
                subscribed = True
                self._core.note(
                    StreamEventKind.SUBSCRIBED,
                    self._now(),
                    conn_id,
                    f"subscriptionId={outcome.subscription_id}",
                )
            elif isinstance(outcome, Resynced):
                self._core.note(
                    StreamEventKind.RESYNCED,
                    self._now(),
                    conn_id,
                    _resync_detail(outcome.offset_ms),
                )
                self._apply([])
            elif isinstance(outcome, Renewed):
                log.debug("stream: connection %d took the new listenToken", conn_id)
                self._core.subscribed(conn_id, outcome.subscription_id)
            elif isinstance(outcome, RenewFailed):
                self._apply(
                    self._core.replace_connections(
                        self._now(), f"the new listenToken was refused: {outcome.detail}"
                    )
                )
            elif isinstance(outcome, Refused):
                raise _Refused(outcome.error)
            elif isinstance(outcome, Failed):
                raise _Backoff(outcome.detail, outcome.retry_after, outcome.banned)
        return subscribed

    async def _listen_token(self) -> str:
        """A new listenToken for a new connection: the one in use may have been what ended the last
        subscription (expired, revoked), and a mint costs one request per connection."""
        async with self._token_lock:
            await self._mint()
            assert self._token is not None
            return self._token

    async def _mint(self) -> None:
        """Mint a listenToken and tell the core when it expires; a fatal refusal ends the stream."""
        try:
            answer = await self._create_token()
        except BinanceAPIError as error:
            if isinstance(error, FATAL) or (
                400 <= error.status_code < 500 and not isinstance(error, _MENDABLE)
            ):
                raise _Refused(error) from None  # -11001 (no such isolated account): no retry mends it
            raise
        token, expiration_ms = answer.token, answer.expiration_time
        self._watch(token)
        now = self._now()
        # Believed for Binance's longest validity at most: an absurd expirationTime (10**400) is
        # no OverflowError, and no token outlives the renewal it is due.
        valid_ms = min(max(expiration_ms - self._credentials.timestamp(), 0), MAX_TOKEN_VALIDITY_MS)
        expires_at = now + valid_ms / 1000
        self._token = token
        self._apply(self._core.token_valid(expires_at, now))

    async def _renew_token(self) -> None:
        """The token is due: mint a new one and present it on every subscribed connection."""
        try:
            async with self._token_lock:
                await self._mint()
        except _Refused as refused:
            self._fail(refused.error)
            return
        except UserStreamError as error:
            self._apply(self._core.token_renew_failed(self._now(), f"minting a listenToken failed: {error}"))
            return
        assert self._token is not None
        for conn_id, subscriber in list(self._subscribers.items()):
            ws = self._sockets.get(conn_id)
            if ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(subscriber.renew(self._wall_ms(), self._token).text)

    async def _close_sockets(self) -> None:
        """Leaving: close each open connection with a close handshake (bounded), before its task is
        cancelled: a connection cancelled in the middle of closing can leave its socket open."""
        sockets = list(self._sockets.values())
        if sockets:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

    async def _unsubscribe(self) -> None:
        """Leaving: end each subscription before its connection closes (bounded; errors ignored)."""
        for conn_id, subscriber in list(self._subscribers.items()):
            ws = self._sockets.get(conn_id)
            if ws is None or subscriber.subscription_id is None:
                continue
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await ws.send(subscriber.unsubscribe(self._wall_ms()).text)

    def _pinged(self, conn_id: int) -> None:
        self._core.ping(conn_id, self._now())
        self._poke.set()  # the stall deadline moved

    async def _renew(self) -> None:
        """The key expired or was refused: get the account's key through the session (which then
        keeps that key alive, not the dead one) and give it to the core."""
        try:
            key = await self._renew_key()
        except FATAL as error:
            self._fail(error)
            return
        except UserStreamError as error:
            self._apply(self._core.renew_failed(self._now(), f"renewing the key failed: {error}"))
            return
        self._watch(key)
        self._apply(self._core.key_replaced(key, self._now()))

    def _session_event(self, event: SessionEvent) -> None:
        """The session's happenings: a replaced key is reconnected; a failure ends the stream."""
        if event.kind is EventKind.REPLACED and event.listen_key is not None and self._loop is not None:
            self._watch(event.listen_key)
            if self._core.key is not None:
                self._apply(self._core.key_replaced(event.listen_key, self._now()))
        elif event.kind is EventKind.FAILED and event.error is not None and self._runner is not None:
            self._fail(event.error)
        self._report(event)


class _Backoff(ConnectionError):
    """The subscription failed in a way a new connection may mend, not before `retry_after` seconds;
    `banned`: the server limited (False) or banned (True) this IP, which closes the host's gate."""

    def __init__(self, detail: str, retry_after: float | None, banned: bool | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.banned = banned


class _Refused(Exception):
    """A refusal no reconnect can mend: the stream fails with `error` once the connection is closed."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


def _resync_detail(offset_ms: float) -> str:
    """A clock resync's note: the offset in whole ms, signed, never "-0" (an offset under half a ms)."""
    return f"clock offset {round(offset_ms):+d} ms (-1021)"


def _close_detail(
    rcvd: CloseFrame | None, sent: CloseFrame | None, rcvd_then_sent: bool | None, secrets: list[str]
) -> str:
    """How a connection closed, for notes and logs: who closed it first (this client closes with
    1009 on a frame too big, 1011 on a ping unanswered), its code, and its reason as server text
    (the keys in use scrubbed by name, control characters escaped, length bounded)."""
    if sent is not None and (rcvd is None or rcvd_then_sent is False):
        who, frame = "closed by this client", sent
    elif rcvd is not None:
        who, frame = "closed by the server", rcvd
    else:
        return "closed without a close frame: code 1006"
    reason = server_text(frame.reason, secrets)
    return f"{who}: code {frame.code}" + (f" ({reason})" if reason else "")
