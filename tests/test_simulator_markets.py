"""Every listenKey market the simulator serves, each rule spoken to over HTTP with a plain httpx client.

Binance documents one lifecycle (POST creates or returns the account's active key and extends it;
PUT extends it by 60 minutes; DELETE closes it; -1125 for a key that does not exist) on several
markets that differ in the details, which the simulator keeps:

- spot, https://github.com/binance/binance-spot-api-docs (user-data-stream.md before 2026-02-20):
  PUT/DELETE name the key in a `listenKey` parameter, PUT answers `{}`, weight 2 (CHANGELOG
  2023-08-25); retired on 2026-02-20 (CHANGELOG 2026-01-21), answered 410 in retired mode;
- USD-M, https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams:
  PUT and DELETE take no parameter (the API key implies the key), PUT answers
  `{"listenKey": <the key extended>}`, weight 1, 2,400 weight per minute per IP;
- COIN-M, Portfolio Margin and Options (developers.binance.com/docs/derivatives/coin-margined-futures,
  /portfolio-margin and /options-trading user-data-streams): as USD-M, but PUT answers `{}`, except
  COIN-M's, which answers the key as USD-M's does by default: Binance's COIN-M SDK models it so since
  2026-01-13 (binance-sdk-derivatives-trading-coin-futures 14.1.0); Options' POST answers
  `expiration` (ms) beside the key (developers.binance.com/en/docs/catalog/
  core-trading-derivatives-trading-options/api/rest-api/user-data-streams);
- margin's /sapi/v1/userDataStream and /isolated, retired on 2026-02-20
  (https://developers.binance.com/docs/margin_trading, change log 2026-01-21): always 410.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from binance_userstream import BinanceAPIError, UserDataStream, VirtualClock
from binance_userstream._answers import error_for
from binance_userstream.simulator import MARKETS, Exchange, Market, Simulator
from binance_userstream.simulator._markets import COINM, OPTIONS, PORTFOLIO, SPOT, USDM
from tests.conftest import API_KEY

OTHER_KEY = "Z" * 64
#: Spot's old lifecycle, retired in production, is what these tests speak to (besides the rest).
pytestmark = pytest.mark.simulator(retired=False)
LIVE = [SPOT, USDM, COINM, PORTFOLIO, OPTIONS]
DERIVATIVES = [USDM, COINM, PORTFOLIO, OPTIONS]
MARGIN_PATHS = ["/sapi/v1/userDataStream", "/sapi/v1/userDataStream/isolated"]
by_name = pytest.mark.parametrize("market", LIVE, ids=lambda m: m.name)
derivatives = pytest.mark.parametrize("market", DERIVATIVES, ids=lambda m: m.name)


@pytest.fixture
def http(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, headers={"X-MBX-APIKEY": API_KEY}) as client:
        yield client


def create(http: httpx.Client, market: Market, api_key: str = API_KEY) -> str:
    response = http.post(market.path, headers={"X-MBX-APIKEY": api_key})
    assert response.status_code == 200, response.text
    return str(response.json()["listenKey"])


def call(http: httpx.Client, method: str, market: Market, key: str) -> httpx.Response:
    """PUT or DELETE as the market documents it: spot names the key, the derivatives send nothing."""
    params = {"listenKey": key} if market.key_in_request else None
    return http.request(method, market.path, params=params)


def code_of(response: httpx.Response) -> int:
    return int(response.json()["code"])


# -- answer shapes -------------------------------------------------------------------------------


@by_name
def test_create_answers_a_60_character_listen_key(http: httpx.Client, market: Market) -> None:
    body = http.post(market.path).json()
    assert list(body) == (["listenKey", "expiration"] if market is OPTIONS else ["listenKey"])
    assert len(body["listenKey"]) == 60
    assert body["listenKey"].isalnum()


@pytest.mark.parametrize(
    ("market", "echoes"),
    [(SPOT, False), (USDM, True), (COINM, True), (PORTFOLIO, False), (OPTIONS, False)],
    ids=lambda v: v.name if isinstance(v, Market) else None,
)
def test_keepalive_answers_as_each_market_documents(http: httpx.Client, market: Market, echoes: bool) -> None:
    """USD-M's and COIN-M's keepalive answer `{"listenKey": <the key extended>}`; the others `{}`."""
    key = create(http, market)
    response = call(http, "PUT", market, key)
    assert response.status_code == 200
    assert response.json() == ({"listenKey": key} if echoes else {})


def test_coinm_keepalive_echoes_key_false_answers_an_empty_object(vclock: VirtualClock) -> None:
    """COIN-M's older pages' answer, for clients written to them; the key is extended all the same."""
    with (
        Simulator(clock=vclock, coinm_keepalive_echoes_key=False) as sim,
        httpx.Client(base_url=sim.url, headers={"X-MBX-APIKEY": API_KEY}) as http,
    ):
        key = create(http, COINM)
        vclock.advance(3000)
        response = call(http, "PUT", COINM, key)
        vclock.advance(3000)
        assert sim.exchange.is_live(key)
    assert (response.status_code, response.json()) == (200, {})


def test_options_create_answers_when_the_key_expires_on_the_simulators_clock(
    http: httpx.Client, vclock: VirtualClock
) -> None:
    """`expiration` is the key's expiry in ms: 60 minutes after the create, as POST extends it."""
    created_at = vclock.wall()
    first = http.post(OPTIONS.path).json()
    vclock.advance(600)
    again_at = vclock.wall()
    again = http.post(OPTIONS.path).json()
    assert first["expiration"] == int((created_at + 3600) * 1000)
    assert again["expiration"] == int((again_at + 3600) * 1000)
    assert again["listenKey"] == first["listenKey"]


