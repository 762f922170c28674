"""The fourth part of `make demo`: the account mirror heals a gap, on USD-M and on spot.

`uds.account()` takes a first snapshot over REST, then keeps balances, positions and open orders
from the stream. Here orders on three symbols are placed and partly filled while the mirror listens;
then the exchange drops the connection and fills go on while nobody listens. The stream comes back
with a StreamGap, and the mirror heals it from REST: a Reconciled with what changed and the trades
the stream missed. The demo checks that the mirror's state equals the simulator's ledger (what its
REST reads answer) and that every trade made while the mirror ran reached the program exactly once,
streamed or recovered. `bench_account.py` measures the same heal with 1, 10 and 100 symbols.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
from attrs import define, evolve, field, frozen

from binance_userstream import (
    AccountState,
    AsyncUserDataStream,
    BudgetWait,
    Reconciled,
    RetryPolicy,
    StreamGap,
    StreamTiming,
    WeightBudget,
)
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator

#: The stream reconnects 0.2 s after a drop (jitter at its longest), so that the fills sent right
#: after the drop find no connection, every run.
RECONNECT_AFTER = 0.2
#: Each market's request-weight limit per minute: the client's budget is told the simulator's.
LIMITS = {"usdm": 2400, "spot": 6000}
#: What each market's orders are priced in, and how much of it the account starts with (spot).
QUOTE = "USDT"
FUNDS = "1000000"


def say(text: str) -> None:
    print(f"demo │ {text}", flush=True)


def show(text: str, market: str = "usdm") -> None:
    print(f"  {market:>6} │ {text}", flush=True)


@frozen
class Answer:
    """One answer the client got: its path, status, the weight the simulator says this IP used this
    minute (X-MBX-USED-WEIGHT-1M), when it came (perf_counter), and when its request went out on
    the weight's clock."""

    path: str
    status: int
    used: int | None
    at: float
    sent: float


class Answers(httpx.AsyncHTTPTransport):
    """The client's transport, noting each answer (an `Answer`)."""

    def __init__(self, clock: WeightClock) -> None:
        super().__init__()
        self.clock = clock
        self.seen: list[Answer] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = self.clock.now()
        response = await super().handle_async_request(request)
        used = response.headers.get("X-MBX-USED-WEIGHT-1M")
        number = None if used is None else int(used)
        self.seen.append(Answer(request.url.path, response.status_code, number, time.perf_counter(), sent))
        return response


@define
class Outcome:
    """What one run saw: the items with when they came, the answers, the budget's waits, and the
    ledger's truth at the end."""

    market: str
    symbols: list[str]
    first: AccountState | None = None
    items: list[tuple[float, Any]] = field(factory=list)
    answers: list[Answer] = field(factory=list)
    waits: list[BudgetWait] = field(factory=list)
    waited_at: list[float] = field(factory=list)
    """When (on the weight's clock) each of `waits` began."""
    final: AccountState | None = None
    ledger: Any = None
    trades_before: set[tuple[str, int]] = field(factory=set)
    budget_marks: list[int] = field(factory=list)
    """What the client's WeightBudget had counted this minute at the StreamGap and at the Reconciled."""

    @property
    def budget_counted(self) -> int:
        """The weight the client's budget counted for the heal (a count that falls: a new minute)."""
        at_gap, at_reconciled = self.budget_marks
        return at_reconciled - at_gap if at_reconciled >= at_gap else at_reconciled

    @property
    def gap_at(self) -> float:
        return next(at for at, item in self.items if isinstance(item, StreamGap))

    @property
    def reconciled(self) -> tuple[float, Reconciled]:
        return next((at, item) for at, item in self.items if isinstance(item, Reconciled))

    def heal_seconds(self) -> float:
        return self.reconciled[0] - self.gap_at

    def heal_answers(self) -> list[Answer]:
        """The answers that came between the StreamGap and the Reconciled: the heal's REST reads."""
        start, end = self.gap_at, self.reconciled[0]
        return [answer for answer in self.answers if start <= answer.at <= end]

    def heal_weight(self) -> int:
        """The weight the heal cost, by the simulator's own count: how much each of its answers
        moved X-MBX-USED-WEIGHT-1M (a count that falls means a new minute began)."""
        before = [a.used for a in self.answers if a.at < self.gap_at and a.used is not None]
        last = before[-1] if before else 0
        cost = 0
        for answer in self.heal_answers():
            if answer.used is not None:
                cost += answer.used - last if answer.used >= last else answer.used
                last = answer.used
        return cost

    def delivered(self) -> list[tuple[str, int]]:
        """Every trade that reached the program: streamed (a TRADE event) or recovered."""
        keys = []
        for _, item in self.items:
            if isinstance(item, Reconciled):
                keys += [trade.key for trade in item.recovered_trades]
            elif not isinstance(item, StreamGap):
                keys += streamed_trades(item.to_dict())
        return keys

    def checks(self) -> dict[str, bool]:
        made = {(t.symbol, t.trade_id) for t in self.ledger.trades} - self.trades_before
        delivered = self.delivered()
        assert self.final is not None
        return {
            "the mirror's state equals the simulator's ledger": not differences(self.final, self.ledger),
            "each trade made while the mirror ran reached the program once": sorted(delivered)
            == sorted(made),
            "the simulator never answered 429 (or 418)": all(
                a.status not in (418, 429) for a in self.answers
            ),
            "the client's weight budget never waited": not self.waits,
        }


