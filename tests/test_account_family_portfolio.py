"""Portfolio Margin's family reads Binance's documented answers and events as the mirror's shapes.

REST samples: tests/data/derivatives_read_samples.json (the docs pages of `GET /papi/v1/balance`,
`/papi/v1/um|cm/positionRisk`, `/papi/v1/um|cm/openOrders`, `/papi/v1/um|cm/userTrades`). Events:
tests/data/events/portfolio/*.json (https://developers.binance.com/docs/derivatives/portfolio-margin/
user-data-streams), decoded with Portfolio Margin's own table, as its stream decodes them.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from binance_userstream_client.api.portfolio import (
    get_portfolio_balance,
    get_portfolio_cm_open_orders,
    get_portfolio_cm_position_risk,
    get_portfolio_cm_user_trades,
    get_portfolio_um_open_orders,
    get_portfolio_um_position_risk,
    get_portfolio_um_user_trades,
)
from binance_userstream_client.models import (
    PortfolioBalance,
    PortfolioCmOpenOrder,
    PortfolioCmPositionRisk,
    PortfolioCmTrade,
    PortfolioUmOpenOrder,
    PortfolioUmPositionRisk,
    PortfolioUmTrade,
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
from binance_userstream.account._mirror import Mirror
from binance_userstream.account._portfolio import PortfolioFamily
from binance_userstream.account._state import Balance, Order, Position, Trade
from binance_userstream.stream._decode import decode

DATA = Path(__file__).parent / "data"
REST = json.loads((DATA / "derivatives_read_samples.json").read_text())
FAMILY: Family = PortfolioFamily()


def event_sample(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / "events" / "portfolio" / f"{name}.json").read_text())
    return payload


def decoded(payload: dict[str, Any]) -> object:
    return decode(json.dumps(payload), MARKETS["portfolio"].event_types)


def answers(**changes: list[dict[str, Any]]) -> list[list[Any]]:
    """The snapshot calls' answers: the docs' samples, or `changes`' rows by operation name."""
    rows = {name: changes.get(name, REST[name]) for name in _MODELS}
    return [[model.from_dict(row) for row in rows[name]] for name, model in _MODELS.items()]


_MODELS: dict[str, Any] = {
    "get_portfolio_balance": PortfolioBalance,
    "get_portfolio_um_position_risk": PortfolioUmPositionRisk,
    "get_portfolio_cm_position_risk": PortfolioCmPositionRisk,
    "get_portfolio_um_open_orders": PortfolioUmOpenOrder,
    "get_portfolio_cm_open_orders": PortfolioCmOpenOrder,
}


def snapshot(**changes: list[dict[str, Any]]) -> Snapshot:
    return FAMILY.snapshot(answers(**changes), taken_at=1_700_000_000_000)


def row(name: str, **fields: Any) -> dict[str, Any]:
    """The docs' first row of `name`'s answer, with `fields` changed."""
    return {**REST[name][0], **fields}


# --- the calls ---------------------------------------------------------------------------------


def test_portfolio_margin_has_no_time_call() -> None:
    """papi.binance.com serves no time endpoint in the spec; USD-M's is on another host."""
    assert FAMILY.time_call() is None


def test_snapshot_calls_read_balance_then_um_and_cm_positions_then_open_orders() -> None:
    calls = FAMILY.snapshot_calls(None)
    assert [call.operation for call in calls] == [
        get_portfolio_balance,
        get_portfolio_um_position_risk,
        get_portfolio_cm_position_risk,
        get_portfolio_um_open_orders,
        get_portfolio_cm_open_orders,
    ]
    assert all(call.model is list for call in calls)
    for call in calls:  # the generated operation builds each request from the call's arguments
        assert call.operation._get_kwargs(**call.arguments)["method"] == "get"


def test_trade_calls_ask_um_trades_from_a_time_for_a_um_symbol() -> None:
    (call,) = FAMILY.trade_calls("BTCUSDT", 1_700_000_000_000, None)
    assert call.operation is get_portfolio_um_user_trades
    assert call.model is list
    request = call.operation._get_kwargs(**call.arguments)
    assert request["url"] == "/papi/v1/um/userTrades"
    assert request["params"] == {
        "symbol": "BTCUSDT",
        "startTime": 1_700_000_000_000,
        "limit": FAMILY.page_size,
    }


