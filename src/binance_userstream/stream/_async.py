"""The asyncio event stream: `AsyncUserDataStream.events()`, a fleet of one account.

One account's stream runs on the fleet's rules and driver (`fleet._core`, `fleet._pool`,
`fleet._driver`): on the WebSocket API (spot, margin) its subscription on a connection of the
market's, on the derivatives a connection of its own whose URL carries its listenKey (`dedicated`).
This module gives that account the client's REST side (the client's keepalive session, its
listenToken mint, its credentials), and hands the account's items to the consumer: an error that
ends the account is raised, after every item buffered before it.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from binance_userstream._clock import Clock
from binance_userstream._secrets import redact, watch_secret
from binance_userstream._session import AsyncKeepaliveSession, SessionEvent
from binance_userstream.errors import UserStreamError
from binance_userstream.fleet._core import FleetCore
from binance_userstream.fleet._driver import WS_API, Driver, Tenant
from binance_userstream.fleet._limits import FleetLimits
from binance_userstream.stream._core import (
    DEFAULT_MAX_BYTES,
    Item,
    StreamCore,
    StreamEvent,
    StreamTiming,
)
from binance_userstream.stream._gap import StreamGap
from binance_userstream.stream._socket import (
    _LOUD,
    _WS_LOG,
    CLOSE_TIMEOUT,
    KEYS_WATCHED,
    MAX_FRAME,
    MAX_HELD_CHARS,
    MAX_HELD_FRAMES,
    MAX_TOKEN_VALIDITY_MS,
    MAX_UNSENT,
    OPEN_TIMEOUT,
    _Backoff,
    _close_detail,
    _resync_detail,
    _Watched,
)

if TYPE_CHECKING:
    from binance_userstream._client import AsyncUserDataStream, _Base
    from binance_userstream._signing import Credentials

__all__ = [
    "CLOSE_TIMEOUT",
    "KEYS_WATCHED",
    "MAX_FRAME",
    "MAX_HELD_CHARS",
    "MAX_HELD_FRAMES",
    "MAX_TOKEN_VALIDITY_MS",
    "MAX_UNSENT",
    "OPEN_TIMEOUT",
    "_LOUD",
    "_WS_LOG",
    "AsyncEventStream",
    "StreamCallback",
    "_Backoff",
    "_Watched",
    "_close_detail",
    "_resync_detail",
    "log",
]

log = logging.getLogger("binance_userstream.stream")

StreamCallback = Callable[[SessionEvent | StreamEvent], object]
"""What `events(on_event=...)` calls with each session and connection happening (a plain function)."""

#: The one account's id in its fleet of one.
_ACCOUNT = "account"


class _ClientServices:
    """The client's own REST side for its one account: the stream's hooks (`_open_session` and the
    rest), which the sync stream overrides to use the sync client's session and calls."""

    def __init__(self, stream: AsyncEventStream) -> None:
        self._stream = stream
        self.credentials = stream._credentials
        self.symbol = stream._uds.symbol

    async def open(self, on_event: Callable[[SessionEvent], None]) -> str:
        return await self._stream._open_session(on_event)

    async def renew(self) -> str:
        return await self._stream._renew_key()

    async def token(self) -> Any:
        return await self._stream._create_token()

    async def close(self) -> None:
        """The session is left by the stream's `__aexit__`, with the exception it is left with."""


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
        for name, value in (("maxsize", maxsize), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if max_bytes < MAX_FRAME:
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
        self.maxsize = maxsize
        self._listen_key, self._interval = listen_key, interval
        self._clock = clock  # None: the loop's own clock
        self._entered = False
        self._on_event = on_event
        core = FleetCore(
            market,
            limits=FleetLimits(),
            random=jitter or random.random,
            timing=timing or StreamTiming.for_market(market),
            rotate_spread=0.0,
            account_maxsize=maxsize,
            account_max_bytes=max_bytes,
            maxsize=maxsize,
            max_bytes=max_bytes,
            dedicated=market.uses_listen_key,
            quiet=True,
            answer_timeout=OPEN_TIMEOUT,
        )
        self._driver = Driver(
            market,
            core,
            url=f"{uds.stream_url}{market.fleet_target}",
            stream_base=uds.stream_url,
            gate=uds.gate,
            clock=clock,
            on_event=None if on_event is None else _untagged(on_event),
            log=log,
            tag_accounts=False,
            open_timeout=OPEN_TIMEOUT,
            close_timeout=CLOSE_TIMEOUT,
        )
        self._tenant = Tenant(_ACCOUNT, _ClientServices(self), self._credentials.api_key)
        self._driver.tenants[_ACCOUNT] = self._tenant

    # -- the consumer's side ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise UserStreamError("an event stream can be entered once; call events() again")
        self._entered = True
        driver = self._driver
        if self._uds.market.uses_listen_key:
            key = await self._open_session(functools.partial(driver.session_event, _ACCOUNT))
            driver.watch(self._tenant, key)
        else:
            key = WS_API
        watch_secret(self._credentials.api_key, True)  # a server's error frame may echo it (until aclose)
        driver.enter(rest_concurrency=1)
        driver.begin(self._tenant, key)
        return self

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Item:
        item = self._pop()
        while item is None:
            await self._until_ready()
            item = self._pop()
        return item

    def _pop(self) -> Item | None:
        if not self._started():
            return None
        item = self._core.pop(self._now())
        if isinstance(item, StreamGap):
            log.warning("stream %s", item.describe())
        return item

    def buffered(self) -> list[Item]:
        """Every item the stream holds now, in order, without waiting (the account mirror reads
        them before it reports a heal, so that a trade they carry is not also reported recovered)."""
        items: list[Item] = []
        while (item := self._pop()) is not None:
            items.append(item)
        return items

    async def _until_ready(self) -> None:
        """Until an item waits; once none is left, the error that ended the stream (after every
        item buffered before it, the gap of the loss in progress included), or StopAsyncIteration."""
        driver = self._driver
        while not (self._started() and len(self._core)):
            error = driver.core.error_of(_ACCOUNT)
            if error is not None:
                raise error
            if driver.ended:
                raise StopAsyncIteration
            await driver.wait_ready()

    def close(self) -> None:
        """End the iteration (thread-safe): the consumer's `async for` ends once it has been woken."""
        self._driver.close_threadsafe()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._driver.aclose()  # stops scrubbing the account's key and listenKeys by name, too
        await self._close_session(exc_type, exc, tb)

    def __repr__(self) -> str:
        key = self._key()
        return f"AsyncEventStream(market={self._uds.market.name!r}, listen_key={key and redact(key)!r})"

    # -- the account's rules and clock, for the sync stream and the account mirror ------------------

    @property
    def _core(self) -> StreamCore:
        """The account's stream rules (its buffer): they exist once the stream is entered."""
        return self._driver.core.core_of(_ACCOUNT)

    def _started(self) -> bool:
        return _ACCOUNT in self._driver.core.accounts() or self._driver.core.error_of(_ACCOUNT) is not None

    def _key(self) -> str | None:
        """The listenKey in use (None on the WebSocket API, or before the stream is entered)."""
        if not self._uds.market.uses_listen_key or not self._started():
            return None
        return self._core.key

    def _now(self) -> float:
        """The stream's clock: the loop's, unless a clock was given."""
        return self._driver.now()

    def _wall_ms(self) -> float:
        """The wall time in ms on the stream's clock, before any resync offset."""
        return self._credentials.wall_ms()

    # -- the session: an asyncio task here, a thread for the sync client (_sync) ---

    async def _open_session(self, on_event: Callable[[SessionEvent], None]) -> str:
        """Start keeping a key alive; the key."""
        uds = cast("AsyncUserDataStream", self._uds)
        self._session: AsyncKeepaliveSession = uds.session(
            listen_key=self._listen_key,
            interval=self._interval,
            on_event=on_event,
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


def _untagged(on_event: StreamCallback) -> Callable[[str | None, SessionEvent | StreamEvent], object]:
    """The driver's callback for a fleet of one: the happening alone, as `events(on_event=)` takes it."""

    def report(account_id: str | None, event: SessionEvent | StreamEvent) -> object:
        return on_event(event)

    return report
