"""The simulator's user-data event streams, on the REST server's port, driven over real WebSockets.

Routes follow Binance's documentation (USD-M: the base-URL split of 2026-03-06, legacy paths retired
2026-04-23, https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Important-WebSocket-Change-Notice;
COIN-M, Portfolio Margin and Options: each market's user-data-streams page). Time (pings, the
24-hour cut, key expiry) is the simulator's VirtualClock: a test advances it and calls `sim.tick()`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from binance_userstream import VirtualClock
from binance_userstream.simulator import Simulator, _streams
from binance_userstream.simulator._traffic import COMMISSION
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio

OTHER_API_KEY = "mjcKCrJzTU6TChLsnPmgnQJJMR616J4yWvdZWDUeXkk6vL6dLyS7rcVOQlADlVjA"
PATHS = {
    "usdm": "/fapi/v1/listenKey",
    "coinm": "/dapi/v1/listenKey",
    "portfolio": "/papi/v1/listenKey",
    "options": "/eapi/v1/listenKey",
}
ORDER = {"e": "ORDER_TRADE_UPDATE", "E": 1, "o": {"s": "BTCUSDT", "X": "NEW"}}
ACCOUNT = {"e": "ACCOUNT_UPDATE", "E": 2, "a": {"m": "ORDER"}}
CONTROL = {"X-Simulator-Control": "1"}
#: The allow-list a USD-M stream sends, as the documented flow has it (without one it gets nothing).
EVENTS = "events=ORDER_TRADE_UPDATE/ACCOUNT_UPDATE/listenKeyExpired"
#: The test's WebSocket client logs its request line (with the key) at DEBUG: that is the client's
#: business, not the simulator's, so it logs here, out of the records checked.
CLIENT_LOG = logging.getLogger("tests.client")
#: The test's own clients: what they log is not the simulator's doing.
CLIENT_LOGGERS = (CLIENT_LOG.name, "httpx", "httpcore")
WAIT = 5.0


def new_key(sim: Simulator, market: str = "usdm", api_key: str = API_KEY) -> str:
    answer = httpx.post(sim.url + PATHS[market], headers={"X-MBX-APIKEY": api_key})
    answer.raise_for_status()
    return str(answer.json()["listenKey"])


def ws_url(sim: Simulator, path: str) -> str:
    return "ws" + sim.url.removeprefix("http") + path


@asynccontextmanager
async def stream(sim: Simulator, path: str) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(sim, path), logger=CLIENT_LOG, open_timeout=WAIT) as ws:
        yield ws


async def receive(ws: ClientConnection) -> object:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def closed(ws: ClientConnection) -> ConnectionClosed:
    """How the connection ended: it must end without a further frame."""
    try:
        frame = await asyncio.wait_for(ws.recv(), WAIT)
    except ConnectionClosed as end:
        return end
    pytest.fail(f"a frame came before the close: {frame!r}")


async def nothing_delivered(sim: Simulator, ws: ClientConnection) -> None:
    """No frame is waiting: cut the connection and see the close come first."""
    sim.cut_streams()
    await closed(ws)


# -- routes -----------------------------------------------------------------------------------------


async def test_usdm_private_ws_delivers_a_pushed_event_as_a_raw_frame(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE") as ws:
        assert sim.push("usdm", ORDER) == 1
        assert await receive(ws) == ORDER


async def test_the_events_allow_list_keeps_out_the_events_it_does_not_name(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE/listenKeyExpired") as ws:
        assert sim.push("usdm", ACCOUNT) == 0
        sim.push("usdm", ORDER)
        assert await receive(ws) == ORDER


async def test_a_usdm_stream_opened_without_an_events_list_gets_nothing_by_default(sim: Simulator) -> None:
    """unicorn-binance-websocket-api PR #446 (2026-05-21, tested on production): "Without
    `&events=...` Binance production delivers no payloads"."""
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}") as ws:
        assert sim.push("usdm", ORDER) == 0
        await nothing_delivered(sim, ws)