def test_trade_calls_ask_cm_trades_for_a_symbol_with_an_underscore() -> None:
    (call,) = FAMILY.trade_calls("BTCUSD_PERP", 1_700_000_000_000, None)
    assert call.operation is get_portfolio_cm_user_trades
    assert call.operation._get_kwargs(**call.arguments)["url"] == "/papi/v1/cm/userTrades"


def test_the_next_page_of_trades_is_asked_by_id_alone() -> None:
    """Binance refuses `fromId` with `startTime` on both userTrades endpoints."""
    (call,) = FAMILY.trade_calls("BTCUSD_200626", 1_700_000_000_000, 7)
    params = call.operation._get_kwargs(**call.arguments)["params"]
    assert params == {"symbol": "BTCUSD_200626", "fromId": 7, "limit": FAMILY.page_size}


def test_a_page_holds_userTrades_maximum_limit() -> None:
    assert FAMILY.page_size == 1000


# --- the snapshot --------------------------------------------------------------------------------


def test_a_balance_holds_cross_margin_free_and_locked_and_the_um_and_cm_wallets() -> None:
    balance = snapshot().balances["USDT"]
    assert balance == Balance(
        "USDT",
        free=Decimal("100"),
        locked=Decimal("3"),
        um_wallet=Decimal("0"),
        cm_wallet=Decimal("23.72469206"),
    )
    assert isinstance(balance.raw, PortfolioBalance)


def test_a_balance_is_dated_by_its_update_time() -> None:
    assert snapshot().balance_times == {"USDT": 1617939110373}


def test_a_balance_of_zeros_is_absent() -> None:
    zeros = {"crossMarginFree": "0", "crossMarginLocked": "0", "umWalletBalance": "0", "cmWalletBalance": "0"}
    assert snapshot(get_portfolio_balance=[row("get_portfolio_balance", **zeros)]).balances == {}


def test_zero_positions_are_absent() -> None:
    """The docs' samples are flat positions (positionAmt 0)."""
    assert snapshot().positions == {}


def test_um_and_cm_positions_are_signed_and_dated_by_their_update_time() -> None:
    um = row("get_portfolio_um_position_risk", positionAmt="-0.5", entryPrice="6500.5")
    cm = row("get_portfolio_cm_position_risk", positionAmt="3", entryPrice="9000")
    taken = snapshot(get_portfolio_um_position_risk=[um], get_portfolio_cm_position_risk=[cm])
    assert taken.positions == {
        ("BTCUSDT", "BOTH"): Position("BTCUSDT", "BOTH", Decimal("-0.5"), Decimal("6500.5")),
        ("BTCUSD_201225", "LONG"): Position("BTCUSD_201225", "LONG", Decimal("3"), Decimal("9000")),
    }
    assert taken.position_times == {
        ("BTCUSDT", "BOTH"): 1625474304765,
        ("BTCUSD_201225", "LONG"): 1627026881327,
    }


def test_open_orders_are_um_and_cm_ones_with_their_update_time() -> None:
    orders = snapshot().open_orders
    assert set(orders) == {("BTCUSDT", 1917641), ("BTCUSD_200925", 1917641)}
    um = orders["BTCUSDT", 1917641]
    assert um == Order(
        symbol="BTCUSDT",
        order_id=1917641,
        client_order_id="abc",
        side="BUY",
        type="LIMIT",
        status="NEW",
        price=Decimal("0"),
        quantity=Decimal("0.40"),
        executed_quantity=Decimal("0"),
        position_side="SHORT",
    )
    assert um.update_time == 1579276756075
    assert isinstance(orders["BTCUSD_200925", 1917641].raw, PortfolioCmOpenOrder)


def test_trades_are_read_from_um_and_cm_answers() -> None:
    um = [PortfolioUmTrade.from_dict(item) for item in REST["get_portfolio_um_user_trades"]]
    cm = [PortfolioCmTrade.from_dict(item) for item in REST["get_portfolio_cm_user_trades"]]
    assert FAMILY.trades([um, cm]) == [
        Trade(
            "BTCUSDT", 67880589, 270093109, "SELL", Decimal("28511.00"), Decimal("0.010"),
            Decimal("-0.11404400"), "USDT", 1680688557875,
        ),
        Trade(
            "BTCUSD_200626", 6, 28, "SELL", Decimal("8800"), Decimal("1"), Decimal("0.00000454"), "BTC",
            1590743483586,
        ),
    ]  # fmt: skip


# --- the events ----------------------------------------------------------------------------------


