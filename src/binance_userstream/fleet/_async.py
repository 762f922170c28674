"""`AsyncFleet`: many accounts' events over a few shared connections.

The driver (`_driver`) runs the fleet's rules; this module gives each account its REST side (its
own client over one HTTP transport the fleet shares, the process's weight budget, a keepalive
session for its listenKey), checks the accounts before anything is sent, and hands
`(account id, item)` to the consumer.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from binance_userstream._budget import WeightBudget
from binance_userstream._clock import Clock
from binance_userstream._gate import SHARED_GATE, BackoffGate
from binance_userstream._hosts import resolve_base_url, resolve_stream_url
from binance_userstream._markets import Market, market_named
from binance_userstream._policy import RetryPolicy
from binance_userstream._session import KEEPALIVE_INTERVAL, AsyncKeepaliveSession, SessionEvent
from binance_userstream.errors import UserStreamError
from binance_userstream.fleet._account import Account
from binance_userstream.fleet._core import (
    ACCOUNT_MAX_BYTES,
    ACCOUNT_MAXSIZE,
    FLEET_MAX_BYTES,
    FLEET_MAXSIZE,
    FleetCore,
    FleetItem,
)
from binance_userstream.fleet._driver import Driver, FleetCallback, Tenant
from binance_userstream.fleet._limits import FleetLimits, start_time
from binance_userstream.stream._core import StreamEventKind, StreamTiming
from binance_userstream.stream._gap import StreamGap
from binance_userstream.stream._socket import MAX_FRAME

if TYPE_CHECKING:
    from binance_userstream._client import AsyncUserDataStream

log = logging.getLogger("binance_userstream.fleet")

#: listenKey and listenToken REST calls in flight at once (each also waits for the weight budget).
REST_CONCURRENCY = 16

__all__ = ["AsyncFleet", "FleetCallback"]


class _Shared:
    """What a fleet's accounts share for REST: one HTTP transport (its connection pool), the
    retry policy, the backoff gate and the weight budget."""

    def __init__(
        self,
        market: Market,
        base_url: str,
        stream_url: str,
        *,
        retry: RetryPolicy,
        gate: BackoffGate,
        budget: WeightBudget | None,
        transport: httpx.AsyncBaseTransport | None,
        interval: float,
    ) -> None:
        self.market, self.base_url, self.stream_url = market, base_url, stream_url
        self.retry, self.gate, self.budget, self.interval = retry, gate, budget, interval
        self.transport = transport
        self.owned: httpx.AsyncHTTPTransport | None = None
        self.clock: Clock | None = None

    def inner(self) -> httpx.AsyncBaseTransport:
        """The transport every account's client sends through, lent: a client that closes closes
        its loan, not the fleet's transport (the fleet closes its own once, on leaving)."""
        if self.transport is None and self.owned is None:
            self.owned = httpx.AsyncHTTPTransport()
        return _Lent(self.transport or self.owned)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        if self.owned is not None:
            await self.owned.aclose()


class _Lent(httpx.AsyncBaseTransport):
    """A transport lent to one account's client: it sends through the fleet's; closing it does nothing."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """The fleet's transport stays open for the other accounts."""


class _AccountServices:
    """An account's REST side in a fleet: its own client (its key, the fleet's shared transport
    and budget), made on first need, and its keepalive session."""

    def __init__(self, account: Account, shared: _Shared) -> None:
        self.account = account
        self.credentials = account.credentials()
        self.symbol = account.symbol
        self._shared = shared
        self._uds: Any = None  # an AsyncUserDataStream, made on first need
        self._session: AsyncKeepaliveSession | None = None

    async def client(self) -> Any:
        """The account's client, opened on first need (closed by `close`)."""
        if self._uds is None:
            from binance_userstream._client import AsyncUserDataStream

            shared, account = self._shared, self.account
            self._uds = AsyncUserDataStream(
                account.api_key,
                shared.base_url,
                market=shared.market.name,
                retry=shared.retry,
                transport=shared.inner(),
                gate=shared.gate,
                budget=shared.budget,
                stream_url=shared.stream_url,
                api_secret=account.api_secret,
                private_key=account.private_key,
                private_key_passphrase=account.private_key_passphrase,
                symbol=account.symbol,
            )
            await self._uds.__aenter__()
        return self._uds

    async def open(self, on_event: Callable[[SessionEvent], None]) -> str:
        session: AsyncKeepaliveSession = (await self.client()).session(
            interval=self._shared.interval, on_event=on_event, clock=self._shared.clock
        )
        await session.__aenter__()
        self._session = session
        assert session.listen_key is not None
        return session.listen_key

    async def renew(self) -> str:
        if self._session is None:
            raise UserStreamError("the account's session is not running")
        return await self._session.renew()

    async def token(self) -> Any:
        return await (await self.client()).create_listen_token(self.symbol)

    async def close(self) -> None:
        session, self._session = self._session, None
        uds, self._uds = self._uds, None
        try:
            if session is not None:
                await session.__aexit__(None, None, None)
        finally:
            if uds is not None:
                await uds.__aexit__(None, None, None)