async def test_the_lenient_switch_gives_a_stream_without_an_events_list_every_event(
    vclock: VirtualClock,
) -> None:
    with Simulator(clock=vclock, strict_events=False) as sim:
        key = new_key(sim)
        async with stream(sim, f"/private/ws?listenKey={key}") as ws:
            sim.push("usdm", ACCOUNT)
            assert await receive(ws) == ACCOUNT


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ("", -1102),
        ("ORDER_TRADE_UPDATE//ACCOUNT_UPDATE", -1102),
        ("ORDER_TRADE_UPDATE/executionReport", -1130),
    ],
)
@pytest.mark.parametrize("route", ["/private/ws", "/private/stream"])
async def test_an_empty_or_unknown_events_list_is_refused_before_the_upgrade(
    sim: Simulator, route: str, events: str, code: int
) -> None:
    key = new_key(sim)
    with pytest.raises(InvalidStatus) as refused:
        async with stream(sim, f"{route}?listenKey={key}&events={events}"):
            pass
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body or b"")["code"] == code


@pytest.mark.parametrize(
    ("market", "prefix"), [("coinm", "/ws/"), ("portfolio", "/pm/ws/"), ("options", "/private/ws/")]
)
async def test_each_market_delivers_on_its_documented_path(sim: Simulator, market: str, prefix: str) -> None:
    key = new_key(sim, market)
    async with stream(sim, prefix + key) as ws:
        assert sim.push(market, ORDER) == 1
        assert await receive(ws) == ORDER


@pytest.mark.parametrize("prefix", ["/ws/", "/private/ws/", "/pm/ws/"])
async def test_a_usdm_key_on_a_path_form_is_accepted_and_gets_nothing(sim: Simulator, prefix: str) -> None:
    key = new_key(sim)
    async with stream(sim, prefix + key) as ws:
        assert sim.push("usdm", ORDER) == 0
        await nothing_delivered(sim, ws)


@pytest.mark.parametrize(
    "path",
    [
        "/private/ws?listenKey={k}",
        "/private/ws",
        "/ws/{k}",
        "/pm/ws/{k}",
        "/private/stream?listenKey={k}",
        "/stream?streams={k}",
        "/pm/stream?streams={k}",
    ],
)
async def test_a_key_that_is_not_live_is_refused_before_the_upgrade(sim: Simulator, path: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with stream(sim, path.format(k="A" * 60)):
            pass
    assert info.value.response.status_code == 400
    assert json.loads(info.value.response.body or b"") == {
        "code": -1125,
        "msg": "This listenKey does not exist.",
    }


async def test_a_closed_key_is_refused_before_the_upgrade(sim: Simulator) -> None:
    key = new_key(sim)
    httpx.delete(sim.url + PATHS["usdm"], headers={"X-MBX-APIKEY": API_KEY}).raise_for_status()
    with pytest.raises(InvalidStatus) as info:
        async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}"):
            pass
    assert info.value.response.status_code == 400


def test_a_plain_get_on_a_stream_path_is_told_to_upgrade(sim: Simulator) -> None:
    answer = httpx.get(sim.url + "/private/ws?listenKey=abc")
    assert answer.status_code == 426
    assert answer.headers["Upgrade"] == "websocket"


def test_a_plain_get_on_an_unknown_path_is_still_the_simulators_404(sim: Simulator) -> None:
    answer = httpx.get(sim.url + "/private/nothing")
    assert answer.status_code == 404
    assert answer.json()["simulator"] == "binance-userstream"


async def test_rest_and_streams_share_one_port(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}"):
        answer = httpx.put(sim.url + PATHS["usdm"], headers={"X-MBX-APIKEY": API_KEY})
        assert answer.json() == {"listenKey": key}


# -- the push API ----------------------------------------------------------------------------------