def test_outbound_account_position_sets_free_and_locked_at_its_last_update_time() -> None:
    assert FAMILY.updates(decoded(event_sample("outboundAccountPosition"))) == [
        BalanceUpdate(Balance("ETH", free=Decimal("10000"), locked=Decimal("0")), 1564034571073)
    ]


def test_a_um_account_update_sets_the_um_wallet_at_its_transaction_time() -> None:
    balances = [
        u for u in FAMILY.updates(decoded(event_sample("ACCOUNT_UPDATE"))) if isinstance(u, BalanceUpdate)
    ]
    assert balances == [
        BalanceUpdate(Balance("USDT", um_wallet=Decimal("122624.12345678")), 1564745798938),
        BalanceUpdate(Balance("BUSD", um_wallet=Decimal("1")), 1564745798938),
    ]


def test_a_cm_account_update_sets_the_cm_wallet() -> None:
    updates = FAMILY.updates(decoded({**event_sample("ACCOUNT_UPDATE"), "fs": "CM"}))
    first = next(u for u in updates if isinstance(u, BalanceUpdate))
    assert first.balance == Balance("USDT", cm_wallet=Decimal("122624.12345678"))


def test_an_account_update_without_fs_sets_no_wallet() -> None:
    """Which wallet a B[] entry is cannot be known without `fs`: nothing is guessed."""
    payload = event_sample("ACCOUNT_UPDATE")
    del payload["fs"]
    assert not any(isinstance(u, BalanceUpdate) for u in FAMILY.updates(decoded(payload)))


def test_an_account_update_sets_its_positions_a_zero_one_closed() -> None:
    positions = [
        u for u in FAMILY.updates(decoded(event_sample("ACCOUNT_UPDATE"))) if isinstance(u, PositionUpdate)
    ]
    assert positions == [
        PositionUpdate(Position("BTCUSDT", "BOTH", Decimal("0"), Decimal("0")), 1564745798938),
        PositionUpdate(Position("BTCUSDT", "LONG", Decimal("20"), Decimal("6563.665")), 1564745798938),
    ]


def test_an_order_update_tells_the_order_at_its_transaction_time() -> None:
    (update,) = FAMILY.updates(decoded(event_sample("ORDER_TRADE_UPDATE")))
    assert isinstance(update, OrderUpdate)
    assert update.order == Order(
        symbol="BTCUSDT",
        order_id=8886774,
        client_order_id="TEST",
        side="SELL",
        type="MARKET",
        status="NEW",
        price=Decimal("0"),
        quantity=Decimal("0.001"),
        executed_quantity=Decimal("0"),
        position_side="LONG",
    )
    assert update.order.update_time == 1568879465650
    assert update.order.is_open


def fill(**order: Any) -> dict[str, Any]:
    """The docs' ORDER_TRADE_UPDATE as a fill that completes the order."""
    payload = copy.deepcopy(event_sample("ORDER_TRADE_UPDATE"))
    payload["o"].update(
        {
            "x": "TRADE",
            "X": "FILLED",
            "t": 42,
            "L": "7100.5",
            "l": "0.001",
            "z": "0.001",
            "n": "0.0071",
            **order,
        }
    )
    return payload


def test_a_filled_order_is_no_longer_open() -> None:
    order_update = FAMILY.updates(decoded(fill()))[0]
    assert isinstance(order_update, OrderUpdate)
    assert not order_update.order.is_open
    assert order_update.order.executed_quantity == Decimal("0.001")


def test_a_fill_is_a_trade_seen() -> None:
    updates = FAMILY.updates(decoded(fill()))
    assert updates[1:] == [
        TradeSeen(
            Trade(
                "BTCUSDT", 42, 8886774, "SELL", Decimal("7100.5"), Decimal("0.001"), Decimal("0.0071"),
                "USDT", 1568879465650,
            )
        )
    ]  # fmt: skip


def test_a_fill_without_commission_fields_has_none() -> None:
    """Binance does not push `n` and `N` when a fill carries no commission."""
    payload = fill()
    del payload["o"]["n"], payload["o"]["N"]
    trade = FAMILY.updates(decoded(payload))[1]
    assert isinstance(trade, TradeSeen)
    assert (trade.trade.commission, trade.trade.commission_asset) == (Decimal(0), "")


