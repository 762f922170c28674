"""Keepalive sessions: hold one listenKey alive in the background, and say so at every step.

A listenKey dies 60 minutes after its last keepalive, and the complaint about other clients is a
keepalive loop that dies quietly. So a session never fails silently: every notable thing becomes
a SessionEvent, given to the `on_event` callback and logged; a failed keepalive is retried within
minutes, not at the next half-hour tick; a lost key (-1125) is replaced by a new one, announced
before it is used; only the answers that no retry can mend (the endpoint retired, the API key
refused) end the session, and they end it loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from attrs import field, frozen

from binance_userstream._budget import WAIT_LISTENER, BudgetWait
from binance_userstream._clock import Clock, SystemClock
from binance_userstream._secrets import check_listen_key, redact
from binance_userstream.errors import (
    AuthenticationError,
    EndpointRetiredError,
    ListenKeyNotFoundError,
    UserStreamError,
)

if TYPE_CHECKING:
    from binance_userstream._client import AsyncUserDataStream, UserDataStream

log = logging.getLogger("binance_userstream.session")

KEEPALIVE_INTERVAL = 30 * 60.0  # Binance recommends a keepalive about every 30 minutes
#: The bounds of `interval`. A key lives 60 minutes after its last keepalive; at most 50 minutes
#: between keepalives leaves 10 for the retries of a failed one (after 1, 2 and 4 minutes).
MIN_INTERVAL = 1.0
MAX_INTERVAL = 50 * 60.0
FIRST_RETRY = 60.0  # after a failed keepalive: 1, 2, 4, 5, 5 ... minutes, well inside 60
LAST_RETRY = 300.0
#: Answers that no retry can mend: the session stops and says why.
FATAL = (EndpointRetiredError, AuthenticationError)


class SessionState(enum.Enum):
    STARTING = "starting"
    ACTIVE = "active"  # the key was created or kept alive on schedule
    RETRYING = "retrying"  # the last keepalive (or replacement) failed; trying again soon
    FAILED = "failed"  # a fatal answer ended the session; see last_error
    STOPPED = "stopped"  # the session was left; the key was closed if close_on_exit


class EventKind(enum.Enum):
    CREATED = "created"
    ADOPTED = "adopted"
    KEPT_ALIVE = "kept_alive"
    KEEPALIVE_FAILED = "keepalive_failed"
    KEY_LOST = "key_lost"
    REPLACED = "replaced"
    CLOSED = "closed"
    FAILED = "failed"
    STOPPED = "stopped"
    WEIGHT_WAIT = "weight_wait"  # a call of the session waits for the next minute's weight budget


@frozen
class SessionEvent:
    """One notable thing a session did. `listen_key` is the full key (to reconnect a stream with)
    and is kept out of the repr; `describe()` is a redacted line for people."""

    kind: EventKind
    at: float
    listen_key: str | None = field(repr=False)
    error: UserStreamError | None = None
    retry_in: float | None = None

    @property
    def key_hint(self) -> str | None:
        return None if self.listen_key is None else redact(self.listen_key)

    def describe(self) -> str:
        parts = [self.kind.value]
        if self.key_hint:
            parts.append(f"key={self.key_hint}")
        if self.retry_in is not None:
            parts.append(f"retry_in={self.retry_in:g}s")
        if self.error is not None:
            parts.append(f"error={type(self.error).__name__}: {self.error}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind.value,
            "at": round(self.at, 3),
            "key": self.key_hint,
            "retry_in": self.retry_in,
            "error": None if self.error is None else type(self.error).__name__,
            "detail": None if self.error is None else str(self.error),
        }


EventCallback = Callable[[SessionEvent], None]
"""What a KeepaliveSession calls with each event (in its thread)."""
AsyncEventCallback = Callable[[SessionEvent], Awaitable[None] | None]
"""What an AsyncKeepaliveSession calls with each event: a function, or a coroutine function (awaited)."""


def check_interval(interval: object) -> float:
    """`interval` in seconds if it keeps a key alive, else ValueError: finite, at least MIN_INTERVAL
    (a tighter loop only spends request weight), at most MAX_INTERVAL (a longer one lets the key
    expire after a single failed keepalive)."""
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise TypeError(f"interval must be a number of seconds, not {type(interval).__name__}")
    value = float(interval)
    if not math.isfinite(value) or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise ValueError(
            f"interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds, not {value:g}:"
            " a listenKey expires 60 minutes after its last keepalive, and a failed one needs time"
            " for its retries"
        )
    return value


class _Keeper:
    """The session's bookkeeping, shared by the thread and the asyncio task: state and events."""

    def __init__(
        self,
        interval: float,
        close_on_exit: bool,
        on_event: Callable[[SessionEvent], object] | None,
        clock: Clock,
        awaits: bool,
    ) -> None:
        self.interval = check_interval(interval)
        self.close_on_exit = close_on_exit
        self.on_event = on_event
        self.clock = clock
        self.awaits = awaits  # True in the asyncio task: a callback's coroutine is awaited (drain)
        self.pending: list[Awaitable[object]] = []
        self.listen_key: str | None = None
        self.state = SessionState.STARTING
        self.last_error: UserStreamError | None = None
        self.needs_new_key = False
        self._failures = 0

    def emit(self, kind: EventKind, **extra: Any) -> None:
        """Log the event and hand it to on_event. An exception from the callback is logged and the
        session goes on; a BaseException (SystemExit...) propagates and ends the worker (`ended`)."""
        event = SessionEvent(kind, self.clock.now(), self.listen_key, **extra)
        level = logging.WARNING if kind in (EventKind.KEEPALIVE_FAILED, EventKind.KEY_LOST) else logging.INFO
        log.log(logging.ERROR if kind is EventKind.FAILED else level, "session %s", event.describe())
        if self.on_event is None:
            return
        try:
            result = self.on_event(event)
        except Exception:
            log.exception("session: the on_event callback raised; the session goes on")
            return
        if inspect.isawaitable(result):
            if self.awaits:
                self.pending.append(result)
            else:
                if inspect.iscoroutine(result):
                    result.close()
                log.error("session: on_event returned an awaitable, which a thread cannot await: ignored")

    async def drain(self) -> None:
        """Await the coroutines that async callbacks returned, in order (the asyncio session)."""
        while self.pending:
            awaitable = self.pending.pop(0)
            try:
                await awaitable
            except Exception:
                log.exception("session: the on_event callback raised; the session goes on")

    def ended(self, error: BaseException) -> None:
        """The worker was ended by something it cannot handle (a BaseException from on_event, say):
        the state says so, and a FAILED event and a log line tell why."""
        for awaitable in self.pending:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
        self.pending.clear()
        failure = UserStreamError(f"the keepalive worker ended on {type(error).__name__}: {error}")
        failure.__cause__ = error
        self.last_error = failure
        self.state = SessionState.FAILED
        log.error("session: %s; the key is no longer kept alive", failure, exc_info=error)
        try:
            self.emit(EventKind.FAILED, error=failure)
        except BaseException:  # the callback raised again: the log line above has said it all
            log.error("session: the on_event callback raised on the FAILED event too")

    def waited(self, held: BudgetWait) -> None:
        """A call of the session waits `held.seconds` for the next minute's weight budget."""
        self.emit(EventKind.WEIGHT_WAIT, retry_in=held.seconds)

    def started(self, listen_key: str, kind: EventKind) -> None:
        self.listen_key = listen_key
        self.state = SessionState.ACTIVE
        self.emit(kind)

    def kept_alive(self) -> float:
        self._failures = 0
        self.state = SessionState.ACTIVE
        self.emit(EventKind.KEPT_ALIVE)
        return self.interval

    def lost(self, error: ListenKeyNotFoundError) -> None:
        self.last_error = error
        self.needs_new_key = True
        self.emit(EventKind.KEY_LOST, error=error)

    def replaced(self, listen_key: str) -> float:
        """A new key: announced (REPLACED, carrying it) before the session uses it."""
        self.listen_key = listen_key
        self.needs_new_key = False
        self._failures = 0
        self.state = SessionState.ACTIVE
        self.emit(EventKind.REPLACED)
        return self.interval

    def renewed(self, listen_key: str) -> None:
        """The account's key, got out of turn (a stream was told its key is gone): kept alive from
        now on, and announced (REPLACED) if it is another key."""
        if listen_key != self.listen_key:
            self.replaced(listen_key)
        else:
            self.needs_new_key = False
            self._failures = 0
            self.state = SessionState.ACTIVE

    def failed(self, error: UserStreamError) -> float | None:
        """Next wait after a failure, or None when the error is fatal (the session ends)."""
        self.last_error = error
        if isinstance(error, FATAL):
            self.state = SessionState.FAILED
            self.emit(EventKind.FAILED, error=error)
            return None
        self._failures += 1
        wait: float = min(LAST_RETRY, FIRST_RETRY * 2.0 ** (self._failures - 1))
        server_says = getattr(error, "retry_after", None)  # 429 and 418 say how long to keep away
        if isinstance(server_says, int | float) and math.isfinite(server_says):
            wait = max(wait, float(server_says))
        self.state = SessionState.RETRYING
        self.emit(EventKind.KEEPALIVE_FAILED, error=error, retry_in=wait)
        return wait

    def check_running(self) -> None:
        """Refuse to act for a session that has stopped: its key is no longer kept alive."""
        if self.state is SessionState.STOPPED:
            raise UserStreamError("the session has ended: its key is no longer kept alive")

    def stopped(self) -> None:
        if self.state is not SessionState.FAILED:
            self.state = SessionState.STOPPED
        self.emit(EventKind.STOPPED)

    def outcome(self) -> None:
        """After the worker ended: raise the error that made the session fail, if it did."""
        if self.state is SessionState.FAILED:
            assert self.last_error is not None
            raise self.last_error