async def test_every_connection_of_a_key_gets_the_same_text(sim: Simulator) -> None:
    key = new_key(sim)
    async with (
        stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as one,
        stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as two,
    ):
        assert sim.push("usdm", {"e": "ORDER_TRADE_UPDATE", "E": 3, "x": "é"}) == 2
        first = await asyncio.wait_for(one.recv(), WAIT)
        assert first == await asyncio.wait_for(two.recv(), WAIT)
        assert first == sim.deliveries[-1].text


async def test_push_with_an_api_key_reaches_only_that_account(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, api_keys=[API_KEY, OTHER_API_KEY]) as sim:
        mine, theirs = new_key(sim), new_key(sim, api_key=OTHER_API_KEY)
        async with (
            stream(sim, f"/private/ws?listenKey={mine}&{EVENTS}") as ws,
            stream(sim, f"/private/ws?listenKey={theirs}&{EVENTS}") as other,
        ):
            assert sim.push("usdm", ORDER, api_key=OTHER_API_KEY) == 1
            assert await receive(other) == ORDER
            await nothing_delivered(sim, ws)


async def test_push_reaches_only_the_named_market(sim: Simulator) -> None:
    key = new_key(sim, "coinm")
    async with stream(sim, f"/ws/{key}") as ws:
        assert sim.push("usdm", ORDER) == 0
        await nothing_delivered(sim, ws)


def test_push_refuses_an_unknown_market_before_anything_is_sent(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="market must be one of"):
        sim.push("mars", ORDER)


def test_push_refuses_an_api_key_the_simulator_does_not_accept(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, api_keys=[API_KEY]) as sim:
        with pytest.raises(ValueError, match="no such API key"):
            sim.push("usdm", ORDER, api_key=OTHER_API_KEY)


async def test_a_peer_that_falls_too_far_behind_is_disconnected(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_streams, "MAX_QUEUED", 3)
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        assert sim.push_many("usdm", [ORDER] * 5) == [1, 1, 1, 0, 0]
        assert [await receive(ws) for _ in range(3)] == [ORDER] * 3
        end = await closed(ws)
    assert end.rcvd is not None
    assert end.rcvd.code == 1008


async def test_the_state_control_request_counts_streams_and_events(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}"):
        sim.push("usdm", ORDER)
        state = httpx.get(sim.url + "/_simulator/state", headers=CONTROL).json()
    assert (state["stream_connections"], state["events_sent"]) == (1, 1)


def test_deliveries_record_every_event_sent_and_how_many_got_it(sim: Simulator) -> None:
    sim.push("usdm", ORDER)
    assert [(d.market, d.event, d.connections) for d in sim.deliveries] == [("usdm", "ORDER_TRADE_UPDATE", 0)]
    assert json.loads(sim.deliveries[0].text) == ORDER


