"""Spot's, margin's, USD-M's and COIN-M's families read Binance's documented samples as THE MAPPING says.

The events are the samples of tests/data/events/<market>/ (Binance's pages, cited there); the REST
answers are those of tests/data/derivatives_read_samples.json and tests/test_account_operations_spot.py.
Each test parses them into the generated models, as a stream or `uds.call` would, and checks the
mirror's normalized values.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from binance_userstream_client import models
from binance_userstream_client.api.margin import get_margin_isolated_account, get_margin_my_trades
from binance_userstream_client.api.spot import get_spot_account, get_spot_my_trades

from binance_userstream import Balance, Order, Position, Trade
from binance_userstream._markets import market_named
from binance_userstream.account._families import family_for
from binance_userstream.account._family import BalanceUpdate, OrderUpdate, PositionUpdate, TradeSeen
from binance_userstream.account._futures import FuturesFamily
from binance_userstream.account._spot import SpotFamily
from binance_userstream.stream._decode import decode_payload
from tests.conftest import ROOT
from tests.test_account_operations_spot import (
    ISOLATED_ACCOUNT,
    MARGIN_ACCOUNT,
    MARGIN_OPEN_ORDER,
    MARGIN_TRADE,
    SPOT_ACCOUNT,
    SPOT_OPEN_ORDER,
    SPOT_TRADE,
)

SAMPLES: dict[str, Any] = json.loads((ROOT / "tests" / "data" / "derivatives_read_samples.json").read_text())


def event(market: str, name: str, **changes: Any) -> object:
    payload = json.loads((ROOT / "tests" / "data" / "events" / market / f"{name}.json").read_text())
    payload.update(changes)
    return decode_payload(payload, market_named(market).event_types)


def futures(market: str) -> FuturesFamily:
    family = family_for(market)
    assert isinstance(family, FuturesFamily)
    return family


# -- the registry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("market", "symbol", "name"),
    [
        ("spot", None, "spot"),
        ("margin", None, "margin (cross)"),
        ("margin", "BNBUSDT", "margin (isolated)"),
        ("usdm", None, "usdm"),
        ("coinm", None, "coinm"),
    ],
)
def test_the_registry_names_each_markets_family(market: str, symbol: str | None, name: str) -> None:
    assert family_for(market, symbol).name == name


def test_portfolio_margin_pro_has_no_mirror_and_says_why() -> None:
    with pytest.raises(ValueError, match=r"'portfolio_pro' has no account mirror: .*carries no orders"):
        family_for("portfolio_pro")


def test_a_market_without_a_family_says_it_has_no_mirror_yet() -> None:
    with pytest.raises(ValueError, match="market 'nowhere' has no account mirror yet"):
        family_for("nowhere")


# -- spot --------------------------------------------------------------------------------------


def test_spot_snapshots_balances_with_the_accounts_update_time_and_omits_zero_ones() -> None:
    family = SpotFamily("spot")
    account = models.SpotAccount.from_dict(SPOT_ACCOUNT)
    orders = [models.SpotOrder.from_dict(SPOT_OPEN_ORDER)]

    snapshot = family.snapshot([account, orders], 1)

    expected = {
        b["asset"]: Balance(b["asset"], Decimal(b["free"]), Decimal(b["locked"]))
        for b in SPOT_ACCOUNT["balances"]
    }
    assert snapshot.balances == {a: b for a, b in expected.items() if not b.is_zero}
    assert set(snapshot.balance_times.values()) == {SPOT_ACCOUNT["updateTime"]}


def test_spot_snapshots_open_orders_by_symbol_and_id() -> None:
    snapshot = SpotFamily("spot").snapshot(
        [models.SpotAccount.from_dict(SPOT_ACCOUNT), [models.SpotOrder.from_dict(SPOT_OPEN_ORDER)]], 1
    )

    o = SPOT_OPEN_ORDER
    assert list(snapshot.open_orders.values()) == [
        Order(
            o["symbol"],
            o["orderId"],
            o["clientOrderId"],
            o["side"],
            o["type"],
            o["status"],
            Decimal(o["price"]),
            Decimal(o["origQty"]),
            Decimal(o["executedQty"]),
        )
    ]
    assert next(iter(snapshot.open_orders.values())).update_time == o["updateTime"]


def test_spot_asks_for_its_account_without_zero_balances() -> None:
    account_call = SpotFamily("spot").snapshot_calls(None)[0]

    assert account_call.operation is get_spot_account
    assert account_call.arguments == {"omit_zero_balances": True}


def test_spots_outbound_account_position_sets_free_and_locked_at_its_last_update_time() -> None:
    updates = SpotFamily("spot").updates(event("spot", "outboundAccountPosition"))

    assert updates == [
        BalanceUpdate(Balance("ETH", Decimal("10000.000000"), Decimal("0.000000")), 1564034571073)
    ]


def test_spots_execution_report_is_an_order_at_its_transaction_time() -> None:
    (update,) = SpotFamily("spot").updates(event("spot", "executionReport"))

    assert isinstance(update, OrderUpdate)
    assert update.order == Order(
        "ETHBTC",
        4293153,
        "mUvoqJxFIILMdfAW5iGSOW",
        "BUY",
        "LIMIT",
        "NEW",
        Decimal("0.10264410"),
        Decimal("1.00000000"),
        Decimal("0"),
    )
    assert update.order.update_time == 1499405658657


def test_a_cancels_execution_report_keeps_the_orders_original_client_id() -> None:
    (update,) = SpotFamily("spot").updates(
        event("spot", "executionReport", C="original", x="CANCELED", X="CANCELED")
    )

    assert isinstance(update, OrderUpdate)
    assert update.order.client_order_id == "original"
    assert not update.order.is_open


def test_a_trade_execution_report_is_also_a_trade() -> None:
    report = event(
        "spot", "executionReport", x="TRADE", X="PARTIALLY_FILLED", t=77, L="0.1", l="0.5", n="0.001", N="BNB"
    )

    trade, order = SpotFamily("spot").updates(report)

    assert trade == TradeSeen(
        Trade(
            "ETHBTC",
            77,
            4293153,
            "BUY",
            Decimal("0.1"),
            Decimal("0.5"),
            Decimal("0.001"),
            "BNB",
            1499405658657,
        )
    )
    assert isinstance(order, OrderUpdate)


def test_spots_my_trades_are_trades_with_the_buyer_flag_as_side() -> None:
    (trade,) = SpotFamily("spot").trades([[models.SpotTrade.from_dict(SPOT_TRADE)]])

    t = SPOT_TRADE
    assert trade == Trade(
        t["symbol"],
        t["id"],
        t["orderId"],
        "BUY" if t["isBuyer"] else "SELL",
        Decimal(t["price"]),
        Decimal(t["qty"]),
        Decimal(t["commission"]),
        t["commissionAsset"],
        t["time"],
    )


def test_spot_trade_calls_go_from_a_time_then_by_id_alone() -> None:
    family = SpotFamily("spot")

    (first,) = family.trade_calls("BNBBTC", 1000, None)
    (next_page,) = family.trade_calls("BNBBTC", 1000, 42)

    assert first.operation is get_spot_my_trades
    assert first.arguments == {"symbol": "BNBBTC", "limit": 1000, "start_time": 1000}
    assert next_page.arguments == {"symbol": "BNBBTC", "limit": 1000, "from_id": 42}


# -- margin ------------------------------------------------------------------------------------


def test_cross_margin_snapshots_its_user_assets_free_and_locked_without_per_asset_times() -> None:
    snapshot = SpotFamily("margin").snapshot(
        [models.MarginAccount.from_dict(MARGIN_ACCOUNT), [models.MarginOrder.from_dict(MARGIN_OPEN_ORDER)]], 5
    )

    a = MARGIN_ACCOUNT["userAssets"][0]
    assert snapshot.balances[a["asset"]] == Balance(a["asset"], Decimal(a["free"]), Decimal(a["locked"]))
    assert snapshot.balance_times == {}
    assert len(snapshot.open_orders) == 1


def test_isolated_margin_snapshots_its_pairs_base_and_quote_assets() -> None:
    family = family_for("margin", "BNBUSDT")

    snapshot = family.snapshot([models.MarginIsolatedAccount.from_dict(ISOLATED_ACCOUNT), []], 5)

    pair = ISOLATED_ACCOUNT["assets"][0]
    expected = {
        side["asset"]: Balance(side["asset"], Decimal(side["free"]), Decimal(side["locked"]))
        for side in (pair["baseAsset"], pair["quoteAsset"])
    }
    assert snapshot.balances == {a: b for a, b in expected.items() if not b.is_zero}


def test_isolated_margin_asks_for_its_symbols_account_and_isolated_trades() -> None:
    family = family_for("margin", "BNBUSDT")

    account_call, orders_call = family.snapshot_calls("BNBUSDT")
    (trades_call,) = family.trade_calls("BNBUSDT", 1000, None)

    assert account_call.operation is get_margin_isolated_account
    assert account_call.arguments == {"symbols": "BNBUSDT"}
    assert orders_call.arguments == {"symbol": "BNBUSDT", "is_isolated": "TRUE"}
    assert trades_call.operation is get_margin_my_trades
    assert trades_call.arguments["is_isolated"] == "TRUE"


def test_margins_trades_are_trades() -> None:
    (trade,) = SpotFamily("margin").trades([[models.MarginTrade.from_dict(MARGIN_TRADE)]])

    assert (trade.symbol, trade.trade_id, trade.time) == (
        MARGIN_TRADE["symbol"],
        MARGIN_TRADE["id"],
        MARGIN_TRADE["time"],
    )


# -- USD-M and COIN-M --------------------------------------------------------------------------


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_futures_snapshot_balances_are_wallet_and_cross_wallet(market: str) -> None:
    family = futures(market)
    row = family.row
    account = row.account_model.from_dict(SAMPLES[f"get_{market}_account"])

    snapshot = family.snapshot([account, [], []], 7)

    for asset in SAMPLES[f"get_{market}_account"]["assets"]:
        balance = Balance(
            asset["asset"],
            wallet=Decimal(asset["walletBalance"]),
            cross_wallet=Decimal(asset["crossWalletBalance"]),
        )
        if balance.is_zero:
            assert asset["asset"] not in snapshot.balances
        else:
            assert snapshot.balances[asset["asset"]] == balance
            assert snapshot.balance_times.get(asset["asset"], 7) == asset.get("updateTime", 7)


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_futures_snapshot_positions_are_the_non_zero_position_risks(market: str) -> None:
    family = futures(market)
    model = models.UsdmPositionRisk if market == "usdm" else models.CoinmPositionRisk
    risks = [model.from_dict(r) for r in SAMPLES[f"get_{market}_position_risk"]]
    account = family.row.account_model.from_dict(SAMPLES[f"get_{market}_account"])

    snapshot = family.snapshot([account, risks, []], 7)

    expected = {
        (r["symbol"], r["positionSide"]): Position(
            r["symbol"], r["positionSide"], Decimal(r["positionAmt"]), Decimal(r["entryPrice"])
        )
        for r in SAMPLES[f"get_{market}_position_risk"]
        if Decimal(r["positionAmt"]) != 0
    }
    assert snapshot.positions == expected


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_futures_snapshot_open_orders_carry_their_position_side(market: str) -> None:
    family = futures(market)
    model = models.UsdmOpenOrder if market == "usdm" else models.CoinmOpenOrder
    orders = [model.from_dict(o) for o in SAMPLES[f"get_{market}_open_orders"]]
    account = family.row.account_model.from_dict(SAMPLES[f"get_{market}_account"])

    snapshot = family.snapshot([account, [], orders], 7)

    o = SAMPLES[f"get_{market}_open_orders"][0]
    assert snapshot.open_orders[(o["symbol"], o["orderId"])] == Order(
        o["symbol"],
        o["orderId"],
        o["clientOrderId"],
        o["side"],
        o["type"],
        o["status"],
        Decimal(o["price"]),
        Decimal(o["origQty"]),
        Decimal(o["executedQty"]),
        o["positionSide"],
    )


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_futures_user_trades_are_trades_at_their_time(market: str) -> None:
    family = futures(market)
    model = models.UsdmTrade if market == "usdm" else models.CoinmTrade

    (trade,) = family.trades([[model.from_dict(t) for t in SAMPLES[f"get_{market}_user_trades"]]])

    t = SAMPLES[f"get_{market}_user_trades"][0]
    assert trade == Trade(
        t["symbol"],
        t["id"],
        t["orderId"],
        t["side"],
        Decimal(t["price"]),
        Decimal(t["qty"]),
        Decimal(t["commission"]),
        t["commissionAsset"],
        t["time"],
    )


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_futures_account_update_sets_balances_and_positions_at_its_transaction_time(market: str) -> None:
    update = event(market, "ACCOUNT_UPDATE")

    updates = futures(market).updates(update)

    payload = json.loads((ROOT / "tests" / "data" / "events" / market / "ACCOUNT_UPDATE.json").read_text())
    time = payload["T"]
    assert updates == [
        *(
            BalanceUpdate(Balance(b["a"], wallet=Decimal(b["wb"]), cross_wallet=Decimal(b["cw"])), time)
            for b in payload["a"]["B"]
        ),
        *(
            PositionUpdate(Position(p["s"], p["ps"], Decimal(p["pa"]), Decimal(p["ep"])), time)
            for p in payload["a"].get("P", [])
        ),
    ]


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_futures_order_trade_update_is_an_order_at_the_envelopes_time(market: str) -> None:
    payload = json.loads(
        (ROOT / "tests" / "data" / "events" / market / "ORDER_TRADE_UPDATE.json").read_text()
    )

    (update,) = futures(market).updates(event(market, "ORDER_TRADE_UPDATE"))

    o = payload["o"]
    assert isinstance(update, OrderUpdate)
    assert update.order == Order(
        o["s"],
        o["i"],
        o["c"],
        o["S"],
        o["o"],
        o["X"],
        Decimal(o["p"]),
        Decimal(o["q"]),
        Decimal(o["z"]),
        o["ps"],
    )
    assert update.order.update_time == payload["T"]


def test_a_usdm_trade_update_is_also_a_trade_at_its_orders_time() -> None:
    payload = json.loads(
        (ROOT / "tests" / "data" / "events" / "usdm" / "ORDER_TRADE_UPDATE.json").read_text()
    )
    payload["o"].update(
        x="TRADE", X="PARTIALLY_FILLED", t=9, L="7000", l="0.001", n="0.01", N="USDT", T=1568879465649
    )

    order, trade = futures("usdm").updates(decode_payload(payload, market_named("usdm").event_types))

    assert trade == TradeSeen(
        Trade(
            "BTCUSDT",
            9,
            8886774,
            "SELL",
            Decimal("7000"),
            Decimal("0.001"),
            Decimal("0.01"),
            "USDT",
            1568879465649,
        )
    )
    assert isinstance(order, OrderUpdate)


def test_futures_trade_calls_go_from_a_time_then_by_id_alone() -> None:
    family = futures("coinm")

    (first,) = family.trade_calls("BTCUSD_200626", 5, None)
    (next_page,) = family.trade_calls("BTCUSD_200626", 5, 7)

    assert first.arguments == {"symbol": "BTCUSD_200626", "limit": 1000, "start_time": 5}
    assert next_page.arguments == {"symbol": "BTCUSD_200626", "limit": 1000, "from_id": 7}
