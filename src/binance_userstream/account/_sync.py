"""`AccountMirror`: the mirror driven by the sync event stream (its own thread) and blocking REST calls.

`with uds.account() as account: for item in account:`, as `AsyncAccountMirror`. The stream's callback
runs in the stream's thread; the heal's calls, its retries and its RECONCILING, RECONCILE_RETRY
and RECONCILED stream events run in the consumer's.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from binance_userstream._clock import SystemClock
from binance_userstream.account._async import (
    _LIVE,
    RETRYABLE,
    AccountItem,
    AccountOptions,
    heal_failed,
    reconcile,
    reconciling,
    retry_wait,
    until_live,
)
from binance_userstream.account._family import Call
from binance_userstream.account._mirror import Mirror, heal_plan, snapshot_plan
from binance_userstream.account._state import AccountState, Reconciled
from binance_userstream.errors import UserStreamError
from binance_userstream.stream._core import Item, StreamEvent, StreamEventKind
from binance_userstream.stream._gap import StreamGap

if TYPE_CHECKING:
    from binance_userstream._client import UserDataStream
    from binance_userstream.stream._sync import EventStream


_T = TypeVar("_T")


class AccountMirror:
    """The account's mirror over the sync event stream; made by `UserDataStream.account()`."""

    def __init__(self, uds: UserDataStream, *, symbols: Iterable[str] = (), **options: Any) -> None:
        self._uds = uds
        self._setup = AccountOptions(uds, symbols, options)
        self._live = threading.Event()
        self._live_in_loop: asyncio.Event | None = None  # made in the stream's loop, set there
        self._stream: EventStream = uds.events(on_event=self._on_event, **self._setup.options)
        self._mirror: Mirror | None = None
        self._pending: deque[Item] = deque()
        self._stop = threading.Event()

    @property
    def state(self) -> AccountState:
        """The account as the mirror knows it now (stale from a gap until it is healed)."""
        if self._mirror is None:
            raise UserStreamError("the account has no state before `with` has taken its snapshot")
        return self._mirror.state

    def _on_event(self, event: Any) -> None:
        if isinstance(event, StreamEvent) and event.kind in _LIVE:
            self._live.set()
            if self._live_in_loop is not None:
                self._live_in_loop.set()
        if self._setup.on_event is not None:
            self._setup.on_event(event)

    def _report(self, kind: StreamEventKind, detail: str, retry_in: float | None = None) -> None:
        self._on_event(StreamEvent(kind, self._stream._inner._now(), retry_in=retry_in, detail=detail))

    async def _until_live(self) -> None:  # in the stream's loop, where on_event runs
        self._live_in_loop = asyncio.Event()
        if self._live.is_set():
            return
        await until_live(self._live_in_loop, self._stream._inner)

    def __enter__(self) -> Self:
        self._stream.__enter__()
        try:
            self._stream._call(self._until_live())
            snapshot = self._run(snapshot_plan(self._setup.family, self._uds.symbol, self._wall_ms()))
            self._mirror = Mirror(self._setup.family, snapshot, symbols=self._setup.symbols)
        except BaseException as error:
            self._stream.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._stream.__exit__(exc_type, exc, tb)

    def close(self) -> None:
        """End the iteration (thread-safe): a blocked `for`, or a heal's wait, ends."""
        self._stop.set()
        self._stream.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> AccountItem:
        mirror = self._mirror
        if mirror is None:
            raise UserStreamError("iterate the account inside `with uds.account() as account`")
        while True:
            if mirror.gap is not None:
                return self._heal(mirror)
            item = self._pending.popleft() if self._pending else next(self._stream)
            if mirror.receive(item) or isinstance(item, StreamGap):
                return item

    def _heal(self, mirror: Mirror) -> Reconciled:
        assert mirror.gap is not None
        reconciling(mirror, mirror.gap, self._report)
        attempt = 0
        while True:
            try:
                result = self._run(heal_plan(mirror, self._uds.symbol, self._wall_ms()))
                break
            except RETRYABLE as error:
                attempt += 1
                wait = retry_wait(self._uds.retry, attempt, error)
                detail = heal_failed(mirror.family.name, attempt, error, wait)
                self._report(StreamEventKind.RECONCILE_RETRY, detail, wait)
                clock = self._stream._inner._clock or SystemClock()
                if clock.wait(wait, self._stop):
                    raise StopIteration from None
        streamed = self._stream.buffered()
        self._pending.extend(streamed)
        return reconcile(mirror, result, streamed, self._report)

    def _run(self, plan: Generator[Call, Any, _T]) -> _T:
        """Carry out a plan: send each of its calls, hand each answer back."""
        answer: Any = None
        try:
            while True:
                call = plan.send(answer)
                answer = self._uds.call(call.operation.sync_detailed, call.model, **call.arguments)
        except StopIteration as done:
            result: _T = done.value
            return result

    def _wall_ms(self) -> int:
        return int(self._stream._inner._wall_ms())

    def __repr__(self) -> str:
        return f"AccountMirror(market={self._uds.market.name!r}, family={self._setup.family.name!r})"
