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
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from attrs import field, frozen

from binance_userstream._clock import Clock, SystemClock
from binance_userstream._secrets import check_token, redact
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


class _Keeper:
    """The session's bookkeeping, shared by the thread and the asyncio task: state and events."""

    def __init__(
        self, interval: float, close_on_exit: bool, on_event: EventCallback | None, clock: Clock
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.close_on_exit = close_on_exit
        self.on_event = on_event
        self.clock = clock
        self.listen_key: str | None = None
        self.state = SessionState.STARTING
        self.last_error: UserStreamError | None = None
        self.needs_new_key = False
        self._failures = 0

    def emit(self, kind: EventKind, **extra: Any) -> None:
        event = SessionEvent(kind, self.clock.now(), self.listen_key, **extra)
        level = logging.WARNING if kind in (EventKind.KEEPALIVE_FAILED, EventKind.KEY_LOST) else logging.INFO
        log.log(logging.ERROR if kind is EventKind.FAILED else level, "session %s", event.describe())
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("session: the on_event callback raised; the session goes on")

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
        if isinstance(server_says, int | float):
            wait = max(wait, float(server_says))
        self.state = SessionState.RETRYING
        self.emit(EventKind.KEEPALIVE_FAILED, error=error, retry_in=wait)
        return wait

    def stopped(self) -> None:
        if self.state is not SessionState.FAILED:
            self.state = SessionState.STOPPED
        self.emit(EventKind.STOPPED)


_U = TypeVar("_U", "UserDataStream", "AsyncUserDataStream")


class _SessionView(Generic[_U]):
    """What the thread and the task sessions share: their options, and the view from outside."""

    def __init__(
        self,
        uds: _U,
        *,
        listen_key: str | None = None,
        interval: float = KEEPALIVE_INTERVAL,
        close_on_exit: bool = False,
        on_event: EventCallback | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._uds: _U = uds
        self._adopt = None if listen_key is None else check_token(listen_key, "listen_key")
        self._keeper = _Keeper(interval, close_on_exit, on_event, clock or SystemClock())

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


class KeepaliveSession(_SessionView["UserDataStream"]):
    """A listenKey kept alive by a background thread while the `with` block runs.

    Options: `listen_key` (adopt it instead of creating one), `interval` (seconds between
    keepalives), `close_on_exit`, `on_event` (called with each SessionEvent), `clock`.
    """

    _stop: threading.Event
    _thread: threading.Thread | None = None

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

    def _run(self) -> None:
        keeper = self._keeper
        wait: float | None = keeper.interval
        while wait is not None:
            if keeper.clock.wait(wait, self._stop):
                return
            wait = self._beat()

    def _beat(self) -> float | None:
        keeper = self._keeper
        try:
            if keeper.needs_new_key:
                return keeper.replaced(self._uds.create())
            assert keeper.listen_key is not None
            self._uds.keepalive(keeper.listen_key)
            return keeper.kept_alive()
        except ListenKeyNotFoundError as error:
            keeper.lost(error)
            return self._beat()
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
        if keeper.close_on_exit and keeper.listen_key and not keeper.needs_new_key:
            try:
                self._uds.close(keeper.listen_key)
                keeper.emit(EventKind.CLOSED)
            except UserStreamError as error:
                keeper.last_error = error
                log.warning("session: closing the key failed: %s", error)
        keeper.stopped()


class AsyncKeepaliveSession(_SessionView["AsyncUserDataStream"]):
    """A listenKey kept alive by an asyncio task while the `async with` block runs (options as
    KeepaliveSession's)."""

    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        keeper = self._keeper
        if self._adopt is None:
            keeper.started(await self._uds.create(), EventKind.CREATED)
        else:
            keeper.listen_key = self._adopt
            try:
                await self._uds.keepalive(self._adopt)
                keeper.started(self._adopt, EventKind.ADOPTED)
            except ListenKeyNotFoundError as error:
                keeper.lost(error)
                keeper.replaced(await self._uds.create())
        self._task = asyncio.create_task(self._run(), name="binance-userstream-keepalive")
        return self

    async def _run(self) -> None:
        keeper = self._keeper
        wait: float | None = keeper.interval
        while wait is not None:
            await keeper.clock.sleep(wait)
            wait = await self._beat()

    async def _beat(self) -> float | None:
        keeper = self._keeper
        try:
            if keeper.needs_new_key:
                return keeper.replaced(await self._uds.create())
            assert keeper.listen_key is not None
            await self._uds.keepalive(keeper.listen_key)
            return keeper.kept_alive()
        except ListenKeyNotFoundError as error:
            keeper.lost(error)
            return await self._beat()
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
        if keeper.close_on_exit and keeper.listen_key and not keeper.needs_new_key:
            try:
                await self._uds.close(keeper.listen_key)
                keeper.emit(EventKind.CLOSED)
            except UserStreamError as error:
                keeper.last_error = error
                log.warning("session: closing the key failed: %s", error)
        keeper.stopped()