async def test_the_control_request_pushes_events_from_another_process(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        body = {"market": "usdm", "events": [ORDER, ACCOUNT], "api_key": API_KEY}
        answer = httpx.post(sim.url + "/_simulator/events", json=body, headers=CONTROL)
        assert answer.json() == {"delivered": [1, 1]}
        assert [await receive(ws), await receive(ws)] == [ORDER, ACCOUNT]


def test_the_events_control_request_needs_the_control_header(sim: Simulator) -> None:
    answer = httpx.post(sim.url + "/_simulator/events", json={"market": "usdm", "events": [ORDER]})
    assert answer.status_code == 403
    assert sim.deliveries == []


@pytest.mark.parametrize(
    "body",
    [{"market": "mars", "events": []}, {"market": "usdm", "events": [1]}, {"market": "usdm"}, [ORDER]],
)
def test_the_events_control_request_refuses_a_malformed_body(sim: Simulator, body: object) -> None:
    answer = httpx.post(sim.url + "/_simulator/events", json=body, headers=CONTROL)
    assert answer.status_code == 400
    assert answer.json()["code"] == -1100


async def test_the_traffic_control_request_sends_an_order_from_another_process(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        body = {"market": "usdm", "api_key": API_KEY, "symbol": "ETHUSDT", "side": "SELL"}
        answer = httpx.post(sim.url + "/_simulator/traffic", json=body, headers=CONTROL)
        placed = await receive(ws)
    assert answer.json() == {"delivered": [1, 1, 1, 1, 1]}
    assert placed["e"] == "ORDER_TRADE_UPDATE"  # type: ignore[index]
    assert (placed["o"]["s"], placed["o"]["S"], placed["o"]["X"]) == ("ETHUSDT", "SELL", "NEW")  # type: ignore[index]


def test_the_traffic_control_request_needs_the_control_header(sim: Simulator) -> None:
    assert httpx.post(sim.url + "/_simulator/traffic", json={"market": "usdm"}).status_code == 403
    assert sim.deliveries == []


@pytest.mark.parametrize(
    "body",
    [
        {"market": "mars"},
        {"market": "usdm", "quantity": "abc"},
        {"market": "usdm", "quantity": "1e999999"},
        {"market": "usdm", "price": 5},
        {"market": "usdm", "side": "HOLD"},
        {"market": "usdm", "isolated": True},
        {"market": "usdm", "colour": "red"},
        {"market": "usdm", "api_key": "NotAKeyTheSimulatorKnows!"},
        [],
    ],
)
def test_the_traffic_control_request_refuses_a_malformed_body(sim: Simulator, body: object) -> None:
    answer = httpx.post(sim.url + "/_simulator/traffic", json=body, headers=CONTROL)
    assert (answer.status_code, answer.json()["code"]) == (400, -1100)
    assert sim.deliveries == []


@pytest.mark.parametrize("amount", ["abc", "NaN", "-1", "0", "Infinity", "1e999999", "1e-999999"])
def test_traffic_refuses_an_amount_that_is_no_positive_decimal_with_a_value_error(
    sim: Simulator, amount: str
) -> None:
    with pytest.raises(ValueError, match="quantity"):
        sim.traffic("usdm", quantity=amount)


@pytest.mark.parametrize("market", ["usdm", "spot"])
@pytest.mark.parametrize(
    ("quantity", "price"),
    [
        ("1e25", "43000.10"),
        ("0.010", "1e25"),
        ("123456789012345678901234567.5", "987654321098765432109876543.25"),
        ("0." + "1" * 30, "0." + "3" * 30),
    ],
    ids=["large-quantity", "large-price", "many-digits", "many-decimals"],
)
def test_traffic_sends_every_order_whose_amounts_it_takes(
    sim: Simulator, market: str, quantity: str, price: str
) -> None:
    """What `traffic` does not refuse it sends whole: no InvalidOperation from the decimal
    module's 28 digits half-way through an order, its ids and balances left moved."""
    assert len(sim.traffic(market, quantity=quantity, price=price)) >= 3  # placed, then filled


# -- time: pings, the 24-hour cut, expiry ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("market", "prefix", "interval"), [("coinm", "/ws/", 180), ("options", "/private/ws/", 300)]
)
async def test_pings_come_at_the_markets_interval(
    sim: Simulator, vclock: VirtualClock, market: str, prefix: str, interval: int
) -> None:
    key = new_key(sim, market)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(sim, prefix + key), autoping=False) as ws,
    ):
        vclock.advance(interval - 1)
        sim.tick()
        sim.push(market, ORDER)  # a frame after any ping that was (wrongly) due
        first = await ws.receive(timeout=WAIT)
        vclock.advance(1)
        sim.tick()
        second = await ws.receive(timeout=WAIT)
    assert [first.type, second.type] == [aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING]


async def test_a_connection_is_closed_after_24_hours_on_the_simulators_clock(
    sim: Simulator, vclock: VirtualClock
) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        # keep the key alive, as a client would, so that only the connection's age ends it
        for _ in range(24):
            vclock.advance(3599)
            httpx.put(sim.url + PATHS["usdm"], headers={"X-MBX-APIKEY": API_KEY}).raise_for_status()
            sim.tick()
        assert sim.stream_connections() == 1
        vclock.advance(24)
        sim.tick()
        end = await closed(ws)
    assert isinstance(end, ConnectionClosedOK)
    assert end.rcvd is not None
    assert end.rcvd.code == 1001


