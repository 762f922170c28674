"""The simulator's ledger: its orders move one account's book on one market, and what its events
said is what its REST reads answer afterwards (THE MAPPING of issue 18: an open order's fields and
update time, a trade's id and time, balances and positions), with or without a connection."""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

import aiohttp
import httpx
import pytest

from binance_userstream._clock import wall_time
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator, VirtualClock

OTHER_KEY = "OtherAccountKey0123456789"
OTHER_SECRET = "other-secret"
CONTROL = {"X-Simulator-Control": "1"}


def get(
    sim: Simulator, path: str, query: str = "", api_key: str = TEST_API_KEY, secret: str = TEST_API_SECRET
) -> Any:
    stamp = f"timestamp={int(wall_time(sim.exchange.clock) * 1000)}"
    text = f"{query}&{stamp}" if query else stamp
    signature = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    response = httpx.get(f"{sim.url}{path}?{text}&signature={signature}", headers={"X-MBX-APIKEY": api_key})
    assert response.status_code == 200, response.text
    return response.json()


def sent(sim: Simulator, market: str) -> list[dict[str, Any]]:
    """The events the simulator sent on `market`, oldest first."""
    return [json.loads(d.text) for d in sim.deliveries if d.market == market]


def last(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return [e for e in events if e["e"] == kind][-1]


@pytest.fixture
def sim() -> Any:
    """Real time: REST reads are signed with the wall clock, as against Binance."""
    with Simulator() as simulator:
        yield simulator


# -- USD-M ---------------------------------------------------------------------------------------


def test_a_placed_usdm_order_is_open_with_its_events_update_time(sim: Simulator) -> None:
    order_id = sim.place_order("usdm", symbol="BTCUSDT", side="BUY", quantity="0.010", price="43000.10")
    event = last(sent(sim, "usdm"), "ORDER_TRADE_UPDATE")
    [order] = get(sim, "/fapi/v1/openOrders")
    assert (order["orderId"], order["status"], order["updateTime"]) == (order_id, "NEW", event["T"])
    assert (order["clientOrderId"], order["side"], order["type"]) == (event["o"]["c"], "BUY", "LIMIT")
    assert (Decimal(order["origQty"]), Decimal(order["price"])) == (Decimal("0.010"), Decimal("43000.10"))


def test_a_usdm_fill_is_in_user_trades_with_the_events_trade_id_and_time(sim: Simulator) -> None:
    order_id = sim.place_order("usdm", symbol="BTCUSDT", side="BUY", quantity="0.010", price="43000.10")
    trade_id = sim.fill_order("usdm", order_id, "0.004")
    trade = last(sent(sim, "usdm"), "ORDER_TRADE_UPDATE")["o"]
    [row] = get(sim, "/fapi/v1/userTrades", "symbol=BTCUSDT")
    assert (
        (row["id"], row["orderId"], row["time"])
        == (trade_id, order_id, trade["T"])
        == (trade["t"], trade["i"], row["time"])
    )
    assert (Decimal(row["qty"]), Decimal(row["commission"]), row["commissionAsset"]) == (
        Decimal("0.004"),
        Decimal(trade["n"]),
        trade["N"],
    )
    [order] = get(sim, "/fapi/v1/openOrders", "symbol=BTCUSDT")
    assert (order["status"], Decimal(order["executedQty"])) == ("PARTIALLY_FILLED", Decimal(trade["z"]))


def test_usdm_balances_and_positions_after_traffic_are_what_the_events_said(sim: Simulator) -> None:
    sim.traffic("usdm")
    update = last(sent(sim, "usdm"), "ACCOUNT_UPDATE")
    account = get(sim, "/fapi/v3/account")
    [asset] = account["assets"]
    [balance] = update["a"]["B"]
    assert (asset["asset"], Decimal(asset["walletBalance"]), Decimal(asset["crossWalletBalance"])) == (
        balance["a"],
        Decimal(balance["wb"]),
        Decimal(balance["cw"]),
    )
    assert asset["updateTime"] == update["T"]
    [position] = get(sim, "/fapi/v3/positionRisk")
    [told] = update["a"]["P"]
    assert (position["symbol"], Decimal(position["positionAmt"]), Decimal(position["entryPrice"])) == (
        told["s"],
        Decimal(told["pa"]),
        Decimal(told["ep"]),
    )
    assert (position["positionSide"], position["updateTime"]) == (told["ps"], update["T"])
    assert get(sim, "/fapi/v1/openOrders") == []  # filled: no longer open


def test_a_canceled_usdm_order_is_no_longer_open(sim: Simulator) -> None:
    order_id = sim.place_order("usdm", symbol="BTCUSDT", side="SELL", quantity="1", price="50000")
    sim.cancel_order("usdm", order_id)
    assert last(sent(sim, "usdm"), "ORDER_TRADE_UPDATE")["o"]["X"] == "CANCELED"
    assert get(sim, "/fapi/v1/openOrders") == []
    assert sim.ledger("usdm").orders["BTCUSDT", order_id].status == "CANCELED"


def test_fill_order_without_a_quantity_fills_the_rest(sim: Simulator) -> None:
    order_id = sim.place_order("usdm", symbol="BTCUSDT", side="BUY", quantity="0.010", price="43000")
    sim.fill_order("usdm", order_id, "0.004")
    sim.fill_order("usdm", order_id)
    assert sim.ledger("usdm").orders["BTCUSDT", order_id].status == "FILLED"
    assert sim.ledger("usdm").positions["BTCUSDT", "BOTH"].amount == Decimal("0.010")


def test_filling_more_than_is_left_is_a_value_error(sim: Simulator) -> None:
    order_id = sim.place_order("usdm", symbol="BTCUSDT", side="BUY", quantity="0.010", price="43000")
    with pytest.raises(ValueError, match="left to fill"):
        sim.fill_order("usdm", order_id, "0.011")


# -- spot and margin -----------------------------------------------------------------------------


def test_a_placed_spot_order_is_open_and_its_funds_locked_as_the_events_said(sim: Simulator) -> None:
    order_id = sim.place_order("spot", symbol="BTCUSDT", side="BUY", quantity="0.01", price="40000")
    events = sent(sim, "spot")
    report, position = last(events, "executionReport"), last(events, "outboundAccountPosition")
    [order] = get(sim, "/api/v3/openOrders")
    assert (order["orderId"], order["updateTime"], order["clientOrderId"]) == (
        order_id,
        report["T"],
        report["c"],
    )
    account = get(sim, "/api/v3/account", "omitZeroBalances=true")
    balances = {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"]}
    told = {
        b["a"]: (Decimal(b["f"]), Decimal(b["l"]))
        for b in position["B"]
        if Decimal(b["f"]) or Decimal(b["l"])
    }
    assert balances == told
    assert balances["USDT"][1] == Decimal("400")
    assert account["updateTime"] == position["u"]


def test_a_spot_fill_is_in_my_trades_with_the_events_trade_id_and_time(sim: Simulator) -> None:
    order_id = sim.place_order("spot", symbol="BTCUSDT", side="BUY", quantity="0.01", price="40000")
    trade_id = sim.fill_order("spot", order_id, "0.004")
    report = last(sent(sim, "spot"), "executionReport")
    [row] = get(sim, "/api/v3/myTrades", "symbol=BTCUSDT")
    assert (row["id"], row["orderId"], row["time"]) == (trade_id, order_id, report["T"])
    assert (report["t"], row["isBuyer"], Decimal(row["commission"])) == (trade_id, True, Decimal(report["n"]))


def test_a_canceled_spot_order_unlocks_its_funds(sim: Simulator) -> None:
    order_id = sim.place_order("spot", symbol="BTCUSDT", side="BUY", quantity="0.01", price="40000")
    sim.cancel_order("spot", order_id)
    report = last(sent(sim, "spot"), "executionReport")
    assert (report["X"], report["C"]) == ("CANCELED", f"sim-{order_id}")
    assert get(sim, "/api/v3/openOrders") == []
    usdt = sim.ledger("spot").balances["USDT"]
    assert (usdt.free, usdt.locked) == (Decimal("10000"), Decimal(0))


def test_spot_traffic_keeps_the_funds_an_open_order_locked(sim: Simulator) -> None:
    sim.place_order("spot", symbol="BTCUSDT", side="BUY", quantity="0.01", price="40000")
    sim.traffic("spot")
    usdt = sim.ledger("spot").balances["USDT"]
    assert usdt.locked == Decimal("400")
    assert usdt.free == Decimal("10000") - 400 - Decimal("430.00100000")


def test_spot_balances_after_traffic_are_what_the_events_said(sim: Simulator) -> None:
    sim.traffic("spot")
    position = last(sent(sim, "spot"), "outboundAccountPosition")
    account = get(sim, "/api/v3/account")
    balances = {b["asset"]: (Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"]}
    assert balances == {b["a"]: (Decimal(b["f"]), Decimal(b["l"])) for b in position["B"]}


def test_cross_margin_traffic_moves_the_margin_account(sim: Simulator) -> None:
    sim.traffic("margin")
    position = last(sent(sim, "margin"), "outboundAccountPosition")
    assets = get(sim, "/sapi/v1/margin/account")["userAssets"]
    assert {a["asset"]: (Decimal(a["free"]), Decimal(a["locked"])) for a in assets} == {
        b["a"]: (Decimal(b["f"]), Decimal(b["l"])) for b in position["B"]
    }
    assert get(sim, "/api/v3/account")["balances"] == []  # spot's account is another


def test_isolated_margin_traffic_moves_only_its_pairs_account(sim: Simulator) -> None:
    order_id = sim.place_order(
        "margin", symbol="BTCUSDT", side="BUY", quantity="0.01", price="40000", isolated=True
    )
    [pair] = get(sim, "/sapi/v1/margin/isolated/account", "symbols=BTCUSDT")["assets"]
    assert (Decimal(pair["quoteAsset"]["locked"]), pair["baseAsset"]["asset"]) == (Decimal("400"), "BTC")
    [order] = get(sim, "/sapi/v1/margin/openOrders", "symbol=BTCUSDT&isIsolated=TRUE")
    assert (order["orderId"], order["isIsolated"]) == (order_id, True)
    assert get(sim, "/sapi/v1/margin/openOrders") == []  # cross margin has none


# -- COIN-M, Portfolio Margin, Options -----------------------------------------------------------


def test_coinm_balances_and_positions_after_traffic_are_what_the_events_said(sim: Simulator) -> None:
    sim.traffic("coinm")
    update = last(sent(sim, "coinm"), "ACCOUNT_UPDATE")
    [asset] = get(sim, "/dapi/v1/account")["assets"]
    assert (asset["asset"], Decimal(asset["walletBalance"])) == ("BTC", Decimal(update["a"]["B"][0]["wb"]))
    [position] = get(sim, "/dapi/v1/positionRisk")
    assert Decimal(position["positionAmt"]) == Decimal(update["a"]["P"][0]["pa"]) == 2
    trades = get(sim, "/dapi/v1/userTrades", "symbol=BTCUSD_PERP")
    told = [e["o"] for e in sent(sim, "coinm") if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
    assert [(t["id"], t["time"]) for t in trades] == [(o["t"], o["T"]) for o in told]


def test_portfolio_traffic_moves_its_um_wallet_and_positions(sim: Simulator) -> None:
    sim.traffic("portfolio")
    update = last(sent(sim, "portfolio"), "ACCOUNT_UPDATE")
    [balance] = get(sim, "/papi/v1/balance")
    assert (Decimal(balance["umWalletBalance"]), balance["updateTime"]) == (
        Decimal(update["a"]["B"][0]["wb"]),
        update["T"],
    )
    [position] = get(sim, "/papi/v1/um/positionRisk")
    assert Decimal(position["positionAmt"]) == Decimal(update["a"]["P"][0]["pa"])
    assert [t["id"] for t in get(sim, "/papi/v1/um/userTrades", "symbol=BTCUSDT")] == [
        t.trade_id for t in sim.ledger("portfolio").trades
    ]


def test_options_traffic_moves_its_margin_account_and_position(sim: Simulator) -> None:
    sim.traffic("options")
    update = last(sent(sim, "options"), "BALANCE_POSITION_UPDATE")
    [asset] = get(sim, "/eapi/v1/marginAccount")["asset"]
    assert Decimal(asset["marginBalance"]) == Decimal(update["B"][0]["b"])
    [position] = get(sim, "/eapi/v1/position")
    told = update["P"][0]
    assert (Decimal(position["quantity"]), Decimal(position["entryPrice"])) == (
        Decimal(told["c"]),
        Decimal(told["a"]),
    )
    trades = get(sim, "/eapi/v1/userTrades")
    told_trades = [
        e["o"] for e in sent(sim, "options") if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"
    ]
    assert [(t["tradeId"], t["time"]) for t in trades] == [(o["t"], o["T"]) for o in told_trades]


# -- who gets what -------------------------------------------------------------------------------


def test_traffic_with_no_connection_moves_the_ledger_anyway(sim: Simulator) -> None:
    assert sim.traffic("usdm") == [0, 0, 0, 0, 0]
    assert len(get(sim, "/fapi/v1/userTrades", "symbol=BTCUSDT")) == 2


def test_two_api_keys_are_two_accounts(sim: Simulator) -> None:
    sim.register_key(OTHER_KEY, secret=OTHER_SECRET)
    sim.traffic("usdm", api_key=OTHER_KEY)
    assert get(sim, "/fapi/v1/userTrades", "symbol=BTCUSDT") == []
    assert len(get(sim, "/fapi/v1/userTrades", "symbol=BTCUSDT", OTHER_KEY, OTHER_SECRET)) == 2
    assert sim.ledger("usdm").trades == ()
    assert len(sim.ledger("usdm", OTHER_KEY).trades) == 2


@pytest.mark.anyio
async def test_an_accounts_events_go_only_to_its_own_connections(sim: Simulator) -> None:
    sim.register_key(OTHER_KEY, secret=OTHER_SECRET)
    key = httpx.post(sim.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": TEST_API_KEY}).json()[
        "listenKey"
    ]
    url = f"{sim.stream_url}/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert sim.listeners("usdm", TEST_API_KEY) == 1
        assert sim.place_order(
            "usdm", symbol="BTCUSDT", side="BUY", quantity="1", price="1", api_key=OTHER_KEY
        )
        order_id = sim.place_order("usdm", symbol="BTCUSDT", side="BUY", quantity="1", price="1")
        message = json.loads((await ws.receive(timeout=5)).data)
    assert message["o"]["i"] == order_id  # the other account's order never came


def test_ledger_views_are_frozen(sim: Simulator) -> None:
    sim.traffic("usdm")
    view = sim.ledger("usdm")
    with pytest.raises(AttributeError):
        view.update_time = 0  # type: ignore[misc]


def test_the_traffic_control_request_places_fills_and_cancels(sim: Simulator) -> None:
    def control(body: dict[str, object]) -> Any:
        response = httpx.post(f"{sim.url}/_simulator/traffic", json=body, headers=CONTROL)
        assert response.status_code == 200, response.text
        return response.json()

    placed = control(
        {
            "action": "place",
            "market": "usdm",
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": "2",
            "price": "10",
        }
    )
    filled = control({"action": "fill", "market": "usdm", "order_id": placed["order_id"], "quantity": "1"})
    assert filled["trade_id"] == sim.ledger("usdm").trades[0].trade_id
    control({"action": "cancel", "market": "usdm", "order_id": placed["order_id"]})
    assert sim.ledger("usdm").open_orders == {}


def test_event_times_and_server_time_share_one_clock() -> None:
    clock = VirtualClock()
    with Simulator(clock=clock) as sim:
        clock.advance(3600)
        sim.place_order("usdm", symbol="BTCUSDT", side="BUY", quantity="1", price="1")
        server = httpx.get(f"{sim.url}/fapi/v1/time").json()["serverTime"]
        assert abs(sim.ledger("usdm").update_time - server) < 1000
