"""`Simulator.revoke_key`: an API key deleted while its account streams.

Binance documents what a deleted key's requests get (401 -2015, errors.md "Invalid API-key, IP, or
permissions for action."), not what its open streams do; the simulator ends them (listenKeys as
expired ones, WebSocket API subscriptions with eventStreamTerminated), the case a client must survive.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from binance_userstream import VirtualClock
from binance_userstream.simulator import TEST_API_KEY, Simulator
from tests.test_simulator_streams import CLIENT_LOG, EVENTS, ORDER, OTHER_API_KEY, PATHS, new_key
from tests.test_simulator_wsapi import (
    OTHER_KEY,
    OTHER_SECRET,
    call,
    hmac_signer,
    subscribe_params,
    subscribed,
)

pytestmark = pytest.mark.anyio

WAIT = 5.0
DELETED = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


async def stream(sim: Simulator, path: str) -> ClientConnection:
    return await connect(sim.stream_url + path, logger=CLIENT_LOG, open_timeout=WAIT)


async def receive(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


def test_a_revoked_keys_rest_requests_are_refused_2015(sim: Simulator) -> None:
    new_key(sim)
    sim.revoke_key(TEST_API_KEY)
    for method in ("POST", "PUT", "DELETE"):
        answer = httpx.request(method, sim.url + PATHS["usdm"], headers={"X-MBX-APIKEY": TEST_API_KEY})
        assert (answer.status_code, answer.json()) == (401, DELETED)


async def test_a_revoked_keys_single_key_stream_gets_listen_key_expired_then_is_closed(
    sim: Simulator,
) -> None:
    key = new_key(sim)
    async with await stream(sim, f"/private/ws?listenKey={key}&{EVENTS}") as ws:
        assert sim.revoke_key(TEST_API_KEY) == 1
        event = await receive(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert (event["e"], event["listenKey"]) == ("listenKeyExpired", key)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "listenKey expired")


async def test_a_revoked_keys_listen_key_ends_alone_on_a_multi_key_stream(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, api_keys=[TEST_API_KEY, OTHER_API_KEY]) as sim:
        mine, theirs = new_key(sim, "coinm"), new_key(sim, "coinm", OTHER_API_KEY)
        async with await stream(sim, f"/stream?streams={mine}/{theirs}") as ws:
            sim.revoke_key(TEST_API_KEY)
            expired = await receive(ws)
            assert sim.push("coinm", ORDER, api_key=OTHER_API_KEY) == 1
            assert await receive(ws) == {"stream": theirs, "data": ORDER}
    assert (expired["stream"], expired["data"]["e"]) == (mine, "listenKeyExpired")


async def test_a_revoked_keys_listen_key_is_refused_before_the_upgrade(sim: Simulator) -> None:
    key = new_key(sim, "portfolio")
    sim.revoke_key(TEST_API_KEY)
    with pytest.raises(InvalidStatus) as refused:
        await stream(sim, f"/pm/ws/{key}")
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body or b"")["code"] == -1125


def test_the_accounts_listen_key_answers_1125_to_a_keepalive_by_another_key_once_the_account_has_none_left(
    vclock: VirtualClock,
) -> None:
    """Two keys of one account (api_keys as a mapping): revoking one leaves the account served;
    revoking both ends its listenKey, and a keepalive then finds none (-1125)."""
    accounts = {TEST_API_KEY: "shared", OTHER_API_KEY: "shared", "Keeper0": "keeper"}
    with Simulator(clock=vclock, api_keys=accounts) as sim:
        key = new_key(sim, "options")
        assert sim.revoke_key(TEST_API_KEY) == 0
        assert sim.exchange.is_live(key)
        sim.revoke_key(OTHER_API_KEY)
        sim.register_key("Keeper0", secret="s" * 64, account="shared")
        answer = httpx.put(
            sim.url + PATHS["options"], params={"listenKey": key}, headers={"X-MBX-APIKEY": "Keeper0"}
        )
    assert (answer.status_code, answer.json()["code"]) == (400, -1125)


async def test_a_revoked_keys_websocket_api_subscription_is_terminated_and_a_resubscribe_refused(
    sim: Simulator, vclock: VirtualClock
) -> None:
    sim.register_key(OTHER_KEY, secret=OTHER_SECRET)
    async with await connect(sim.ws_api_url, logger=CLIENT_LOG, open_timeout=WAIT) as ws:
        mine = await subscribed(ws, vclock)
        theirs = await subscribed(ws, vclock, api_key=OTHER_KEY, sign=hmac_signer(OTHER_SECRET))
        assert sim.revoke_key(TEST_API_KEY) == 1
        terminated = await receive(ws)
        again = await call(ws, "userDataStream.subscribe.signature", subscribe_params(vclock), ident=2)
        assert sim.push("spot", {"e": "balanceUpdate", "E": 1}, api_key=OTHER_KEY) == 1
        delivered = await receive(ws)
    assert (terminated["subscriptionId"], terminated["event"]["e"]) == (mine, "eventStreamTerminated")
    assert (again["status"], again["error"]) == (401, DELETED)
    assert delivered["subscriptionId"] == theirs


def test_revoking_a_key_the_simulator_does_not_accept_is_a_value_error(vclock: VirtualClock) -> None:
    with (
        Simulator(clock=vclock, api_keys=[TEST_API_KEY]) as sim,
        pytest.raises(ValueError, match="no such API key"),
    ):
        sim.revoke_key(OTHER_API_KEY)


def test_another_process_revokes_a_key_with_the_keys_control_request(sim: Simulator) -> None:
    new_key(sim)
    answer = httpx.post(
        sim.url + "/_simulator/keys",
        json={"api_key": TEST_API_KEY, "revoke": True},
        headers={"X-Simulator-Control": "1"},
    )
    assert (answer.status_code, answer.json()) == (200, {"ended": 1})
    refused = httpx.post(sim.url + PATHS["usdm"], headers={"X-MBX-APIKEY": TEST_API_KEY})
    assert refused.status_code == 401