async def test_an_expired_key_gets_listen_key_expired_then_its_stream_is_closed(
    sim: Simulator, vclock: VirtualClock
) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE/listenKeyExpired") as ws:
        vclock.advance(3600)
        sim.tick()
        event = await receive(ws)
        end = await closed(ws)
    assert isinstance(event, dict)
    assert (event["e"], event["listenKey"], type(event["E"])) == ("listenKeyExpired", key, int)
    assert end.rcvd is not None
    assert (end.rcvd.code, end.rcvd.reason) == (1000, "listenKey expired")


async def test_listen_key_expired_respects_the_allow_list(sim: Simulator, vclock: VirtualClock) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE") as ws:
        vclock.advance(3600)
        sim.tick()
        end = await closed(ws)
    assert end.rcvd is not None
    assert end.rcvd.code == 1000
    assert [(d.event, d.connections) for d in sim.deliveries] == [("listenKeyExpired", 0)]


async def test_a_key_lost_by_the_lose_keys_fault_ends_its_streams_as_expired(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        sim.exchange.forget_keys()
        sim.tick()
        event = await receive(ws)
        await closed(ws)
    assert isinstance(event, dict)
    assert event["e"] == "listenKeyExpired"


async def test_a_closed_key_ends_its_streams_without_listen_key_expired(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        httpx.delete(sim.url + PATHS["usdm"], headers={"X-MBX-APIKEY": API_KEY}).raise_for_status()
        end = await closed(ws)
    assert end.rcvd is not None
    assert (end.rcvd.code, end.rcvd.reason) == (1000, "listenKey closed")
    assert sim.deliveries == []


async def test_shutdown_notice_sends_server_shutdown_whatever_the_allow_list(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE") as ws:
        assert sim.shutdown_notice("usdm") == 1
        event = await receive(ws)
    assert isinstance(event, dict)
    assert event["e"] == "serverShutdown"
    assert isinstance(event["E"], int)


# -- faults -------------------------------------------------------------------------------------------


async def test_drop_ends_the_connection_without_a_close_frame(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        assert sim.drop_streams() == 1
        end = await closed(ws)
    assert isinstance(end, ConnectionClosedError)
    assert end.rcvd is None


async def test_cut_closes_the_connection_cleanly(sim: Simulator) -> None:
    key = new_key(sim, "coinm")
    async with stream(sim, f"/ws/{key}") as ws:
        assert sim.cut_streams("coinm") == 1
        end = await closed(ws)
    assert isinstance(end, ConnectionClosedOK)
    assert end.rcvd is not None
    assert end.rcvd.code == 1001


async def test_a_stall_sends_neither_frames_nor_pings_until_it_ends(
    sim: Simulator, vclock: VirtualClock
) -> None:
    key = new_key(sim)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url(sim, f"/private/ws?listenKey={key}&{EVENTS}"), autoping=False) as ws,
    ):
        assert sim.stall_streams(600) == 1
        assert sim.push("usdm", ORDER) == 0  # lost to the stalled connection
        vclock.advance(599)
        sim.tick()  # a ping was due at 180 s: none is sent
        assert sim.streams.pings() == 0
        vclock.advance(1)
        sim.tick()
        assert (await ws.receive(timeout=WAIT)).type == aiohttp.WSMsgType.PING
        sim.push("usdm", ACCOUNT)
        message = await ws.receive(timeout=WAIT)
    assert json.loads(message.data) == ACCOUNT


async def test_expire_key_expires_it_now(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        assert sim.expire_key(key) == 1
        event = await receive(ws)
        await closed(ws)
    assert isinstance(event, dict)
    assert event["e"] == "listenKeyExpired"
    assert not sim.exchange.is_live(key)


@pytest.mark.parametrize(
    ("fault", "code"), [({"fault": "drop"}, None), ({"fault": "cut", "market": "usdm"}, 1001)]
)
async def test_the_streams_control_request_injects_a_fault(
    sim: Simulator, fault: dict[str, object], code: int | None
) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        answer = httpx.post(sim.url + "/_simulator/streams", json=fault, headers=CONTROL)
        assert answer.json() == {"affected": 1}
        end = await closed(ws)
    assert (end.rcvd.code if end.rcvd else None) == code


async def test_the_streams_control_request_stalls_and_expires(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        stall = {"fault": "stall", "seconds": 60}
        assert httpx.post(sim.url + "/_simulator/streams", json=stall, headers=CONTROL).json() == {
            "affected": 1
        }
        expire = {"fault": "expire", "market": "usdm"}
        assert httpx.post(sim.url + "/_simulator/streams", json=expire, headers=CONTROL).json() == {
            "affected": 1
        }
        await closed(ws)  # stalled: listenKeyExpired is lost to it, and the close still comes


@pytest.mark.parametrize("body", [{"fault": "melt"}, {"fault": "stall"}, {"fault": "cut", "market": "mars"}])
def test_the_streams_control_request_refuses_an_unknown_fault(sim: Simulator, body: object) -> None:
    answer = httpx.post(sim.url + "/_simulator/streams", json=body, headers=CONTROL)
    assert answer.status_code == 400


def test_stall_refuses_seconds_that_are_not_finite(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="finite"):
        sim.stall_streams(float("inf"))


# -- stream mode ---------------------------------------------------------------------------------------


async def test_stream_mode_wraps_frames_and_applies_each_keys_allow_list(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, api_keys=[API_KEY, OTHER_API_KEY]) as sim:
        one, two = new_key(sim), new_key(sim, api_key=OTHER_API_KEY)
        path = (
            f"/private/stream?listenKey={one}&events=ORDER_TRADE_UPDATE&listenKey={two}&events=ACCOUNT_UPDATE"
        )
        async with stream(sim, path) as ws:
            assert sim.push("usdm", ACCOUNT, api_key=API_KEY) == 0
            assert sim.push("usdm", ORDER, api_key=API_KEY) == 1
            assert sim.push("usdm", ACCOUNT, api_key=OTHER_API_KEY) == 1
            assert await receive(ws) == {"stream": one, "data": ORDER}
            assert await receive(ws) == {"stream": two, "data": ACCOUNT}


async def test_subscribe_on_private_stream_is_answered_and_delivers(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, "/private/stream") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [key], "id": 1}))
        assert await receive(ws) == {"result": None, "id": 1}
        sim.push("usdm", ORDER)
        assert await receive(ws) == {"stream": key, "data": ORDER}


#: Each derivatives market's combined stream, where Binance's own SDK subscribes its listenKey:
#: COIN-M SDK 14.1.0 and PM SDK 16.1.0 open `<base>/stream`, the Options SDK 8.7.0 `/private/stream`.
COMBINED = [("coinm", "/stream"), ("portfolio", "/pm/stream"), ("options", "/private/stream")]


@pytest.mark.parametrize(("market", "route"), COMBINED)
async def test_subscribe_on_each_markets_combined_stream_is_answered_and_delivers_wrapped_frames(
    sim: Simulator, market: str, route: str
) -> None:
    key = new_key(sim, market)
    async with stream(sim, route) as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [key], "id": "a1"}))
        assert await receive(ws) == {"result": None, "id": "a1"}
        assert sim.push(market, ORDER) == 1
        assert await receive(ws) == {"stream": key, "data": ORDER}