def streamed_trades(event: dict[str, Any]) -> list[tuple[str, int]]:
    """The trade an event carries, as (symbol, trade id): a futures ORDER_TRADE_UPDATE or a spot
    executionReport whose execution type is TRADE."""
    order = event.get("o", event) if event.get("e") == "ORDER_TRADE_UPDATE" else event
    if event.get("e") in ("ORDER_TRADE_UPDATE", "executionReport") and order.get("x") == "TRADE":
        return [(str(order["s"]), int(order["t"]))]
    return []


def differences(state: AccountState, ledger: Any) -> list[str]:
    """What differs between the mirror's state and the simulator's ledger view (empty: nothing)."""
    amounts = ("free", "locked", "wallet", "cross_wallet", "um_wallet", "cm_wallet")

    def balances(table: Any) -> dict[str, tuple[Decimal | None, ...]]:
        rows = {asset: tuple(getattr(b, name) for name in amounts) for asset, b in table.items()}
        return {asset: row for asset, row in rows.items() if any(v for v in row if v is not None)}

    def orders(table: Any) -> dict[Any, tuple[Any, ...]]:
        names = ("client_order_id", "side", "type", "status", "price", "quantity", "executed_quantity")
        return {key: tuple(getattr(o, name) for name in names) for key, o in table.items()}

    found = []
    pairs: list[tuple[str, dict[Any, Any], dict[Any, Any]]] = [
        ("balances", balances(state.balances), balances(ledger.balances)),
        ("positions", {k: (p.amount, p.entry_price) for k, p in state.positions.items()},
         {k: (p.amount, p.entry_price) for k, p in ledger.positions.items()}),
        ("open orders", orders(state.open_orders), orders(ledger.open_orders)),
    ]  # fmt: skip
    for name, mirror, truth in pairs:
        for key in sorted(set(mirror) | set(truth), key=str):
            if mirror.get(key) != truth.get(key):
                found.append(f"{name} {key}: mirror {mirror.get(key)}, ledger {truth.get(key)}")
    return found


