"""The simulator's signed account reads (part 1's operations), answered from its ledger as Binance
answers them: each parses as its generated model through `uds.call`, weighs what the spec's
`x-weight` says, is refused unsigned or badly signed, 429 past the limit, and pages trades as
Binance does (`fromId`, `startTime`, `limit`)."""

from __future__ import annotations

import hashlib
import hmac
import importlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from binance_userstream_client import models

from binance_userstream import UserDataStream
from binance_userstream._clock import wall_time
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator, VirtualClock
from tests.conftest import FAST_RETRY
from tests.test_spec_markets import SPEC

#: (market of the client, operation, answer model or list, arguments, the traffic markets it reads).
READS: list[tuple[str, str, Any, dict[str, Any]]] = [
    ("spot", "get_spot_account", models.SpotAccount, {"omit_zero_balances": True}),
    ("spot", "get_spot_open_orders", list, {}),
    ("spot", "get_spot_my_trades", list, {"symbol": "BTCUSDT"}),
    ("margin", "get_margin_account", models.MarginAccount, {}),
    ("margin", "get_margin_isolated_account", models.MarginIsolatedAccount, {"symbols": "BTCUSDT"}),
    ("margin", "get_margin_open_orders", list, {}),
    ("margin", "get_margin_my_trades", list, {"symbol": "BTCUSDT"}),
    ("usdm", "get_usdm_account", models.UsdmAccount, {}),
    ("usdm", "get_usdm_position_risk", list, {}),
    ("usdm", "get_usdm_open_orders", list, {}),
    ("usdm", "get_usdm_user_trades", list, {"symbol": "BTCUSDT"}),
    ("coinm", "get_coinm_account", models.CoinmAccount, {}),
    ("coinm", "get_coinm_position_risk", list, {}),
    ("coinm", "get_coinm_open_orders", list, {}),
    ("coinm", "get_coinm_user_trades", list, {"symbol": "BTCUSD_PERP"}),
    ("portfolio", "get_portfolio_balance", list, {}),
    ("portfolio", "get_portfolio_um_position_risk", list, {}),
    ("portfolio", "get_portfolio_cm_position_risk", list, {}),
    ("portfolio", "get_portfolio_um_open_orders", list, {}),
    ("portfolio", "get_portfolio_cm_open_orders", list, {}),
    ("portfolio", "get_portfolio_um_user_trades", list, {"symbol": "BTCUSDT"}),
    ("portfolio", "get_portfolio_cm_user_trades", list, {"symbol": "BTCUSD_PERP"}),
    ("options", "get_options_margin_account", models.OptionsAccount, {}),
    ("options", "get_options_positions", list, {}),
    ("options", "get_options_open_orders", list, {}),
    ("options", "get_options_user_trades", list, {}),
]
#: Each read's item model, for the reads that answer a list.
ITEMS = {
    "get_spot_open_orders": models.SpotOrder,
    "get_spot_my_trades": models.SpotTrade,
    "get_margin_open_orders": models.MarginOrder,
    "get_margin_my_trades": models.MarginTrade,
    "get_usdm_position_risk": models.UsdmPositionRisk,
    "get_usdm_open_orders": models.UsdmOpenOrder,
    "get_usdm_user_trades": models.UsdmTrade,
    "get_coinm_position_risk": models.CoinmPositionRisk,
    "get_coinm_open_orders": models.CoinmOpenOrder,
    "get_coinm_user_trades": models.CoinmTrade,
    "get_portfolio_balance": models.PortfolioBalance,
    "get_portfolio_um_position_risk": models.PortfolioUmPositionRisk,
    "get_portfolio_cm_position_risk": models.PortfolioCmPositionRisk,
    "get_portfolio_um_open_orders": models.PortfolioUmOpenOrder,
    "get_portfolio_cm_open_orders": models.PortfolioCmOpenOrder,
    "get_portfolio_um_user_trades": models.PortfolioUmTrade,
    "get_portfolio_cm_user_trades": models.PortfolioCmTrade,
    "get_options_positions": models.OptionsPosition,
    "get_options_open_orders": models.OptionsOpenOrder,
    "get_options_user_trades": models.OptionsTrade,
}


def _operations() -> dict[str, tuple[str, Any]]:
    """Each read's path and `x-weight`, from the spec."""
    found = {}
    for path, item in SPEC["paths"].items():
        get = item.get("get")
        if get and get["operationId"] in {read[1] for read in READS}:
            found[get["operationId"]] = (path, get["x-weight"])
    return found


OPERATIONS = _operations()


