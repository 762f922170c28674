"""The market table's stream facts: hosts, the connection path for a key, pings, lifetime.

Binance's "User Data Streams" pages per market: USD-M connects to
`/private/ws?listenKey=<key>&events=<E1>/<E2>` since 2026-04-23 (the events list is an allow-list);
COIN-M `/ws/<key>` on dstream; Portfolio Margin `/pm/ws/<key>` and Options `/private/ws/<key>` on
fstream; pings every 3 minutes (Options: 5); a connection lives 24 hours. Spot and margin use the
WebSocket API (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-api): one path,
`wss://ws-api.binance.com:443/ws-api/v3`, no key in the URL, a ping every 20 seconds.
"""

from __future__ import annotations

import pytest
from binance_userstream_client.models import EVENT_TYPES

from binance_userstream import MARKETS
from binance_userstream._hosts import resolve_stream_url

KEY = "k" * 60


def test_usdm_connects_to_the_private_route_with_every_modelled_event_in_the_allow_list() -> None:
    path, _, query = MARKETS["usdm"].stream_target(KEY).partition("?")  # type: ignore[union-attr]
    assert path == "/private/ws"
    key_part, events_part = query.split("&")
    assert key_part == f"listenKey={KEY}"
    events = events_part.removeprefix("events=").split("/")
    assert "listenKeyExpired" in events
    assert "ORDER_TRADE_UPDATE" in events
    assert "CONDITIONAL_ORDER_TRIGGER_REJECT" in events
    assert all(name in EVENT_TYPES for name in events)
    assert len(set(events)) == len(events)


@pytest.mark.parametrize(
    ("market", "path"),
    [
        ("coinm", f"/ws/{KEY}"),
        ("portfolio", f"/pm/ws/{KEY}"),
        ("portfolio_pro", f"/pm-classic/ws/{KEY}"),
        ("options", f"/private/ws/{KEY}"),
    ],
)
def test_other_derivatives_connect_to_their_documented_paths(market: str, path: str) -> None:
    assert MARKETS[market].stream_target(KEY) == path


@pytest.mark.parametrize("market", ["spot", "margin"])
def test_spot_and_margin_connect_to_the_websocket_api_with_no_key_in_the_url(market: str) -> None:
    assert MARKETS[market].stream_target(KEY) == "/ws-api/v3"
    assert resolve_stream_url(None, MARKETS[market]) == "wss://ws-api.binance.com:443"
    assert resolve_stream_url("testnet", MARKETS[market]) == "wss://ws-api.testnet.binance.vision"
    assert not MARKETS[market].uses_listen_key


def test_spot_signs_its_subscription_and_margin_presents_a_listen_token() -> None:
    assert MARKETS["spot"].subscription == "signature"
    assert MARKETS["margin"].subscription == "listen_token"


def test_every_market_lists_only_modelled_events() -> None:
    for market in MARKETS.values():
        assert market.stream_events, market.name
        assert set(market.event_types) == set(market.stream_events), market.name


@pytest.mark.parametrize(
    ("market", "production"),
    [
        ("usdm", "wss://fstream.binance.com"),
        ("coinm", "wss://dstream.binance.com"),
        ("portfolio", "wss://fstream.binance.com"),
        ("portfolio_pro", "wss://fstream.binance.com"),
        ("options", "wss://fstream.binance.com"),
    ],
)
def test_stream_url_none_is_the_markets_production_stream_host(market: str, production: str) -> None:
    assert resolve_stream_url(None, MARKETS[market]) == production


def test_stream_url_may_name_a_host_of_the_market() -> None:
    assert resolve_stream_url("testnet", MARKETS["usdm"]) == "wss://fstream.binancefuture.com"
    assert resolve_stream_url("demo", MARKETS["usdm"]) == "wss://demo-fstream.binance.com"
    assert resolve_stream_url("testnet", MARKETS["coinm"]) == "wss://dstream.binancefuture.com"


def test_pings_every_3_minutes_options_5_the_websocket_api_20_seconds_connections_live_a_day() -> None:
    assert {m.name: m.ping_interval for m in MARKETS.values() if m.stream_path} == {
        "usdm": 180.0,
        "coinm": 180.0,
        "portfolio": 180.0,
        "portfolio_pro": 180.0,
        "options": 300.0,
        "spot": 20.0,
        "margin": 20.0,
    }
    assert all(m.connection_lifetime == 24 * 3600 for m in MARKETS.values())


@pytest.mark.parametrize("url", ["ws://127.0.0.1:9", "ws://localhost:9", "ws://[::1]:9", "wss://example.com"])
def test_stream_url_accepts_wss_anywhere_and_ws_to_loopback(url: str) -> None:
    assert resolve_stream_url(url + "/", MARKETS["usdm"]) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ws://example.com", "plain ws"),
        ("http://127.0.0.1:9", "ws\\(s\\) URL"),
        ("wss://user:pw@example.com", "user name or password"),
        ("wss://example.com/ws", "appends the market's path"),
        ("wss://example.com?listenKey=x", "appends the market's path"),
        ("nowhere", "neither a URL nor a stream host"),
    ],
)
def test_stream_url_refuses_what_it_cannot_use(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        resolve_stream_url(url, MARKETS["usdm"])


def test_a_refused_stream_url_is_not_echoed() -> None:
    with pytest.raises(ValueError, match="user name or password") as caught:
        resolve_stream_url("wss://user:secretpw@example.com", MARKETS["usdm"])
    assert "secretpw" not in str(caught.value)
