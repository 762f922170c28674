"""The routes clients call before they stream: ping, server time, exchange information, and the few
account listings ccxt loads with its markets and its first watch. Each answers what Binance
documents, no more.

python-binance's `AsyncClient.create()` pings and reads the server time; ccxt's `load_markets()`
reads every exchangeInfo its exchange trades on and, with API keys, the coins and margin pairs, and
its first `watchOrders()`/`watchBalance()` on USD-M or COIN-M takes a positions snapshot (the
leverage brackets, then the positions). A simulator that served none of them stopped those clients
at their first request. The answers are
minimal: the documented shapes, holding the pairs the simulator trades (`Traffic`'s BTCUSDT, the
isolated margin pairs of `ISOLATED_SYMBOLS`, and their USD-M and COIN-M perpetuals). Server times
are the simulator's clock. Sources (each page's weight and sample answer):

- spot: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints
  (`GET /api/v3/ping` weight 1 `{}`; `GET /api/v3/time` weight 1 `{"serverTime": ...}`;
  `GET /api/v3/exchangeInfo` weight 20);
- USD-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api
  (Test-Connectivity, Check-Server-Time, Exchange-Information: weight 1 each);
- COIN-M: https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/rest-api
  (the same three, weight 1 each; a symbol's state is `contractStatus`);
- Portfolio Margin: https://developers.binance.com/docs/derivatives/portfolio-margin/market-data
  (`GET /papi/v1/ping`, weight 1; Portfolio Margin documents no server-time route);
- Options: https://developers.binance.com/docs/derivatives/options-trading/market-data
  (Test-Connectivity and Check-Server-Time, weight 1 each);
- wallet: https://developers.binance.com/docs/wallet/capital/all-coins-info
  (`GET /sapi/v1/capital/config/getall`, USER_DATA: signed, weight(IP) 10);
- margin: https://developers.binance.com/docs/margin_trading/market-data/Get-All-Cross-Margin-Pairs
  (`GET /sapi/v1/margin/allPairs`, API key, weight(IP) 1) and .../Get-All-Isolated-Margin-Symbol
  (`GET /sapi/v1/margin/isolated/allPairs`, API key, weight(IP) 10);
- positions: USD-M's account/rest-api/Notional-and-Leverage-Brackets (`GET /fapi/v1/leverageBracket`,
  USER_DATA, weight 1) and trade/rest-api/Position-Information-V3 (`GET /fapi/v3/positionRisk`,
  weight 5: only the symbols with a position or an open order), COIN-M's
  account/Notional-Bracket-for-Symbol (`GET /dapi/v2/leverageBracket`, weight 1; brackets in
  contracts, `qtyCap`/`qtyFloor`, which the page's sample misspells `qtylFloor`) and
  trade/Position-Information (`GET /dapi/v1/positionRisk`, weight 1): those two are account reads,
  answered from the ledger with the other account reads (see `_account_routes`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Literal

from attrs import frozen

from binance_userstream.simulator._markets import COINM, SPOT, USDM
from binance_userstream.simulator._tokens import ISOLATED_SYMBOLS
from binance_userstream.simulator._traffic import coinm_contract_size

#: Who may call a route: anyone (NONE), an API key (the X-MBX-APIKEY header), or a signed request.
Security = Literal["NONE", "API_KEY", "SIGNED"]
JSON = object

#: The spot pairs the simulator trades, (symbol, base asset, quote asset, tick size, step size).
SPOT_PAIRS = (
    ("BTCUSDT", "BTC", "USDT", "0.01000000", "0.00001000"),
    ("ETHUSDT", "ETH", "USDT", "0.01000000", "0.00010000"),
    ("BNBUSDT", "BNB", "USDT", "0.01000000", "0.00100000"),
    ("ETHBTC", "ETH", "BTC", "0.00001000", "0.00010000"),
    ("BNBBTC", "BNB", "BTC", "0.00000100", "0.00100000"),
)
#: The perpetuals the simulator trades on USD-M (margined in USDT) and COIN-M (margined in the coin).
USDM_BASES = ("BTC", "ETH", "BNB")
COINM_BASES = ("BTC", "ETH", "BNB")
#: The deliveryDate Binance gives a perpetual (2100-12-25).
PERPETUAL_DELIVERY = 4133404800000
_ONBOARD = 1569398400000
_COIN_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "BNB": "BNB", "USDT": "TetherUS"}
_FUTURES_ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"]


@frozen
class Route:
    """One metadata route: the market whose host counts its weight, the weight, who may call it,
    and its answer at a server time (ms)."""

    market: str
    weight: int
    security: Security
    answer: Callable[[int], JSON]


def _spot_symbol(symbol: str, base: str, quote: str, tick: str, step: str) -> dict[str, object]:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000.00000000",
                "tickSize": tick,
            },
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _futures_filters(tick: str, step: str) -> list[dict[str, object]]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000", "stepSize": step},
        {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "120", "stepSize": step},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
        {
            "filterType": "PERCENT_PRICE",
            "multiplierUp": "1.0500",
            "multiplierDown": "0.9500",
            "multiplierDecimal": "4",
        },
    ]


def _usdm_symbol(base: str) -> dict[str, object]:
    return {
        "symbol": f"{base}USDT",
        "pair": f"{base}USDT",
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY,
        "onboardDate": _ONBOARD,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": 2,
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [*_futures_filters("0.10", "0.001"), {"filterType": "MIN_NOTIONAL", "notional": "5"}],
        "orderTypes": _FUTURES_ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def _coinm_symbol(base: str) -> dict[str, object]:
    return {
        "symbol": f"{base}USD_PERP",
        "pair": f"{base}USD",
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY,
        "onboardDate": _ONBOARD,
        "contractStatus": "TRADING",
        "contractSize": coinm_contract_size(f"{base}USD_PERP"),
        "marginAsset": base,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": "USD",
        "pricePrecision": 1,
        "quantityPrecision": 0,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "equalQtyPrecision": 4,
        "triggerProtect": "0.0500",
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "liquidationFee": "0.010000",
        "marketTakeBound": "0.05",
        "filters": _futures_filters("0.1", "1"),
        "orderTypes": _FUTURES_ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def _rate_limits(weight_limit: int, orders: dict[str, object]) -> list[dict[str, object]]:
    """The limits an exchangeInfo reports: the market's weight limit, as the simulator enforces it."""
    return [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit},
        {"rateLimitType": "ORDERS", **orders},
    ]


