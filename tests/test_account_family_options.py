"""Options' family reads Binance's documented answers and events as the mirror's shapes.

REST samples: tests/data/derivatives_read_samples.json (the docs pages of `GET /eapi/v1/marginAccount`,
`/eapi/v1/position`, `/eapi/v1/openOrders`, `/eapi/v1/userTrades`). Events: tests/data/events/options/
(https://developers.binance.com/docs/derivatives/options-trading/user-data-streams), decoded with
Options' own table, as its stream decodes them.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from binance_userstream_client.api.options import (
    get_options_margin_account,
    get_options_open_orders,
    get_options_positions,
    get_options_server_time,
    get_options_user_trades,
)
from binance_userstream_client.models import (
    OptionsAccount,
    OptionsAccountAsset,
    OptionsOpenOrder,
    OptionsPosition,
    OptionsServerTime,
    OptionsTrade,
    UnknownEvent,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_userstream._markets import MARKETS
from binance_userstream.account._family import (
    BalanceUpdate,
    Family,
    OrderUpdate,
    PositionUpdate,
    Snapshot,
    TradeSeen,
    Update,
)
from binance_userstream.account._options import OptionsFamily
from binance_userstream.account._state import Balance, Order, Position, Trade
from binance_userstream.stream._decode import decode

DATA = Path(__file__).parent / "data"
REST = json.loads((DATA / "derivatives_read_samples.json").read_text())
FAMILY: Family = OptionsFamily()


def event_sample(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / "events" / "options" / f"{name}.json").read_text())
    return payload


def decoded(payload: dict[str, Any]) -> object:
    return decode(json.dumps(payload), MARKETS["options"].event_types)


def account(assets: list[dict[str, Any]]) -> dict[str, Any]:
    """The docs' margin account answer, with `assets` as its `asset[]`."""
    return {**REST["get_options_margin_account"], "asset": assets}


def asset(**fields: Any) -> dict[str, Any]:
    return {**REST["get_options_margin_account"]["asset"][0], **fields}


def position(**fields: Any) -> dict[str, Any]:
    return {**REST["get_options_positions"][0], **fields}


def open_order(**fields: Any) -> dict[str, Any]:
    return {**REST["get_options_open_orders"][0], **fields}


def snapshot(
    margin: dict[str, Any] | None = None,
    positions: list[dict[str, Any]] | None = None,
    orders: list[dict[str, Any]] | None = None,
) -> Snapshot:
    answers = [
        OptionsAccount.from_dict(REST["get_options_margin_account"] if margin is None else margin),
        [
            OptionsPosition.from_dict(row)
            for row in (REST["get_options_positions"] if positions is None else positions)
        ],
        [
            OptionsOpenOrder.from_dict(row)
            for row in (REST["get_options_open_orders"] if orders is None else orders)
        ],
    ]
    return FAMILY.snapshot(answers, taken_at=1_700_000_000_000)


# --- the calls ---------------------------------------------------------------------------------


def test_options_snapshots_are_dated_by_options_server_time() -> None:
    call = FAMILY.time_call()

    assert call is not None
    assert (call.operation, call.model) == (get_options_server_time, OptionsServerTime)


def test_snapshot_calls_read_the_margin_account_then_positions_then_open_orders() -> None:
    calls = FAMILY.snapshot_calls(None)
    assert [(call.operation, call.model) for call in calls] == [
        (get_options_margin_account, OptionsAccount),
        (get_options_positions, list),
        (get_options_open_orders, list),
    ]
    for call in calls:  # the generated operation builds each request from the call's arguments
        assert call.operation._get_kwargs(**call.arguments)["method"] == "get"


def test_trade_calls_ask_a_symbols_trades_from_a_time() -> None:
    (call,) = FAMILY.trade_calls("BTC-251123-126000-C", 1_700_000_000_000, None)
    assert (call.operation, call.model) == (get_options_user_trades, list)
    request = call.operation._get_kwargs(**call.arguments)
    assert request["url"] == "/eapi/v1/userTrades"
    assert request["params"] == {
        "symbol": "BTC-251123-126000-C",
        "startTime": 1_700_000_000_000,
        "limit": FAMILY.page_size,
    }


