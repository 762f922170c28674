"""The simulator's spot WebSocket API (`/ws-api/v3`) and margin's listenTokens, over real loopback.

Facts from Binance's documentation (https://github.com/binance/binance-spot-api-docs):
web-socket-api.md ("User Data Stream requests", "SIGNED request security", "Timing security",
"Session Authentication"), user-data-stream.md (the `{"subscriptionId", "event"}` envelope,
eventStreamTerminated), errors.md (codes); margin's listenToken:
https://developers.binance.com/docs/margin_trading/trade-data-stream/Create-Margin-Account-listenToken.
Time is the simulator's VirtualClock: a test advances it and calls `sim.tick()`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from binance_userstream import SystemClock, VirtualClock
from binance_userstream.simulator import ISOLATED_SYMBOLS, TEST_API_KEY, TEST_API_SECRET, Simulator, _wsapi

pytestmark = pytest.mark.anyio

WAIT = 5.0
CONTROL = {"X-Simulator-Control": "1"}
OTHER_KEY = "mjcKCrJzTU6TChLsnPmgnQJJMR616J4yWvdZWDUeXkk6vL6dLyS7rcVOQlADlVjA"
OTHER_SECRET = "Other0secret0for0tests0only000000000000000000000000000000000000"
TOKEN_PATH = "/sapi/v1/userListenToken"
CLIENT_LOG = logging.getLogger("tests.client")
BALANCE = {"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "100.00000000", "T": 1}
Signer = Callable[[str], str]


class FixedWallClock(VirtualClock):
    """A VirtualClock whose wall time starts at `wall_ms`: the docs' test vectors are signed there."""

    def __init__(self, wall_ms: int) -> None:
        super().__init__()
        self._wall_ms = wall_ms

    def wall(self) -> float:
        return self._wall_ms / 1000 + self.now()


@pytest.fixture
def sim(vclock: VirtualClock) -> Iterator[Simulator]:
    with Simulator(clock=vclock) as simulator:
        yield simulator


def now_ms(clock: VirtualClock | SystemClock) -> int:
    return int(clock.wall() * 1000)


def hmac_signer(secret: str = TEST_API_SECRET) -> Signer:
    return lambda payload: hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed(params: dict[str, Any], sign: Signer) -> dict[str, Any]:
    """`params` with their WebSocket API signature: sorted `k=v&...`, not percent-encoded."""
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return {**params, "signature": sign(payload)}


def subscribe_params(
    clock: VirtualClock | SystemClock, api_key: str = TEST_API_KEY, sign: Signer | None = None
) -> dict[str, Any]:
    return signed({"apiKey": api_key, "timestamp": now_ms(clock)}, sign or hmac_signer())


@asynccontextmanager
async def wsapi(sim: Simulator, query: str = "") -> AsyncIterator[ClientConnection]:
    async with connect(sim.ws_api_url + query, logger=CLIENT_LOG, open_timeout=WAIT) as ws:
        yield ws


async def receive(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def call(
    ws: ClientConnection, method: str, params: dict[str, Any] | None = None, ident: object = 1
) -> Any:
    """Send one request and return its answer (the next frame)."""
    request: dict[str, Any] = {"id": ident, "method": method}
    if params is not None:
        request["params"] = params
    await ws.send(json.dumps(request))
    return await receive(ws)


def error_of(answer: Any) -> tuple[int, int, str]:
    return answer["status"], answer["error"]["code"], answer["error"]["msg"]


async def subscribed(ws: ClientConnection, clock: VirtualClock, **kwargs: Any) -> int:
    answer = await call(ws, "userDataStream.subscribe.signature", subscribe_params(clock, **kwargs))
    assert answer["status"] == 200, answer
    return int(answer["result"]["subscriptionId"])


def rsa_key() -> tuple[Signer, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return (
        lambda payload: base64.b64encode(
            private.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())
        ).decode(),
        pem,
    )


def ed25519_key() -> tuple[Signer, bytes]:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return lambda payload: base64.b64encode(private.sign(payload.encode())).decode(), pem


def mint(
    sim: Simulator,
    clock: VirtualClock,
    extra: str = "",
    api_key: str = TEST_API_KEY,
    secret: str = TEST_API_SECRET,
) -> httpx.Response:
    """`POST /sapi/v1/userListenToken`, signed over its query string as sent."""
    query = f"{extra}&timestamp={now_ms(clock)}".lstrip("&")
    query += "&signature=" + hmac_signer(secret)(query)
    return httpx.post(f"{sim.url}{TOKEN_PATH}?{query}", headers={"X-MBX-APIKEY": api_key})


def token(sim: Simulator, clock: VirtualClock, extra: str = "") -> str:
    answer = mint(sim, clock, extra)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


# -- subscribe.signature ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recv_window", "signature"),
    [
        (None, "681110a6057ad58657af22f5640fab9dd17418834cdfccdc81be8b0f7b2cde3e"),
        (5000, "49601ffc5b0122c3c7ee3ea85ef7d6cd76256f5191a57c976418faa32e917653"),
    ],
)
async def test_subscribe_signature_accepts_the_docs_example_key_pairs_signature(
    recv_window: int | None, signature: str
) -> None:
    """The docs' example pair (web-socket-api.md, SIGNED request example (HMAC)) signs
    `apiKey=...&[recvWindow=5000&]timestamp=1747385641636`: these are those signatures."""
    with Simulator(clock=FixedWallClock(1747385641636)) as sim:
        params: dict[str, Any] = {"apiKey": TEST_API_KEY, "timestamp": 1747385641636, "signature": signature}
        if recv_window is not None:
            params["recvWindow"] = recv_window
        async with wsapi(sim) as ws:
            answer = await call(ws, "userDataStream.subscribe.signature", params, ident="d3df8a22")
    assert (answer["id"], answer["status"], answer["result"]) == ("d3df8a22", 200, {"subscriptionId": 0})


