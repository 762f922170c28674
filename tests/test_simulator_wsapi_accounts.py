"""Many accounts on one spot WebSocket API connection, at Binance's real limits.

"A single session supports up to 1,000 active subscriptions simultaneously"; "You can have only one
active subscription for a given account on a given connection"; each event comes as
`{"subscriptionId": N, "event": {...}}` (web-socket-api.md "User Data Stream subscriptions",
user-data-stream.md; https://github.com/binance/binance-spot-api-docs).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from binance_userstream import VirtualClock
from binance_userstream.simulator import Simulator
from tests.test_simulator_streams import CLIENT_LOG

pytestmark = pytest.mark.anyio

WAIT = 5.0


def account(index: int) -> tuple[str, str]:
    return f"Fleet{index:05d}", f"secret{index:05d}" + "0" * 50


async def subscribe_many(ws: ClientConnection, clock: VirtualClock, indices: range) -> list[Any]:
    """Subscribe each account with its own signed request, all sent before any answer is read."""
    timestamp = int(clock.wall() * 1000)
    for index in indices:
        api_key, secret = account(index)
        payload = f"apiKey={api_key}&timestamp={timestamp}"
        signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        params = {"apiKey": api_key, "timestamp": timestamp, "signature": signature}
        await ws.send(
            json.dumps({"id": index, "method": "userDataStream.subscribe.signature", "params": params})
        )
    return [json.loads(await asyncio.wait_for(ws.recv(), WAIT)) for _ in indices]


async def test_a_connection_takes_1000_accounts_and_refuses_the_1001st_with_2042(
    vclock: VirtualClock,
) -> None:
    with Simulator(clock=vclock) as sim:
        for index in range(1001):
            sim.register_key(account(index)[0], secret=account(index)[1])
        async with connect(sim.ws_api_url, logger=CLIENT_LOG, open_timeout=WAIT, max_size=None) as ws:
            answers = await subscribe_many(ws, vclock, range(1001))
        assert sim.subscriptions() == 0  # the connection closed: its subscriptions went with it
    assert [a["result"]["subscriptionId"] for a in answers[:1000]] == list(range(1000))
    assert (answers[1000]["status"], answers[1000]["error"]["code"]) == (400, -2042)


async def test_each_accounts_events_come_to_its_own_subscription_alone(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock) as sim:
        for index in range(100):
            sim.register_key(account(index)[0], secret=account(index)[1])
        async with connect(sim.ws_api_url, logger=CLIENT_LOG, open_timeout=WAIT) as ws:
            answers = await subscribe_many(ws, vclock, range(100))
            ids = {a["id"]: a["result"]["subscriptionId"] for a in answers}
            pushed = sim.push_accounts(
                "spot",
                {account(index)[0]: [{"e": "balanceUpdate", "E": index}] for index in range(99, -1, -1)},
            )
            frames = [json.loads(await asyncio.wait_for(ws.recv(), WAIT)) for _ in range(100)]
    assert set(map(tuple, pushed.values())) == {(1,)}
    assert frames == [
        {"subscriptionId": ids[index], "event": {"e": "balanceUpdate", "E": index}}
        for index in range(99, -1, -1)
    ]