@pytest.fixture
def live() -> Iterator[Simulator]:
    """A simulator on real time, whose every market has seen one order: the client signs with the
    wall clock, as against Binance. Portfolio Margin has traded on both its UM and CM sides."""
    with Simulator() as simulator:
        for market in ("spot", "margin", "usdm", "coinm", "portfolio", "options"):
            simulator.traffic(market)
        simulator.traffic("margin", isolated=True, symbol="BTCUSDT")
        simulator.place_order("usdm", symbol="ETHUSDT", side="BUY", quantity="1", price="2000")
        simulator.place_order("spot", symbol="BTCUSDT", side="BUY", quantity="0.001", price="40000")
        simulator.place_order("margin", symbol="BTCUSDT", side="BUY", quantity="0.001", price="40000")
        simulator.place_order("coinm", symbol="BTCUSD_PERP", side="SELL", quantity="1", price="50000")
        order = simulator.place_order(
            "portfolio", symbol="BTCUSD_PERP", side="BUY", quantity="3", price="43000"
        )
        simulator.fill_order("portfolio", order, "1")
        simulator.place_order("portfolio", symbol="BTCUSDT", side="SELL", quantity="0.01", price="45000")
        simulator.place_order(
            "options", symbol="BTC-251123-126000-C", side="SELL", quantity="0.1", price="1300"
        )
        yield simulator


def read(sim: Simulator, market: str, operation: str, model: Any, **arguments: Any) -> Any:
    module = importlib.import_module(f"binance_userstream_client.api.{market}.{operation}")
    client_market = "spot" if market == "margin" else market
    with UserDataStream(
        TEST_API_KEY, sim.url, market=client_market, api_secret=TEST_API_SECRET, retry=FAST_RETRY
    ) as uds:
        return uds.call(module.sync_detailed, model, **arguments)


def signed(
    sim: Simulator, path: str, query: str = "", api_key: str = TEST_API_KEY, secret: str = TEST_API_SECRET
) -> httpx.Response:
    stamp = f"timestamp={int(wall_time(sim.exchange.clock) * 1000)}"
    text = f"{query}&{stamp}" if query else stamp
    signature = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    return httpx.get(f"{sim.url}{path}?{text}&signature={signature}", headers={"X-MBX-APIKEY": api_key})


@pytest.mark.parametrize(("market", "operation", "model", "arguments"), READS, ids=[r[1] for r in READS])
def test_each_read_answers_its_generated_model_from_the_ledger(
    live: Simulator, market: str, operation: str, model: Any, arguments: dict[str, Any]
) -> None:
    answer = read(live, market, operation, model, **arguments)
    if model is list:
        assert answer, f"{operation} answered nothing after the market's traffic"
        for item in answer:
            assert isinstance(item, ITEMS[operation])
            assert item.additional_properties == {}
    else:
        assert isinstance(answer, model)
        assert answer.additional_properties == {}


def test_every_read_of_the_spec_is_served() -> None:
    assert set(OPERATIONS) == {read[1] for read in READS}
    assert len(OPERATIONS) == 26  # the 29 reads less the three server times, which _metadata serves


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_each_read_weighs_its_documented_weight(operation: str) -> None:
    path, weight = OPERATIONS[operation]
    with Simulator() as sim:
        arguments = {"symbol": "BTCUSD_PERP" if "/dapi/" in path or "/cm/" in path else "BTCUSDT"}
        needs_symbol = "Trades" in path
        response = signed(sim, path, "symbol=" + arguments["symbol"] if needs_symbol else "")
        assert response.status_code == 200, response.text
        expected = weight if isinstance(weight, int) else weight["with"].get("symbol", weight["default"])
        if isinstance(weight, dict) and not needs_symbol:
            expected = weight["default"]
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == str(expected)


def test_open_orders_weigh_less_for_one_symbol() -> None:
    with Simulator() as sim:
        assert signed(sim, "/fapi/v1/openOrders", "symbol=BTCUSDT").headers["X-MBX-USED-WEIGHT-1M"] == "1"
        assert signed(sim, "/fapi/v1/openOrders").headers["X-MBX-USED-WEIGHT-1M"] == "41"


def test_spot_trades_of_one_order_weigh_5() -> None:
    with Simulator() as sim:
        response = signed(sim, "/api/v3/myTrades", "symbol=BTCUSDT&orderId=1")
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == "5"


def test_margin_reads_count_on_spots_ip_weight() -> None:
    with Simulator() as sim:
        signed(sim, "/api/v3/account")
        response = signed(sim, "/sapi/v1/margin/account")
        assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "30"
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == "30"


def test_a_read_past_the_weight_limit_is_refused_429() -> None:
    with Simulator(weight_limit=50) as sim:
        assert signed(sim, "/fapi/v1/openOrders").status_code == 200
        response = signed(sim, "/fapi/v1/openOrders")
        assert (response.status_code, response.json()["code"]) == (429, -1003)
        assert "Retry-After" in response.headers