@pytest.mark.parametrize(("market", "route"), COMBINED[:2])
async def test_streams_in_the_query_of_a_combined_stream_deliver_wrapped_frames(
    sim: Simulator, market: str, route: str
) -> None:
    key = new_key(sim, market)
    async with stream(sim, f"{route}?streams={key}") as ws:
        assert sim.push(market, ACCOUNT) == 1
        assert await receive(ws) == {"stream": key, "data": ACCOUNT}


@pytest.mark.parametrize(("market", "route"), COMBINED)
async def test_list_subscriptions_names_the_keys_and_unsubscribe_stops_their_events(
    sim: Simulator, market: str, route: str
) -> None:
    key = new_key(sim, market)
    async with stream(sim, route) as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [key], "id": 1}))
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": [key], "id": 3}))
        answers = [await receive(ws) for _ in range(3)]
        assert answers[1:] == [{"result": [key], "id": 2}, {"result": None, "id": 3}]
        assert sim.push(market, ORDER) == 0
        await nothing_delivered(sim, ws)


async def test_listeners_counts_the_connections_subscribed_to_a_markets_keys(sim: Simulator) -> None:
    key = new_key(sim, "coinm")
    async with stream(sim, "/stream") as ws:
        before = sim.listeners("coinm")
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [key], "id": 1}))
        await receive(ws)
        assert (before, sim.listeners("coinm"), sim.listeners("usdm")) == (0, 1, 0)


