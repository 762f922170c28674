"""The derivatives' multi-key routes: many listenKeys (accounts) on one combined-stream connection.

Routes as Binance's own SDKs open them (binance-connector-python, `user_data(listenKey)`:
`<base>/private/stream` for USD-M and Options, `<base>/stream` for COIN-M, `/pm/stream`,
`/pm-classic/stream`, then `{"method": "SUBSCRIBE", "params": [<listenKey>], "id": N}`); limits from
each market's websocket-market-streams page (1024 streams per connection, 200 on Options, 10
incoming messages per second). Time is the simulator's VirtualClock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from binance_userstream import VirtualClock
from binance_userstream.simulator import Simulator
from tests.test_simulator_streams import CLIENT_LOG, ORDER, PATHS

pytestmark = pytest.mark.anyio

WAIT = 5.0
ACCOUNT = {"e": "ACCOUNT_UPDATE", "E": 2, "a": {"m": "ORDER"}}
#: The combined route of each listenKey market, and the path its keys are minted on.
ROUTES = {
    "usdm": "/private/stream",
    "coinm": "/stream",
    "portfolio": "/pm/stream",
    "portfolio_pro": "/pm-classic/stream",
    "options": "/private/stream",
}
MINT = {**PATHS, "portfolio_pro": PATHS["usdm"]}  # PM Pro streams a USD-M listenKey


@pytest.fixture
def sim(vclock: VirtualClock) -> Iterator[Simulator]:
    """The simulator, with room in the REST weight for minting a thousand accounts' keys."""
    with Simulator(clock=vclock, weight_limit=1_000_000) as simulator:
        yield simulator


def keys(sim: Simulator, market: str, count: int) -> dict[str, str]:
    """API key -> its account's listenKey on `market`, for `count` accounts (the open mode's keys)."""
    found = {}
    with httpx.Client(base_url=sim.url) as client:
        for index in range(count):
            api_key = f"account{market.replace('_', '')}{index:05d}"
            answer = client.post(MINT[market], headers={"X-MBX-APIKEY": api_key})
            answer.raise_for_status()
            found[api_key] = answer.json()["listenKey"]
    return found


@asynccontextmanager
async def combined(sim: Simulator, path: str) -> AsyncIterator[ClientConnection]:
    url = sim.stream_url + path
    async with connect(url, logger=CLIENT_LOG, open_timeout=WAIT, max_size=None) as ws:
        yield ws