def test_the_next_page_of_trades_is_asked_by_id_alone() -> None:
    (call,) = FAMILY.trade_calls("BTC-251123-126000-C", 1_700_000_000_000, 240)
    params = call.operation._get_kwargs(**call.arguments)["params"]
    assert params == {"symbol": "BTC-251123-126000-C", "fromId": 240, "limit": FAMILY.page_size}


def test_a_page_holds_userTrades_maximum_limit() -> None:
    assert FAMILY.page_size == 1000


# --- the snapshot --------------------------------------------------------------------------------


def test_a_balance_is_the_margin_balance_as_the_wallet() -> None:
    balance = snapshot().balances["USDT"]
    assert balance == Balance("USDT", wallet=Decimal("99998.87365244"))
    assert isinstance(balance.raw, OptionsAccountAsset)


def test_balances_carry_no_time_of_their_own() -> None:
    """The answer's `time` is when it was made, not when a balance changed: the mirror uses taken_at."""
    assert snapshot().balance_times == {}


def test_a_zero_balance_is_absent() -> None:
    assert snapshot(account([asset(marginBalance="0.00000000")])).balances == {}


def test_a_snapshot_is_dated_by_the_time_read_before_it_not_by_the_answers_time() -> None:
    """The margin account's `time` is when its answer was made, after the time call: dating the
    snapshot by it would be later than the reads began (a late date loses the events just after)."""
    answer = {**REST["get_options_margin_account"], "time": 1_600_000_000_000}

    assert snapshot(answer).taken_at == 1_700_000_000_000  # the time call's, as snapshot() passes it


def test_a_short_position_is_negative_and_keyed_both() -> None:
    """The docs' sample: side SHORT, quantity -0.1."""
    assert snapshot().positions == {
        ("BTC-200730-9000-C", "BOTH"): Position("BTC-200730-9000-C", "BOTH", Decimal("-0.1"), Decimal("1000"))
    }


def test_a_short_position_sent_unsigned_is_negative_all_the_same() -> None:
    taken = snapshot(positions=[position(quantity="0.1")])
    assert taken.positions["BTC-200730-9000-C", "BOTH"].amount == Decimal("-0.1")


def test_a_long_position_is_positive() -> None:
    taken = snapshot(positions=[position(side="LONG", quantity="2")])
    assert taken.positions["BTC-200730-9000-C", "BOTH"].amount == Decimal("2")


def test_a_zero_position_is_absent() -> None:
    assert snapshot(positions=[position(quantity="0")]).positions == {}


def test_positions_carry_no_time_of_their_own() -> None:
    assert snapshot(positions=REST["get_options_positions, options-trading page"]).position_times == {}


def test_an_open_order_is_read_with_its_update_time() -> None:
    order = snapshot().open_orders["BTC-200730-9000-C", 4611875134427365377]
    assert order == Order(
        symbol="BTC-200730-9000-C",
        order_id=4611875134427365377,
        client_order_id="",
        side="BUY",
        type="LIMIT",
        status="NEW",
        price=Decimal("100"),
        quantity=Decimal("1"),
        executed_quantity=Decimal("0"),
    )
    assert order.update_time == 1592465880683
    assert isinstance(order.raw, OptionsOpenOrder)


def test_rest_accepted_is_the_streams_new() -> None:
    """REST calls an open order without fills ACCEPTED; the stream's order status says NEW."""
    assert snapshot().open_orders["BTC-200730-9000-C", 4611875134427365377].status == "NEW"
    partly = snapshot(orders=[open_order(status="PARTIALLY_FILLED", executedQty="0.5")])
    assert partly.open_orders["BTC-200730-9000-C", 4611875134427365377].status == "PARTIALLY_FILLED"