def test_events_the_mirror_does_not_hold_change_nothing() -> None:
    """The margin side's orders (executionReport) are not mirrored: no margin openOrders in the spec."""
    for name in (
        "executionReport",
        "balanceUpdate",
        "CONDITIONAL_ORDER_TRADE_UPDATE",
        "ALGO_UPDATE",
        "ACCOUNT_CONFIG_UPDATE",
        "liabilityChange",
        "openOrderLoss",
        "riskLevelChange",
        "listenKeyExpired",
    ):
        event = decoded(event_sample(name))
        assert not isinstance(event, UnknownEvent), name
        assert FAMILY.updates(event) == [], name


def test_an_unknown_event_changes_nothing() -> None:
    assert FAMILY.updates(decode('{"e": "somethingNew", "E": 1}', MARKETS["portfolio"].event_types)) == []
    assert FAMILY.updates(decode("not json", MARKETS["portfolio"].event_types)) == []


# --- snapshot and events agree -------------------------------------------------------------------

_amounts = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False)
_signed = st.decimals(min_value=-(10**4), max_value=10**4, places=3, allow_nan=False, allow_infinity=False)
_balances = st.dictionaries(st.sampled_from(["USDT", "BTC", "ETH", "BNB"]), st.tuples(*[_amounts] * 4))
_positions = st.dictionaries(
    st.tuples(st.sampled_from(["BTCUSDT", "ETHUSDT", "BTCUSD_PERP", "ETHUSD_250627"]),
              st.sampled_from(["BOTH", "LONG", "SHORT"])),
    st.tuples(_signed.filter(bool), _amounts),
)  # fmt: skip
_orders = st.dictionaries(
    st.tuples(st.sampled_from(["BTCUSDT", "BTCUSD_PERP"]), st.integers(1, 2**62)),
    st.tuples(
        st.sampled_from(["BUY", "SELL"]), st.sampled_from(["NEW", "PARTIALLY_FILLED"]), _amounts, _amounts
    ),
)


def text(amount: Decimal | None) -> str:
    assert amount is not None
    return format(amount, "f")


def fold(updates: list[Update]) -> tuple[dict[str, Balance], dict[Any, Position], dict[Any, Order]]:
    """The simplest reading of updates (each applied in order; a None amount keeps the one known)."""
    balances: dict[str, Balance] = {}
    positions: dict[Any, Position] = {}
    orders: dict[Any, Order] = {}
    for update in updates:
        if isinstance(update, BalanceUpdate):
            new = update.balance
            old = balances.get(new.asset, Balance(new.asset))
            known = {
                f: getattr(new, f)
                for f in ("free", "locked", "wallet", "cross_wallet", "um_wallet", "cm_wallet")
                if getattr(new, f) is not None
            }
            balances[new.asset] = attrs.evolve(old, **known)
        elif isinstance(update, PositionUpdate):
            positions[update.position.key] = update.position
        elif isinstance(update, OrderUpdate):
            orders[update.order.key] = update.order
    return (
        {asset: b for asset, b in balances.items() if not b.is_zero},
        {key: p for key, p in positions.items() if p.amount != 0},
        {key: o for key, o in orders.items() if o.is_open},
    )  # fmt: skip


def position_row(name: str, position: Position) -> dict[str, Any]:
    return row(
        name,
        symbol=position.symbol,
        positionSide=position.side,
        positionAmt=text(position.amount),
        entryPrice=text(position.entry_price),
    )


def order_row(name: str, order: Order) -> dict[str, Any]:
    return row(
        name,
        symbol=order.symbol,
        orderId=order.order_id,
        clientOrderId=order.client_order_id,
        side=order.side,
        type=order.type,
        status=order.status,
        price=text(order.price),
        origQty=text(order.quantity),
        executedQty=text(order.executed_quantity),
        positionSide=order.position_side,
    )


def account_update(unit: str, balances: dict[str, Balance], positions: list[Position]) -> dict[str, Any]:
    wallets = {asset: b.um_wallet if unit == "UM" else b.cm_wallet for asset, b in balances.items()}
    return {
        "e": "ACCOUNT_UPDATE",
        "fs": unit,
        "E": 1,
        "T": 1,
        "i": "",
        "a": {
            "m": "ORDER",
            "B": [
                {"a": asset, "wb": text(wallet), "cw": "0", "bc": "0"} for asset, wallet in wallets.items()
            ],
            "P": [
                {
                    "s": p.symbol,
                    "pa": text(p.amount),
                    "ep": text(p.entry_price),
                    "cr": "0",
                    "up": "0",
                    "ps": p.side,
                    "bep": "0",
                }
                for p in positions
                if ("_" in p.symbol) == (unit == "CM")
            ],
        },
    }