async def test_an_hmac_signature_is_accepted_in_upper_case(sim: Simulator, vclock: VirtualClock) -> None:
    """HMAC signatures are case-insensitive hex (web-socket-api.md, SIGNED request security)."""
    params = subscribe_params(vclock)
    params["signature"] = params["signature"].upper()
    async with wsapi(sim) as ws:
        assert (await call(ws, "userDataStream.subscribe.signature", params))["status"] == 200


@pytest.mark.parametrize("make_key", [rsa_key, ed25519_key], ids=["RSA", "Ed25519"])
async def test_subscribe_signature_verifies_rsa_and_ed25519_keys(
    sim: Simulator, vclock: VirtualClock, make_key: Callable[[], tuple[Signer, bytes]]
) -> None:
    """subscribe.signature works with any key type (CHANGELOG 2025-08-12)."""
    sign, pem = make_key()
    sim.register_key(OTHER_KEY, public_key=pem)
    async with wsapi(sim) as ws:
        assert await subscribed(ws, vclock, api_key=OTHER_KEY, sign=sign) == 0


async def test_a_wrong_signature_is_refused_with_1022(sim: Simulator, vclock: VirtualClock) -> None:
    params = subscribe_params(vclock, sign=hmac_signer(OTHER_SECRET))
    async with wsapi(sim) as ws:
        answer = await call(ws, "userDataStream.subscribe.signature", params)
    assert error_of(answer) == (400, -1022, "Signature for this request is not valid.")