def test_a_trade_is_read_by_its_trade_id_with_its_fee_as_commission() -> None:
    """`tradeId` is the stream's `t`; `id` is the record's own number."""
    rows = [OptionsTrade.from_dict(row) for row in REST["get_options_user_trades"]]
    assert FAMILY.trades([rows]) == [
        Trade(
            "BTC-200730-9000-C", 239, 4611875134427365377, "BUY", Decimal("100"), Decimal("1"), Decimal("0"),
            "USDT", 1592465880683,
        )
    ]  # fmt: skip


# --- the events ----------------------------------------------------------------------------------


def test_a_balance_position_update_sets_the_wallet_at_its_transaction_time() -> None:
    updates = FAMILY.updates(decoded(event_sample("BALANCE_POSITION_UPDATE")))
    assert updates[0] == BalanceUpdate(Balance("USDT", wallet=Decimal("10000471.379409")), 1762917544206)


def test_a_balance_position_update_sets_a_signed_position_with_its_average_entry_price() -> None:
    """P[]: `c` the quantity (negative: short), `a` the average entry price, `p` the position's value."""
    updates = FAMILY.updates(decoded(event_sample("BALANCE_POSITION_UPDATE")))
    assert updates[1:] == [
        PositionUpdate(
            Position("BTC-251123-126000-C", "BOTH", Decimal("-0.1"), Decimal("1200")), 1762917544206
        )
    ]


def test_a_closed_position_is_an_update_of_zero() -> None:
    payload = event_sample("BALANCE_POSITION_UPDATE")
    payload["P"][0]["c"] = "0.0000"
    (_, update) = FAMILY.updates(decoded(payload))
    assert isinstance(update, PositionUpdate)
    assert update.position.amount == 0


def test_a_balance_update_without_positions_sets_only_balances() -> None:
    payload = event_sample("BALANCE_POSITION_UPDATE")
    del payload["P"]
    assert [type(u) for u in FAMILY.updates(decoded(payload))] == [BalanceUpdate]


def test_an_order_update_tells_the_order_at_its_transaction_time() -> None:
    (update,) = FAMILY.updates(decoded(event_sample("ORDER_TRADE_UPDATE")))
    assert isinstance(update, OrderUpdate)
    assert update.order == Order(
        symbol="BTCUSDT",
        order_id=8886774,
        client_order_id="TEST",
        side="SELL",
        type="TRAILING_STOP_MARKET",
        status="NEW",
        price=Decimal("0"),
        quantity=Decimal("0.001"),
        executed_quantity=Decimal("0"),
    )
    assert update.order.update_time == 1568879465650


def fill(**order: Any) -> dict[str, Any]:
    """The docs' ORDER_TRADE_UPDATE as the fill that completes an option's order."""
    payload = copy.deepcopy(event_sample("ORDER_TRADE_UPDATE"))
    payload["o"].update(
        {
            "s": "BTC-251123-126000-C",
            "o": "LIMIT",
            "x": "TRADE",
            "X": "FILLED",
            "t": 240,
            "L": "1200",
            "l": "0.001",
            "z": "0.001",
            "n": "0.03",
            **order,
        }
    )
    return payload


def test_a_filled_order_is_no_longer_open() -> None:
    update = FAMILY.updates(decoded(fill()))[0]
    assert isinstance(update, OrderUpdate)
    assert not update.order.is_open


def test_a_fill_is_a_trade_seen() -> None:
    assert FAMILY.updates(decoded(fill()))[1:] == [
        TradeSeen(
            Trade(
                "BTC-251123-126000-C", 240, 8886774, "SELL", Decimal("1200"), Decimal("0.001"),
                Decimal("0.03"), "USDT", 1568879465650,
            )
        )
    ]  # fmt: skip


def test_account_and_greek_updates_change_nothing() -> None:
    """ACCOUNT_UPDATE is account-wide (equity, margins in USDT: no per-asset amount); GREEK_UPDATE
    and RISK_LEVEL_CHANGE hold nothing the mirror keeps."""
    for name in ("ACCOUNT_UPDATE", "GREEK_UPDATE", "RISK_LEVEL_CHANGE", "listenKeyExpired"):
        event = decoded(event_sample(name))
        assert not isinstance(event, UnknownEvent), name
        assert FAMILY.updates(event) == [], name