async def receive(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def request(ws: ClientConnection, method: str, params: list[str] | None = None, ident: int = 1) -> Any:
    body: dict[str, Any] = {"method": method, "id": ident}
    if params is not None:
        body["params"] = params
    await ws.send(json.dumps(body))
    return await receive(ws)


@pytest.mark.parametrize("market", list(ROUTES))
async def test_one_subscribe_adds_several_keys_and_each_keys_events_come_in_its_own_envelope(
    sim: Simulator, market: str
) -> None:
    accounts = keys(sim, market, 3)
    async with combined(sim, ROUTES[market]) as ws:
        assert await request(ws, "SUBSCRIBE", list(accounts.values())) == {"result": None, "id": 1}
        for index, api_key in enumerate(accounts):
            assert sim.push(market, {**ORDER, "E": index}, api_key=api_key) == 1
        frames = [await receive(ws) for _ in accounts]
    assert frames == [
        {"stream": key, "data": {**ORDER, "E": index}} for index, key in enumerate(accounts.values())
    ]


async def test_pm_pro_keys_given_in_the_query_of_its_combined_stream_deliver_wrapped_frames(
    sim: Simulator,
) -> None:
    accounts = keys(sim, "portfolio_pro", 2)
    one, two = accounts.values()
    async with combined(sim, f"/pm-classic/stream?streams={one}/{two}") as ws:
        assert sim.push("portfolio_pro", ACCOUNT, api_key=list(accounts)[1]) == 1
        assert await receive(ws) == {"stream": two, "data": ACCOUNT}


async def test_a_key_at_event_item_subscribes_that_key_to_that_event_alone(sim: Simulator) -> None:
    (api_key, key), *_ = keys(sim, "usdm", 1).items()
    async with combined(sim, "/private/stream") as ws:
        await request(ws, "SUBSCRIBE", [f"{key}@ACCOUNT_UPDATE"])
        assert sim.push("usdm", ORDER, api_key=api_key) == 0
        assert sim.push("usdm", ACCOUNT, api_key=api_key) == 1
        assert await receive(ws) == {"stream": key, "data": ACCOUNT}


async def test_one_expired_key_ends_its_stream_alone_and_the_other_keys_go_on(
    sim: Simulator, vclock: VirtualClock
) -> None:
    accounts = keys(sim, "coinm", 2)
    (first, one), (second, two) = accounts.items()
    async with combined(sim, "/stream") as ws:
        await request(ws, "SUBSCRIBE", [one, two])
        sim.expire_key(one)
        expired = await receive(ws)
        assert sim.push("coinm", ORDER, api_key=second) == 1
        assert await receive(ws) == {"stream": two, "data": ORDER}
        assert await request(ws, "LIST_SUBSCRIPTIONS", ident=2) == {"result": [two], "id": 2}
    assert expired["stream"] == one
    assert (expired["data"]["e"], expired["data"]["listenKey"]) == ("listenKeyExpired", one)
    assert sim.push("coinm", ORDER, api_key=first) == 0


async def test_a_subscribe_past_1024_streams_is_refused_whole_and_the_connection_keeps_its_keys(
    sim: Simulator,
) -> None:
    accounts = list(keys(sim, "usdm", 1025).values())
    async with combined(sim, "/private/stream") as ws:
        for ident, start in enumerate(range(0, 1000, 250)):
            assert await request(ws, "SUBSCRIBE", accounts[start : start + 250], ident) == {
                "result": None,
                "id": ident,
            }
        refused = await request(ws, "SUBSCRIBE", accounts[1000:], 9)
        listed = await request(ws, "LIST_SUBSCRIPTIONS", ident=10)
    assert (refused["code"], refused["id"]) == (2, 9)
    assert "1024" in refused["msg"]
    assert sorted(listed["result"]) == sorted(accounts[:1000])


async def test_an_options_connection_carries_at_most_200_streams(sim: Simulator) -> None:
    accounts = list(keys(sim, "options", 201).values())
    async with combined(sim, "/private/stream") as ws:
        assert await request(ws, "SUBSCRIBE", accounts[:200]) == {"result": None, "id": 1}
        refused = await request(ws, "SUBSCRIBE", accounts[200:], 2)
    assert (refused["code"], refused["id"]) == (2, 2)
    assert "200" in refused["msg"]


async def test_ten_messages_a_second_on_the_simulators_clock_keep_the_connection_open(
    sim: Simulator, vclock: VirtualClock
) -> None:
    """The limit is counted on the simulator's clock, which a stepped client paces itself by: ten
    a second for three seconds of that clock is within it, however fast real time goes."""
    async with combined(sim, "/stream") as ws:
        for _ in range(3):
            for ident in range(10):
                assert await request(ws, "LIST_SUBSCRIPTIONS", ident=ident) == {"result": [], "id": ident}
            vclock.advance(1.0)
        assert await request(ws, "LIST_SUBSCRIPTIONS", ident=99) == {"result": [], "id": 99}


async def test_an_unknown_method_is_answered_with_binances_error_and_its_id(sim: Simulator) -> None:
    async with combined(sim, "/stream") as ws:
        answer = await request(ws, "SUBSCRIBE_ALL", [], 5)
    assert (answer["code"], answer["id"]) == (2, 5)
    assert answer["msg"].startswith('Invalid request: unknown variant "SUBSCRIBE_ALL", expected one of')


async def test_push_accounts_sends_each_accounts_events_to_its_own_stream_in_one_call(
    sim: Simulator,
) -> None:
    accounts = keys(sim, "usdm", 50)
    async with combined(sim, "/private/stream") as ws:
        await request(ws, "SUBSCRIBE", list(accounts.values()))
        counts = sim.push_accounts("usdm", {api_key: [ORDER, ACCOUNT] for api_key in accounts})
        frames = [await receive(ws) for _ in range(100)]
    assert counts == {api_key: [1, 1] for api_key in accounts}
    assert frames == [
        {"stream": key, "data": event} for key in accounts.values() for event in (ORDER, ACCOUNT)
    ]