async def test_a_usdm_key_on_the_legacy_combined_stream_is_accepted_and_gets_nothing(sim: Simulator) -> None:
    key = new_key(sim)
    async with stream(sim, f"/stream?streams={key}") as ws:
        assert sim.push("usdm", ORDER) == 0
        await nothing_delivered(sim, ws)


async def test_subscribe_to_a_key_that_is_not_live_is_acknowledged_and_delivers_nothing(
    sim: Simulator,
) -> None:
    async with stream(sim, "/private/stream") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["B" * 60], "id": 7}))
        assert await receive(ws) == {"result": None, "id": 7}
        await nothing_delivered(sim, ws)


@pytest.mark.parametrize("route", ["/public/stream", "/market/stream", "/public/ws", "/market/ws"])
async def test_the_market_data_routes_accept_and_stay_silent_even_for_a_listen_key(
    sim: Simulator, route: str
) -> None:
    key = new_key(sim)
    async with stream(sim, route) as ws:  # Binance's SDK opens /public and /market beside /private
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [key], "id": 2}))
        assert await receive(ws) == {"result": None, "id": 2}
        assert sim.push("usdm", ORDER) == 0
        await nothing_delivered(sim, ws)


async def test_a_request_that_is_not_json_is_answered_with_an_error(sim: Simulator) -> None:
    async with stream(sim, "/private/stream") as ws:
        await ws.send("{not json")
        answer = await receive(ws)
    assert isinstance(answer, dict)
    assert answer["code"] == 3


# -- traffic ------------------------------------------------------------------------------------------


async def test_traffic_sends_an_order_placed_partly_filled_and_filled_with_account_updates(
    sim: Simulator,
) -> None:
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        assert sim.traffic("usdm") == [1, 1, 1, 1, 1]
        events: list[Any] = [await receive(ws) for _ in range(5)]
    steps = [(e["e"], e["o"]["X"] if "o" in e else None) for e in events]
    assert steps == [
        ("ORDER_TRADE_UPDATE", "NEW"),
        ("ORDER_TRADE_UPDATE", "PARTIALLY_FILLED"),
        ("ACCOUNT_UPDATE", None),
        ("ORDER_TRADE_UPDATE", "FILLED"),
        ("ACCOUNT_UPDATE", None),
    ]
    times = [e["E"] for e in events]
    assert times == sorted(set(times))


def test_traffic_ids_and_times_only_grow_across_orders(sim: Simulator) -> None:
    sim.traffic("usdm")
    sim.traffic("usdm")
    events = [json.loads(d.text) for d in sim.deliveries]
    orders = [e["o"]["i"] for e in events if e["e"] == "ORDER_TRADE_UPDATE"]
    assert orders[0] < orders[-1]
    assert len(set(orders)) == 2
    assert [e["E"] for e in events] == sorted({e["E"] for e in events})


