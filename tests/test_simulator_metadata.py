"""The public routes clients read before they stream, each answered as Binance documents it, over HTTP.

python-binance's `AsyncClient.create()` pings and reads the server time; ccxt's `load_markets()`
reads exchangeInfo, the coins and the margin pairs. Binance's pages (cited in `_metadata`):
spot's general endpoints (ping and time weight 1, exchangeInfo 20), USD-M's and COIN-M's market
data (weight 1 each; COIN-M's symbols carry `contractStatus`), Portfolio Margin's ping and Options'
ping and time (weight 1), the wallet's all-coins page (USER_DATA: signed) and margin's pair lists
(an API key).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import httpx
import pytest

from binance_userstream import VirtualClock
from binance_userstream._clock import wall_time
from binance_userstream.simulator import ISOLATED_SYMBOLS, TEST_API_KEY, TEST_API_SECRET, Simulator

PINGS = ["/api/v3/ping", "/fapi/v1/ping", "/dapi/v1/ping", "/papi/v1/ping", "/eapi/v1/ping"]
TIMES = ["/api/v3/time", "/fapi/v1/time", "/dapi/v1/time", "/eapi/v1/time"]
COINS = "/sapi/v1/capital/config/getall"
SIGNED = [
    COINS,
    "/fapi/v1/leverageBracket",
    "/fapi/v3/positionRisk",
    "/dapi/v2/leverageBracket",
    "/dapi/v1/positionRisk",
]


@pytest.fixture
def http(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url) as client:
        yield client


def signed(query: str) -> str:
    signature = hmac.new(TEST_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


def get_signed(http: httpx.Client, path: str, clock: VirtualClock) -> httpx.Response:
    query = signed(f"timestamp={int(wall_time(clock) * 1000)}")
    return http.get(f"{path}?{query}", headers={"X-MBX-APIKEY": TEST_API_KEY})


def symbols(http: httpx.Client, path: str) -> dict[str, dict[str, object]]:
    response = http.get(path)
    assert response.status_code == 200, response.text
    return {row["symbol"]: row for row in response.json()["symbols"]}


@pytest.mark.parametrize("path", PINGS)
def test_ping_answers_an_empty_object_with_weight_1(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert (response.status_code, response.json()) == (200, {})
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "1"


@pytest.mark.parametrize("path", TIMES)
def test_time_answers_the_simulators_clock_in_milliseconds(
    http: httpx.Client, vclock: VirtualClock, path: str
) -> None:
    vclock.advance(90)
    assert http.get(path).json() == {"serverTime": int(wall_time(vclock) * 1000)}


def test_metadata_weight_counts_on_its_markets_host(http: httpx.Client) -> None:
    """Spot's exchangeInfo weighs 20, counted with spot's ping on api.binance.com; USD-M's host
    counts apart."""
    assert http.get("/api/v3/exchangeInfo").headers["X-MBX-USED-WEIGHT-1M"] == "20"
    assert http.get("/api/v3/ping").headers["X-MBX-USED-WEIGHT-1M"] == "21"
    assert http.get("/fapi/v1/ping").headers["X-MBX-USED-WEIGHT-1M"] == "1"


def test_a_metadata_route_answers_get_only(http: httpx.Client) -> None:
    response = http.post("/api/v3/ping")
    assert (response.status_code, response.headers["Allow"]) == (405, "GET")


def test_spot_exchange_info_lists_every_pair_the_simulator_trades(http: httpx.Client) -> None:
    pairs = symbols(http, "/api/v3/exchangeInfo")
    assert set(ISOLATED_SYMBOLS) <= set(pairs)
    btc = pairs["BTCUSDT"]  # Traffic's default pair
    assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    filters = {f["filterType"] for f in btc["filters"]}  # type: ignore[attr-defined]
    assert {"PRICE_FILTER", "LOT_SIZE"} <= filters


def test_spot_exchange_info_carries_the_server_time_and_the_weight_limit(
    http: httpx.Client, vclock: VirtualClock
) -> None:
    info = http.get("/api/v3/exchangeInfo").json()
    assert (info["timezone"], info["serverTime"]) == ("UTC", int(wall_time(vclock) * 1000))
    assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000} in info[
        "rateLimits"
    ]


def test_usdm_exchange_info_lists_perpetuals_margined_in_usdt(http: httpx.Client) -> None:
    btc = symbols(http, "/fapi/v1/exchangeInfo")["BTCUSDT"]
    assert (btc["contractType"], btc["status"], btc["marginAsset"]) == ("PERPETUAL", "TRADING", "USDT")


def test_coinm_exchange_info_lists_coin_margined_perpetuals_by_contract_status(http: httpx.Client) -> None:
    btc = symbols(http, "/dapi/v1/exchangeInfo")["BTCUSD_PERP"]
    assert (btc["contractType"], btc["contractStatus"], btc["marginAsset"]) == ("PERPETUAL", "TRADING", "BTC")
    assert (btc["pair"], btc["contractSize"]) == ("BTCUSD", 100)


def test_the_coins_are_listed_to_a_signed_request(http: httpx.Client, vclock: VirtualClock) -> None:
    response = get_signed(http, COINS, vclock)
    assert response.status_code == 200, response.text
    coins = {row["coin"]: row for row in response.json()}
    assert {"BTC", "ETH", "BNB", "USDT"} <= set(coins)
    assert coins["BTC"]["networkList"][0]["coin"] == "BTC"
    assert response.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "10"


@pytest.mark.parametrize("path", SIGNED)
def test_a_user_data_route_refuses_an_unsigned_request(
    http: httpx.Client, vclock: VirtualClock, path: str
) -> None:
    query = f"timestamp={int(wall_time(vclock) * 1000)}"
    response = http.get(f"{path}?{query}", headers={"X-MBX-APIKEY": TEST_API_KEY})
    assert response.status_code == 400
    assert response.json()["code"] == -1102


def test_the_coins_are_refused_to_a_wrong_signature(http: httpx.Client, vclock: VirtualClock) -> None:
    query = f"timestamp={int(wall_time(vclock) * 1000)}&signature={'0' * 64}"
    response = http.get(f"{COINS}?{query}", headers={"X-MBX-APIKEY": TEST_API_KEY})
    assert (response.status_code, response.json()["code"]) == (400, -1022)


@pytest.mark.parametrize(
    ("path", "symbol", "cap"),
    [
        ("/fapi/v1/leverageBracket", "BTCUSDT", "notionalCap"),
        ("/dapi/v2/leverageBracket", "BTCUSD_PERP", "qtyCap"),
    ],
)
def test_leverage_brackets_list_every_perpetual(
    http: httpx.Client, vclock: VirtualClock, path: str, symbol: str, cap: str
) -> None:
    """USD-M's brackets are in notional, COIN-M's in contracts (what ccxt's positions snapshot reads)."""
    response = get_signed(http, path, vclock)
    assert response.status_code == 200, response.text
    brackets = {row["symbol"]: row["brackets"] for row in response.json()}
    assert set(brackets) == set(
        symbols(http, path.replace("leverageBracket", "exchangeInfo").replace("v2", "v1"))
    )
    assert cap in brackets[symbol][0]
    assert brackets[symbol][0]["maintMarginRatio"] > 0


@pytest.mark.parametrize("path", ["/fapi/v3/positionRisk", "/dapi/v1/positionRisk"])
def test_the_simulators_accounts_hold_no_positions(
    http: httpx.Client, vclock: VirtualClock, path: str
) -> None:
    response = get_signed(http, path, vclock)
    assert (response.status_code, response.json()) == (200, [])


def test_margin_pairs_need_an_api_key(http: httpx.Client) -> None:
    response = http.get("/sapi/v1/margin/allPairs")
    assert (response.status_code, response.json()["code"]) == (401, -2014)


def test_isolated_margin_pairs_are_those_with_an_isolated_account(http: httpx.Client) -> None:
    response = http.get("/sapi/v1/margin/isolated/allPairs", headers={"X-MBX-APIKEY": TEST_API_KEY})
    assert response.status_code == 200, response.text
    assert sorted(row["symbol"] for row in response.json()) == sorted(ISOLATED_SYMBOLS)


def test_cross_margin_pairs_list_every_spot_pair(http: httpx.Client) -> None:
    response = http.get("/sapi/v1/margin/allPairs", headers={"X-MBX-APIKEY": TEST_API_KEY})
    assert {row["symbol"] for row in response.json()} == set(symbols(http, "/api/v3/exchangeInfo"))


def test_the_404_names_the_metadata_routes(http: httpx.Client) -> None:
    body = http.get("/api/v3/order").json()
    assert {"/api/v3/ping", "/fapi/v1/time", "/dapi/v1/exchangeInfo"} <= set(body["metadata"])