def test_an_unknown_event_changes_nothing() -> None:
    assert FAMILY.updates(decode('{"e": "somethingNew", "E": 1}', MARKETS["options"].event_types)) == []
    assert FAMILY.updates(decode("[1, 2]", MARKETS["options"].event_types)) == []


# --- snapshot and events agree -------------------------------------------------------------------

_amounts = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False)
_signed = st.decimals(min_value=-(10**3), max_value=10**3, places=2, allow_nan=False, allow_infinity=False)
_symbols = st.sampled_from(["BTC-251123-126000-C", "BTC-251123-90000-P", "ETH-251226-4000-C"])
_orders = st.dictionaries(
    st.tuples(_symbols, st.integers(1, 2**62)),
    st.tuples(st.sampled_from(["BUY", "SELL"]), st.sampled_from(["ACCEPTED", "PARTIALLY_FILLED"]), _amounts),
)


def text(amount: Decimal) -> str:
    return format(amount, "f")


def fold(updates: list[Update]) -> tuple[dict[str, Balance], dict[Any, Position], dict[Any, Order]]:
    """The simplest reading of updates (each applied in order; a None amount keeps the one known)."""
    balances: dict[str, Balance] = {}
    positions: dict[Any, Position] = {}
    orders: dict[Any, Order] = {}
    for update in updates:
        if isinstance(update, BalanceUpdate):
            new = update.balance
            known = {
                f.name: getattr(new, f.name)
                for f in attrs.fields(Balance)[1:-1]
                if getattr(new, f.name) is not None
            }
            balances[new.asset] = attrs.evolve(balances.get(new.asset, Balance(new.asset)), **known)
        elif isinstance(update, PositionUpdate):
            positions[update.position.key] = update.position
        elif isinstance(update, OrderUpdate):
            orders[update.order.key] = update.order
    return (
        {asset: b for asset, b in balances.items() if not b.is_zero},
        {key: p for key, p in positions.items() if p.amount != 0},
        {key: o for key, o in orders.items() if o.is_open},
    )


@settings(max_examples=60, deadline=None)
@given(
    balances=st.dictionaries(st.sampled_from(["USDT", "BTC"]), _amounts),
    positions=st.dictionaries(_symbols, st.tuples(_signed, _amounts)),
    orders=_orders,
)
def test_a_snapshot_equals_the_events_that_built_the_account(
    balances: dict[str, Decimal],
    positions: dict[str, tuple[Decimal, Decimal]],
    orders: dict[tuple[str, int], tuple[str, str, Decimal]],
) -> None:
    """One account, written as REST answers it (a short position SHORT with a negative quantity, an
    unfilled order ACCEPTED) and as the events that built it, reads the same both ways."""
    rest_orders = [
        open_order(
            symbol=s, orderId=i, side=side, status=status, quantity=text(q), executedQty="0", price="5"
        )
        for (s, i), (side, status, q) in orders.items()
    ]
    taken = snapshot(
        account([asset(asset=name, marginBalance=text(amount)) for name, amount in balances.items()]),
        [
            position(symbol=s, side="SHORT" if c < 0 else "LONG", quantity=text(c), entryPrice=text(a))
            for s, (c, a) in positions.items()
        ],
        rest_orders,
    )
    balance_position = {
        "e": "BALANCE_POSITION_UPDATE",
        "E": 2,
        "T": 1,
        "m": "ORDER",
        "B": [{"a": name, "b": text(amount), "bc": "0"} for name, amount in balances.items()],
        "P": [{"s": s, "c": text(c), "p": "0", "a": text(a)} for s, (c, a) in positions.items()],
    }
    order_updates = [
        fill(
            s=s,
            i=i,
            c="",
            S=side,
            x="NEW",
            X="NEW" if status == "ACCEPTED" else status,
            q=text(q),
            z="0",
            p="5",
        )
        for (s, i), (side, status, q) in orders.items()
    ]
    from_events = fold(
        [u for payload in (balance_position, *order_updates) for u in FAMILY.updates(decoded(payload))]
    )

    assert from_events == (taken.balances, taken.positions, taken.open_orders)
