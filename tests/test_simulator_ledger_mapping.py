"""THE MAPPING of issue 18, held against the simulator: after a run of orders (whole, step by step,
canceled), the state told by every event sent equals the state its REST reads answer, on every
market. Each side is read as the mapping reads it (balances with every amount 0 and zero positions
absent; FILLED, CANCELED, ... orders not open), so the client's mirror can rely on the equality."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from binance_userstream._clock import wall_time
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator

CLOSED = {"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"}
State = dict[str, dict[Any, Any]]


def _get(sim: Simulator, path: str, query: str = "") -> Any:
    stamp = f"timestamp={int(wall_time(sim.exchange.clock) * 1000)}"
    text = f"{query}&{stamp}" if query else stamp
    signature = hmac.new(TEST_API_SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    response = httpx.get(
        f"{sim.url}{path}?{text}&signature={signature}", headers={"X-MBX-APIKEY": TEST_API_KEY}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _d(text: object) -> Decimal:
    return Decimal(str(text))


def _empty() -> State:
    return {"balances": {}, "positions": {}, "orders": {}, "trades": {}}


def _tidy(state: State) -> State:
    """The mapping's rules: no all-zero balance, no zero position, no closed order."""
    return {
        "balances": {a: v for a, v in state["balances"].items() if any(x for x in v if x is not None)},
        "positions": {k: v for k, v in state["positions"].items() if v[0] != 0},
        "orders": {k: v for k, v in state["orders"].items() if v[4] not in CLOSED},
        "trades": state["trades"],
    }


# -- the stream's side ----------------------------------------------------------------------------


def told(sim: Simulator, market: str) -> State:
    state = _empty()
    for delivery in sim.deliveries:
        if delivery.market != market:
            continue
        event = json.loads(delivery.text)
        kind = event["e"]
        if kind == "outboundAccountPosition":
            for b in event["B"]:
                state["balances"][b["a"]] = (_d(b["f"]), _d(b["l"]))
        elif kind == "executionReport":
            key = (event["s"], event["i"])
            state["orders"][key] = (
                event["C"] or event["c"],
                event["S"],
                event["o"],
                _d(event["p"]),
                event["X"],
                _d(event["q"]),
                _d(event["z"]),
            )
            if event["x"] == "TRADE":
                state["trades"][event["s"], event["t"]] = (
                    event["i"],
                    event["S"],
                    _d(event["L"]),
                    _d(event["l"]),
                    _d(event["n"]),
                    event["N"],
                    event["T"],
                )
        elif kind == "ORDER_TRADE_UPDATE":
            o = event["o"]
            state["orders"][o["s"], o["i"]] = (
                o["c"],
                o["S"],
                o["o"],
                _d(o["p"]),
                o["X"],
                _d(o["q"]),
                _d(o["z"]),
            )
            if o["x"] == "TRADE":
                state["trades"][o["s"], o["t"]] = (
                    o["i"],
                    o["S"],
                    _d(o["L"]),
                    _d(o["l"]),
                    _d(o["n"]),
                    o["N"],
                    o["T"],
                )
        elif kind == "ACCOUNT_UPDATE" and "a" in event:
            for b in event["a"]["B"]:
                if market == "portfolio":
                    state["balances"][b["a"]] = (_d(b["wb"]),)
                else:
                    state["balances"][b["a"]] = (_d(b["wb"]), _d(b["cw"]))
            for p in event["a"]["P"]:
                state["positions"][p["s"], p["ps"]] = (_d(p["pa"]), _d(p["ep"]))
        elif kind == "BALANCE_POSITION_UPDATE":
            for b in event["B"]:
                state["balances"][b["a"]] = (_d(b["b"]),)
            for p in event["P"]:
                state["positions"][p["s"], "BOTH"] = (_d(p["c"]), _d(p["a"]))
    return _tidy(state)


# -- REST's side ----------------------------------------------------------------------------------


def _order(row: dict[str, Any], quantity: str = "origQty") -> tuple[Any, ...]:
    status = "NEW" if row["status"] == "ACCEPTED" else row["status"]
    return (
        row["clientOrderId"],
        row["side"],
        row["type"],
        _d(row["price"]),
        status,
        _d(row[quantity]),
        _d(row["executedQty"]),
    )


def _spot_like(
    sim: Simulator, account: str, orders: str, trades: str, symbols: list[str], balances: Callable[[Any], Any]
) -> State:
    state = _empty()
    for row in balances(_get(sim, account)):
        state["balances"][row["asset"]] = (_d(row["free"]), _d(row["locked"]))
    for row in _get(sim, orders):
        state["orders"][row["symbol"], row["orderId"]] = _order(row)
    for symbol in symbols:
        for row in _get(sim, trades, f"symbol={symbol}"):
            state["trades"][symbol, row["id"]] = (
                row["orderId"],
                "BUY" if row["isBuyer"] else "SELL",
                _d(row["price"]),
                _d(row["qty"]),
                _d(row["commission"]),
                row["commissionAsset"],
                row["time"],
            )
    return _tidy(state)


def _futures_like(
    sim: Simulator, prefix: str, symbols: list[str], positions: str, orders: list[str], trades: list[str]
) -> State:
    state = _empty()
    if prefix == "/papi":
        for row in _get(sim, "/papi/v1/balance"):
            state["balances"][row["asset"]] = (_d(row["umWalletBalance"]),)
    else:
        account = "/fapi/v3/account" if prefix == "/fapi" else "/dapi/v1/account"
        for row in _get(sim, account)["assets"]:
            state["balances"][row["asset"]] = (_d(row["walletBalance"]), _d(row["crossWalletBalance"]))
    for path in positions.split():
        for row in _get(sim, path):
            state["positions"][row["symbol"], row["positionSide"]] = (
                _d(row["positionAmt"]),
                _d(row["entryPrice"]),
            )
    for path in orders:
        for row in _get(sim, path):
            state["orders"][row["symbol"], row["orderId"]] = _order(row)
    for path, symbol in zip(trades, symbols, strict=True):
        for row in _get(sim, path, f"symbol={symbol}"):
            state["trades"][symbol, row["id"]] = (
                row["orderId"],
                row["side"],
                _d(row["price"]),
                _d(row["qty"]),
                _d(row["commission"]),
                row["commissionAsset"],
                row["time"],
            )
    return _tidy(state)


