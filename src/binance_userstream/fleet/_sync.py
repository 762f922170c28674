"""`Fleet`: the blocking twin of `AsyncFleet`, which runs on a private event loop in a thread of its own.

One driver serves both, so the blocking fleet follows exactly the rules the async one is tested
on. `next()` takes every item that is ready (up to `BATCH`) in one hop to the loop thread and hands
them out one by one: a hop costs tens of microseconds, more than an event. `close()` from any
thread ends a blocked `for`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

from binance_userstream._loop_thread import LoopThread
from binance_userstream.errors import UserStreamError
from binance_userstream.fleet._account import Account
from binance_userstream.fleet._async import AsyncFleet
from binance_userstream.fleet._core import FleetItem

#: The most items one hop to the loop thread takes.
BATCH = 1_000


class Fleet:
    """Many accounts' events over few connections, blocking: `with Fleet(accounts, market=...) as
    fleet: for account_id, item in fleet:`. Options as `AsyncFleet`'s."""

    def __init__(self, accounts: Iterable[Account], **options: Any) -> None:
        self._fleet = AsyncFleet(accounts, **options)
        self._thread = LoopThread("binance-userstream-fleet", daemon=True)
        self._call = self._thread.call
        self._batch: deque[tuple[str, FleetItem]] = deque()
        self._closed = False

    def __repr__(self) -> str:
        return repr(self._fleet).replace("AsyncFleet", "Fleet", 1)

    @property
    def accounts(self) -> list[str]:
        return self._fleet.accounts

    def connections(self) -> int:
        return self._fleet.connections()

    def add(self, account: Account) -> None:
        """Add `account` (see `AsyncFleet.add`)."""
        if not self._thread.started:
            self._fleet.add(account)
        else:
            self._call(_run(self._fleet.add, account))

    def remove(self, account_id: str) -> None:
        """Remove an account (see `AsyncFleet.remove`)."""
        if not self._thread.started:
            self._fleet.remove(account_id)
        else:
            self._call(_run(self._fleet.remove, account_id))

    def __enter__(self) -> Self:
        if self._thread.started:
            raise UserStreamError("a fleet can be entered once; make another")
        self._thread.start()
        try:
            self._call(self._fleet.__aenter__())
        except BaseException:
            self._thread.stop()
            raise
        return self

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> tuple[str, FleetItem]:
        if not self._batch:
            if self._closed or not self._thread.started:
                raise StopIteration
            self._batch.extend(self._call(self._take()))
            if not self._batch:
                raise StopIteration
        return self._batch.popleft()

    async def _take(self) -> list[tuple[str, FleetItem]]:
        items = []
        try:
            items.append(await self._fleet.__anext__())
        except StopAsyncIteration:
            return []
        core, now = self._fleet._driver.core, self._fleet._driver.now
        while len(items) < BATCH and (item := core.pop(now())) is not None:
            items.append(item)
        return items

    def close(self) -> None:
        """End the iteration (from any thread)."""
        self._closed = True
        self._fleet.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        try:
            if self._thread.started:
                self._call(self._fleet.__aexit__(exc_type, exc, tb))
        finally:
            self._thread.stop()


async def _run(function: Any, *args: Any) -> Any:
    """Call a plain function on the loop's thread (the fleet is not thread-safe)."""
    return function(*args)