@pytest.mark.parametrize(
    ("symbol", "asset", "contract_usd", "price"),
    [("BTCUSD_PERP", "BTC", 100, "40000"), ("ETHUSD_PERP", "ETH", 10, "2000")],
)
def test_coinm_traffic_charges_its_commission_in_the_coin_on_the_contracts_usd_value(
    sim: Simulator, symbol: str, asset: str, contract_usd: int, price: str
) -> None:
    """A COIN-M contract is worth a fixed amount of USD: 2 BTCUSD_PERP contracts at 40000 are
    2 x 100 / 40000 = 0.005 BTC, whose commission is 0.0000025 BTC, not 2 x 40000 x rate."""
    sim.traffic("coinm", symbol=symbol, asset=asset, quantity="2", price=price, balance="1")
    events = [json.loads(d.text) for d in sim.deliveries]
    trades = [e["o"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
    balances = [e["a"]["B"][0] for e in events if e["e"] == "ACCOUNT_UPDATE"]
    commission = 2 * contract_usd / Decimal(price) * COMMISSION
    assert [(Decimal(t["n"]), t["N"]) for t in trades] == [(commission / 2, asset)] * 2
    assert [(b["a"], Decimal(b["wb"])) for b in balances] == [
        (asset, 1 - commission / 2),
        (asset, 1 - commission),
    ]


def test_coinm_traffic_trades_btcusd_perp_in_btc_by_default(sim: Simulator) -> None:
    sim.traffic("coinm")
    events = [json.loads(d.text) for d in sim.deliveries]
    assert {e["o"]["s"] for e in events if e["e"] == "ORDER_TRADE_UPDATE"} == {"BTCUSD_PERP"}
    assert {e["a"]["B"][0]["a"] for e in events if e["e"] == "ACCOUNT_UPDATE"} == {"BTC"}


@pytest.mark.parametrize(
    ("order", "complaint"),
    [
        ({"quantity": "0.5"}, "whole number of contracts"),
        ({"symbol": "BTCUSDT"}, "COIN-M symbol"),
        ({"symbol": "BTCUSD_PERP", "asset": "USDT"}, "margined in BTC"),
    ],
    ids=["fractional-contracts", "usdm-symbol", "other-asset"],
)
def test_coinm_traffic_refuses_an_order_coin_m_could_not_have_before_sending(
    sim: Simulator, order: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        sim.traffic("coinm", **order)
    assert sim.deliveries == []


# -- secrets and leaks -----------------------------------------------------------------------------


async def test_no_listen_key_in_any_server_log_record_at_debug(
    sim: Simulator, vclock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        sim.push("usdm", ORDER)
        await receive(ws)
    async with stream(sim, f"/ws/{key}"), stream(sim, "/private/stream") as subscribed:
        await subscribed.send(json.dumps({"method": "SUBSCRIBE", "params": [key], "id": 1}))
        await receive(subscribed)
        vclock.advance(3600)
        sim.tick()
        await receive(subscribed)  # listenKeyExpired
        await closed(subscribed)
    httpx.get(sim.url + f"/private/ws?listenKey={key}&{EVENTS}")
    records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert any(r.name.startswith("binance_userstream.simulator.streams") for r in records)
    assert not [r.getMessage() for r in records if key in r.getMessage()]
    assert not [path for _, path in sim.requests if key in path]


async def test_stop_closes_every_stream_and_leaves_no_thread(vclock: VirtualClock) -> None:
    sim = Simulator(clock=vclock).start()
    key = new_key(sim)
    async with stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        await asyncio.to_thread(sim.stop)
        end = await closed(ws)
    assert end.rcvd is not None
    assert end.rcvd.code == 1001
    assert not [t for t in threading.enumerate() if t.name == "binance-userstream-simulator"]
    assert sim.stream_connections() == 0