@by_name
def test_close_answers_an_empty_object_and_the_key_is_gone(
    sim: Simulator, http: httpx.Client, market: Market
) -> None:
    key = create(http, market)
    response = call(http, "DELETE", market, key)
    assert (response.status_code, response.json()) == (200, {})
    assert not sim.exchange.is_live(key)


# -- one active key per account per market ---------------------------------------------------------


@by_name
def test_create_again_returns_the_same_key_and_extends_it(
    http: httpx.Client, vclock: VirtualClock, market: Market
) -> None:
    key = create(http, market)
    vclock.advance(50 * 60)
    assert create(http, market) == key
    vclock.advance(50 * 60)  # 100 minutes after the first POST, 50 after the second
    assert call(http, "PUT", market, key).status_code == 200


def test_one_account_has_one_key_in_each_market(http: httpx.Client) -> None:
    keys = [create(http, market) for market in LIVE]
    assert len(set(keys)) == len(LIVE)


def test_closing_one_markets_key_leaves_the_others_live(sim: Simulator, http: httpx.Client) -> None:
    keys = {market.name: create(http, market) for market in LIVE}
    assert call(http, "DELETE", USDM, keys["usdm"]).status_code == 200
    assert [sim.exchange.is_live(keys[m.name]) for m in LIVE] == [m is not USDM for m in LIVE]


@by_name
def test_each_account_has_its_own_key(http: httpx.Client, market: Market) -> None:
    assert create(http, market) != create(http, market, OTHER_KEY)


@by_name
def test_two_api_keys_of_one_account_share_its_key(vclock: VirtualClock, market: Market) -> None:
    with Simulator(clock=vclock, api_keys={API_KEY: "alice", OTHER_KEY: "alice"}, retired=False) as sim:
        with httpx.Client(base_url=sim.url) as http:
            assert create(http, market, API_KEY) == create(http, market, OTHER_KEY)


# -- keepalive and close: the key named, or implied by the API key ------------------------------------


@by_name
def test_a_key_expires_60_minutes_after_its_last_keepalive(
    http: httpx.Client, vclock: VirtualClock, market: Market
) -> None:
    key = create(http, market)
    vclock.advance(59 * 60)
    assert call(http, "PUT", market, key).status_code == 200
    vclock.advance(59 * 60)
    assert call(http, "PUT", market, key).status_code == 200
    vclock.advance(60 * 60)
    response = call(http, "PUT", market, key)
    assert (response.status_code, code_of(response)) == (400, -1125)
    assert response.json()["msg"] == "This listenKey does not exist."


@by_name
def test_create_after_expiry_gives_a_new_key(
    http: httpx.Client, vclock: VirtualClock, market: Market
) -> None:
    key = create(http, market)
    vclock.advance(61 * 60)
    assert create(http, market) != key


@derivatives
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_without_an_active_key_keepalive_and_close_are_minus_1125(
    http: httpx.Client, market: Market, method: str
) -> None:
    response = http.request(method, market.path)
    assert (response.status_code, code_of(response)) == (400, -1125)


