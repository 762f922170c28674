"""The mirror is never silently wrong: a stateful property per market family, on the simulator.

Hypothesis drives an account through random traffic (orders placed, filled in part or whole,
canceled, over a few symbols; `sim.traffic`'s whole orders) and random faults (connections dropped
or cut, listenKeys expired, spot's and margin's subscriptions ended, bursts the test does not read
that overflow a small buffer), while the mirror (`uds.account()`, the async driver in a loop of
the test's own) follows from the simulator's REST reads and streams. The simulator's ledger is
what the account is; the invariants:

- after every Reconciled, `account.state` is the ledger (THE MAPPING: tests/_ledger_state.py);
- at a quiescent point (every event delivered, no gap pending) it is the ledger too;
- every trade of the ledger reached the application exactly once, streamed (a TRADE event) or
  recovered (`Reconciled.recovered_trades`): never twice, never missing.

Two more machines per family: one whose connections also stall (the simulator pings every PING
seconds, `Simulator(ping_interval=)`, instead of its markets' minutes, so that the stream finds a
silence of half a second; it must find every stall made, and no other), and one whose connections
come to the end of their life (a `rotate_after` of 0.3 s, the simulator's 24-hour cut shortened to
LIFETIME seconds behind it, `Simulator(connection_lifetime=)`) with traffic only: a rotation,
make-before-break, must cost no gap and deliver nothing twice.

Seeded (`derandomize=True`): the same runs every time, a few short ones per family. The simulator
runs on the client's clock (the times of its events and of its REST answers are the client's), and
the mirror is told the symbols traded (`symbols=`): a filled order leaves no trace in a snapshot, so
nothing else names the symbols whose trades a heal must ask for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from contextlib import AsyncExitStack
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from binance_userstream import (
    AsyncUserDataStream,
    Reconciled,
    RetryPolicy,
    StreamEventKind,
    StreamGap,
    StreamTiming,
)
from binance_userstream.account._families import family_for
from binance_userstream.account._family import TradeSeen
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator, SystemClock
from tests import _ledger_state as mapping

#: The stream's clock rules, fast: reconnections within 0.05-0.2 s; no stall is found where there is
#: none (a run is far shorter than the simulator's ping interval).
TIMING = StreamTiming(
    ping_interval=600, stall_grace=0.0, overlap=0.2, first_retry=0.05, max_retry=0.2, rotate_after=3600
)
#: The stall machine's: the simulator pings every PING seconds (by default at its market's
#: interval, minutes), so silence for `stall_after` (half a second) is a stall, found within a
#: fraction of a second, while pings that come keep a healthy connection from seeming stalled even
#: when the test's loop stood still between rules (the pings wait in the socket, read first).
PING = 0.1
STALLING = StreamTiming(
    ping_interval=PING, stall_grace=0.4, overlap=0.2, first_retry=0.05, max_retry=0.2, rotate_after=3600
)
#: How long the stall rule holds the connections silent (the simulator's clock: the client's).
STALL = 2.0
#: The lifetime machine's: a connection is replaced 0.3 s after it opened, and the simulator cuts
#: one LIFETIME seconds old (by default 24 hours), a backstop that makes a rotation that never came a
#: gap (the test's loop stands still between rules, so the margin is wide).
ROTATING = StreamTiming(
    ping_interval=600, stall_grace=0.0, overlap=0.2, first_retry=0.05, max_retry=0.2, rotate_after=0.3
)
LIFETIME = 3.0
#: The notes of a connection's coming and going: the last says whether the stream is connected.
_CONNECTION_NOTES = frozenset(
    {
        StreamEventKind.CONNECTING,
        StreamEventKind.CONNECTED,
        StreamEventKind.DISCONNECTED,
        StreamEventKind.STALLED,
        StreamEventKind.RECONNECTING,
        StreamEventKind.KEY_EXPIRED,
        StreamEventKind.KEY_REFUSED,
        StreamEventKind.TERMINATED,
    }
)
RETRY = RetryPolicy(attempts=5, backoff_base=0.01, backoff_cap=0.02, deadline=30.0)
#: A small buffer: a burst of traffic the test does not read overflows it.
MAXSIZE = 8
#: The longest a quiescent point may take to come (seconds, real time): far more than it needs.
SETTLE = 10.0


def always() -> float:
    """The stream's jitter: its longest reconnection wait, so that events pushed right after a cut
    find no connection (and are the stream's to miss)."""
    return 1.0


class SkewedClock(SystemClock):
    """The system's clock, its wall time `offset` seconds off: an exchange whose clock is not the
    client's."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def wall(self) -> float:
        return time.time() + self.offset


class Market:
    """What a family's machine trades: its market, its symbols and the amounts of an order."""

    def __init__(
        self,
        name: str,
        symbols: tuple[str, ...],
        quantity: str,
        prices: tuple[str, ...],
        step: str,
        *,
        isolated: str | None = None,
        listen_key: bool = True,
    ) -> None:
        self.name = name
        self.symbols = symbols
        self.quantity = quantity
        self.prices = prices
        self.step = Decimal(step)
        self.isolated = isolated
        self.listen_key = listen_key

    def half(self, rest: Decimal) -> str | None:
        """Part of an order's rest, in the market's steps (None: it cannot be split)."""
        part = (rest / 2 // self.step) * self.step
        return str(part) if 0 < part < rest else None


class AccountMachine(RuleBasedStateMachine):
    """One account on one market, its mirror, and the ledger it must equal."""

    market: ClassVar[Market]
    skew: ClassVar[float] = 0.0
    timing: ClassVar[StreamTiming] = TIMING
    #: The machine's faults: drops, cuts, key loss, ended subscriptions, overflow ("faults"); and
    #: stalls, which need the simulator's fast pings (STALLING); and the connection's lifetime
    #: passing ("lifetime"), with a short `rotate_after` (ROTATING).
    faults: ClassVar[frozenset[str]] = frozenset({"faults"})
    maxsize: ClassVar[int] = MAXSIZE
    #: The simulator's streams: Binance's ping intervals and 24-hour lifetime unless a variant shortens them.
    simulator_options: ClassVar[dict[str, float]] = {}

    def __init__(self) -> None:
        super().__init__()
        # the client's clock, or the exchange's behind it by `skew` seconds
        self.sim = Simulator(clock=SkewedClock(-self.skew), **self.simulator_options).start()
        self.loop = asyncio.new_event_loop()
        self.stack = AsyncExitStack()
        self.seen: Counter[tuple[str, int]] = Counter()
        self.reconciled = 0
        self.notes: list[StreamEventKind] = []
        self.stalled = 0  # connections the stall rule stalled
        try:
            self.account = self.run(self._open())
        except BaseException:
            self._close()
            raise
        self.family = family_for(self.market.name, self.market.isolated)

    async def _open(self) -> Any:
        uds = AsyncUserDataStream(
            api_key=TEST_API_KEY,
            api_secret=TEST_API_SECRET,
            base_url=self.sim.url,
            stream_url=self.sim.stream_url,
            market=self.market.name,
            symbol=self.market.isolated,
            retry=RETRY,
        )
        await self.stack.enter_async_context(uds)
        account = uds.account(
            symbols=self.market.symbols,
            timing=self.timing,
            jitter=always,
            maxsize=self.maxsize,
            on_event=lambda note: self.notes.append(note.kind),
        )
        return await self.stack.enter_async_context(account)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        """The end of a run is a quiescent point too; then the account, the loop, the simulator close."""
        try:
            if hasattr(self, "account"):
                self.settle()
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self.run(self.stack.aclose())
        finally:
            self.loop.close()
            self.sim.stop()

    # -- the ledger --------------------------------------------------------------------------

    def ledger(self) -> Any:
        return self.sim.ledger(self.market.name, symbol=self.market.isolated)

    def expected(self) -> Any:
        return mapping.account_state(self.market.name, self.ledger())

    def _step(self) -> dict[str, Any]:
        return {"isolated": True, "symbol": self.market.isolated} if self.market.isolated else {}

    # -- reading the mirror ------------------------------------------------------------------

    def _note(self, item: Any) -> None:
        """Count the trades an item delivers; after a Reconciled, the state must be the ledger."""
        if isinstance(item, Reconciled):
            self.reconciled += 1
            for trade in item.recovered_trades:
                self.seen[trade.key] += 1
            self._check_state(item.state, "after a Reconciled")
        elif isinstance(item, StreamGap):
            assert "lifetime" not in self.faults, f"a rotation made a gap: {item}"
        else:
            for update in self.family.updates(item):
                if isinstance(update, TradeSeen):
                    self.seen[update.trade.key] += 1
        twice = [key for key, count in self.seen.items() if count > 1]
        assert not twice, f"trades delivered more than once: {twice}"

    def _check_state(self, state: Any, when: str) -> None:
        expected = self.expected()
        for name in ("balances", "positions", "open_orders"):
            mirrored, ledger = dict(getattr(state, name)), dict(getattr(expected, name))
            differ = {
                key: (mirrored.get(key), ledger.get(key))
                for key in set(mirrored) | set(ledger)
                if mirrored.get(key) != ledger.get(key)
            }
            assert not differ, f"{when}, {name} (mirror, ledger): {differ}"

    def _quiescent(self) -> bool:
        state = self.account.state
        return (
            not state.stale
            and mapping.same_account(state, self.expected())
            and set(self.seen) == set(mapping.trades(self.ledger()))
        )

    async def _settle(self) -> None:
        """Take items until the mirror is quiescent (or SETTLE passes: the invariants then say what
        differs). The ledger does not move meanwhile: only the rules move it."""
        try:
            async with asyncio.timeout(SETTLE):
                while not self._quiescent():
                    self._note(await anext(self.account))
        except TimeoutError:
            pass

    def settle(self) -> None:
        self.run(self._settle())
        self._check_state(self.account.state, "at a quiescent point")
        assert not self.account.state.stale
        missing = set(mapping.trades(self.ledger())) - set(self.seen)
        assert not missing, f"trades never delivered: {sorted(missing)}"

    # -- traffic -----------------------------------------------------------------------------

    @rule(symbol=st.integers(0, 9), side=st.sampled_from(["BUY", "SELL"]), price=st.integers(0, 9))
    def place(self, symbol: int, side: str, price: int) -> None:
        market = self.market
        chosen = market.isolated or market.symbols[symbol % len(market.symbols)]
        try:
            self.sim.place_order(
                market.name,
                symbol=chosen,
                side=side,
                quantity=market.quantity,
                price=market.prices[price % len(market.prices)],
                **{"isolated": True} if market.isolated else {},
            )
        except ValueError as refused:  # too little free to lock: the account refused it
            if "free" not in str(refused):
                raise

    @rule(which=st.integers(0, 99), whole=st.booleans())
    def fill(self, which: int, whole: bool) -> None:
        orders = sorted(self.ledger().open_orders.values(), key=lambda o: (o.symbol, o.order_id))
        if not orders:
            return
        order = orders[which % len(orders)]
        part = None if whole else self.market.half(order.quantity - order.executed_quantity)
        self.sim.fill_order(self.market.name, order.order_id, part, **self._order_step(order.symbol))

    @rule(which=st.integers(0, 99))
    def cancel(self, which: int) -> None:
        orders = sorted(self.ledger().open_orders.values(), key=lambda o: (o.symbol, o.order_id))
        if not orders:
            return
        order = orders[which % len(orders)]
        self.sim.cancel_order(self.market.name, order.order_id, **self._order_step(order.symbol))

    def _order_step(self, symbol: str) -> dict[str, Any]:
        return {"symbol": symbol, "isolated": True} if self.market.isolated else {"symbol": symbol}

    @rule(symbol=st.integers(0, 9))
    def traffic(self, symbol: int) -> None:
        market = self.market
        chosen = market.isolated or market.symbols[symbol % len(market.symbols)]
        self.sim.traffic(market.name, symbol=chosen, isolated=market.isolated is not None)

    # -- faults ------------------------------------------------------------------------------

    @precondition(lambda self: "faults" in self.faults)
    @rule()
    def drop(self) -> None:
        self.sim.drop_streams(self._stream_market())

    @precondition(lambda self: "faults" in self.faults)
    @rule()
    def cut(self) -> None:
        self.sim.cut_streams(self._stream_market())

    @precondition(lambda self: "faults" in self.faults and self.market.listen_key)
    @rule()
    def expire_key(self) -> None:
        self.sim.expire_key(market=self.market.name)

    @precondition(lambda self: "faults" in self.faults and not self.market.listen_key)
    @rule()
    def end_subscriptions(self) -> None:
        self.sim.end_subscriptions(self.market.name)

    @precondition(lambda self: "faults" in self.faults)
    @rule(orders=st.integers(2, 3))
    def burst(self, orders: int) -> None:
        """Traffic the test does not read while the stream does: more events than the buffer holds."""
        for _ in range(orders):
            self.traffic(0)
        self.run(asyncio.sleep(0.3))

    @precondition(lambda self: "stalls" in self.faults)
    @rule(symbol=st.integers(0, 9))
    def stall(self, symbol: int) -> None:
        """The connections fall silent (no frame, no ping) while traffic goes on: its events are lost
        to them. The stream finds the silence by its ping rule (a StreamGap "stalled") within
        STALLING's `stall_after`, reconnects, and the mirror heals."""
        # Connected first (and the connections it left closed on the simulator's side too): a stall
        # of a connection being replaced is no stall of the stream's.
        connected = self._serving()
        stalled = self.sim.stall_streams(STALL, self._stream_market())
        self.stalled += stalled
        self.traffic(symbol)
        if stalled:
            found = self._until(StreamEventKind.STALLED, STALLING.stall_after + 1.0)
            assert found or not connected, "a stall the stream did not find"

    @precondition(lambda self: "lifetime" in self.faults)
    @rule(symbol=st.integers(0, 9))
    def lifetime(self, symbol: int) -> None:
        """The connection's time is up (`rotate_after`, before the simulator's LIFETIME cut): the
        stream opens another and retires the old one after the overlap, make-before-break, while
        traffic goes on; no gap, no event twice."""
        assert self._until(StreamEventKind.ROTATING, ROTATING.rotate_after + 1.0, start=len(self.notes))
        self.traffic(symbol)  # during the rotation: on both connections, or on the new one
        assert self._until(StreamEventKind.ROTATED, ROTATING.overlap + 1.0, start=len(self.notes))

    def _serving(self) -> bool:
        """Run the stream until its last connection happening is CONNECTED (2 s at most), and a
        little more for the simulator to see the closes; whether it is."""

        def last() -> StreamEventKind | None:
            return next((n for n in reversed(self.notes) if n in _CONNECTION_NOTES), None)

        async def wait() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    while last() is not StreamEventKind.CONNECTED:
                        await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)

        self.run(wait())
        return last() is StreamEventKind.CONNECTED

    def _until(self, kind: StreamEventKind, seconds: float, start: int | None = None) -> bool:
        """Run the stream (items are not read) until it notes `kind` (after the note `start`), or
        `seconds` pass; whether it did."""
        start = len(self.notes) if start is None else start

        async def wait() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    while kind not in self.notes[start:]:
                        await asyncio.sleep(0.01)

        self.run(wait())
        return kind in self.notes[start:]

    def _stream_market(self) -> str | None:
        return None if self.market.name in ("spot", "margin") else self.market.name

    # -- the invariants ----------------------------------------------------------------------

    @rule()
    def quiescent(self) -> None:
        self.settle()

    @invariant()
    def no_trade_twice(self) -> None:
        assert all(count == 1 for count in self.seen.values())

    @invariant()
    def no_false_stall(self) -> None:
        """The stream finds a stall only where one was made."""
        assert self.notes.count(StreamEventKind.STALLED) <= self.stalled, self.notes


PROPERTY = settings(
    max_examples=10,
    stateful_step_count=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)


def machine(market: Market, skew: float = 0.0, **variant: Any) -> type[AccountMachine]:
    """The machine of one family's market (the exchange's clock `skew` seconds behind the client's;
    `variant`: another `timing` and `faults`)."""
    name = f"{market.name.title()}{'Isolated' if market.isolated else ''}Machine"
    return type(name, (AccountMachine,), {"market": market, "skew": skew, **variant})


USDM = Market("usdm", ("BTCUSDT", "ETHUSDT"), "0.010", ("43000.10", "42000.00"), "0.001")
COINM = Market("coinm", ("BTCUSD_PERP", "ETHUSD_PERP"), "4", ("43000.1", "2000.5"), "1")
PORTFOLIO = Market("portfolio", ("BTCUSDT", "BTCUSD_PERP"), "4", ("43000.1", "42000.2"), "1")
OPTIONS = Market(
    "options", ("BTC-251123-126000-C", "ETH-251123-4000-P"), "0.2000", ("1200.000", "50.000"), "0.0001"
)
SPOT = Market(
    "spot", ("BTCUSDT", "ETHUSDT"), "0.01000000", ("43000.10", "2000.00"), "0.00000001", listen_key=False
)
MARGIN = Market(
    "margin", ("BTCUSDT", "ETHUSDT"), "0.01000000", ("43000.10", "2000.00"), "0.00000001", listen_key=False
)
ISOLATED = Market(
    "margin",
    ("BTCUSDT",),
    "0.01000000",
    ("43000.10", "42000.00"),
    "0.00000001",
    isolated="BTCUSDT",
    listen_key=False,
)
FAMILIES = {
    "usdm": USDM,
    "spot": SPOT,
    "margin": MARGIN,
    "isolated": ISOLATED,
    "coinm": COINM,
    "portfolio": PORTFOLIO,
    "options": OPTIONS,
}


@pytest.mark.parametrize("market", FAMILIES.values(), ids=FAMILIES.keys())
def test_the_mirror_equals_the_ledger(market: Market) -> None:
    PROPERTY(machine(market)).TestCase().runTest()


#: The exchange's clock behind the client's by this many seconds (within recvWindow's 5 s). Portfolio
#: Margin has no time call: the client's clock less `UNTIMED_MARGIN_MS` (5 s) dates its snapshots, so
#: it holds too.
SKEW = 2.0


@pytest.mark.parametrize("market", [USDM, SPOT, OPTIONS, PORTFOLIO], ids=lambda m: m.name)
def test_the_mirror_equals_the_ledger_when_the_exchanges_clock_is_behind(market: Market) -> None:
    PROPERTY(machine(market, SKEW)).TestCase().runTest()


#: The stall and lifetime machines: fewer, shorter runs (a stall, a rotation takes a fraction of a
#: second of real time).
SHORT = settings(PROPERTY, max_examples=4, stateful_step_count=10)


@pytest.mark.parametrize("market", FAMILIES.values(), ids=FAMILIES.keys())
def test_the_mirror_equals_the_ledger_through_stalls(market: Market) -> None:
    variant = machine(
        market,
        timing=STALLING,
        faults=frozenset({"faults", "stalls"}),
        simulator_options={"ping_interval": PING},
    )
    SHORT(variant).TestCase().runTest()


@pytest.mark.parametrize("market", FAMILIES.values(), ids=FAMILIES.keys())
def test_a_rotation_costs_no_gap(market: Market) -> None:
    """Traffic while connections come to the end of their life: the stream rotates make-before-break
    before the simulator's cut, and no gap, no trade twice, no trade missing, comes of it."""
    # no overflow either: the rule runs the stream without reading it
    variant = machine(
        market,
        timing=ROTATING,
        faults=frozenset({"lifetime"}),
        maxsize=1000,
        simulator_options={"connection_lifetime": LIFETIME},
    )
    SHORT(variant).TestCase().runTest()
