"""A fleet on the derivatives' combined streams end to end against the simulator: many accounts'
listenKeys SUBSCRIBEd on shared connections (USD-M `/private/stream`, as Binance's own SDK does),
each event routed to its account by the stream name Binance puts around it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from binance_userstream_client.models import ListenKeyExpired

from binance_userstream import Account, AsyncFleet, AuthenticationError, FleetLimits, StreamGap
from binance_userstream.simulator import Simulator
from binance_userstream.stream._core import StreamTiming

pytestmark = pytest.mark.anyio

FAST = StreamTiming(ping_interval=20, overlap=0.2, first_retry=0.05, max_retry=0.2)


def key(n: int) -> str:
    return f"FuturesKey{n:054d}"


def accounts(count: int) -> list[Account]:
    return [Account(id=f"acct-{n}", api_key=key(n)) for n in range(count)]


def update(n: int) -> dict[str, Any]:
    return {"e": "ACCOUNT_UPDATE", "E": n, "T": n, "a": {"m": "ORDER", "B": [], "P": []}}


@pytest.fixture
def live() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


def fleet(sim: Simulator, members: list[Account], market: str = "usdm", **options: Any) -> AsyncFleet:
    options.setdefault("timing", FAST)
    stream_url = sim.url.replace("http", "ws")
    return AsyncFleet(members, market=market, base_url=sim.url, stream_url=stream_url, **options)


async def until(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def take(stream: AsyncFleet, count: int) -> list[tuple[str, Any]]:
    items = []
    async with asyncio.timeout(10):
        async for pair in stream:
            items.append(pair)
            if len(items) == count:
                break
    return items


async def subscribed(sim: Simulator, market: str, count: int) -> None:
    await until(lambda: sum(sim.listeners(market, key(n)) for n in range(count)) >= count)


@pytest.mark.parametrize("market", ["usdm", "coinm", "portfolio", "options"])
async def test_each_accounts_events_arrive_tagged_with_its_id_over_one_combined_stream(
    live: Simulator, market: str
) -> None:
    async with fleet(live, accounts(4), market) as stream:
        await subscribed(live, market, 4)
        for i in range(4):
            live.push(market, update(100 + i), key(i))
        items = await take(stream, 4)
        assert stream.connections() == 1
    assert sorted((account, item.event_time) for account, item in items) == [
        (f"acct-{i}", 100 + i) for i in range(4)
    ]


async def test_listen_keys_are_packed_up_to_the_limit_per_connection(live: Simulator) -> None:
    async with fleet(live, accounts(5), limits=FleetLimits(per_connection=2)) as stream:
        await subscribed(live, "usdm", 5)
        assert stream.connections() == 3


async def test_a_revoked_key_ends_its_account_with_its_error_and_the_others_go_on(live: Simulator) -> None:
    async with fleet(live, accounts(3)) as stream:
        await subscribed(live, "usdm", 3)
        live.revoke_key(key(1))
        ended = [pair async for pair in _until_error(stream)]
        live.push("usdm", update(7), key(2))
        after = await take(stream, 1)
    account, error = ended[-1]
    assert account == "acct-1"
    assert isinstance(error, AuthenticationError)
    assert [item for a, item in ended if a == "acct-1" and isinstance(item, StreamGap)]
    assert [(a, i.event_time) for a, i in after] == [("acct-2", 7)]


async def _until_error(stream: AsyncFleet) -> Any:
    async with asyncio.timeout(10):
        async for account, item in stream:
            yield account, item
            if isinstance(item, BaseException):
                return


async def test_an_expired_key_costs_its_account_a_gap_and_no_other_account_anything(live: Simulator) -> None:
    async with fleet(live, accounts(2)) as stream:
        await subscribed(live, "usdm", 2)
        old = live.exchange.live_listen_keys("usdm", live.exchange.key_account(key(0)))
        live.expire_key(next(iter(old)))
        await until(lambda: live.listeners("usdm", key(0)) == 1 and live.stream_connections("usdm") >= 1)
        await asyncio.sleep(0.3)
        live.push("usdm", update(1), key(0))
        live.push("usdm", update(2), key(1))
        items = await take(stream, 4)
    mine = [item for account, item in items if account == "acct-0"]
    assert isinstance(mine[0], ListenKeyExpired)  # the event itself, as Binance sent it
    assert isinstance(mine[1], StreamGap)
    assert mine[1].reason == "listen_key_expired"
    assert [item.event_time for item in mine[2:]] == [1]
    assert [item.event_time for account, item in items if account == "acct-1"] == [2]


async def test_with_text_gives_each_event_with_its_json_as_sent_and_no_envelope(live: Simulator) -> None:
    async with fleet(live, accounts(2), keep_text=True) as stream:
        await subscribed(live, "usdm", 2)
        live.push("usdm", update(7), key(1))
        async with asyncio.timeout(10):
            account, item, text = await anext(stream.with_text())
    assert (account, item.event_time, json.loads(text or "null")) == ("acct-1", 7, update(7))