def _options(sim: Simulator) -> State:
    state = _empty()
    for row in _get(sim, "/eapi/v1/marginAccount")["asset"]:
        state["balances"][row["asset"]] = (_d(row["marginBalance"]),)
    for row in _get(sim, "/eapi/v1/position"):
        state["positions"][row["symbol"], "BOTH"] = (_d(row["quantity"]), _d(row["entryPrice"]))
    for row in _get(sim, "/eapi/v1/openOrders"):
        state["orders"][row["symbol"], row["orderId"]] = _order(row, "quantity")
    for row in _get(sim, "/eapi/v1/userTrades"):
        state["trades"][row["symbol"], row["tradeId"]] = (
            row["orderId"],
            row["side"],
            _d(row["price"]),
            _d(row["quantity"]),
            _d(row["fee"]),
            row["quoteAsset"],
            row["time"],
        )
    return _tidy(state)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


def _steps(sim: Simulator, market: str, symbol: str, quantity: str, price: str, **extra: Any) -> None:
    """A whole order (traffic), then one placed and partly filled, one placed and canceled after a
    fill, and one left open."""
    first = sim.place_order(market, symbol=symbol, side="BUY", quantity=quantity, price=price, **extra)
    sim.fill_order(market, first, None if "." not in quantity else str(Decimal(quantity) / 2), **extra)
    second = sim.place_order(market, symbol=symbol, side="SELL", quantity=quantity, price=price, **extra)
    sim.cancel_order(market, second, **extra)
    sim.place_order(market, symbol=symbol, side="BUY", quantity=quantity, price=price, **extra)


def test_spot_events_and_rest_agree(sim: Simulator) -> None:
    sim.traffic("spot")
    _steps(sim, "spot", "BTCUSDT", "0.002", "40000")
    sim.traffic("spot")  # while an order of the account's holds funds locked
    rest = _spot_like(
        sim, "/api/v3/account", "/api/v3/openOrders", "/api/v3/myTrades", ["BTCUSDT"], lambda a: a["balances"]
    )
    assert rest == told(sim, "spot")
    assert all(rest[part] for part in ("balances", "orders", "trades"))


def test_cross_margin_events_and_rest_agree(sim: Simulator) -> None:
    sim.traffic("margin")
    _steps(sim, "margin", "BTCUSDT", "0.002", "40000")
    rest = _spot_like(
        sim,
        "/sapi/v1/margin/account",
        "/sapi/v1/margin/openOrders",
        "/sapi/v1/margin/myTrades",
        ["BTCUSDT"],
        lambda a: a["userAssets"],
    )
    assert rest == told(sim, "margin")


def test_usdm_events_and_rest_agree(sim: Simulator) -> None:
    sim.traffic("usdm")
    _steps(sim, "usdm", "BTCUSDT", "0.010", "43000")
    _steps(sim, "usdm", "ETHUSDT", "1.000", "2000")
    sim.traffic("usdm")
    rest = _futures_like(
        sim,
        "/fapi",
        ["BTCUSDT", "ETHUSDT"],
        "/fapi/v3/positionRisk",
        ["/fapi/v1/openOrders"],
        ["/fapi/v1/userTrades"] * 2,
    )
    assert rest == told(sim, "usdm")
    assert len(rest["positions"]) == 2


def test_coinm_events_and_rest_agree(sim: Simulator) -> None:
    sim.traffic("coinm")
    _steps(sim, "coinm", "BTCUSD_PERP", "4", "43000")
    rest = _futures_like(
        sim,
        "/dapi",
        ["BTCUSD_PERP"],
        "/dapi/v1/positionRisk",
        ["/dapi/v1/openOrders"],
        ["/dapi/v1/userTrades"],
    )
    assert rest == told(sim, "coinm")


def test_portfolio_events_and_rest_agree(sim: Simulator) -> None:
    sim.traffic("portfolio")
    _steps(sim, "portfolio", "BTCUSDT", "0.010", "43000")
    _steps(sim, "portfolio", "BTCUSD_PERP", "4", "43000")
    rest = _futures_like(
        sim,
        "/papi",
        ["BTCUSDT", "BTCUSD_PERP"],
        "/papi/v1/um/positionRisk /papi/v1/cm/positionRisk",
        ["/papi/v1/um/openOrders", "/papi/v1/cm/openOrders"],
        ["/papi/v1/um/userTrades", "/papi/v1/cm/userTrades"],
    )
    events = told(sim, "portfolio")
    # the CM side's wallet is told as cm_wallet: REST's cmWalletBalance, compared apart
    cm = {row["asset"]: _d(row["cmWalletBalance"]) for row in _get(sim, "/papi/v1/balance")}
    assert cm["BTC"] == sim.ledger("portfolio").balances["BTC"].cm_wallet
    events["balances"].pop("BTC")
    rest["balances"] = {a: v for a, v in rest["balances"].items() if a != "BTC"}
    assert rest == events


def test_options_events_and_rest_agree(sim: Simulator) -> None:
    sim.traffic("options")
    _steps(sim, "options", "BTC-251123-126000-C", "0.2000", "1200")
    assert _options(sim) == told(sim, "options")