class AsyncFleet:
    """Many accounts' events over few connections: `async with AsyncFleet(accounts, market=...) as
    fleet: async for account_id, item in fleet:`; `item` is an event model, a `StreamGap` for that
    account, or the error that ended that account (delivered once, as an item: the others go on).

    Accounts are checked (ids unique, credentials loadable, a signer where the market signs) before
    anything is sent; `add` and `remove` change the fleet while it runs. `limits` keeps Binance's
    per-IP limits (`FleetLimits`); `timing`, `jitter` and `clock` bend the clock rules as for
    `events()`; `maxsize` and `max_bytes` bound what the whole fleet buffers, `account_maxsize` and
    `account_max_bytes` what one account does. `keep_text` keeps each event's JSON text as Binance
    sent it, for `with_text()`. `models=False` hands out each event as a `RawEvent` instead of its
    model: its wire name, its time and its text, read without the full parse (a spot fleet's
    event costs 13 µs of CPU instead of 22), its model made only when asked for
    (`RawEvent.model()`): for a consumer that stores events rather than reads them (a durable
    log); gaps, errors and every rule stay as they are, and `with_text()` needs no `keep_text`
    (each RawEvent has its text). `compression`: "deflate" offers Binance permessage-deflate (less
    to download, about 1.3 µs of CPU an event to inflate), None asks for frames as they are.
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
        keep_text: bool = False,
        models: bool = True,
        compression: str | None = "deflate",
    ) -> None:
        self.market: Market = market_named(market)
        if self.market.fleet_target is None:
            raise ValueError(f"market {self.market.name!r} has no event stream")
        if compression not in ("deflate", None):
            raise ValueError(f"compression is 'deflate' or None, not {compression!r}")
        if on_event is not None and not callable(on_event):
            raise TypeError(f"on_event must be callable, not {type(on_event).__name__}")
        if account_max_bytes < MAX_FRAME:
            raise ValueError(f"account_max_bytes must be at least {MAX_FRAME}, the largest frame accepted")
        base = resolve_base_url(base_url, self.market)
        streams = resolve_stream_url(stream_url, self.market)
        gate = SHARED_GATE if gate is None else gate
        self._shared = _Shared(
            self.market,
            base,
            streams,
            retry=retry,
            gate=gate,
            budget=budget,
            transport=transport,
            interval=interval,
        )
        core = FleetCore(
            self.market,
            limits=limits,
            random=jitter or random.random,
            timing=timing,
            rotate_spread=rotate_spread,
            account_maxsize=account_maxsize,
            account_max_bytes=account_max_bytes,
            maxsize=maxsize,
            max_bytes=max_bytes,
            keep_text=keep_text,
            models=models,
        )
        self._keep_text = keep_text or not models
        self._driver = Driver(
            self.market,
            core,
            url=f"{streams}{self.market.fleet_target}",
            stream_base=streams,
            gate=gate,
            clock=clock,
            on_event=on_event,
            log=log,
            tag_accounts=True,
            compression=compression,
        )
        self.limits = limits
        self._clock = clock
        self._shared.clock = clock
        self._rest_concurrency = rest_concurrency
        self._entered = False
        for account in accounts:
            self._driver.tenants[account.id] = self._tenant(account)

    # -- accounts ----------------------------------------------------------------------------------

    def _tenant(self, account: Account) -> Tenant:
        """The driver's record of `account`, its credentials loaded now: anything wrong is refused
        before anything is sent."""
        if not isinstance(account, Account):
            raise TypeError(f"a fleet takes Account objects, not {type(account).__name__}")
        if account.id in self._driver.tenants:
            raise ValueError(f"account id {account.id!r} appears twice")
        if account.symbol is not None and self.market.name != "margin":
            raise ValueError(f"account {account.id!r}: symbol= is for market='margin' (isolated margin)")
        services = _AccountServices(account, self._shared)
        if self.market.subscription == "signature" and services.credentials.signer is None:
            raise ValueError(
                f"account {account.id!r}: market {self.market.name!r}'s events need a signature: "
                "give it api_secret= or private_key="
            )
        services.credentials.clock = self._clock
        return Tenant(account.id, services, account.api_key)

    def add(self, account: Account) -> None:
        """Add `account` to the running fleet (or before it runs): its events follow, from its
        subscription on; the other accounts are not disturbed."""
        tenant = self._tenant(account)
        self._driver.tenants[account.id] = tenant
        if self._driver.loop is not None and not self._driver.ended:
            self._driver.start(tenant)

    def remove(self, account_id: str) -> None:
        """Remove an account: its subscriptions end (no gap: it left); what it had buffered is
        still handed out. KeyError if it is not in the fleet."""
        driver = self._driver
        tenant = driver.tenants.pop(account_id)
        if tenant.starting is not None:
            tenant.starting.cancel()
        if driver.loop is not None and account_id in driver.core.accounts():
            driver.apply(driver.core.remove(account_id, driver.now()))
        if driver.loop is not None and not driver.ended:
            driver.spawn(driver.stop_tenant(tenant), "stop-account")

    def holds(self, account_id: str) -> bool:
        """Whether `account_id` is in the fleet's rules, or was removed and some of its items are still
        to be handed out (it cannot be added again until they are)."""
        return self._driver.core.holds(account_id)

    def buffered(self, account_id: str) -> int:
        """How many of `account_id`'s items the fleet has received and not yet handed out: a worker
        handing the account over publishes that many more before it tells the new owner so."""
        return self._driver.core.buffered(account_id)

    async def rest_client(self, account_id: str) -> AsyncUserDataStream:
        """`account_id`'s REST client, as the fleet uses it for the account's listenKey or
        listenToken: its own key and signer, the fleet's HTTP transport, retry policy, backoff gate
        and weight budget (a worker takes its snapshots with it). Made on first need, closed when the
        account leaves the fleet (or the fleet ends); KeyError if the account is not in the fleet."""
        services = self._driver.tenants[account_id].services
        assert isinstance(services, _AccountServices)
        client: AsyncUserDataStream = await services.client()
        return client

    @property
    def accounts(self) -> list[str]:
        """The ids of the accounts in the fleet."""
        return list(self._driver.tenants)

    def connections(self) -> int:
        """Shared connections open or opening now."""
        return self._driver.core.pool.connections()

    @property
    def start_estimate(self) -> float:
        """The least seconds the fleet's accounts take to be subscribed from nothing within
        `limits` (on listenKey markets, plus their keys' creation, paced by the REST weight budget)."""
        return start_time(
            self.limits,
            len(self._driver.tenants),
            self._driver.core.pool.capacity,
            ws_api=not self.market.uses_listen_key,
        )

    # -- the consumer's side -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise UserStreamError("a fleet can be entered once; make another")
        self._entered = True
        driver = self._driver
        driver.enter(self._rest_concurrency)
        self._announce()
        for tenant in list(driver.tenants.values()):
            driver.start(tenant)
        return self

    def _announce(self) -> None:
        """Say, before it begins, how long starting every account will take within the limits."""
        count = len(self._driver.tenants)
        per_connection = self._driver.core.pool.capacity
        keys = ", plus creating their listenKeys (REST weight)" if self.market.uses_listen_key else ""
        self._driver.core.note(
            None,
            StreamEventKind.CONNECTING,
            self._driver.now(),
            f"starting {count} accounts on {-(-count // per_connection)} connections: at least "
            f"{self.start_estimate:.0f}s within the limits ({self.limits.connections} connections per "
            f"{self.limits.connection_window:g}s, {self.limits.request_weight} weight per "
            f"{self.limits.weight_window:g}s){keys}",
        )
        self._driver.apply([])

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, FleetItem]:
        return await self._next()

    async def with_text(self) -> AsyncIterator[tuple[str, FleetItem, str | None]]:
        """The items as iterating the fleet gives them, each with its event's JSON text as Binance
        sent it (None for a gap or an error): what a durable log stores. Needs `keep_text=True`
        (or `models=False`)."""
        if not self._keep_text:
            raise ValueError("with_text() needs AsyncFleet(..., keep_text=True) or models=False")
        driver = self._driver
        while True:
            taken = self.take()
            if taken is None:  # nothing ready: the only await of an item's way
                if driver.ended:
                    return
                await driver.wait_ready()
                continue
            yield taken

    def take(self) -> tuple[str, FleetItem, str | None] | None:
        """The next item `with_text` would give if one is ready now, else None (see `ended`, and
        `wait_ready` to wait): for a consumer that waits on more than the fleet, without a task per
        item. Needs `keep_text=True` (or `models=False`)."""
        popped = self._pop()
        return None if popped is None else (*popped, self._driver.core.popped_text)

    async def wait_ready(self) -> None:
        """Return when an item may be ready to `take`, or the fleet ended."""
        await self._driver.wait_ready()

    @property
    def ended(self) -> bool:
        """The fleet has stopped: nothing more will be ready."""
        return self._driver.ended

    async def _next(self) -> tuple[str, FleetItem]:
        driver = self._driver
        popped = self._pop()
        while popped is None:
            if driver.ended:
                raise StopAsyncIteration
            await driver.wait_ready()
            popped = self._pop()
        return popped

    def _pop(self) -> tuple[str, FleetItem] | None:
        """The next item ready, if any; a gap or an account's error logged as it is handed out."""
        driver = self._driver
        popped = driver.core.pop(driver.now())
        if popped is not None:
            account_id, item = popped
            if isinstance(item, StreamGap | BaseException):
                _log_item(account_id, item)
        return popped

    def close(self) -> None:
        """End the iteration (thread-safe)."""
        self._driver.close_threadsafe()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._driver.aclose()
        finally:
            await self._shared.aclose()

    def __repr__(self) -> str:
        return (
            f"AsyncFleet(market={self.market.name!r}, accounts={len(self._driver.tenants)}, "
            f"connections={self.connections()})"
        )


def _log_item(account_id: str, item: StreamGap | BaseException) -> None:
    """A gap is a warning, the error that ended an account an error, in the fleet's log."""
    if isinstance(item, StreamGap):
        log.warning("account %s: stream %s", account_id, item.describe())
    else:
        log.error("account %s ended: %s", account_id, item)