def order_update(order: Order) -> dict[str, Any]:
    payload = copy.deepcopy(event_sample("ORDER_TRADE_UPDATE"))
    payload["o"].update(
        {
            "s": order.symbol,
            "i": order.order_id,
            "c": order.client_order_id,
            "S": order.side,
            "o": order.type,
            "x": "NEW",
            "X": order.status,
            "p": text(order.price),
            "q": text(order.quantity),
            "z": text(order.executed_quantity),
            "ps": order.position_side,
        }
    )
    return payload


_UM, _CM = "get_portfolio_um_", "get_portfolio_cm_"


def um(item: Position | Order) -> bool:
    return "_" not in item.symbol


@settings(max_examples=60, deadline=None)
@given(balances=_balances, positions=_positions, orders=_orders)
def test_a_snapshot_equals_the_events_that_built_the_account(
    balances: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]],
    positions: dict[tuple[str, str], tuple[Decimal, Decimal]],
    orders: dict[tuple[str, int], tuple[str, str, Decimal, Decimal]],
) -> None:
    """One account, written as REST answers it and as the events that built it (each asset's
    every part reported once), reads the same both ways."""
    accounts = [Balance(asset, *amounts) for asset, amounts in balances.items()]
    every = {
        b.asset: attrs.evolve(b, um_wallet=balances[b.asset][2], cm_wallet=balances[b.asset][3])
        for b in accounts
    }
    held = [Position(symbol, side, amount, entry) for (symbol, side), (amount, entry) in positions.items()]
    open_orders = [
        Order(symbol, order_id, "abc", side, "LIMIT", status, price, quantity, quantity / 2, "SHORT")
        for (symbol, order_id), (side, status, price, quantity) in orders.items()
    ]
    um_held, cm_held = [p for p in held if um(p)], [p for p in held if not um(p)]
    um_orders, cm_orders = [o for o in open_orders if um(o)], [o for o in open_orders if not um(o)]
    taken = FAMILY.snapshot(
        answers(
            get_portfolio_balance=[
                row("get_portfolio_balance", asset=b.asset, crossMarginFree=text(b.free),
                    crossMarginLocked=text(b.locked), umWalletBalance=text(b.um_wallet),
                    cmWalletBalance=text(b.cm_wallet))
                for b in every.values()
            ],
            get_portfolio_um_position_risk=[position_row(_UM + "position_risk", p) for p in um_held],
            get_portfolio_cm_position_risk=[position_row(_CM + "position_risk", p) for p in cm_held],
            get_portfolio_um_open_orders=[order_row(_UM + "open_orders", o) for o in um_orders],
            get_portfolio_cm_open_orders=[order_row(_CM + "open_orders", o) for o in cm_orders],
        ),
        taken_at=1,
    )  # fmt: skip
    margin = {
        "e": "outboundAccountPosition",
        "E": 1,
        "u": 1,
        "U": 1,
        "B": [{"a": b.asset, "f": text(b.free), "l": text(b.locked)} for b in every.values()],
    }
    events = [
        margin,
        account_update("UM", every, held),
        account_update("CM", every, held),
        *(order_update(order) for order in open_orders),
    ]
    from_events = fold([u for payload in events for u in FAMILY.updates(decoded(payload))])

    assert from_events == (taken.balances, taken.positions, taken.open_orders)


def test_an_asset_a_um_event_brings_holds_zero_in_the_amounts_it_leaves_out() -> None:
    """An asset the mirror does not hold had every amount zero: a UM ACCOUNT_UPDATE that brings it
    tells its UM wallet, and its free, locked and CM wallet are zero, not unknown (None), as a
    snapshot taken then reports them; else the state differs by how it was learned (the account
    property found it: a UM fill on an account with no USDT, and no gap after)."""
    mirror = Mirror(FAMILY, FAMILY.snapshot(answers(get_portfolio_balance=[]), taken_at=1_500_000_000_000))
    mirror.receive(decoded(event_sample("ACCOUNT_UPDATE")))
    assert mirror.state.balances["USDT"] == Balance(
        "USDT", free=Decimal(0), locked=Decimal(0), um_wallet=Decimal("122624.12345678"), cm_wallet=Decimal(0)
    )