def _spot_exchange_info(server_ms: int) -> JSON:
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "rateLimits": _rate_limits(
            SPOT.weight_limit, {"interval": "SECOND", "intervalNum": 10, "limit": 100}
        ),
        "exchangeFilters": [],
        "symbols": [_spot_symbol(*pair) for pair in SPOT_PAIRS],
    }


def _usdm_exchange_info(server_ms: int) -> JSON:
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": _rate_limits(
            USDM.weight_limit, {"interval": "MINUTE", "intervalNum": 1, "limit": 1200}
        ),
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [_usdm_symbol(base) for base in USDM_BASES],
    }


def _coinm_exchange_info(server_ms: int) -> JSON:
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "rateLimits": _rate_limits(
            COINM.weight_limit, {"interval": "MINUTE", "intervalNum": 1, "limit": 1200}
        ),
        "exchangeFilters": [],
        "symbols": [_coinm_symbol(base) for base in COINM_BASES],
    }


def _coins(server_ms: int) -> JSON:
    """Every asset of the pairs traded, each on its own network, empty balances."""
    assets = sorted({asset for _, base, quote, *_ in SPOT_PAIRS for asset in (base, quote)})
    zero = "0.00000000"
    return [
        {
            "coin": coin,
            "name": _COIN_NAMES.get(coin, coin),
            "depositAllEnable": True,
            "withdrawAllEnable": True,
            "free": zero,
            "locked": zero,
            "freeze": zero,
            "withdrawing": zero,
            "ipoing": zero,
            "ipoable": zero,
            "storage": zero,
            "isLegalMoney": False,
            "trading": True,
            "networkList": [
                {
                    "network": coin,
                    "coin": coin,
                    "name": _COIN_NAMES.get(coin, coin),
                    "isDefault": True,
                    "depositEnable": True,
                    "withdrawEnable": True,
                    "depositDesc": "",
                    "withdrawDesc": "",
                    "specialTips": "",
                    "addressRegex": "",
                    "memoRegex": "",
                    "withdrawFee": "0.00050000",
                    "withdrawIntegerMultiple": "0.00000001",
                    "withdrawMin": "0.00100000",
                    "withdrawMax": "9999999999.99999999",
                    "withdrawInternalMin": "0.00000001",
                    "minConfirm": 1,
                    "unLockConfirm": 2,
                    "sameAddress": False,
                    "estimatedArrivalTime": 25,
                    "busy": False,
                    "contractAddressUrl": "",
                    "contractAddress": "",
                }
            ],
        }
        for coin in assets
    ]


