"""The account mirror's rules, without sockets: what a snapshot, events, a gap and a heal do.

The events here are plain records that carry their updates (a family translates nothing), so each
test states one rule of `Mirror` (src/binance_userstream/account/_mirror.py) in the mirror's terms.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from attrs import evolve, field, frozen
from hypothesis import given
from hypothesis import strategies as st

from binance_userstream import AccountState, Balance, Change, Order, Position, StreamGap, Trade
from binance_userstream.account import _mirror as mirror_module
from binance_userstream.account._family import (
    BalanceUpdate,
    Call,
    OrderUpdate,
    PositionUpdate,
    Snapshot,
    TradeSeen,
    Update,
)
from binance_userstream.account._mirror import (
    UNTIMED_MARGIN_MS,
    Mirror,
    Recovery,
    snapshot_plan,
    trades_plan,
)


@frozen
class Event:
    """A decoded event, reduced to what it changes; `event_time` is its `E`."""

    event_time: int
    updates: tuple[Update, ...] = field(converter=tuple)


class Direct:
    """A family whose events carry their updates (and whose trade pages are lists of Trades)."""

    name = "direct"
    amounts: tuple[
        str, ...
    ] = ()  # its snapshots list what they list: an asset an event brings holds what it says
    page_size = 2

    def time_call(self) -> Call | None:
        return Call(object(), object)

    def snapshot_calls(self, symbol: str | None) -> Sequence[Call]:
        return (Call(object(), object),)

    def snapshot(self, answers: Sequence[Any], taken_at: int) -> Snapshot:
        snapshot: Snapshot = answers[0]
        return evolve(snapshot, taken_at=taken_at)

    def trade_calls(self, symbol: str, start_time: int, from_id: int | None) -> Sequence[Call]:
        return (Call(object(), list, {"symbol": symbol, "start_time": start_time, "from_id": from_id}),)

    def trades(self, answers: Sequence[Any]) -> list[Trade]:
        return [trade for page in answers for trade in page]

    def updates(self, event: object) -> Sequence[Update]:
        return event.updates if isinstance(event, Event) else []


def usdt(free: str, locked: str = "0") -> Balance:
    return Balance("USDT", free=Decimal(free), locked=Decimal(locked))


def order(
    order_id: int, time: int, status: str = "NEW", executed: str = "0", symbol: str = "BTCUSDT"
) -> Order:
    return Order(
        symbol=symbol,
        order_id=order_id,
        client_order_id=f"c{order_id}",
        side="BUY",
        type="LIMIT",
        status=status,
        price=Decimal("100"),
        quantity=Decimal("2"),
        executed_quantity=Decimal(executed),
        update_time=time,
    )


def trade(trade_id: int, time: int, symbol: str = "BTCUSDT", order_id: int = 1) -> Trade:
    return Trade(symbol, trade_id, order_id, "BUY", Decimal("100"), Decimal("1"), Decimal("0"), "USDT", time)


def position(amount: str, symbol: str = "BTCUSDT") -> Position:
    return Position(symbol, "BOTH", Decimal(amount), Decimal("100"))


def snapshot(
    taken_at: int,
    balances: Sequence[Balance] = (),
    orders: Sequence[Order] = (),
    positions: Sequence[Position] = (),
    balance_times: dict[str, int] | None = None,
) -> Snapshot:
    return Snapshot(
        taken_at=taken_at,
        balances={b.asset: b for b in balances},
        positions={p.key: p for p in positions},
        open_orders={o.key: o for o in orders},
        balance_times=balance_times or {},
    )


def gap(last_event_time: int | None) -> StreamGap:
    return StreamGap("disconnected", 1.0, 2.0, last_event_time)


def mirror(first: Snapshot, symbols: Sequence[str] = ()) -> Mirror:
    return Mirror(Direct(), first, symbols=symbols)


# -- the first snapshot and the events on top -------------------------------------------------


def test_the_first_snapshot_is_the_state_as_of_its_time() -> None:
    m = mirror(snapshot(1000, [usdt("5")], [order(1, 900)]))

    assert m.state == AccountState(
        balances={"USDT": usdt("5")}, open_orders={("BTCUSDT", 1): order(1, 900)}, as_of=1000
    )


def test_an_event_older_than_the_snapshots_time_of_a_balance_is_not_applied_twice() -> None:
    m = mirror(snapshot(1000, [usdt("5")], balance_times={"USDT": 990}))

    m.receive(Event(985, [BalanceUpdate(usdt("4"), 980)]))

    assert m.state.balances["USDT"] == usdt("5")


def test_an_event_newer_than_the_snapshot_is_applied_on_top() -> None:
    m = mirror(snapshot(1000, [usdt("5")], balance_times={"USDT": 990}))

    m.receive(Event(1001, [BalanceUpdate(usdt("7"), 1001)]))

    assert m.state.balances["USDT"] == usdt("7")
    assert m.state.as_of == 1001


def test_an_order_update_older_than_the_orders_update_time_is_ignored() -> None:
    m = mirror(snapshot(1000, orders=[order(1, 995, "PARTIALLY_FILLED", "1")]))

    m.receive(Event(991, [OrderUpdate(order(1, 990))]))

    assert m.state.open_orders[("BTCUSDT", 1)].executed_quantity == Decimal("1")


def test_a_new_order_the_snapshot_lacks_and_older_than_taken_at_is_ignored() -> None:
    m = mirror(snapshot(1000))

    m.receive(Event(990, [OrderUpdate(order(7, 990))]))

    assert m.state.open_orders == {}


def test_a_new_order_the_snapshot_lacks_at_or_after_taken_at_is_applied() -> None:
    m = mirror(snapshot(1000))

    m.receive(Event(1000, [OrderUpdate(order(7, 1000))]))

    assert ("BTCUSDT", 7) in m.state.open_orders


def test_two_events_of_one_order_in_one_millisecond_both_apply() -> None:
    m = mirror(snapshot(1000))

    m.receive(Event(1001, [OrderUpdate(order(7, 1001, "PARTIALLY_FILLED", "1"))]))
    m.receive(Event(1001, [OrderUpdate(order(7, 1001, "PARTIALLY_FILLED", "1.5"))]))

    assert m.state.open_orders[("BTCUSDT", 7)].executed_quantity == Decimal("1.5")


def test_a_closed_order_is_removed() -> None:
    m = mirror(snapshot(1000, orders=[order(1, 900)]))

    m.receive(Event(1001, [OrderUpdate(order(1, 1001, "FILLED", "2"))]))

    assert m.state.open_orders == {}


def test_a_late_event_of_a_closed_order_does_not_bring_it_back() -> None:
    m = mirror(snapshot(1000))
    m.receive(Event(1001, [OrderUpdate(order(7, 1001))]))
    m.receive(Event(1003, [OrderUpdate(order(7, 1003, "FILLED", "2"))]))

    m.receive(Event(1002, [OrderUpdate(order(7, 1002, "PARTIALLY_FILLED", "1"))]))

    assert m.state.open_orders == {}


def test_the_mirror_remembers_only_the_latest_closed_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    """An account placing millions of orders between two heals must not grow the mirror unbounded."""
    monkeypatch.setattr(mirror_module, "CLOSED_KEPT", 3)
    m = mirror(snapshot(1000))
    for order_id in range(1, 101):
        placed, filled = 1000 + 2 * order_id, 1001 + 2 * order_id
        m.receive(Event(placed, [OrderUpdate(order(order_id, placed))]))
        m.receive(Event(filled, [OrderUpdate(order(order_id, filled, "FILLED", "2"))]))

    remembered = [key for key in m._known if key[0] == "order"]
    assert sorted(remembered) == [("order", ("BTCUSDT", n)) for n in (98, 99, 100)]
    assert m.state.open_orders == {}


def test_trades_well_behind_the_stream_are_forgotten_between_heals_and_never_recovered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mirror_module, "DELIVERED_KEPT", 5)
    m = mirror(snapshot(1000))
    for trade_id in range(1, 21):  # a trade every 10 s
        m.receive(Event(10_000 * trade_id + 1000, [TradeSeen(trade(trade_id, 10_000 * trade_id + 1000))]))

    assert len(m._delivered) <= 5 + mirror_module.DELIVERED_SLACK_MS // 10_000 + 1 < 20
    m.receive(StreamGap("disconnected", 0.0, 1.0, last_event_time=1000))  # a gap dated far back
    healed = m.heal(snapshot(300_000), [trade(n, 10_000 * n + 1000) for n in range(1, 21)])
    assert healed.recovered_trades == ()  # every one was streamed: none twice


def test_a_zero_balance_is_removed() -> None:
    m = mirror(snapshot(1000, [usdt("5")]))

    m.receive(Event(1001, [BalanceUpdate(usdt("0", "0"), 1001)]))

    assert m.state.balances == {}


def test_a_zero_position_is_removed() -> None:
    m = mirror(snapshot(1000, positions=[position("1")]))

    m.receive(Event(1001, [PositionUpdate(position("0"), 1001)]))

    assert m.state.positions == {}


def test_an_amount_an_update_leaves_out_keeps_the_known_one() -> None:
    m = mirror(snapshot(1000, [Balance("USDT", wallet=Decimal("5"), cross_wallet=Decimal("4"))]))

    m.receive(Event(1001, [BalanceUpdate(Balance("USDT", wallet=Decimal("6")), 1001)]))

    assert m.state.balances["USDT"] == Balance("USDT", wallet=Decimal("6"), cross_wallet=Decimal("4"))


def test_a_balance_without_a_time_in_the_snapshot_takes_the_snapshots_time() -> None:
    m = mirror(snapshot(1000, [usdt("5")]))

    m.receive(Event(999, [BalanceUpdate(usdt("4"), 999)]))
    assert m.state.balances["USDT"] == usdt("5")
    m.receive(Event(1001, [BalanceUpdate(usdt("4"), 1001)]))
    assert m.state.balances["USDT"] == usdt("4")


# -- gaps and heals ----------------------------------------------------------------------------


def test_a_gap_makes_the_state_stale_and_is_delivered() -> None:
    m = mirror(snapshot(1000))

    assert m.receive(gap(1000)) is True
    assert m.state.stale


def test_a_heal_replaces_the_state_and_lists_each_change_with_before_and_after() -> None:
    m = mirror(snapshot(1000, [usdt("5")], [order(1, 900), order(2, 900)]))
    m.receive(gap(1000))

    healed = m.heal(snapshot(2000, [usdt("3")], [order(2, 900), order(3, 1500)]), [])

    assert healed.changes == (
        Change("balance", "USDT", usdt("5"), usdt("3")),
        Change("order", ("BTCUSDT", 1), order(1, 900), None),
        Change("order", ("BTCUSDT", 3), None, order(3, 1500)),
    )
    assert healed.state == m.state
    assert not m.state.stale
    assert m.state.as_of == 2000


def test_a_heal_recovers_the_trades_the_stream_did_not_deliver_oldest_first() -> None:
    m = mirror(snapshot(1000))
    m.receive(Event(1100, [TradeSeen(trade(1, 1100))]))
    m.receive(gap(1100))

    healed = m.heal(snapshot(2000), [trade(3, 1300), trade(1, 1100), trade(2, 1200)])

    assert healed.recovered_trades == (trade(2, 1200), trade(3, 1300))


def test_a_heal_does_not_recover_a_trade_the_stream_has_buffered() -> None:
    m = mirror(snapshot(1000))
    m.receive(gap(1000))
    coming = Event(1500, [TradeSeen(trade(2, 1400))])

    healed = m.heal(snapshot(2000), [trade(1, 1200), trade(2, 1400)], streamed=[coming])

    assert healed.recovered_trades == (trade(1, 1200),)
    assert m.receive(coming) is True


def test_a_streamed_trade_already_recovered_is_applied_but_not_delivered_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = mirror(snapshot(1000))
    m.receive(gap(1000))
    m.heal(snapshot(1300), [trade(1, 1200)])
    late = Event(1500, [TradeSeen(trade(1, 1200)), OrderUpdate(order(1, 1400, "PARTIALLY_FILLED", "1"))])

    with caplog.at_level(logging.DEBUG, "binance_userstream.account"):
        delivered = m.receive(late)

    assert delivered is False
    assert ("BTCUSDT", 1) in m.state.open_orders
    assert "already delivered" in caplog.text


def test_a_recovered_trade_is_not_recovered_again_by_a_later_heal() -> None:
    m = mirror(snapshot(1000))
    m.receive(gap(1000))
    m.heal(snapshot(1300), [trade(1, 1200)])
    m.receive(gap(None))

    healed = m.heal(snapshot(1400), [trade(1, 1200), trade(2, 1350)])

    assert healed.recovered_trades == (trade(2, 1350),)


def test_a_gap_dated_before_a_heal_does_not_recover_the_trades_streamed_before_it_again() -> None:
    """A gap's last event may be dated before events already applied (an eventStreamTerminated's `E`
    from another server, behind the traffic's): the trades streamed before the previous heal were
    delivered, and a later heal does not deliver them again (found by tests/test_account_properties.py)."""
    m = mirror(snapshot(1000))
    m.receive(Event(1010, [TradeSeen(trade(1, 1010))]))
    m.receive(Event(1016, []))
    m.receive(gap(1016))
    m.heal(snapshot(1100), [trade(1, 1010), trade(2, 1018)])
    m.receive(gap(1009))

    healed = m.heal(snapshot(1200), [trade(1, 1010), trade(2, 1018), trade(3, 1150)])

    assert healed.recovered_trades == (trade(3, 1150),)


def test_trades_before_the_window_are_not_recovered() -> None:
    m = mirror(snapshot(1000))
    m.receive(gap(1500))

    healed = m.heal(snapshot(2000), [trade(1, 1400), trade(2, 1600)])

    assert healed.recovered_trades == (trade(2, 1600),)


def test_the_trade_window_starts_at_the_gaps_last_event_or_the_first_snapshot() -> None:
    m = mirror(snapshot(1000))
    m.receive(gap(None))
    assert m.recovery(snapshot(2000)).start_time == 1000

    m.heal(snapshot(2000), [])
    m.receive(gap(2500))
    assert m.recovery(snapshot(3000)).start_time == 2500


def test_the_symbols_recovered_are_the_active_the_traded_and_the_users() -> None:
    m = mirror(
        snapshot(1000, orders=[order(1, 900, symbol="AUSDT")], positions=[position("1", "BUSDT")]), ["CUSDT"]
    )
    m.receive(Event(1100, [TradeSeen(trade(1, 1100, symbol="DUSDT"))]))
    m.receive(Event(1101, [OrderUpdate(order(1, 1101, "FILLED", "2", symbol="AUSDT"))]))
    m.receive(gap(1101))

    recovery = m.recovery(snapshot(2000, orders=[order(9, 1500, symbol="EUSDT")]))

    assert recovery == Recovery(1101, ("AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"))


def test_the_state_never_goes_back_to_an_older_snapshot() -> None:
    m = mirror(snapshot(2000, [usdt("5")]))
    m.receive(gap(2000))

    m.heal(snapshot(1000, [usdt("1")]), [])

    assert m.state.balances["USDT"] == usdt("5")
    assert not m.state.stale


def test_events_after_a_heal_apply_on_top_of_its_snapshot_by_the_same_rules() -> None:
    m = mirror(snapshot(1000, [usdt("5")]))
    m.receive(gap(1000))
    m.heal(snapshot(2000, [usdt("3")], balance_times={"USDT": 1900}), [])

    m.receive(Event(1800, [BalanceUpdate(usdt("9"), 1800)]))
    assert m.state.balances["USDT"] == usdt("3")
    m.receive(Event(2100, [BalanceUpdate(usdt("8"), 2100)]))
    assert m.state.balances["USDT"] == usdt("8")


# -- the plans: what a heal asks REST --------------------------------------------------------


def _carry_out(plan: Any, answer: Any) -> Any:
    asked = []
    reply = None
    try:
        while True:
            call = plan.send(reply)
            asked.append(call)
            reply = answer(call)
    except StopIteration as done:
        return asked, done.value


def test_a_snapshot_reads_the_exchanges_time_first_and_dates_the_snapshot_with_it() -> None:
    first = snapshot(0, [usdt("5")])

    class Time:
        server_time = 1234

    answers = iter([Time(), first])
    asked, taken = _carry_out(snapshot_plan(Direct(), None, 0), lambda call: next(answers))

    assert len(asked) == 2
    assert taken.taken_at == 1234
    assert taken.balances == first.balances


def test_without_a_time_call_a_snapshot_is_dated_early_by_the_margin_a_local_clock_may_be_ahead() -> None:
    class Untimed(Direct):
        def time_call(self) -> Call | None:
            return None

    first = snapshot(0, [usdt("5")])
    asked, taken = _carry_out(snapshot_plan(Untimed(), None, 1_000_000), lambda call: first)

    assert len(asked) == 1
    assert taken.taken_at == 1_000_000 - UNTIMED_MARGIN_MS


def test_a_full_page_of_trades_asks_for_the_next_from_the_last_id_plus_one() -> None:
    pages = {None: [trade(1, 10), trade(2, 11)], 3: [trade(3, 12)]}

    asked, trades = _carry_out(
        trades_plan(Direct(), Recovery(10, ("BTCUSDT",))), lambda call: pages[call.arguments["from_id"]]
    )

    assert [call.arguments["from_id"] for call in asked] == [None, 3]
    assert trades == [trade(1, 10), trade(2, 11), trade(3, 12)]


# -- a property: any interleaving of events and one snapshot ---------------------------------

_STEPS = st.one_of(
    st.tuples(st.just("balance"), st.sampled_from(["USDT", "BTC"]), st.integers(0, 3)),
    st.tuples(
        st.just("order"),
        st.integers(1, 3),
        st.sampled_from(["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED"]),
    ),
)


def _event(i: int, step: tuple[str, Any, Any]) -> Event:
    time = 100 + i
    if step[0] == "balance":
        return Event(time, [BalanceUpdate(Balance(step[1], free=Decimal(step[2])), time)])
    return Event(time, [OrderUpdate(order(step[1], time, step[2], str(i)))])


def _apply_all(events: Sequence[Event]) -> tuple[dict[str, Balance], dict[Any, Order], dict[str, int]]:
    """The account after `events`, applied one after the other (the truth), and each balance's time."""
    balances: dict[str, Balance] = {}
    orders: dict[Any, Order] = {}
    times: dict[str, int] = {}
    for event in events:
        for update in event.updates:
            if isinstance(update, BalanceUpdate):
                balances[update.balance.asset] = update.balance
                times[update.balance.asset] = update.time
            elif isinstance(update, OrderUpdate):
                orders[update.order.key] = update.order
    return (
        {a: b for a, b in balances.items() if not b.is_zero},
        {k: o for k, o in orders.items() if o.is_open},
        times,
    )


@given(st.lists(_STEPS, min_size=1, max_size=16), st.data())
def test_events_and_a_snapshot_taken_anywhere_among_them_give_the_state_the_events_give(
    steps: list[tuple[str, Any, Any]], data: st.DataObject
) -> None:
    events = [_event(i, step) for i, step in enumerate(steps)]
    cut = data.draw(st.integers(0, len(events)), "the snapshot includes the first `cut` events")
    buffered_from = data.draw(st.integers(0, cut), "the stream delivers from there on")
    balances, orders, times = _apply_all(events[:cut])
    taken_at = 100 + cut - 1 if cut else 99
    m = mirror(Snapshot(taken_at, balances, {}, orders, balance_times=times))

    for event in events[buffered_from:]:
        m.receive(event)

    balances, orders, _ = _apply_all(events)
    assert m.state.balances == balances
    assert m.state.open_orders == orders