@derivatives
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_after_close_keepalive_and_close_are_minus_1125(
    http: httpx.Client, market: Market, method: str
) -> None:
    create(http, market)
    assert http.delete(market.path).status_code == 200
    assert code_of(http.request(method, market.path)) == -1125


@derivatives
def test_keepalive_extends_the_key_the_api_key_implies(
    sim: Simulator, http: httpx.Client, vclock: VirtualClock, market: Market
) -> None:
    key = create(http, market)
    vclock.advance(50 * 60)
    assert http.put(market.path).status_code == 200
    vclock.advance(50 * 60)
    assert sim.exchange.is_live(key)


@derivatives
def test_keepalive_acts_on_the_callers_account_only(
    sim: Simulator, http: httpx.Client, market: Market
) -> None:
    theirs = create(http, market, OTHER_KEY)
    response = http.put(market.path)
    assert code_of(response) == -1125
    assert sim.exchange.is_live(theirs)


@derivatives
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_listen_key_parameter_is_ignored(
    sim: Simulator, http: httpx.Client, market: Market, method: str
) -> None:
    """The derivatives document no parameter; clients that still send one (python-binance's futures
    keepalive does) get the account's key acted on, whatever they named."""
    key = create(http, market)
    response = http.request(method, market.path, params={"listenKey": "bogus"})
    assert response.status_code == 200
    assert sim.exchange.is_live(key) == (method == "PUT")


def test_spot_does_not_know_another_markets_key(http: httpx.Client) -> None:
    key = create(http, USDM)
    response = call(http, "PUT", SPOT, key)
    assert (response.status_code, code_of(response)) == (400, -1125)


@by_name
@pytest.mark.parametrize("headers", [{}, {"X-MBX-APIKEY": "has-dashes"}])
def test_a_missing_or_malformed_api_key_is_minus_2014(
    sim: Simulator, market: Market, headers: dict[str, str]
) -> None:
    response = httpx.post(sim.url + market.path, headers=headers)
    assert (response.status_code, code_of(response)) == (401, -2014)


@by_name
def test_an_unknown_api_key_is_minus_2015_when_keys_are_configured(
    vclock: VirtualClock, market: Market
) -> None:
    with Simulator(clock=vclock, api_keys=[API_KEY], retired=False) as sim:
        response = httpx.post(sim.url + market.path, headers={"X-MBX-APIKEY": OTHER_KEY})
        assert (response.status_code, code_of(response)) == (401, -2015)


@derivatives
def test_an_undeclared_method_is_405_with_allow(http: httpx.Client, market: Market) -> None:
    response = http.get(market.path)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST, PUT, DELETE"


# -- weights and limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(("market", "weight"), [(m, m.weight) for m in LIVE], ids=[m.name for m in LIVE])
def test_every_call_weighs_as_the_market_documents_and_says_so(
    http: httpx.Client, market: Market, weight: int
) -> None:
    """Spot weighs 2 per call (since 2023-08-25), the derivatives 1."""
    assert weight == (2 if market is SPOT else 1)
    key = create(http, market)
    used = [call(http, method, market, key).headers["X-MBX-USED-WEIGHT-1M"] for method in ("PUT", "DELETE")]
    assert used == [str(2 * weight), str(3 * weight)]


def test_each_market_host_counts_weight_on_its_own(http: httpx.Client) -> None:
    """Production's markets live on different hosts (api, fapi, dapi, papi, eapi.binance.com),
    each counting the weight of an IP apart."""
    used = [http.post(market.path).headers["X-MBX-USED-WEIGHT-1M"] for market in LIVE]
    assert used == [str(market.weight) for market in LIVE]


def test_going_over_one_markets_limit_leaves_the_others_open(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, weight_limit=2) as sim:
        with httpx.Client(base_url=sim.url, headers={"X-MBX-APIKEY": API_KEY}) as http:
            assert [http.post(USDM.path).status_code for _ in range(3)] == [200, 200, 429]
            assert http.post(COINM.path).status_code == 200


