"""Spot's and margin's REST reads for the account mirror (issue #18, part 1), as generated from the spec.

Each operation is Binance's, with the weight and security its page documents (cited in the spec's
`externalDocs`): spot's "Account information", "Current open orders", "Account trade list" and
"Check server time" (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/account-endpoints,
.../general-endpoints); margin's "Query Cross Margin Account Details", "Query Isolated Margin
Account Info", "Query Margin Account's Open Orders" and "Query Margin Account's Trade List"
(https://developers.binance.com/docs/margin_trading/account/..., .../trade/...). Each parses the
page's sample answer, served over loopback by a scripted server, into its typed model through
`uds.call(...)`; the USER_DATA ones are signed as every SIGNED request is (a `timestamp`, then an
HMAC-SHA256 `signature` last, https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from binance_userstream_client.api.margin import (
    get_margin_account,
    get_margin_isolated_account,
    get_margin_my_trades,
    get_margin_open_orders,
)
from binance_userstream_client.api.spot import (
    get_spot_account,
    get_spot_my_trades,
    get_spot_open_orders,
    get_spot_server_time,
)
from binance_userstream_client.models import (
    MarginAccount,
    MarginIsolatedAccount,
    MarginOrder,
    MarginTrade,
    SpotAccount,
    SpotCommissionRates,
    SpotOrder,
    SpotServerTime,
    SpotTrade,
)
from binance_userstream_client.security import OPERATION_SECURITY, SIGNED_OPERATIONS
from binance_userstream_client.types import UNSET

from binance_userstream import BackoffGate, UserDataStream
from tests._scripted import Reply, ScriptedServer
from tests.conftest import API_KEY, FAST_RETRY, ROOT

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SPEC = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
SIGNED = (("ApiKeyAuth", "Signature"),)

#: operationId -> (tag, method and path, documented weight as the spec's `x-weight` says it, security).
OPERATIONS: dict[str, tuple[str, str, Any, tuple[tuple[str, ...], ...]]] = {
    "get_spot_account": ("spot", "GET /api/v3/account", 20, SIGNED),
    "get_spot_open_orders": (
        "spot",
        "GET /api/v3/openOrders",
        {"default": 80, "with": {"symbol": 6}},
        SIGNED,
    ),
    "get_spot_my_trades": ("spot", "GET /api/v3/myTrades", {"default": 20, "with": {"orderId": 5}}, SIGNED),
    "get_spot_server_time": ("spot", "GET /api/v3/time", 1, ()),
    "get_margin_account": ("margin", "GET /sapi/v1/margin/account", 10, SIGNED),
    "get_margin_isolated_account": ("margin", "GET /sapi/v1/margin/isolated/account", 10, SIGNED),
    "get_margin_open_orders": ("margin", "GET /sapi/v1/margin/openOrders", 10, SIGNED),
    "get_margin_my_trades": ("margin", "GET /sapi/v1/margin/myTrades", 10, SIGNED),
}


def _spec_operation(method_and_path: str) -> dict[str, Any]:
    method, path = method_and_path.split(" ")
    operation: dict[str, Any] = SPEC["paths"][path][method.lower()]
    return operation


@pytest.fixture(autouse=True)
def _no_signing_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE", "BINANCE_PRIVATE_KEY_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def uds(server: ScriptedServer, gate: BackoffGate) -> Iterator[UserDataStream]:
    """A client of the scripted server holding an API key and an HMAC secret."""
    with UserDataStream(API_KEY, server.url, api_secret=SECRET, retry=FAST_RETRY, gate=gate) as client:
        yield client


# --- generated as declared -------------------------------------------------------------------


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_each_operation_declares_its_documented_weight_and_cites_its_page(operation_id: str) -> None:
    tag, where, weight, _ = OPERATIONS[operation_id]
    operation = _spec_operation(where)
    assert operation["operationId"] == operation_id
    assert operation["tags"] == [tag]
    assert operation["x-weight"] == weight
    assert operation.get("x-weight-per", "ip") == "ip"  # all eight are counted per IP
    assert operation["externalDocs"]["url"].startswith("https://developers.binance.com/docs/")
    assert operation["externalDocs"]["description"]


@pytest.mark.parametrize("operation_id", list(OPERATIONS))
def test_each_operation_is_generated_with_its_path_and_security(operation_id: str) -> None:
    tag, where, _, security = OPERATIONS[operation_id]
    module = importlib.import_module(f"binance_userstream_client.api.{tag}.{operation_id}")
    method, path = where.split(" ")
    arguments = {"symbol": "BNBBTC"} if operation_id.endswith("my_trades") else {}
    kwargs = module._get_kwargs(**arguments)
    assert (kwargs["method"].upper(), kwargs["url"]) == (method, path)
    assert OPERATION_SECURITY[operation_id] == security
    assert (operation_id in SIGNED_OPERATIONS) == (security == SIGNED)


# --- Binance's sample answers, parsed ----------------------------------------------------------

SPOT_ACCOUNT = {
    "makerCommission": 15,
    "takerCommission": 15,
    "buyerCommission": 0,
    "sellerCommission": 0,
    "commissionRates": {
        "maker": "0.00150000",
        "taker": "0.00150000",
        "buyer": "0.00000000",
        "seller": "0.00000000",
    },
    "canTrade": True,
    "canWithdraw": True,
    "canDeposit": True,
    "brokered": False,
    "requireSelfTradePrevention": False,
    "preventSor": False,
    "updateTime": 123456789,
    "accountType": "SPOT",
    "balances": [
        {"asset": "BTC", "free": "4723846.89208129", "locked": "0.00000000"},
        {"asset": "LTC", "free": "4763368.68006011", "locked": "0.00000000"},
    ],
    "permissions": ["SPOT"],
    "uid": 354937868,
}


def test_the_spot_account_sample_parses_into_spot_account(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body=SPOT_ACCOUNT))
    account = uds.call(get_spot_account.sync_detailed, SpotAccount, omit_zero_balances=True)
    assert (account.maker_commission, account.taker_commission) == (15, 15)
    assert (account.buyer_commission, account.seller_commission) == (0, 0)
    rates = account.commission_rates
    assert isinstance(rates, SpotCommissionRates)
    assert (rates.maker, rates.taker, rates.buyer, rates.seller) == (
        "0.00150000",
        "0.00150000",
        "0.00000000",
        "0.00000000",
    )
    assert (account.can_trade, account.can_withdraw, account.can_deposit) == (True, True, True)
    assert (account.brokered, account.require_self_trade_prevention, account.prevent_sor) == (
        False,
        False,
        False,
    )
    assert account.update_time == 123456789
    assert account.account_type == "SPOT"
    assert [(b.asset, b.free, b.locked) for b in account.balances] == [
        ("BTC", "4723846.89208129", "0.00000000"),
        ("LTC", "4763368.68006011", "0.00000000"),
    ]
    assert account.permissions == ["SPOT"]
    assert account.uid == 354937868
    assert account.to_dict() == SPOT_ACCOUNT
    assert server.requests[0].query["omitZeroBalances"] == ["true"]


SPOT_OPEN_ORDER = {
    "symbol": "LTCBTC",
    "orderId": 1,
    "orderListId": -1,
    "clientOrderId": "myOrder1",
    "price": "0.1",
    "origQty": "1.0",
    "executedQty": "0.0",
    "cummulativeQuoteQty": "0.0",
    "status": "NEW",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
    "stopPrice": "0.0",
    "icebergQty": "0.0",
    "time": 1499827319559,
    "updateTime": 1499827319559,
    "isWorking": True,
    "origQuoteOrderQty": "0.000000",
    "workingTime": 1499827319559,
    "selfTradePreventionMode": "NONE",
}


def test_the_spot_open_orders_sample_parses_into_spot_orders(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body=[SPOT_OPEN_ORDER]))
    (order,) = uds.call(get_spot_open_orders.sync_detailed, list, symbol="LTCBTC")
    assert isinstance(order, SpotOrder)
    assert (order.symbol, order.order_id, order.order_list_id, order.client_order_id) == (
        "LTCBTC",
        1,
        -1,
        "myOrder1",
    )
    assert (order.price, order.original_quantity, order.executed_quantity) == ("0.1", "1.0", "0.0")
    assert order.cumulative_quote_quantity == "0.0"
    assert (order.status, order.time_in_force, order.order_type, order.side) == ("NEW", "GTC", "LIMIT", "BUY")
    assert (order.stop_price, order.iceberg_quantity) == ("0.0", "0.0")
    assert (order.time, order.update_time, order.working_time) == (1499827319559,) * 3
    assert order.is_working is True
    assert order.original_quote_order_quantity == "0.000000"
    assert order.self_trade_prevention_mode == "NONE"
    assert order.to_dict() == SPOT_OPEN_ORDER
    assert server.requests[0].query["symbol"] == ["LTCBTC"]


SPOT_TRADE = {
    "symbol": "BNBBTC",
    "id": 28457,
    "orderId": 100234,
    "orderListId": -1,
    "price": "4.00000100",
    "qty": "12.00000000",
    "quoteQty": "48.000012",
    "commission": "10.10000000",
    "commissionAsset": "BNB",
    "time": 1499865549590,
    "isBuyer": True,
    "isMaker": False,
    "isBestMatch": True,
}


def test_the_spot_trade_list_sample_parses_into_spot_trades(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body=[SPOT_TRADE]))
    (trade,) = uds.call(get_spot_my_trades.sync_detailed, list, symbol="BNBBTC", from_id=28457, limit=1000)
    assert isinstance(trade, SpotTrade)
    assert (trade.symbol, trade.trade_id, trade.order_id, trade.order_list_id) == (
        "BNBBTC",
        28457,
        100234,
        -1,
    )
    assert (trade.price, trade.quantity, trade.quote_quantity) == ("4.00000100", "12.00000000", "48.000012")
    assert (trade.commission, trade.commission_asset) == ("10.10000000", "BNB")
    assert trade.time == 1499865549590
    assert (trade.is_buyer, trade.is_maker, trade.is_best_match) == (True, False, True)
    assert trade.to_dict() == SPOT_TRADE
    query = server.requests[0].query
    assert (query["symbol"], query["fromId"], query["limit"]) == (["BNBBTC"], ["28457"], ["1000"])


def test_the_spot_trade_list_is_asked_for_a_time_window_by_binances_names(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body=[]))
    trades = uds.call(
        get_spot_my_trades.sync_detailed,
        list,
        symbol="BNBBTC",
        start_time=1499865549000,
        end_time=1499865550000,
    )
    assert trades == []
    query = server.requests[0].query
    assert (query["startTime"], query["endTime"]) == (["1499865549000"], ["1499865550000"])


def test_the_server_time_sample_parses_and_is_asked_unsigned(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body={"serverTime": 1499827319559}))
    answer = uds.call(get_spot_server_time.sync_detailed, SpotServerTime)
    assert answer.server_time == 1499827319559
    (seen,) = server.requests
    assert (seen.path, seen.raw_query) == ("/api/v3/time", "")


MARGIN_ASSET = {
    "asset": "BNB",
    "borrowed": "201.66666672",
    "free": "2346.50000000",
    "interest": "0.00000000",
    "locked": "0.00000000",
    "netAsset": "2144.83333328",
}
MARGIN_ACCOUNT = {
    "created": True,
    "borrowEnabled": True,
    "marginLevel": "11.64405625",
    "collateralMarginLevel": "3.2",
    "totalAssetOfBtc": "6.82728457",
    "totalLiabilityOfBtc": "0.58633215",
    "totalNetAssetOfBtc": "6.24095242",
    "TotalCollateralValueInUSDT": "5.82728457",
    "totalOpenOrderLossInUSDT": "582.728457",
    "tradeEnabled": True,
    "transferInEnabled": True,
    "transferOutEnabled": True,
    "accountType": "MARGIN_1",
    "userAssets": [
        {
            "asset": "BTC",
            "borrowed": "0.00000000",
            "free": "0.00499500",
            "interest": "0.00000000",
            "locked": "0.00000000",
            "netAsset": "0.00499500",
        },
        MARGIN_ASSET,
    ],
}


def test_the_cross_margin_account_sample_parses_into_margin_account(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body=MARGIN_ACCOUNT))
    account = uds.call(get_margin_account.sync_detailed, MarginAccount)
    assert (account.created, account.borrow_enabled, account.trade_enabled) == (True, True, True)
    assert (account.transfer_in_enabled, account.transfer_out_enabled) == (True, True)
    assert (account.margin_level, account.collateral_margin_level) == ("11.64405625", "3.2")
    assert (account.total_asset_of_btc, account.total_liability_of_btc, account.total_net_asset_of_btc) == (
        "6.82728457",
        "0.58633215",
        "6.24095242",
    )
    assert account.total_collateral_value_in_usdt == "5.82728457"
    assert account.total_open_order_loss_in_usdt == "582.728457"
    assert account.account_type == "MARGIN_1"
    assert [
        (a.asset, a.borrowed, a.free, a.interest, a.locked, a.net_asset) for a in account.user_assets
    ] == [
        ("BTC", "0.00000000", "0.00499500", "0.00000000", "0.00000000", "0.00499500"),
        ("BNB", "201.66666672", "2346.50000000", "0.00000000", "0.00000000", "2144.83333328"),
    ]
    assert account.to_dict() == MARGIN_ACCOUNT


def _isolated_asset(asset: str) -> dict[str, Any]:
    zero = "0.00000000"
    return {
        "asset": asset,
        "borrowEnabled": True,
        "borrowed": zero,
        "free": zero,
        "interest": zero,
        "locked": zero,
        "netAsset": zero,
        "netAssetOfBtc": zero,
        "repayEnabled": True,
        "totalAsset": zero,
    }


ISOLATED_PAIR = {
    "baseAsset": _isolated_asset("BTC"),
    "quoteAsset": _isolated_asset("USDT"),
    "symbol": "BTCUSDT",
    "isolatedCreated": True,
    "enabled": True,
    "marginLevel": "0.00000000",
    "marginLevelStatus": "EXCESSIVE",
    "marginRatio": "0.00000000",
    "indexPrice": "10000.00000000",
    "liquidatePrice": "1000.00000000",
    "liquidateRate": "1.00000000",
    "tradeEnabled": True,
}
ISOLATED_ACCOUNT = {
    "assets": [ISOLATED_PAIR],
    "totalAssetOfBtc": "0.00000000",
    "totalLiabilityOfBtc": "0.00000000",
    "totalNetAssetOfBtc": "0.00000000",
}


def test_the_isolated_margin_account_sample_parses_into_margin_isolated_account(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body=ISOLATED_ACCOUNT))
    account = uds.call(get_margin_isolated_account.sync_detailed, MarginIsolatedAccount)
    assert (account.total_asset_of_btc, account.total_liability_of_btc, account.total_net_asset_of_btc) == (
        "0.00000000",
        "0.00000000",
        "0.00000000",
    )
    (pair,) = account.assets
    assert (pair.symbol, pair.isolated_created, pair.enabled, pair.trade_enabled) == (
        "BTCUSDT",
        True,
        True,
        True,
    )
    assert (pair.margin_level, pair.margin_level_status, pair.margin_ratio) == (
        "0.00000000",
        "EXCESSIVE",
        "0.00000000",
    )
    assert (pair.index_price, pair.liquidate_price, pair.liquidate_rate) == (
        "10000.00000000",
        "1000.00000000",
        "1.00000000",
    )
    for side, asset in ((pair.base_asset, "BTC"), (pair.quote_asset, "USDT")):
        assert (side.asset, side.borrow_enabled, side.repay_enabled) == (asset, True, True)
        assert {side.borrowed, side.free, side.interest, side.locked, side.net_asset} == {"0.00000000"}
        assert (side.net_asset_of_btc, side.total_asset) == ("0.00000000", "0.00000000")
    assert account.to_dict() == ISOLATED_ACCOUNT


def test_the_isolated_margin_account_for_some_symbols_has_no_totals_and_sends_symbols(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    """Binance: "If symbols is sent, only the isolated assets of the sent symbols will be returned"."""
    server.script(Reply(body={"assets": [ISOLATED_PAIR]}))
    account = uds.call(
        get_margin_isolated_account.sync_detailed, MarginIsolatedAccount, symbols="BTCUSDT,BNBUSDT"
    )
    assert [pair.symbol for pair in account.assets] == ["BTCUSDT"]
    assert account.total_asset_of_btc is UNSET
    assert server.requests[0].query["symbols"] == ["BTCUSDT,BNBUSDT"]


MARGIN_OPEN_ORDER = {
    "clientOrderId": "qhcZw71gAkCCTv0t0k8LUK",
    "cummulativeQuoteQty": "0.00000000",
    "executedQty": "0.00000000",
    "icebergQty": "0.00000000",
    "isWorking": True,
    "orderId": 211842552,
    "origQty": "0.30000000",
    "price": "0.00475010",
    "side": "SELL",
    "status": "NEW",
    "stopPrice": "0.00000000",
    "symbol": "BNBBTC",
    "isIsolated": True,
    "time": 1562040170089,
    "timeInForce": "GTC",
    "type": "LIMIT",
    "selfTradePreventionMode": "NONE",
    "updateTime": 1562040170089,
}


def test_the_margin_open_orders_sample_parses_into_margin_orders(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body=[MARGIN_OPEN_ORDER]))
    (order,) = uds.call(get_margin_open_orders.sync_detailed, list, symbol="BNBBTC", is_isolated="TRUE")
    assert isinstance(order, MarginOrder)
    assert (order.symbol, order.order_id, order.client_order_id) == (
        "BNBBTC",
        211842552,
        "qhcZw71gAkCCTv0t0k8LUK",
    )
    assert (order.price, order.original_quantity, order.executed_quantity) == (
        "0.00475010",
        "0.30000000",
        "0.00000000",
    )
    assert (order.cumulative_quote_quantity, order.iceberg_quantity, order.stop_price) == ("0.00000000",) * 3
    assert (order.status, order.time_in_force, order.order_type, order.side) == (
        "NEW",
        "GTC",
        "LIMIT",
        "SELL",
    )
    assert (order.time, order.update_time) == (1562040170089, 1562040170089)
    assert (order.is_working, order.is_isolated) == (True, True)
    assert order.self_trade_prevention_mode == "NONE"
    assert order.to_dict() == MARGIN_OPEN_ORDER
    query = server.requests[0].query
    assert (query["symbol"], query["isIsolated"]) == (["BNBBTC"], ["TRUE"])  # Binance's upper-case string


MARGIN_TRADE = {
    "commission": "0.00006000",
    "commissionAsset": "BTC",
    "id": 34,
    "isBestMatch": True,
    "isBuyer": False,
    "isMaker": False,
    "orderId": 39324,
    "price": "0.02000000",
    "qty": "3.00000000",
    "symbol": "BNBBTC",
    "isIsolated": False,
    "time": 1561973357171,
}


def test_the_margin_trade_list_sample_parses_into_margin_trades(
    uds: UserDataStream, server: ScriptedServer
) -> None:
    server.script(Reply(body=[MARGIN_TRADE]))
    (trade,) = uds.call(get_margin_my_trades.sync_detailed, list, symbol="BNBBTC", from_id=34)
    assert isinstance(trade, MarginTrade)
    assert (trade.symbol, trade.trade_id, trade.order_id, trade.is_isolated) == ("BNBBTC", 34, 39324, False)
    assert (trade.price, trade.quantity) == ("0.02000000", "3.00000000")
    assert (trade.commission, trade.commission_asset) == ("0.00006000", "BTC")
    assert trade.time == 1561973357171
    assert (trade.is_buyer, trade.is_maker, trade.is_best_match) == (False, False, True)
    assert trade.to_dict() == MARGIN_TRADE
    assert server.requests[0].query["fromId"] == ["34"]


# --- signed ----------------------------------------------------------------------------------

#: Each USER_DATA operation, its generated function, the arguments it needs and a sample answer.
SIGNED_CALLS: dict[str, tuple[Any, type[Any], dict[str, Any], Any]] = {
    "get_spot_account": (get_spot_account.sync_detailed, SpotAccount, {}, SPOT_ACCOUNT),
    "get_spot_open_orders": (get_spot_open_orders.sync_detailed, list, {}, [SPOT_OPEN_ORDER]),
    "get_spot_my_trades": (get_spot_my_trades.sync_detailed, list, {"symbol": "BNBBTC"}, [SPOT_TRADE]),
    "get_margin_account": (get_margin_account.sync_detailed, MarginAccount, {}, MARGIN_ACCOUNT),
    "get_margin_isolated_account": (
        get_margin_isolated_account.sync_detailed,
        MarginIsolatedAccount,
        {},
        ISOLATED_ACCOUNT,
    ),
    "get_margin_open_orders": (get_margin_open_orders.sync_detailed, list, {}, [MARGIN_OPEN_ORDER]),
    "get_margin_my_trades": (get_margin_my_trades.sync_detailed, list, {"symbol": "BNBBTC"}, [MARGIN_TRADE]),
}


def test_the_signed_calls_are_the_signed_operations_here() -> None:
    assert set(SIGNED_CALLS) == {name for name, (*_, security) in OPERATIONS.items() if security == SIGNED}


@pytest.mark.parametrize("operation_id", list(SIGNED_CALLS))
def test_each_user_data_read_carries_a_timestamp_and_a_signature_that_verifies_last(
    operation_id: str, uds: UserDataStream, server: ScriptedServer
) -> None:
    function, model, arguments, sample = SIGNED_CALLS[operation_id]
    server.script(Reply(body=sample))
    before = int(time.time() * 1000)
    uds.call(function, model, **arguments)
    (seen,) = server.requests
    assert seen.headers["x-mbx-apikey"] == API_KEY
    signed, _, last = seen.raw_query.rpartition("&")
    assert last.startswith("signature=")
    assert (
        last.removeprefix("signature=")
        == hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
    )
    stamp = dict(part.split("=", 1) for part in signed.split("&"))["timestamp"]
    assert before <= int(stamp) <= int(time.time() * 1000)
    assert [part.split("=", 1)[0] for part in signed.split("&")] == [*arguments, "timestamp"]
