"""The sync event stream: `UserDataStream.events()`, the asyncio driver run on a private loop thread.

One driver serves both clients, so the sync stream follows exactly the rules the async one is
tested on. The key is kept alive by the sync client's own KeepaliveSession (its thread, its HTTP
client); the WebSocket connections and the core live on a private event loop in a thread of its
own; `next()` waits for the loop's next item. `close()` from any thread ends a blocked `for`.

A hop to the loop thread and back costs tens of microseconds (and, while the loop thread is busy
with frames, waits for its turn at the GIL), more than decoding an event; so `next()` takes every
item that is ready, up to `maxsize`, and hands them out one by one. The batch counts against the
buffer's bounds until the next hop (`batch_done`), so that the stream holds no more than
`maxsize` events and `max_bytes` in all, those taken included.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from binance_userstream._loop_thread import LoopThread
from binance_userstream._secrets import redact
from binance_userstream._session import KeepaliveSession, SessionEvent
from binance_userstream.errors import UserStreamError
from binance_userstream.stream._async import AsyncEventStream, log
from binance_userstream.stream._core import Item
from binance_userstream.stream._gap import StreamGap

if TYPE_CHECKING:
    from binance_userstream._client import UserDataStream


class _ThreadedSession(AsyncEventStream):
    """The asyncio driver with the sync client's KeepaliveSession and blocking create()."""

    async def _open_session(self, on_event: Callable[[SessionEvent], None]) -> str:
        loop = asyncio.get_running_loop()

        def hop(event: SessionEvent) -> None:  # called in the keepalive thread: on to the loop
            if not loop.is_closed():
                loop.call_soon_threadsafe(on_event, event)

        uds = cast("UserDataStream", self._uds)
        self._thread_session = KeepaliveSession(
            uds, listen_key=self._listen_key, interval=self._interval, on_event=hop, clock=self._clock
        )
        await asyncio.to_thread(self._thread_session.__enter__)
        assert self._thread_session.listen_key is not None
        return self._thread_session.listen_key

    async def _close_session(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if hasattr(self, "_thread_session"):
            await asyncio.to_thread(self._thread_session.__exit__, exc_type, exc, tb)

    async def _renew_key(self) -> str:
        return await asyncio.to_thread(self._thread_session.renew)

    async def take(self, most: int) -> list[Item]:
        """The items of the last batch are all handed out: the next item, as `__anext__` waits for
        it, and up to `most - 1` more that are ready (see `StreamCore.pop_batch`)."""
        self._core.batch_done(self._now())
        await self._until_ready()
        items = self._core.pop_batch(most, self._now())
        for item in items:
            if isinstance(item, StreamGap):
                log.warning("stream %s", item.describe())
        return items

    async def take_buffered(self, most: int) -> list[Item]:
        """Every item the stream holds now, without waiting, in batches of `most` (lent until the
        next `take`, as a batch is)."""
        self._core.batch_done(self._now())
        items: list[Item] = []
        while batch := self._core.pop_batch(most, self._now()):
            items.extend(batch)
        for item in items:
            if isinstance(item, StreamGap):
                log.warning("stream %s", item.describe())
        return items

    async def _create_token(self) -> Any:
        uds = cast("UserDataStream", self._uds)
        return await asyncio.to_thread(uds.create_listen_token, uds.symbol)


class EventStream:
    """The account's events, in order, with StreamGap markers: `with` it, then `for`.

    Made by `UserDataStream.events()`; as AsyncEventStream, synchronously. `on_event` is called
    in the stream's own thread.
    """

    def __init__(self, uds: UserDataStream, **options: Any) -> None:
        self._inner = _ThreadedSession(uds, **options)  # checks the options before anything is sent
        self._thread = LoopThread("binance-userstream-events")
        self._call = self._thread.call
        self._ready: deque[Item] = deque()
        self._batch = self._inner.maxsize  # the most items one hop takes

    def __enter__(self) -> Self:
        if self._thread.started:
            raise UserStreamError("an event stream can be entered once; call events() again")
        self._thread.start()
        try:
            self._call(self._inner.__aenter__())
        except BaseException:
            self._thread.stop()
            raise
        return self

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Item:
        if not self._ready:
            try:
                self._ready.extend(self._call(self._inner.take(self._batch)))
            except StopAsyncIteration:
                raise StopIteration from None
        return self._ready.popleft()

    def buffered(self) -> list[Item]:
        """Every item the stream holds now, in order, without waiting for more."""
        items = list(self._ready)
        self._ready.clear()
        items.extend(self._call(self._inner.take_buffered(self._batch)))
        return items

    def close(self) -> None:
        """End the iteration (thread-safe): a blocked `for` ends."""
        self._inner.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._call(self._inner.__aexit__(exc_type, exc, tb))
        finally:
            self._thread.stop()

    def __repr__(self) -> str:
        key = self._inner._key()
        return f"EventStream(market={self._inner._uds.market.name!r}, listen_key={key and redact(key)!r})"