async def until(predicate: Callable[[], bool], consumer: asyncio.Task[None], timeout: float = 20.0) -> None:
    """Until `predicate` holds, or the consumer has failed (its error, raised here)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            if consumer.done():
                consumer.result()
                raise RuntimeError("the account's iteration ended early")
            await asyncio.sleep(0.002)


class WeightClock:
    """The wall's time, shared by the simulator and the client's budget so that they count weight in
    the same minutes; `speed` > 1 makes those minutes (and the budget's waits) pass that many times
    faster while signatures and server times stay on the wall (`wall()`)."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed

    def now(self) -> float:
        return time.time() * self.speed

    def wall(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(seconds, 0.0) / self.speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.speed)


def symbols_of(count: int) -> list[str]:
    """`count` symbols quoted in USDT: three known ones, or made-up ones for the benchmark's many."""
    known = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    return known[:count] if count <= len(known) else [f"S{n:03d}{QUOTE}" for n in range(count)]


async def heal_run(
    market: str,
    count: int,
    *,
    before: Callable[[Simulator, list[str]], list[int]],
    during: Callable[[Simulator, list[str], list[int]], None],
    streamed: Callable[[Simulator, list[str], list[int]], None] | None = None,
    report: Callable[[str], None] | None = None,
    first: Callable[[AccountState], None] | None = None,
    clock: WeightClock | None = None,
    limit: int | None = None,
    retry: RetryPolicy | None = None,
) -> Outcome:
    """One heal on a fresh simulator: `before` sets the account up (its orders' ids), the mirror
    takes its first snapshot, `streamed` moves the account while the mirror listens, the exchange
    drops the stream, `during` moves the account while nobody listens; then the StreamGap, and the
    Reconciled. `first` gets the first snapshot's state and `report` each item (the demo prints them).
    `clock` counts the weight's minutes, `limit` is the simulator's and the budget's weight limit (by
    default the market's), `retry` the client's RetryPolicy."""
    outcome = Outcome(market, symbols_of(count))
    clock = WeightClock() if clock is None else clock
    answers = Answers(clock)
    limit = LIMITS[market] if limit is None else limit
    with Simulator(clock=clock, weight_limit=limit) as sim:
        host = sim.url.removeprefix("http://")
        budget = WeightBudget(clock=clock, limits={host: limit})
        budget.on_wait.append(outcome.waits.append)
        budget.on_wait.append(lambda _: outcome.waited_at.append(clock.now()))
        if market == "spot":
            sim.traffic("spot", symbol="XRPUSDT", quantity="1", price="1", balance=FUNDS)
        ids = before(sim, outcome.symbols)
        setup = sim.ledger(market)
        outcome.trades_before = {(t.symbol, t.trade_id) for t in setup.trades}
        # The simulator stamps quick steps ahead of its clock (each event at least 2 ms after the
        # last, its serverTime the wall's): start once its clock has passed the set-up's last event,
        # so that the first snapshot is later than every trade made before it, as on Binance.
        latest = max([setup.update_time, *(t.time for t in setup.trades)])
        await asyncio.sleep(max(0.0, latest / 1000 - time.time()) + 0.01)
        uds = AsyncUserDataStream(
            TEST_API_KEY,
            sim.url,
            market=market,
            stream_url=sim.url.replace("http://", "ws://"),
            api_secret=TEST_API_SECRET,
            transport=answers,
            budget=budget,
            **({} if retry is None else {"retry": retry}),
        )
        timing = evolve(StreamTiming.for_market(uds.market), first_retry=RECONNECT_AFTER)
        async with uds, uds.account(timing=timing, jitter=lambda: 1.0) as account:
            outcome.first = account.state
            if first is not None:
                first(account.state)

            async def consume() -> None:
                async for item in account:
                    outcome.items.append((time.perf_counter(), item))
                    if isinstance(item, StreamGap | Reconciled):
                        outcome.budget_marks.append(budget.used(host))
                    if report is not None:
                        report_item(item, report)
                    if isinstance(item, Reconciled):
                        return

            consumer = asyncio.create_task(consume())
            if streamed is not None:
                streamed(sim, outcome.symbols, ids)
                truth = sim.ledger(market)
                await until(lambda: not differences(account.state, truth), consumer)
            if report is not None:
                report("the exchange drops the connection; fills go on while nobody listens")
            sim.drop_streams(market)
            during(sim, outcome.symbols, ids)
            await asyncio.wait_for(consumer, 30)
            outcome.final = account.state
            outcome.ledger = sim.ledger(market)
    outcome.answers = answers.seen
    return outcome


def report_item(item: Any, report: Callable[[str], None]) -> None:
    """Print one item the account yields, readably."""
    if isinstance(item, StreamGap):
        report(f"StreamGap: {item.describe()}")
    elif isinstance(item, Reconciled):
        report(f"Reconciled: {len(item.changes)} changes, {len(item.recovered_trades)} recovered trades")
        for change in item.changes:
            report(f"  change {change.kind} {change.key}: {brief(change.before)} -> {brief(change.after)}")
        for trade in item.recovered_trades:
            report(
                f"  recovered trade {trade.symbol} #{trade.trade_id} (order {trade.order_id}):"
                f" {trade.side} {trade.quantity:f} @ {trade.price:f},"
                f" fee {trade.commission:f} {trade.commission_asset}"
            )
    else:
        event = item.to_dict()
        order = event["o"] if event.get("e") == "ORDER_TRADE_UPDATE" else event
        if event.get("e") in ("ORDER_TRADE_UPDATE", "executionReport"):
            report(
                f"{event['e']} {order['s']} order {order['i']} {order['x']} {order['X']}"
                f" filled {order['z']} of {order['q']}"
            )
        else:
            report(f"{event.get('e')}")


def brief(value: Any) -> str:
    """A balance, position or order in a few words (None: absent)."""
    if value is None:
        return "absent"
    kind = type(value).__name__
    if kind == "Order":
        return f"{value.status} {value.executed_quantity:f}/{value.quantity:f}"
    if kind == "Position":
        return f"{value.amount:f} @ {value.entry_price:f}"
    amounts = ("free", "locked", "wallet", "cross_wallet")
    return ", ".join(
        f"{name} {getattr(value, name):f}" for name in amounts if getattr(value, name) is not None
    )


def show_state(state: AccountState, market: str) -> None:
    for asset, balance in sorted(state.balances.items()):
        show(f"  balance {asset}: {brief(balance)}", market)
    for (symbol, side), position in sorted(state.positions.items()):
        show(f"  position {symbol} {side}: {brief(position)}", market)
    for (symbol, order_id), order in sorted(state.open_orders.items()):
        show(f"  open order {symbol} {order_id}: {order.side} {brief(order)} @ {order.price:f}", market)


def place(market: str) -> Callable[[Simulator, list[str]], list[int]]:
    def run(sim: Simulator, symbols: list[str]) -> list[int]:
        return [
            sim.place_order(market, symbol=symbol, side="BUY", quantity="4", price="10") for symbol in symbols
        ]

    return run


def fill(market: str, quantity: str) -> Callable[[Simulator, list[str], list[int]], None]:
    def run(sim: Simulator, symbols: list[str], ids: list[int]) -> None:
        for symbol, order_id in zip(symbols, ids, strict=True):
            sim.fill_order(market, order_id, quantity, symbol=symbol)

    return run


async def demo(market: str) -> dict[str, bool]:
    def report(text: str) -> None:
        show(text, market)

    def streamed(sim: Simulator, symbols: list[str], ids: list[int]) -> None:
        say(f"{market}: a fill on each order, streamed")
        fill(market, "1")(sim, symbols, ids)

    def first(state: AccountState) -> None:
        say(f"{market}: the mirror's first snapshot (orders on three symbols, placed before it started)")
        show_state(state, market)

    outcome = await heal_run(
        market,
        3,
        before=place(market),
        streamed=streamed,
        during=fill(market, "2"),
        report=report,
        first=first,
    )
    assert outcome.final is not None
    say(f"{market}: the state after the heal")
    show_state(outcome.final, market)
    _, reconciled = outcome.reconciled
    say(
        f"{market}: the heal cost {outcome.heal_weight()} request weight in {len(outcome.heal_answers())}"
        f" REST reads, {outcome.heal_seconds() * 1000:.0f} ms"
    )
    checks = outcome.checks()
    checks["the gap's fills were recovered"] = len(reconciled.recovered_trades) == 3
    return {f"{market}: {name}": ok for name, ok in checks.items()}


def main() -> bool:
    say("the account mirror: a gap healed from REST, on USD-M and spot")
    checks: dict[str, bool] = {}
    for market in ("usdm", "spot"):
        checks.update(asyncio.run(demo(market)))
    for name, ok in checks.items():
        say(f"{'ok  ' if ok else 'FAIL'} {name}")
    return all(checks.values())


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