async def test_a_replayed_frame_is_refused_once_its_recv_window_has_passed(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """Accepted while serverTime - timestamp <= recvWindow (default 5000 ms; web-socket-api.md,
    Timing security): the same frame, replayed after that, gets -1021."""
    params = subscribe_params(vclock)
    async with wsapi(sim) as ws:
        assert (await call(ws, "userDataStream.subscribe.signature", params))["status"] == 200
        await call(ws, "userDataStream.unsubscribe")
        await receive(ws)  # eventStreamTerminated
        vclock.advance(5.001)
        answer = await call(ws, "userDataStream.subscribe.signature", params)
    assert error_of(answer) == (400, -1021, "Timestamp for this request is outside of the recvWindow.")


async def test_a_timestamp_a_second_ahead_of_the_server_is_refused(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """Accepted only if timestamp < serverTime + 1000 (web-socket-api.md, Timing security)."""
    ahead = signed({"apiKey": TEST_API_KEY, "timestamp": now_ms(vclock) + 1000}, hmac_signer())
    async with wsapi(sim) as ws:
        answer = await call(ws, "userDataStream.subscribe.signature", ahead)
    assert error_of(answer)[:2] == (400, -1021)


async def test_a_recv_window_over_60000_is_refused(sim: Simulator, vclock: VirtualClock) -> None:
    params = signed({"apiKey": TEST_API_KEY, "recvWindow": 60001, "timestamp": now_ms(vclock)}, hmac_signer())
    async with wsapi(sim) as ws:
        assert error_of(await call(ws, "userDataStream.subscribe.signature", params))[:2] == (400, -1102)


async def test_a_timestamp_too_large_for_any_clock_is_refused_1102_and_the_connection_serves_on(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """A signed subscribe with `timestamp: "1e999999999"` gets an error answer, a malformed parameter
    as Binance answers one (-1102), not a dropped connection."""
    params = signed({"apiKey": TEST_API_KEY, "timestamp": "1e999999999"}, hmac_signer())
    async with wsapi(sim) as ws:
        answer = await call(ws, "userDataStream.subscribe.signature", params)
        assert await subscribed(ws, vclock) == 0
    assert error_of(answer)[:2] == (400, -1102)
    assert "'timestamp'" in answer["error"]["msg"]


async def test_a_method_that_fails_inside_the_simulator_costs_one_answer_not_the_connection(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> object:
        raise ArithmeticError("a bug")

    monkeypatch.setitem(_wsapi._METHODS, "time", broken)
    async with wsapi(sim) as ws:
        answer = await call(ws, "time")
        assert (await call(ws, "ping"))["status"] == 200
    assert error_of(answer)[:2] == (500, -1000)


async def test_an_api_key_the_simulator_holds_no_credential_for_is_refused_with_2015(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        answer = await call(
            ws, "userDataStream.subscribe.signature", subscribe_params(vclock, api_key=OTHER_KEY)
        )
    assert error_of(answer) == (401, -2015, "Invalid API-key, IP, or permissions for action.")


async def test_a_missing_parameter_is_refused_with_1102(sim: Simulator) -> None:
    async with wsapi(sim) as ws:
        answer = await call(
            ws, "userDataStream.subscribe.signature", {"apiKey": TEST_API_KEY, "signature": "x"}
        )
    assert error_of(answer)[:2] == (400, -1102)
    assert "'timestamp'" in answer["error"]["msg"]


async def test_a_second_subscription_of_the_same_account_is_refused_with_2035(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """ "You can have only one active subscription for a given account on a given connection.\""""
    sim.register_key(OTHER_KEY, secret=OTHER_SECRET)
    async with wsapi(sim) as ws:
        assert await subscribed(ws, vclock) == 0
        again = await call(ws, "userDataStream.subscribe.signature", subscribe_params(vclock))
        assert await subscribed(ws, vclock, api_key=OTHER_KEY, sign=hmac_signer(OTHER_SECRET)) == 1
    assert error_of(again) == (400, -2035, "User Data Stream subscription already active.")


async def test_the_subscription_limits_of_a_connection_are_refused_with_2042(
    sim: Simulator, vclock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most 1,000 active subscriptions, 65,535 over a connection's life (web-socket-api.md):
    here 2 and 3, to reach them fast."""
    monkeypatch.setattr(_wsapi, "MAX_ACTIVE", 2)
    monkeypatch.setattr(_wsapi, "MAX_LIFETIME", 3)
    sim.register_key(OTHER_KEY, secret=OTHER_SECRET)
    other = {"api_key": OTHER_KEY, "sign": hmac_signer(OTHER_SECRET)}
    async with wsapi(sim) as ws:
        assert [await subscribed(ws, vclock), await subscribed(ws, vclock, **other)] == [0, 1]
        too_many = await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": token(sim, vclock)})
        await call(ws, "userDataStream.unsubscribe", {"subscriptionId": 0})
        await receive(ws)  # eventStreamTerminated
        assert await subscribed(ws, vclock) == 2
        await call(ws, "userDataStream.unsubscribe", {"subscriptionId": 2})
        await receive(ws)
        lifetime = await call(ws, "userDataStream.subscribe.signature", subscribe_params(vclock))
    expected = (400, -2042, "Maximum subscription ID reached for this connection.")
    assert [error_of(too_many), error_of(lifetime)] == [expected, expected]


# -- session.logon, subscribe, logout, unsubscribe -------------------------------------------------


async def test_logon_with_an_ed25519_key_then_subscribe_delivers_and_logout_terminates(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """session.logon is for Ed25519 keys only; session.logout ends the logon subscription with
    eventStreamTerminated (web-socket-api.md, Session Authentication; user-data-stream.md)."""
    sign, pem = ed25519_key()
    sim.register_key(OTHER_KEY, public_key=pem)
    async with wsapi(sim) as ws:
        logon = await call(ws, "session.logon", subscribe_params(vclock, api_key=OTHER_KEY, sign=sign))
        assert (logon["status"], logon["result"]["apiKey"]) == (200, OTHER_KEY)
        subscription = await call(ws, "userDataStream.subscribe")
        assert subscription["result"] == {"subscriptionId": 0}
        assert (await call(ws, "session.status"))["result"]["userDataStream"] is True
        assert sim.push("spot", BALANCE, api_key=OTHER_KEY) == 1
        assert await receive(ws) == {"subscriptionId": 0, "event": BALANCE}
        logout = await call(ws, "session.logout")
        ended = await receive(ws)
    assert logout["status"] == 200
    assert ended["subscriptionId"] == 0
    assert ended["event"]["e"] == "eventStreamTerminated"


async def test_logon_with_an_hmac_key_is_refused_and_subscribe_needs_a_logon(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        logon = await call(ws, "session.logon", subscribe_params(vclock))
        subscribe = await call(ws, "userDataStream.subscribe")
    assert error_of(logon)[:2] == (400, -2028)
    assert error_of(subscribe)[:2] == (401, -1193)


async def test_unsubscribe_without_an_id_ends_every_subscription_with_event_stream_terminated(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        await subscribed(ws, vclock)
        await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": token(sim, vclock)})
        answer = await call(ws, "userDataStream.unsubscribe", ident="u")
        ended = [await receive(ws), await receive(ws)]
        assert (await call(ws, "session.subscriptions"))["result"] == []
    assert (answer["id"], answer["result"]) == ("u", {})
    assert sorted(e["subscriptionId"] for e in ended) == [0, 1]
    assert all(
        set(e) == {"subscriptionId", "event"} and e["event"]["e"] == "eventStreamTerminated" for e in ended
    )
    assert all(isinstance(e["event"]["E"], int) for e in ended)


async def test_unsubscribe_of_an_id_not_active_is_refused_with_2036(sim: Simulator) -> None:
    async with wsapi(sim) as ws:
        answer = await call(ws, "userDataStream.unsubscribe", {"subscriptionId": 7})
    assert error_of(answer) == (400, -2036, "User Data Stream subscription not active.")


async def test_unsubscribe_takes_a_subscription_id_sent_as_a_string_of_digits(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """subscriptionId is an INT (web-socket-api.md), and Binance's own spot SDK sends it as "0"
    (binance-common 4.7.0 turns every int param into a str), which production therefore takes."""
    async with wsapi(sim) as ws:
        await subscribed(ws, vclock)
        answer = await call(ws, "userDataStream.unsubscribe", {"subscriptionId": "0"})
        ended = await receive(ws)
    assert (answer["status"], answer["result"]) == (200, {})
    assert (ended["subscriptionId"], ended["event"]["e"]) == (0, "eventStreamTerminated")


@pytest.mark.parametrize("given", ["zero", "-1", "1.0", 1.5, True])
async def test_unsubscribe_refuses_a_subscription_id_that_is_no_whole_number_with_1100(
    sim: Simulator, vclock: VirtualClock, given: object
) -> None:
    """Binance's answer to an INT parameter given anything else (errors.md, -1100 ILLEGAL_CHARS)."""
    async with wsapi(sim) as ws:
        await subscribed(ws, vclock)
        answer = await call(ws, "userDataStream.unsubscribe", {"subscriptionId": given})
        assert (await call(ws, "session.subscriptions"))["result"] == [{"subscriptionId": 0}]
    assert error_of(answer) == (
        400,
        -1100,
        "Illegal characters found in parameter 'subscriptionId'; legal range is '^[0-9]{1,20}$'.",
    )


# -- requests ---------------------------------------------------------------------------------------


async def test_a_request_without_an_id_is_refused_with_1102_and_a_null_id_is_answered(
    sim: Simulator,
) -> None:
    """web-socket-api.md, "Request format": `id` INT / STRING / null, mandatory."""
    async with wsapi(sim) as ws:
        await ws.send(json.dumps({"method": "ping"}))
        without = await receive(ws)
        null = await call(ws, "ping", ident=None)
    assert (without["id"], *error_of(without)) == (
        None,
        400,
        -1102,
        "Mandatory parameter 'id' was not sent, was empty/null, or malformed.",
    )
    assert (null["id"], null["status"]) == (None, 200)


@pytest.mark.parametrize("api_key", ["key-with-dashes", "K" * 129])
async def test_a_malformed_api_key_is_refused_2014_by_rest_and_the_websocket_api_alike(
    sim: Simulator, vclock: VirtualClock, api_key: str
) -> None:
    """One key rule for both (errors.md: -2014 BAD_API_KEY_FMT "API-key format invalid.")."""
    rest = httpx.post(sim.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": api_key})
    async with wsapi(sim) as ws:
        answer = await call(ws, "userDataStream.subscribe.signature", subscribe_params(vclock, api_key))
    assert (rest.status_code, rest.json()) == (401, {"code": -2014, "msg": "API-key format invalid."})
    assert error_of(answer) == (401, -2014, "API-key format invalid.")


async def test_a_key_outside_api_keys_is_refused_2015_by_rest_and_the_websocket_api_alike(
    vclock: VirtualClock,
) -> None:
    with Simulator(clock=vclock, api_keys=[OTHER_KEY]) as sim:
        rest = httpx.post(sim.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": TEST_API_KEY})
        async with wsapi(sim) as ws:
            answer = await call(ws, "userDataStream.subscribe.signature", subscribe_params(vclock))
    assert (rest.status_code, rest.json()["code"]) == (401, -2015)
    assert error_of(answer) == (401, -2015, "Invalid API-key, IP, or permissions for action.")


async def test_time_answers_the_simulators_clock_and_ping_answers_nothing(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim, "?returnRateLimits=false") as ws:
        vclock.advance(3600)
        time = await call(ws, "time")
        ping = await call(ws, "ping", ident=None)
    assert time == {"id": 1, "status": 200, "result": {"serverTime": now_ms(vclock)}}
    assert ping == {"id": None, "status": 200, "result": {}}


async def test_answers_carry_rate_limits_unless_asked_not_to(sim: Simulator) -> None:
    async with wsapi(sim) as ws:
        with_limits = await call(ws, "ping")
        without = await call(ws, "ping", {"returnRateLimits": False})
    assert with_limits["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
    assert "rateLimits" not in without


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", -1135),
        ("[1]", -1135),
        ('{"id": 1, "method": "ping", "params": [1]}', -1135),
        ('{"id": 1, "method": "order.place", "params": {}}', -1020),
        ('{"id": 1}', -1102),
    ],
)
async def test_a_malformed_request_is_answered_with_an_error_and_the_connection_stays(
    sim: Simulator, frame: str, code: int
) -> None:
    async with wsapi(sim) as ws:
        await ws.send(frame)
        answer = await receive(ws)
        assert (await call(ws, "ping"))["status"] == 200
    assert error_of(answer)[:2] == (400, code)


# -- events -----------------------------------------------------------------------------------------


async def test_pushed_events_come_in_the_subscription_envelope_to_their_account_only(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """Events are `{"subscriptionId": N, "event": {...}}` (user-data-stream.md)."""
    sim.register_key(OTHER_KEY, secret=OTHER_SECRET)
    async with wsapi(sim) as mine, wsapi(sim) as theirs:
        await subscribed(mine, vclock)
        await subscribed(theirs, vclock, api_key=OTHER_KEY, sign=hmac_signer(OTHER_SECRET))
        assert sim.push("spot", BALANCE, api_key=OTHER_KEY) == 1
        assert sim.push("spot", {**BALANCE, "E": 2}) == 2
        assert await receive(theirs) == {"subscriptionId": 0, "event": BALANCE}
        assert await receive(mine) == {"subscriptionId": 0, "event": {**BALANCE, "E": 2}}


async def test_spot_traffic_is_an_orders_execution_reports_and_account_positions(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        await subscribed(ws, vclock)
        assert sim.traffic("spot") == [1] * 6
        events = [(await receive(ws))["event"] for _ in range(6)]
    assert [(e["e"], e.get("x"), e.get("X")) for e in events] == [
        ("executionReport", "NEW", "NEW"),
        ("outboundAccountPosition", None, None),
        ("executionReport", "TRADE", "PARTIALLY_FILLED"),
        ("outboundAccountPosition", None, None),
        ("executionReport", "TRADE", "FILLED"),
        ("outboundAccountPosition", None, None),
    ]
    assert [e["E"] for e in events] == sorted({e["E"] for e in events})
    assert events[4]["z"] == events[4]["q"]


async def test_server_shutdown_comes_without_a_subscription_id(sim: Simulator) -> None:
    """serverShutdown is a connection event: `{"event": {...}}` (web-socket-api.md)."""
    async with wsapi(sim) as ws:
        assert sim.shutdown_notice("spot") == 1
        notice = await receive(ws)
    assert list(notice) == ["event"]
    assert notice["event"]["e"] == "serverShutdown"


async def test_the_events_control_request_pushes_to_spot_and_to_an_isolated_margin_account(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        await subscribed(ws, vclock)
        await call(
            ws,
            "userDataStream.subscribe.listenToken",
            {"listenToken": token(sim, vclock, "isIsolated=TRUE&symbol=ETHBTC")},
        )
        spot = {"market": "spot", "events": [BALANCE], "api_key": TEST_API_KEY}
        margin = {"market": "margin", "events": [BALANCE], "symbol": "ETHBTC"}
        answers = [
            httpx.post(sim.url + "/_simulator/events", json=body, headers=CONTROL).json()
            for body in (spot, margin)
        ]
        assert [await receive(ws), await receive(ws)] == [
            {"subscriptionId": 0, "event": BALANCE},
            {"subscriptionId": 1, "event": BALANCE},
        ]
    assert answers == [{"delivered": [1]}, {"delivered": [1]}]


# -- the connection: pings, the 24-hour cut, faults -----------------------------------------------


async def test_pings_come_every_20_seconds_and_a_missing_pong_closes_the_connection(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """ "The WebSocket server will send a ping frame every 20 seconds"; no pong within a minute and
    the connection is closed (web-socket-api.md)."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.ws_api_url, autoping=False) as ws,
    ):
        vclock.advance(19)
        sim.tick()
        await ws.send_str('{"id": 1, "method": "ping"}')
        assert (await ws.receive(timeout=WAIT)).type == aiohttp.WSMsgType.TEXT  # no ping came first
        vclock.advance(1)
        sim.tick()
        assert (await ws.receive(timeout=WAIT)).type == aiohttp.WSMsgType.PING
        vclock.advance(61)  # no pong sent: closed at the next look at the clock
        sim.tick()
        message = await ws.receive(timeout=WAIT)
        while message.type == aiohttp.WSMsgType.PING:  # sent while the pong could be on its way
            message = await ws.receive(timeout=WAIT)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == 1008


async def test_a_missing_pong_is_timed_from_the_ping_even_if_the_clock_moves_as_it_goes_out(
    sim: Simulator, vclock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that moves the clock the moment it sees a ping (a test on its own thread) does not push
    the pong deadline past its move: the ping's time is the clock's before the ping is written. The
    clock moves here right after the first ping's write, as the test above once did on a loaded
    machine before the simulator's thread read the clock: then no close ever came."""
    write_ping = web.WebSocketResponse.ping
    moved = False

    async def ping_then_move_the_clock(self: web.WebSocketResponse, message: bytes = b"") -> None:
        nonlocal moved
        await write_ping(self, message)
        if not moved:
            moved = True
            vclock.advance(61)

    monkeypatch.setattr(web.WebSocketResponse, "ping", ping_then_move_the_clock)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.ws_api_url, autoping=False) as ws,
    ):
        vclock.advance(20)
        sim.tick()
        message = await ws.receive(timeout=WAIT)
        while message.type == aiohttp.WSMsgType.PING:  # the first, and those due since the move
            message = await ws.receive(timeout=WAIT)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == 1008


async def test_a_connection_that_pongs_stays_open_past_the_pong_deadline(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        vclock.advance(20)
        sim.tick()
        for _ in range(100):  # the client's automatic pong reaches the simulator
            if sim.streams.pings("spot") == 1 and not _unanswered(sim):
                break
            await asyncio.sleep(0.01)
        vclock.advance(61)
        sim.tick()
        assert (await call(ws, "ping"))["status"] == 200
        assert sim.stream_connections("spot") == 1


def _unanswered(sim: Simulator) -> bool:
    return bool(
        sim.streams.call(lambda: any(c.ping_unanswered is not None for c in sim.streams._connections))
    )


async def test_a_connection_is_cut_after_24_hours_on_the_simulators_clock(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        vclock.advance(86400)
        sim.tick()
        with pytest.raises(ConnectionClosed) as info:
            await receive(ws)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1001


async def test_ws_api_connections_count_as_spot_and_the_stream_faults_apply(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        await subscribed(ws, vclock)
        assert sim.stream_connections("spot") == 1
        assert sim.stall_streams(60, "spot") == 1
        assert sim.push("spot", BALANCE) == 0  # lost to the stalled connection
        assert sim.drop_streams("spot") == 1
        with pytest.raises(ConnectionClosed) as info:
            await receive(ws)
    assert info.value.rcvd is None


# -- margin: listenTokens --------------------------------------------------------------------------


def test_the_listen_token_endpoint_mints_a_token_valid_24_hours(sim: Simulator, vclock: VirtualClock) -> None:
    answer = mint(sim, vclock)
    body = answer.json()
    assert answer.status_code == 200
    assert set(body) == {"token", "expirationTime"}
    assert body["expirationTime"] == now_ms(vclock) + 86_400_000
    assert answer.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "1"


def test_the_listen_token_signature_covers_the_query_as_sent_percent_encoded(vclock: VirtualClock) -> None:
    """Since 2026-01-15 REST payloads are percent-encoded before signing (CHANGELOG 2025-12-17):
    the signature over the encoded query is accepted, one over the decoded text is not."""
    symbol = "这是测试币456"  # a testnet symbol (CHANGELOG 2025-12-15), which needs encoding
    with Simulator(clock=vclock, isolated_symbols=[symbol]) as sim:
        encoded = mint(sim, vclock, f"isIsolated=TRUE&symbol={quote(symbol)}")
        query = f"isIsolated=TRUE&symbol={symbol}&timestamp={now_ms(vclock)}"
        raw = f"isIsolated=TRUE&symbol={quote(symbol)}&timestamp={now_ms(vclock)}"
        decoded = httpx.post(
            f"{sim.url}{TOKEN_PATH}?{raw}&signature={hmac_signer()(query)}",
            headers={"X-MBX-APIKEY": TEST_API_KEY},
        )
    assert encoded.status_code == 200
    assert decoded.json()["code"] == -1022


def test_the_listen_token_endpoint_takes_its_parameters_in_a_form_body(
    sim: Simulator, vclock: VirtualClock
) -> None:
    body = f"isIsolated=FALSE&timestamp={now_ms(vclock)}"
    body += "&signature=" + hmac_signer()(body)
    answer = httpx.post(
        sim.url + TOKEN_PATH,
        content=body,
        headers={"X-MBX-APIKEY": TEST_API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("extra", "code"),
    [("isIsolated=TRUE", -1102), ("validity=86400001", -1102), ("recvWindow=60001", -1102)],
)
def test_the_listen_token_endpoint_refuses_bad_parameters(
    sim: Simulator, vclock: VirtualClock, extra: str, code: int
) -> None:
    answer = mint(sim, vclock, extra)
    assert (answer.status_code, answer.json()["code"]) == (400, code)


def test_a_listen_token_for_a_pair_without_an_isolated_margin_account_is_refused_minus_11001(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """Binance answers 400 -11001 "Isolated margin account does not exist." for such a pair (the code
    unicorn-binance-websocket-api and nautilus_trader handle); the simulator's accounts have one for
    ISOLATED_SYMBOLS only, by default."""
    refused = mint(sim, vclock, "isIsolated=TRUE&symbol=DOGEUSDT")
    accepted = mint(sim, vclock, f"isIsolated=TRUE&symbol={ISOLATED_SYMBOLS[0]}")
    assert (refused.status_code, refused.json()) == (
        400,
        {"code": -11001, "msg": "Isolated margin account does not exist."},
    )
    assert accepted.status_code == 200


@pytest.mark.parametrize(("pairs", "status"), [(["DOGEUSDT"], 200), (None, 200), ([], 400)])
def test_isolated_symbols_names_the_pairs_with_an_isolated_margin_account_and_none_accepts_any(
    vclock: VirtualClock, pairs: list[str] | None, status: int
) -> None:
    with Simulator(clock=vclock, isolated_symbols=pairs) as sim:
        assert mint(sim, vclock, "isIsolated=TRUE&symbol=DOGEUSDT").status_code == status


def test_the_listen_token_endpoint_refuses_bad_signatures_old_timestamps_and_unknown_keys(
    vclock: VirtualClock,
) -> None:
    """A signature sent to the USER_STREAM mint is checked (an unsigned mint is accepted: see
    tests/test_listen_token.py)."""
    with Simulator(clock=vclock, api_keys=[TEST_API_KEY]) as sim:
        bad = mint(sim, vclock, secret=OTHER_SECRET)
        unknown = mint(sim, vclock, api_key=OTHER_KEY, secret=OTHER_SECRET)
        empty = httpx.post(
            f"{sim.url}{TOKEN_PATH}?timestamp={now_ms(vclock)}&signature=",
            headers={"X-MBX-APIKEY": TEST_API_KEY},
        )
        no_key = httpx.post(f"{sim.url}{TOKEN_PATH}?timestamp=1&signature=00")
        query = f"timestamp={now_ms(vclock)}"
        vclock.advance(5.001)
        old = httpx.post(
            f"{sim.url}{TOKEN_PATH}?{query}&signature={hmac_signer()(query)}",
            headers={"X-MBX-APIKEY": TEST_API_KEY},
        )
    codes = [(r.status_code, r.json()["code"]) for r in (bad, unknown, empty, no_key, old)]
    assert codes == [(400, -1022), (401, -2015), (400, -1102), (401, -2014), (400, -1021)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl on this machine")
def test_the_listen_token_endpoint_answers_curl(sim: Simulator, vclock: VirtualClock) -> None:
    query = f"timestamp={now_ms(vclock)}"
    url = f"{sim.url}{TOKEN_PATH}?{query}&signature={hmac_signer()(query)}"
    out = subprocess.run(
        ["curl", "-s", "-X", "POST", "-H", f"X-MBX-APIKEY: {TEST_API_KEY}", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert set(json.loads(out)) == {"token", "expirationTime"}


async def test_subscribe_listen_token_delivers_the_margin_accounts_events(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        minted = mint(sim, vclock).json()
        answer = await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": minted["token"]})
        assert sim.push("spot", BALANCE) == 0  # the spot account's events are not the margin account's
        assert sim.traffic("margin", TEST_API_KEY) == [1] * 6
        first = await receive(ws)
    assert answer["result"] == {"subscriptionId": 0, "expirationTime": minted["expirationTime"]}
    assert (first["subscriptionId"], first["event"]["e"]) == (0, "executionReport")


async def test_a_new_token_on_the_same_connection_renews_the_subscription(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """ "Mint a new token before expiry and call subscribe.listenToken again on the same
    connection" (Listen-Token-Websocket-API): the same subscription goes on, with the new expiry."""
    async with wsapi(sim) as ws:
        first = await call(
            ws, "userDataStream.subscribe.listenToken", {"listenToken": token(sim, vclock, "validity=60000")}
        )
        vclock.advance(50)
        again = await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": token(sim, vclock)})
        vclock.advance(20)  # past the first token's expiry
        sim.tick()
        assert sim.push("margin", BALANCE) == 1
        assert await receive(ws) == {"subscriptionId": 0, "event": BALANCE}
    assert first["result"]["subscriptionId"] == again["result"]["subscriptionId"] == 0
    assert again["result"]["expirationTime"] > first["result"]["expirationTime"]


async def test_an_unrenewed_token_ends_its_subscription_and_the_connection_stays(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        await call(
            ws, "userDataStream.subscribe.listenToken", {"listenToken": token(sim, vclock, "validity=60000")}
        )
        vclock.advance(60)
        sim.tick()
        ended = await receive(ws)
        assert (await call(ws, "session.subscriptions"))["result"] == []
        assert sim.push("margin", BALANCE) == 0
    assert ended["subscriptionId"] == 0
    assert ended["event"]["e"] == "eventStreamTerminated"


async def test_an_isolated_margin_token_gets_only_its_symbols_events(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        cross = await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": token(sim, vclock)})
        isolated = await call(
            ws,
            "userDataStream.subscribe.listenToken",
            {"listenToken": token(sim, vclock, "isIsolated=TRUE&symbol=ETHBTC")},
        )
        assert sim.push("margin", BALANCE, symbol="BNBBTC") == 0
        assert sim.push("margin", BALANCE, symbol="ETHBTC") == 1
        assert (await receive(ws))["subscriptionId"] == isolated["result"]["subscriptionId"] == 1
        assert sim.push("margin", BALANCE) == 1
        assert (await receive(ws))["subscriptionId"] == cross["result"]["subscriptionId"] == 0


@pytest.mark.parametrize("value", ["not-a-token", ""])
async def test_an_invalid_listen_token_is_refused(sim: Simulator, value: str) -> None:
    async with wsapi(sim) as ws:
        answer = await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": value})
    assert error_of(answer)[:2] == ((400, -1209) if value else (400, -1102))


# -- keys and accounts ------------------------------------------------------------------------------


async def test_a_key_registered_by_control_request_signs_and_shares_its_rest_account(
    vclock: VirtualClock,
) -> None:
    with Simulator(clock=vclock, api_keys=[TEST_API_KEY]) as sim:
        body = {"api_key": OTHER_KEY, "secret": OTHER_SECRET}
        registered = httpx.post(sim.url + "/_simulator/keys", json=body, headers=CONTROL)
        listen_key = httpx.post(sim.url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": OTHER_KEY})
        async with wsapi(sim) as ws:
            assert await subscribed(ws, vclock, api_key=OTHER_KEY, sign=hmac_signer(OTHER_SECRET)) == 0
    assert registered.status_code == 200
    assert registered.json() == {"registered": True}
    assert listen_key.status_code == 200


def test_register_key_refuses_a_key_with_two_credentials_or_a_bad_pem(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="one of them"):
        sim.register_key(OTHER_KEY, secret="s", public_key=b"pem")
    with pytest.raises(ValueError, match="PEM"):
        sim.register_key(
            OTHER_KEY, public_key=b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"
        )


# -- secrets ----------------------------------------------------------------------------------------


async def test_no_key_secret_token_or_signature_in_any_log_record_or_repr(
    sim: Simulator, vclock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sign, pem = ed25519_key()
    sim.register_key(OTHER_KEY, public_key=pem)
    minted = mint(sim, vclock)
    listen_token = minted.json()["token"]
    rest_signature = str(minted.request.url).rpartition("signature=")[2]
    params = subscribe_params(vclock)
    logon = subscribe_params(vclock, api_key=OTHER_KEY, sign=sign)
    async with wsapi(sim) as ws:
        await call(ws, "userDataStream.subscribe.signature", params)
        await call(ws, "session.logon", logon)
        await call(ws, "userDataStream.subscribe.signature", {**params, "signature": "0" * 64})
        await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": listen_token})
        await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": listen_token + "x"})
    mint(sim, vclock, secret=OTHER_SECRET)
    records = [r for r in caplog.records if not r.name.startswith(("tests.client", "httpx", "httpcore"))]
    text = "\n".join(r.getMessage() for r in records) + repr(sim.exchange.keys) + repr(sim.exchange.tokens)
    assert any(r.name == "binance_userstream.simulator.wsapi" for r in records)
    for secret in (
        TEST_API_KEY,
        TEST_API_SECRET,
        OTHER_KEY,
        listen_token,
        rest_signature,
        params["signature"],
        logon["signature"],
    ):
        assert secret not in text
    assert not [path for _, path in sim.requests if rest_signature in path]


# -- the CLI ----------------------------------------------------------------------------------------


async def test_the_simulator_command_prints_the_ws_api_url_and_the_test_accounts_pair(
    vclock: VirtualClock,
) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "binance_userstream", "simulator", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        url = lines[1].split()[-1]
        async with connect(url, logger=CLIENT_LOG, open_timeout=WAIT) as ws:
            answer = await call(ws, "userDataStream.subscribe.signature", subscribe_params(SystemClock()))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert lines[0].startswith("simulator listening on http://127.0.0.1:")
    assert url.startswith("ws://127.0.0.1:")
    assert url.endswith("/ws-api/v3")
    assert TEST_API_KEY in lines[2]
    assert TEST_API_SECRET in lines[2]
    assert answer["status"] == 200


async def test_isolated_margin_traffic_goes_to_the_order_symbols_isolated_account(
    sim: Simulator, vclock: VirtualClock
) -> None:
    async with wsapi(sim) as ws:
        extra = "isIsolated=TRUE&symbol=ETHBTC"
        await call(ws, "userDataStream.subscribe.listenToken", {"listenToken": token(sim, vclock, extra)})
        assert sim.traffic("margin", symbol="BNBBTC", asset="BTC", isolated=True) == [0] * 6
        assert sim.traffic("margin", symbol="ETHBTC", asset="BTC", isolated=True) == [1] * 6
        report = (await receive(ws))["event"]
    assert (report["e"], report["s"]) == ("executionReport", "ETHBTC")