_U = TypeVar("_U", "UserDataStream", "AsyncUserDataStream")


class _SessionView(Generic[_U]):
    """What the thread and the task sessions share: their options, and the view from outside."""

    _awaits = False

    def __init__(
        self,
        uds: _U,
        *,
        listen_key: str | None,
        interval: float,
        close_on_exit: bool,
        on_event: Callable[[SessionEvent], object] | None,
        clock: Clock | None,
    ) -> None:
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, not {type(on_event).__name__}")
        self._uds: _U = uds
        self._adopt = None if listen_key is None else check_listen_key(listen_key, "listen_key")
        self._keeper = _Keeper(interval, close_on_exit, on_event, clock or SystemClock(), self._awaits)

    @property
    def listen_key(self) -> str | None:
        """The key being kept alive now (it changes when a lost key is replaced)."""
        return self._keeper.listen_key

    @property
    def state(self) -> SessionState:
        return self._keeper.state

    @property
    def last_error(self) -> UserStreamError | None:
        return self._keeper.last_error

    def __repr__(self) -> str:
        key = None if self.listen_key is None else redact(self.listen_key)
        return f"{type(self).__name__}(state={self.state.value}, listen_key={key!r})"


_NOT_ENTERED = "the session has not been entered: use it in a with block"


class KeepaliveSession(_SessionView["UserDataStream"]):
    """A listenKey kept alive by a background thread while the `with` block runs.

    Options: `listen_key` (adopt it instead of creating one), `interval` (seconds between
    keepalives, MIN_INTERVAL to MAX_INTERVAL), `close_on_exit`, `on_event` (called in the thread
    with each SessionEvent), `clock`. `wait()` blocks until the session fails (raising why) or ends.
    """

    _stop: threading.Event
    _done: threading.Event
    _thread: threading.Thread | None = None

    def __init__(
        self,
        uds: UserDataStream,
        *,
        listen_key: str | None = None,
        interval: float = KEEPALIVE_INTERVAL,
        close_on_exit: bool = False,
        on_event: EventCallback | None = None,
        clock: Clock | None = None,
    ) -> None:
        if inspect.iscoroutinefunction(on_event):
            raise TypeError(
                "on_event is a coroutine function, which the session's thread cannot await:"
                " use AsyncUserDataStream.session, or a plain function"
            )
        super().__init__(
            uds,
            listen_key=listen_key,
            interval=interval,
            close_on_exit=close_on_exit,
            on_event=on_event,
            clock=clock,
        )
        self._done = threading.Event()
        self._busy = threading.Lock()  # one request about the key at a time: the thread's or renew()'s

    def __enter__(self) -> Self:
        keeper = self._keeper
        self._stop = threading.Event()
        if self._adopt is None:
            keeper.started(self._uds.create(), EventKind.CREATED)
        else:
            keeper.listen_key = self._adopt
            keeper.needs_new_key = False
            try:
                self._uds.keepalive(self._adopt)
                keeper.started(self._adopt, EventKind.ADOPTED)
            except ListenKeyNotFoundError as error:
                keeper.lost(error)
                keeper.replaced(self._uds.create())
        self._thread = threading.Thread(target=self._run, name="binance-userstream-keepalive", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the session fails or is left, or `timeout` seconds pass.

        Raises the error that ended the session if it failed (an EndpointRetiredError, say);
        returns True once the session was left, False if the timeout passed first.
        """
        if self._thread is None:
            raise UserStreamError(_NOT_ENTERED)
        if not self._done.wait(timeout):
            return False
        self._keeper.outcome()
        return True

    def _run(self) -> None:
        keeper = self._keeper
        WAIT_LISTENER.set(keeper.waited)  # this thread's own context: its calls' waits only
        try:
            wait: float | None = keeper.interval
            while wait is not None:
                if keeper.clock.wait(wait, self._stop):
                    return
                wait = self._beat()
        except BaseException as error:  # whatever ends the thread leaves a truthful state and an event
            keeper.ended(error)
        finally:
            if keeper.state is SessionState.FAILED:
                self._done.set()

    def renew(self) -> str:
        """Get the account's key now and keep it alive from then on; the key. A create answers the
        key in use while it lives, else a new one: for a stream whose connection was refused for
        its key, which cannot wait for the next keepalive. Errors are raised, not retried."""
        with self._busy:
            self._keeper.check_running()
            key = self._uds.create()
            self._keeper.renewed(key)
        return key

    def _beat(self) -> float | None:
        """One keepalive, or one attempt to replace a lost key; the wait until the next."""
        with self._busy:
            return self._beat_once()

    def _beat_once(self) -> float | None:
        keeper = self._keeper
        try:
            if keeper.needs_new_key:
                return keeper.replaced(self._uds.create())
            assert keeper.listen_key is not None
            self._uds.keepalive(keeper.listen_key)
            return keeper.kept_alive()
        except ListenKeyNotFoundError as error:
            if keeper.needs_new_key:  # create() itself said -1125: back off, as after any failure
                return keeper.failed(error)
            keeper.lost(error)
            return 0.0  # replace it at once, on the next turn of the loop
        except UserStreamError as error:
            return keeper.failed(error)
        except Exception as error:  # never die quietly: report, and try again later
            log.exception("session: unexpected error in the keepalive loop")
            return keeper.failed(UserStreamError(f"unexpected {type(error).__name__} in keepalive loop"))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        keeper = self._keeper
        # After a renew() in flight in another thread (a stream's), so that nothing it does
        # comes after the session stopped, nor leaves its key open when close_on_exit.
        with self._busy:
            try:
                if keeper.close_on_exit and keeper.listen_key and not keeper.needs_new_key:
                    try:
                        self._uds.close(keeper.listen_key)
                        keeper.emit(EventKind.CLOSED)
                    except UserStreamError as error:
                        keeper.last_error = error
                        log.warning("session: closing the key failed: %s", error)
            finally:
                keeper.stopped()
                self._done.set()


class AsyncKeepaliveSession(_SessionView["AsyncUserDataStream"]):
    """A listenKey kept alive by an asyncio task while the `async with` block runs (options as
    KeepaliveSession's; `on_event` may be a coroutine function, awaited before the session goes
    on). `await wait()` returns when the session is left, or raises the error it failed on."""

    _awaits = True
    _task: asyncio.Task[None] | None = None
    _done: asyncio.Event

    def __init__(
        self,
        uds: AsyncUserDataStream,
        *,
        listen_key: str | None = None,
        interval: float = KEEPALIVE_INTERVAL,
        close_on_exit: bool = False,
        on_event: AsyncEventCallback | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            uds,
            listen_key=listen_key,
            interval=interval,
            close_on_exit=close_on_exit,
            on_event=on_event,
            clock=clock,
        )
        self._busy = asyncio.Lock()  # one request about the key at a time: the task's or renew()'s

    async def renew(self) -> str:
        """Get the account's key now and keep it alive from then on; the key (see
        KeepaliveSession.renew)."""
        async with self._busy:
            self._keeper.check_running()
            key = await self._uds.create()
            self._keeper.renewed(key)
            await self._keeper.drain()
        return key

    async def __aenter__(self) -> Self:
        keeper = self._keeper
        self._done = asyncio.Event()
        if self._adopt is None:
            keeper.started(await self._uds.create(), EventKind.CREATED)
        else:
            keeper.listen_key = self._adopt
            try:
                await self._uds.keepalive(self._adopt)
                keeper.started(self._adopt, EventKind.ADOPTED)
            except ListenKeyNotFoundError as error:
                keeper.lost(error)
                await keeper.drain()
                keeper.replaced(await self._uds.create())
        await keeper.drain()
        self._task = asyncio.create_task(self._run(), name="binance-userstream-keepalive")
        return self

    async def wait(self) -> None:
        """Wait until the session fails or is left; raise the error it failed on, if it did.
        (Bound it with `asyncio.timeout`.)"""
        if self._task is None:
            raise UserStreamError(_NOT_ENTERED)
        await self._done.wait()
        self._keeper.outcome()

    async def _run(self) -> None:
        keeper = self._keeper
        WAIT_LISTENER.set(keeper.waited)  # this task's own context: its calls' waits only
        try:
            wait: float | None = keeper.interval
            while wait is not None:
                await keeper.clock.sleep(wait)
                wait = await self._beat()
                await keeper.drain()
        except asyncio.CancelledError:
            raise  # the block was left
        except BaseException as error:  # whatever ends the task leaves a truthful state and an event
            keeper.ended(error)
            with contextlib.suppress(BaseException):
                await keeper.drain()
        finally:
            if keeper.state is SessionState.FAILED:
                self._done.set()

    async def _beat(self) -> float | None:
        async with self._busy:
            return await self._beat_once()

    async def _beat_once(self) -> float | None:
        keeper = self._keeper
        try:
            if keeper.needs_new_key:
                return keeper.replaced(await self._uds.create())
            assert keeper.listen_key is not None
            await self._uds.keepalive(keeper.listen_key)
            return keeper.kept_alive()
        except ListenKeyNotFoundError as error:
            if keeper.needs_new_key:  # create() itself said -1125: back off, as after any failure
                return keeper.failed(error)
            keeper.lost(error)
            return 0.0  # replace it at once, on the next turn of the loop
        except UserStreamError as error:
            return keeper.failed(error)
        except Exception as error:
            log.exception("session: unexpected error in the keepalive loop")
            return keeper.failed(UserStreamError(f"unexpected {type(error).__name__} in keepalive loop"))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        keeper = self._keeper
        try:
            if keeper.close_on_exit and keeper.listen_key and not keeper.needs_new_key:
                try:
                    await self._uds.close(keeper.listen_key)
                    keeper.emit(EventKind.CLOSED)
                except UserStreamError as error:
                    keeper.last_error = error
                    log.warning("session: closing the key failed: %s", error)
                except asyncio.CancelledError:
                    log.warning("session: closing the key was cancelled; it lives until it expires")
                    raise
        finally:
            keeper.stopped()
            self._done.set()
            await keeper.drain()