@pytest.mark.parametrize(
    ("market", "limit"),
    [(SPOT, 6000), (USDM, 2400), (COINM, 2400), (PORTFOLIO, 6000), (OPTIONS, 6000)],
    ids=lambda v: v.name if isinstance(v, Market) else None,
)
def test_each_market_limits_weight_per_minute_as_documented(
    sim: Simulator, http: httpx.Client, market: Market, limit: int
) -> None:
    """USD-M and COIN-M allow 2,400 weight per minute per IP; spot and Portfolio Margin 6,000;
    Options' docs give no number, so the simulator keeps 6,000. The minute's weight is spent
    through the simulator's own Exchange (thousands of loopback requests would only be slow);
    the request over the limit goes over HTTP."""
    for _ in range(limit // market.weight):
        sim.exchange.handle("POST", market.path, {}, {}, API_KEY, "127.0.0.1")
    response = http.post(market.path)
    assert (response.status_code, code_of(response)) == (429, -1003)
    assert f"current limit is {limit} request weight" in response.json()["msg"]


# -- retired mode, and margin's retired paths --------------------------------------------------------


@pytest.mark.parametrize("path", [SPOT.path, *MARGIN_PATHS])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "GET"])
def test_retired_mode_answers_spot_and_margin_with_the_410_page(
    vclock: VirtualClock, path: str, method: str
) -> None:
    """Production since 2026-02-20: 410 Gone and an HTML body from the front proxy, whatever the request."""
    with Simulator(clock=vclock, retired=True) as sim:
        response = httpx.request(method, sim.url + path, headers={"X-MBX-APIKEY": API_KEY})
    assert response.status_code == 410
    assert response.headers["content-type"] == "text/html"
    assert response.text.startswith("<html>")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_by_default_spot_answers_410_as_production_has_since_2026_02_20(
    vclock: VirtualClock, method: str
) -> None:
    """Binance's CHANGELOG (2026-01-21): POST/PUT/DELETE /api/v3/userDataStream no longer available
    from 2026-02-20 07:00 UTC. A default simulator answers as production does, not as it used to."""
    with Simulator(clock=vclock) as sim:
        response = httpx.request(method, sim.url + SPOT.path, headers={"X-MBX-APIKEY": API_KEY})
    assert (response.status_code, response.headers["content-type"]) == (410, "text/html")


def test_retired_false_serves_spots_old_lifecycle_for_programs_written_before(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, retired=False) as sim:
        with httpx.Client(base_url=sim.url, headers={"X-MBX-APIKEY": API_KEY}) as http:
            key = create(http, SPOT)
            assert call(http, "PUT", SPOT, key).json() == {}


@derivatives
def test_retired_mode_keeps_the_derivatives_live(vclock: VirtualClock, market: Market) -> None:
    with Simulator(clock=vclock, retired=True) as sim:
        with httpx.Client(base_url=sim.url, headers={"X-MBX-APIKEY": API_KEY}) as http:
            create(http, market)
            assert http.put(market.path).status_code == 200
            assert http.delete(market.path).json() == {}


@pytest.mark.parametrize("path", MARGIN_PATHS)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_margins_retired_paths_are_410_even_outside_retired_mode(
    http: httpx.Client, path: str, method: str
) -> None:
    """Margin's listenKey was retired with spot's; unlike spot, the simulator never serves the old one."""
    response = http.request(method, path, params={"listenKey": "x" * 60})
    assert (response.status_code, response.headers["content-type"]) == (410, "text/html")


# -- what the simulator serves, and what it does not ----------------------------------------------


def test_served_paths_are_the_three_operations_of_every_live_market_and_margins_listen_token(
    sim: Simulator,
) -> None:
    expected = {(method, m.path) for m in LIVE for method in ("POST", "PUT", "DELETE")}
    expected.add(("POST", "/sapi/v1/userListenToken"))
    assert sim.exchange.served_paths() == expected
    assert sim.exchange.retired_paths() == set(MARGIN_PATHS)


def test_the_market_table_holds_every_market_and_margins_retired_paths() -> None:
    assert [m.name for m in MARKETS] == [
        "spot",
        "usdm",
        "coinm",
        "portfolio",
        "options",
        "margin",
        "margin-isolated",
    ]


