"""Per client IP limits over every WebSocket connection the simulator serves, on its VirtualClock.

Binance: "300 connections per attempt every 5 minutes per IP" (web-socket-streams.md, web-socket-api.md
"Connection limits"); WebSocket API request weight per IP per minute, 6000, "shared by all connections
from that address", connecting costs 2, past it 429 with `retryAfter`, repeated, a 418 ban
(web-socket-api.md "IP limits"). Tests lower the limits to reach them fast.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from binance_userstream import VirtualClock
from binance_userstream.simulator import Simulator
from tests.test_simulator_streams import CLIENT_LOG

pytestmark = pytest.mark.anyio

WAIT = 5.0


async def opened(sim: Simulator, path: str) -> ClientConnection:
    return await connect(sim.stream_url + path, logger=CLIENT_LOG, open_timeout=WAIT)


async def refused(sim: Simulator, path: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        await opened(sim, path)
    return info.value


async def call(ws: ClientConnection, method: str, ident: int = 1) -> Any:
    await ws.send(json.dumps({"id": ident, "method": method}))
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def test_a_connection_past_the_limit_is_refused_429_with_retry_after(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, connection_limit=3, connection_window=300.0) as sim:
        connections = [await opened(sim, path) for path in ("/stream", "/ws-api/v3", "/pm/stream")]
        vclock.advance(100.0)
        refusal = await refused(sim, "/private/stream")
        for ws in connections:
            await ws.close()
    assert refusal.response.status_code == 429
    assert refusal.response.headers["Retry-After"] == "200"
    assert json.loads(refusal.response.body or b"")["code"] == -1003


async def test_connections_are_accepted_again_once_the_oldest_leave_the_window(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, connection_limit=2, connection_window=60.0) as sim:
        for _ in range(2):
            await (await opened(sim, "/stream")).close()
        await refused(sim, "/stream")
        vclock.advance(60.0)
        ws = await opened(sim, "/stream")
        await ws.close()
        assert sim.connections_opened() == 1


async def test_connections_opened_counts_streams_and_websocket_api_within_a_span(
    vclock: VirtualClock,
) -> None:
    with Simulator(clock=vclock) as sim:
        await (await opened(sim, "/stream")).close()
        vclock.advance(30.0)
        await (await opened(sim, "/ws-api/v3")).close()
        assert (sim.connections_opened(), sim.connections_opened(within=10.0)) == (2, 1)
        assert sim.connections_opened(ip="127.0.0.1") == 2


async def test_websocket_api_weight_past_the_limit_is_refused_429_with_retry_after(
    vclock: VirtualClock,
) -> None:
    """Connecting costs 2 and `ping` 1: with a limit of 5, three pings fit, the fourth does not."""
    with Simulator(clock=vclock, ws_weight_limit=5) as sim:
        async with await opened(sim, "/ws-api/v3") as ws:
            answers = [await call(ws, "ping", ident) for ident in range(4)]
            used = sim.ws_weight_used()
            vclock.advance(60.0)
            again = await call(ws, "ping", 9)
    assert [a["status"] for a in answers] == [200, 200, 200, 429]
    error = answers[3]["error"]
    assert error["code"] == -1003
    assert error["data"]["retryAfter"] - error["data"]["serverTime"] == 60_000
    assert answers[2]["rateLimits"][0]["count"] == 5
    assert used == 5
    assert again["status"] == 200


async def test_websocket_api_weight_is_shared_by_every_connection_of_an_ip(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, ws_weight_limit=4) as sim:
        async with await opened(sim, "/ws-api/v3"), await opened(sim, "/ws-api/v3") as two:
            answer = await call(two, "time")
            assert sim.ws_weight_used() == 4
    assert (answer["status"], answer["error"]["code"]) == (429, -1003)


async def test_repeated_violations_earn_a_418_ban_that_also_refuses_new_connections(
    vclock: VirtualClock,
) -> None:
    with Simulator(clock=vclock, ws_weight_limit=2, violations_before_ban=1) as sim:
        async with await opened(sim, "/ws-api/v3") as ws:
            statuses = [(await call(ws, "ping", ident))["status"] for ident in range(3)]
            refusal = await refused(sim, "/ws-api/v3")
            vclock.advance(120.0)
            after = await call(ws, "ping", 9)
    assert statuses == [429, 418, 418]
    assert refusal.response.status_code == 418
    assert int(refusal.response.headers["Retry-After"]) == 120
    assert after["status"] == 200


def test_the_limits_default_to_binances_documented_values() -> None:
    sim = Simulator()
    try:
        limits = sim.limits
        assert (limits.connection_limit, limits.connection_window, limits.ws_weight_limit) == (
            300,
            300.0,
            6000,
        )
    finally:
        sim.stop()


@pytest.mark.parametrize(
    "option", [{"connection_limit": 0}, {"ws_weight_limit": -1}, {"connection_window": float("inf")}]
)
def test_limits_that_are_not_positive_are_refused(option: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(option))):
        Simulator(**option)
