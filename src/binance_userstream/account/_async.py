"""`AsyncAccountMirror`: the mirror driven by an asyncio event stream and awaited REST calls.

`async with uds.account() as account: async for item in account:` yields what `events()` yields
(events in order, StreamGap markers) and a `Reconciled` after each gap once healed;
`account.state` is the mirror's current AccountState. The rules are `Mirror`'s; this module only
opens the stream, sends the plans' calls, and retries a heal that failed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from binance_userstream._policy import RetryPolicy
from binance_userstream.account._families import family_for
from binance_userstream.account._family import Call, Snapshot
from binance_userstream.account._mirror import Mirror, Recovery, heal_plan, snapshot_plan
from binance_userstream.account._state import AccountState, Reconciled, Trade
from binance_userstream.errors import (
    IPBannedError,
    MalformedAnswerError,
    NetworkError,
    RateLimitedError,
    ServerError,
    SignerMissingError,
    TimestampError,
    UserStreamError,
)
from binance_userstream.stream._core import Item, StreamEvent, StreamEventKind
from binance_userstream.stream._gap import StreamGap

if TYPE_CHECKING:
    from binance_userstream._client import AsyncUserDataStream
    from binance_userstream.stream._async import AsyncEventStream

log = logging.getLogger("binance_userstream.account")

_T = TypeVar("_T")

#: The REST failures a heal retries (after the HTTP layer's own retries): anything else (a refused
#: key, a bad signature, a retired endpoint) ends the iteration with its typed error.
RETRYABLE = (ServerError, NetworkError, RateLimitedError, IPBannedError, TimestampError, MalformedAnswerError)

#: The stream events after which the stream delivers what happens on the account.
_LIVE = frozenset({StreamEventKind.CONNECTED, StreamEventKind.SUBSCRIBED})

AccountItem = Item | Reconciled
"""What an account yields: an event model, a StreamGap, or a Reconciled."""


def retry_wait(policy: RetryPolicy, attempt: int, error: BaseException) -> float:
    """The wait before the `attempt`-th retry of a heal: the server's Retry-After when the error
    carries one, else the policy's full-jitter backoff."""
    server_says = getattr(error, "retry_after", None)
    if isinstance(server_says, int | float) and server_says > 0:
        return float(server_says)
    return random.uniform(0, min(policy.backoff_cap, policy.backoff_base * 2 ** (attempt - 1)))