@pytest.mark.parametrize(("method", "path"), [("POST", "/fapi/v2/listenKey"), ("GET", "/api/v3/order")])
def test_an_unserved_path_is_a_404_naming_the_simulator_and_what_it_serves(
    sim: Simulator, http: httpx.Client, method: str, path: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 404
    body = response.json()
    assert "code" not in body  # not Binance's error shape: no client can take it for Binance's 404
    assert body["simulator"] == "binance-userstream"
    assert f"does not serve {method} {path}" in body["msg"]
    assert {tuple(op.split(" ")) for op in body["served"]} == sim.exchange.served_paths()
    assert body["retired"] == sorted(MARGIN_PATHS)


def test_a_clients_error_for_an_unserved_path_keeps_what_the_404_says_it_serves(sim: Simulator) -> None:
    """A base_url with a path left on it (a common slip) meets the 404: the error says why."""
    with (
        UserDataStream(API_KEY, sim.url + "/old", market="usdm") as uds,
        pytest.raises(BinanceAPIError) as caught,
    ):
        uds.create()
    assert caught.value.status_code == 404
    assert "does not serve POST /old/fapi/v1/listenKey; it serves POST, PUT, DELETE on " in str(caught.value)
    assert "/fapi/v1/listenKey" in caught.value.msg.rpartition("it serves")[2]


@pytest.mark.parametrize(
    ("content_type", "body", "msg"),
    [
        ("text/plain", b"no such\r\n\troute   here", "Not Found: no such route here"),
        ("application/json", b'{"msg": "gone fishing", "other": 1}', "Not Found: gone fishing"),
        ("text/html", b"<html><body>404</body></html>", "Not Found"),
        ("text/plain", b"ab " * 2000, "Not Found: " + " ".join(["ab"] * 2000)[:1000]),
    ],
)
def test_an_answer_not_shaped_like_binances_keeps_its_text_folded_and_bounded_but_no_html(
    content_type: str, body: bytes, msg: str
) -> None:
    response = httpx.Response(404, content=body, headers={"Content-Type": content_type})
    error = error_for(response, "POST /x")
    assert (error.code, error.msg) == (None, msg)


def test_a_key_in_an_answers_text_is_scrubbed_from_the_error() -> None:
    response = httpx.Response(
        404, content=f"unknown key {API_KEY}".encode(), headers={"Content-Type": "text/plain"}
    )
    assert API_KEY not in error_for(response, "POST /x", [API_KEY]).msg


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", "x " * 495 + API_KEY),  # the key across the 1,000-character cut
        ("text/plain", " " * 3990 + API_KEY),  # across where the body stopped being read
        ("application/json", json.dumps({"msg": "x " * 495 + API_KEY})),
    ],
    ids=["folded-text", "long-text", "json-msg"],
)
def test_a_key_an_answers_text_holds_across_the_cut_leaves_no_piece_in_the_error(
    content_type: str, body: str
) -> None:
    """Scrubbing finds a key whole: the text is scrubbed before it is cut, not after."""
    response = httpx.Response(404, content=body.encode(), headers={"Content-Type": content_type})
    msg = error_for(response, "POST /x", [API_KEY]).msg
    assert [API_KEY[i : i + 8] for i in range(len(API_KEY) - 7) if API_KEY[i : i + 8] in msg] == []


# -- looking and meddling ---------------------------------------------------------------------------


def test_is_live_and_live_keys_see_every_markets_keys(sim: Simulator, http: httpx.Client) -> None:
    keys = [create(http, market) for market in LIVE]
    assert all(sim.exchange.is_live(key) for key in keys)
    assert sim.exchange.live_keys() == len(LIVE)


def test_forget_keys_loses_the_keys_of_every_market(sim: Simulator, http: httpx.Client) -> None:
    keys = [create(http, market) for market in LIVE]
    assert sim.exchange.forget_keys() == len(LIVE)
    assert [code_of(call(http, "PUT", m, key)) for m, key in zip(LIVE, keys, strict=True)] == [-1125] * len(
        LIVE
    )


def test_a_market_is_one_more_row_of_the_table(vclock: VirtualClock) -> None:
    """The margin risk stream (https://developers.binance.com/docs/margin_trading/risk-data-stream)
    is not served; one row, passed to the Exchange, serves it with the shared rules."""
    risk = Market(
        "margin-risk",
        "/sapi/v1/margin/listen-key",
        "api.binance.com",
        weight=1,
        weight_limit=6000,
        key_in_request=True,
        keepalive_echoes_key=False,
    )
    exchange = Exchange(vclock, markets=[*MARKETS, risk])
    created = exchange.handle("POST", risk.path, {}, {}, API_KEY, "127.0.0.1")
    key = json.loads(created.body)["listenKey"]
    kept = exchange.handle("PUT", risk.path, {"listenKey": [key]}, {}, API_KEY, "127.0.0.1")
    assert (kept.status, kept.body) == (200, b"{}")
    assert ("PUT", risk.path) in exchange.served_paths()
    assert Exchange(vclock).handle("POST", risk.path, {}, {}, API_KEY, "127.0.0.1").status == 404