def _cross_margin_pairs(server_ms: int) -> JSON:
    return [
        {
            "id": index,
            "symbol": symbol,
            "base": base,
            "quote": quote,
            "isMarginTrade": True,
            "isBuyAllowed": True,
            "isSellAllowed": True,
        }
        for index, (symbol, base, quote, *_) in enumerate(SPOT_PAIRS, start=351637150141315861)
    ]


def _isolated_margin_pairs(server_ms: int) -> JSON:
    return [
        {
            "symbol": symbol,
            "base": base,
            "quote": quote,
            "isMarginTrade": True,
            "isBuyAllowed": True,
            "isSellAllowed": True,
        }
        for symbol, base, quote, *_ in SPOT_PAIRS
        if symbol in ISOLATED_SYMBOLS
    ]


def _usdm_brackets(server_ms: int) -> JSON:
    bracket = {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0}
    return [
        {
            "symbol": f"{base}USDT",
            "notionalCoef": 1.0,
            "brackets": [{**bracket, "maintMarginRatio": 0.004, "cum": 0.0}],
        }
        for base in USDM_BASES
    ]


def _coinm_brackets(server_ms: int) -> JSON:
    bracket = {"bracket": 1, "initialLeverage": 125, "qtyCap": 50, "qtyFloor": 0}
    return [
        {
            "symbol": f"{base}USD_PERP",
            "notionalCoef": 1.0,
            "brackets": [{**bracket, "maintMarginRatio": 0.004, "cum": 0.0}],
        }
        for base in COINM_BASES
    ]


def _empty(server_ms: int) -> JSON:
    return {}


def _server_time(server_ms: int) -> JSON:
    return {"serverTime": server_ms}


#: Every metadata route, by path (all GET).
ROUTES: Mapping[str, Route] = {
    "/api/v3/ping": Route("spot", 1, "NONE", _empty),
    "/api/v3/time": Route("spot", 1, "NONE", _server_time),
    "/api/v3/exchangeInfo": Route("spot", 20, "NONE", _spot_exchange_info),
    "/fapi/v1/ping": Route("usdm", 1, "NONE", _empty),
    "/fapi/v1/time": Route("usdm", 1, "NONE", _server_time),
    "/fapi/v1/exchangeInfo": Route("usdm", 1, "NONE", _usdm_exchange_info),
    "/dapi/v1/ping": Route("coinm", 1, "NONE", _empty),
    "/dapi/v1/time": Route("coinm", 1, "NONE", _server_time),
    "/dapi/v1/exchangeInfo": Route("coinm", 1, "NONE", _coinm_exchange_info),
    "/papi/v1/ping": Route("portfolio", 1, "NONE", _empty),
    "/eapi/v1/ping": Route("options", 1, "NONE", _empty),
    "/eapi/v1/time": Route("options", 1, "NONE", _server_time),
    "/sapi/v1/capital/config/getall": Route("spot", 10, "SIGNED", _coins),
    "/sapi/v1/margin/allPairs": Route("spot", 1, "API_KEY", _cross_margin_pairs),
    "/sapi/v1/margin/isolated/allPairs": Route("spot", 10, "API_KEY", _isolated_margin_pairs),
    "/fapi/v1/leverageBracket": Route("usdm", 1, "SIGNED", _usdm_brackets),
    "/dapi/v2/leverageBracket": Route("coinm", 1, "SIGNED", _coinm_brackets),
}


def weight_header(path: str) -> str:
    """The header that reports a route's used weight: SAPI routes count weight(IP) under their own name."""
    return "X-SAPI-USED-IP-WEIGHT-1M" if path.startswith("/sapi/") else "X-MBX-USED-WEIGHT-1M"


def body(route: Route, server_ms: int) -> bytes:
    return json.dumps(route.answer(server_ms)).encode()