async def until_live(live: asyncio.Event, stream: AsyncEventStream) -> None:
    """Until the stream is connected (or subscribed), or the error that ended it first."""
    waiting = asyncio.ensure_future(live.wait())
    ended = asyncio.ensure_future(stream._until_ready())
    try:
        await asyncio.wait({waiting, ended}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            try:
                ended.result()  # the stream's error before it was ever connected, or an item waits
            except StopAsyncIteration:
                raise UserStreamError("the event stream ended before it connected") from None
    finally:
        for task in (waiting, ended):
            task.cancel()
        await asyncio.gather(waiting, ended, return_exceptions=True)


async def run_plan(uds: AsyncUserDataStream, plan: Generator[Call, Any, _T]) -> _T:
    """Carry out an account mirror's plan with `uds`: send each of its calls, hand each answer back
    (the mirror's heals, and a worker's: `workers`)."""
    answer: Any = None
    try:
        while True:
            call = plan.send(answer)
            answer = await uds.call(call.operation.asyncio_detailed, call.model, **call.arguments)
    except StopIteration as done:
        result: _T = done.value
        return result


def heal_failed(family: str, attempt: int, error: BaseException, wait: float) -> str:
    """Log one failed heal attempt (a WARNING; the error's text holds no secret) and describe it."""
    detail = f"attempt {attempt} failed: {type(error).__name__}: {error}"
    log.warning("account %s: reconciling, %s; retrying in %.3gs", family, detail, wait)
    return detail


def reconcile(
    mirror: Mirror,
    plan_result: tuple[Snapshot, Recovery, list[Trade]],
    streamed: list[Item],
    report: Callable[[StreamEventKind, str], None],
) -> Reconciled:
    """A heal's answers applied (`streamed`: what the stream holds now, delivered after), logged
    and reported: the part of a heal both drivers share after their REST calls."""
    snapshot, recovery, trades = plan_result
    reconciled = mirror.heal(snapshot, trades, start_time=recovery.start_time, streamed=streamed)
    detail = f"{len(reconciled.changes)} changes, {len(reconciled.recovered_trades)} recovered trades"
    log.info("account %s: reconciled: %s", mirror.family.name, detail)
    report(StreamEventKind.RECONCILED, detail)
    return reconciled


def reconciling(mirror: Mirror, gap: StreamGap, report: Callable[[StreamEventKind, str], None]) -> None:
    """Log and report a heal's start."""
    log.info("account %s: reconciling after a %s gap", mirror.family.name, gap.reason)
    report(StreamEventKind.RECONCILING, f"after a {gap.reason} gap")


class AccountOptions:
    """What `account()` checks before anything is sent: the family, the symbols, the callback."""

    def __init__(self, uds: Any, symbols: Iterable[str], options: dict[str, Any]) -> None:
        self.family = family_for(uds.market.name, uds.symbol)
        if uds._credentials.signer is None:
            # Without it the stream would open (a listenKey created, a connection made) and only the
            # first read fail: refuse now, before anything is sent.
            raise SignerMissingError(
                "the account's REST reads are SIGNED on every market: pass api_secret= or private_key= "
                "to the client (or set $BINANCE_API_SECRET or $BINANCE_PRIVATE_KEY_FILE)"
            )
        listed = (symbols,) if isinstance(symbols, str) else tuple(symbols)
        self.symbols = listed if uds.symbol is None else (*listed, uds.symbol)
        user = options.pop("on_event", None)
        if user is not None and not callable(user):
            raise TypeError(f"on_event must be callable, not {type(user).__name__}")
        self.on_event = user
        self.options = options


class AsyncAccountMirror:
    """The account's mirror over an asyncio event stream; made by `AsyncUserDataStream.account()`."""

    def __init__(self, uds: AsyncUserDataStream, *, symbols: Iterable[str] = (), **options: Any) -> None:
        self._uds = uds
        self._setup = AccountOptions(uds, symbols, options)
        self._live = asyncio.Event()
        self._stream: AsyncEventStream = uds.events(on_event=self._on_event, **self._setup.options)
        self._mirror: Mirror | None = None
        self._pending: deque[Item] = deque()

    @property
    def state(self) -> AccountState:
        """The account as the mirror knows it now (stale from a gap until it is healed)."""
        if self._mirror is None:
            raise UserStreamError("the account has no state before `async with` has taken its snapshot")
        return self._mirror.state

    def _on_event(self, event: Any) -> None:
        if isinstance(event, StreamEvent) and event.kind in _LIVE:
            self._live.set()
        if self._setup.on_event is not None:
            self._setup.on_event(event)

    def _report(self, kind: StreamEventKind, detail: str, retry_in: float | None = None) -> None:
        self._on_event(StreamEvent(kind, self._stream._now(), retry_in=retry_in, detail=detail))

    async def __aenter__(self) -> Self:
        await self._stream.__aenter__()
        try:
            await until_live(self._live, self._stream)
            snapshot = await self._run(snapshot_plan(self._setup.family, self._uds.symbol, self._wall_ms()))
            self._mirror = Mirror(self._setup.family, snapshot, symbols=self._setup.symbols)
        except BaseException as error:
            await self._stream.__aexit__(type(error), error, error.__traceback__)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stream.__aexit__(exc_type, exc, tb)

    def close(self) -> None:
        """End the iteration (thread-safe), as the event stream's `close`."""
        self._stream.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AccountItem:
        mirror = self._mirror
        if mirror is None:
            raise UserStreamError("iterate the account inside `async with uds.account() as account`")
        while True:
            if mirror.gap is not None:
                return await self._heal(mirror)
            item = self._pending.popleft() if self._pending else await self._stream.__anext__()
            if mirror.receive(item) or isinstance(item, StreamGap):
                return item

    async def _heal(self, mirror: Mirror) -> Reconciled:
        assert mirror.gap is not None
        reconciling(mirror, mirror.gap, self._report)
        attempt = 0
        while True:
            try:
                result = await self._run(heal_plan(mirror, self._uds.symbol, self._wall_ms()))
                break
            except RETRYABLE as error:
                attempt += 1
                wait = retry_wait(self._uds.retry, attempt, error)
                detail = heal_failed(mirror.family.name, attempt, error, wait)
                self._report(StreamEventKind.RECONCILE_RETRY, detail, retry_in=wait)
                await self._sleep(wait)
        streamed = self._stream.buffered()
        self._pending.extend(streamed)
        return reconcile(mirror, result, streamed, self._report)

    async def _run(self, plan: Generator[Call, Any, _T]) -> _T:
        return await run_plan(self._uds, plan)

    async def _sleep(self, seconds: float) -> None:
        clock = self._stream._clock
        await (asyncio.sleep(seconds) if clock is None else clock.sleep(seconds))

    def _wall_ms(self) -> int:
        return int(self._stream._wall_ms())

    def __repr__(self) -> str:
        return f"AsyncAccountMirror(market={self._uds.market.name!r}, family={self._setup.family.name!r})"