def test_an_unsigned_read_is_refused() -> None:
    with Simulator() as sim:
        response = httpx.get(f"{sim.url}/fapi/v3/account", headers={"X-MBX-APIKEY": TEST_API_KEY})
        assert (response.status_code, response.json()["code"]) == (400, -1102)
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == "5"


def test_a_badly_signed_read_is_refused() -> None:
    with Simulator() as sim:
        response = signed(sim, "/api/v3/account", secret="not-the-secret")
        assert (response.status_code, response.json()["code"]) == (400, -1022)


def test_a_read_without_an_api_key_is_refused() -> None:
    with Simulator() as sim:
        response = httpx.get(f"{sim.url}/fapi/v3/account?timestamp=1&signature=00")
        assert (response.status_code, response.json()["code"]) == (401, -2014)


def test_a_trade_list_without_its_symbol_is_refused_1102() -> None:
    with Simulator() as sim:
        response = signed(sim, "/fapi/v1/userTrades")
        assert (response.status_code, response.json()["code"]) == (400, -1102)


def test_a_malformed_number_is_refused_1100() -> None:
    with Simulator() as sim:
        response = signed(sim, "/api/v3/myTrades", "symbol=BTCUSDT&fromId=abc")
        assert (response.status_code, response.json()["code"]) == (400, -1100)


def test_a_limit_above_1000_is_refused() -> None:
    with Simulator() as sim:
        response = signed(sim, "/fapi/v1/userTrades", "symbol=BTCUSDT&limit=1001")
        assert (response.status_code, response.json()["code"]) == (400, -1130)


def test_from_id_with_a_start_time_is_refused_on_usdm() -> None:
    with Simulator() as sim:
        response = signed(sim, "/fapi/v1/userTrades", "symbol=BTCUSDT&fromId=1&startTime=1")
        assert (response.status_code, response.json()["code"]) == (400, -1128)


def test_trades_page_by_from_id_oldest_first() -> None:
    with Simulator() as sim:
        for _ in range(3):
            sim.traffic("usdm")
        ids = [t.trade_id for t in sim.ledger("usdm").trades]
        response = signed(sim, "/fapi/v1/userTrades", f"symbol=BTCUSDT&fromId={ids[2]}&limit=3")
        assert [t["id"] for t in response.json()] == ids[2:5]


def test_trades_page_by_start_time() -> None:
    clock = VirtualClock()
    with Simulator(clock=clock) as sim:
        sim.traffic("spot")
        clock.advance(60)
        sim.traffic("spot")
        later = sim.ledger("spot").trades[2]
        stamp = int(wall_time(clock) * 1000)
        query = f"symbol=BTCUSDT&startTime={later.time}&timestamp={stamp}"
        signature = hmac.new(TEST_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        response = httpx.get(
            f"{sim.url}/api/v3/myTrades?{query}&signature={signature}", headers={"X-MBX-APIKEY": TEST_API_KEY}
        )
        assert [t["id"] for t in response.json()] == [t.trade_id for t in sim.ledger("spot").trades[2:]]


def test_trades_without_paging_are_the_latest_limit() -> None:
    with Simulator() as sim:
        sim.traffic("usdm")
        sim.traffic("usdm")
        ids = [t.trade_id for t in sim.ledger("usdm").trades]
        response = signed(sim, "/fapi/v1/userTrades", "symbol=BTCUSDT&limit=2")
        assert [t["id"] for t in response.json()] == ids[-2:]


def test_spot_account_omits_zero_balances_when_asked() -> None:
    with Simulator() as sim:
        sim.traffic("spot", side="SELL", asset="USDT", balance="0.01000000")  # sells all its BTC
        everything = {b["asset"] for b in signed(sim, "/api/v3/account").json()["balances"]}
        nonzero = {
            b["asset"] for b in signed(sim, "/api/v3/account", "omitZeroBalances=true").json()["balances"]
        }
        assert (everything, nonzero) == ({"BTC", "USDT"}, {"USDT"})


def test_isolated_margin_account_answers_the_pairs_asked() -> None:
    with Simulator() as sim:
        sim.traffic("margin", isolated=True, symbol="ETHBTC", asset="BTC", balance="1.00000000")
        sim.traffic("margin", isolated=True, symbol="BTCUSDT")
        answer = signed(sim, "/sapi/v1/margin/isolated/account", "symbols=ETHBTC").json()
        assert [pair["symbol"] for pair in answer["assets"]] == ["ETHBTC"]
        assert answer["assets"][0]["quoteAsset"]["asset"] == "BTC"


def test_coinm_server_time_is_the_simulators_clock() -> None:
    clock = VirtualClock()
    with Simulator(clock=clock) as sim:
        clock.advance(30)
        assert httpx.get(f"{sim.url}/dapi/v1/time").json() == {"serverTime": int(wall_time(clock) * 1000)}
