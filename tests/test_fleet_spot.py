"""A fleet on the WebSocket API (spot) end to end against the simulator: many accounts' signed
subscriptions packed on shared connections, each account's events tagged with its id, in order,
with a gap for an account exactly where its events may be missing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from binance_userstream import (
    Account,
    AsyncFleet,
    Fleet,
    FleetLimits,
    RawEvent,
    SignatureError,
    StreamGap,
)
from binance_userstream.simulator import Simulator
from binance_userstream.stream._core import StreamEventKind, StreamTiming

pytestmark = pytest.mark.anyio

FAST = StreamTiming(ping_interval=20, overlap=0.2, first_retry=0.05, max_retry=0.2)


def key(n: int) -> str:
    return f"FleetKey{n:056d}"


def secret(n: int) -> str:
    return f"FleetSecret{n:053d}"


def accounts(sim: Simulator, count: int) -> list[Account]:
    made = []
    for n in range(count):
        sim.register_key(key(n), secret=secret(n))
        made.append(Account(id=f"acct-{n}", api_key=key(n), api_secret=secret(n)))
    return made


def balance(n: int) -> dict[str, Any]:
    return {"e": "balanceUpdate", "E": n, "a": "BTC", "d": "0.10000000", "T": n}


@pytest.fixture
def live() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


def fleet(sim: Simulator, members: list[Account], **options: Any) -> AsyncFleet:
    options.setdefault("timing", FAST)
    return AsyncFleet(
        members, market="spot", base_url=sim.url, stream_url=sim.url.replace("http", "ws"), **options
    )


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


async def test_each_accounts_events_arrive_tagged_with_its_id_in_order_over_one_connection(
    live: Simulator,
) -> None:
    members = accounts(live, 5)
    async with fleet(live, members) as stream:
        await until(lambda: live.subscriptions() == 5)
        for n in range(3):
            for i in range(5):
                live.push("spot", balance(100 * i + n), key(i))
        items = await take(stream, 15)
        assert stream.connections() == 1
    for i in range(5):
        mine = [item.event_time for account, item in items if account == f"acct-{i}"]
        assert mine == [100 * i, 100 * i + 1, 100 * i + 2]


async def test_accounts_are_packed_up_to_the_limit_per_connection(live: Simulator) -> None:
    async with fleet(live, accounts(live, 5), limits=FleetLimits(per_connection=2)) as stream:
        await until(lambda: live.subscriptions() == 5)
        assert stream.connections() == 3


async def test_a_dropped_connection_costs_each_of_its_accounts_one_gap_and_no_other_account_any(
    live: Simulator,
) -> None:
    connected: list[str | None] = []

    def seen(account: str | None, note: object) -> None:
        if account is not None and getattr(note, "kind", None) is StreamEventKind.CONNECTED:
            connected.append(account)

    members = accounts(live, 4)
    async with fleet(live, members, limits=FleetLimits(per_connection=2), on_event=seen) as stream:
        await until(lambda: len(connected) == 4)
        live.push("spot", balance(1), key(0))
        live.push("spot", balance(2), key(2))
        await take(stream, 2)
        live.drop_streams("spot")  # every connection: each account loses its own
        await until(lambda: len(connected) == 8)  # each account subscribed again
        for i in range(4):
            live.push("spot", balance(10 + i), key(i))
        items = await take(stream, 8)
    for i in range(4):
        mine = [item for account, item in items if account == f"acct-{i}"]
        assert isinstance(mine[0], StreamGap)
        assert mine[0].reason == "disconnected"
        assert [item.event_time for item in mine[1:]] == [10 + i]


async def test_an_account_with_a_wrong_secret_ends_with_its_error_as_an_item_and_the_others_go_on(
    live: Simulator,
) -> None:
    members = accounts(live, 3)
    members[1] = Account(id="acct-1", api_key=key(1), api_secret="W" * 64)
    async with fleet(live, members) as stream:
        ((account, item),) = await take(stream, 1)
        assert account == "acct-1"
        assert isinstance(item, SignatureError)
        await until(lambda: live.subscriptions() == 2)
        live.push("spot", balance(7), key(2))
        assert [(a, i.event_time) for a, i in await take(stream, 1)] == [("acct-2", 7)]


async def test_an_account_added_while_the_fleet_runs_gets_its_events_and_a_removed_one_stops(
    live: Simulator,
) -> None:
    members = accounts(live, 3)
    async with fleet(live, members[:2]) as stream:
        await until(lambda: live.subscriptions() == 2)
        stream.add(members[2])
        await until(lambda: live.subscriptions() == 3)
        stream.remove("acct-0")
        await until(lambda: live.subscriptions() == 2)
        live.push("spot", balance(1), key(0))
        live.push("spot", balance(2), key(2))
        assert [(a, i.event_time) for a, i in await take(stream, 1)] == [("acct-2", 2)]
        assert stream.accounts == ["acct-1", "acct-2"]


def test_the_blocking_fleet_yields_the_same(live: Simulator) -> None:
    members = accounts(live, 2)
    with Fleet(
        members, market="spot", base_url=live.url, stream_url=live.url.replace("http", "ws"), timing=FAST
    ) as stream:
        import time

        deadline = time.monotonic() + 10
        while live.subscriptions() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        live.push("spot", balance(5), key(1))
        account, item = next(iter(stream))
        assert (account, item.event_time) == ("acct-1", 5)


async def test_with_text_gives_each_event_with_its_json_as_sent_and_no_envelope(live: Simulator) -> None:
    members = accounts(live, 2)
    async with fleet(live, members, keep_text=True) as stream:
        await until(lambda: live.subscriptions() == 2)
        live.push("spot", balance(1), key(0))
        live.push("spot", balance(2), key(1))
        got = []
        async with asyncio.timeout(10):
            async for account, item, text in stream.with_text():
                got.append((account, item.event_time, json.loads(text or "null")))
                if len(got) == 2:
                    break
    assert sorted(got) == [("acct-0", 1, balance(1)), ("acct-1", 2, balance(2))]


async def test_without_models_each_event_is_a_raw_event_with_its_text_and_no_keep_text_is_needed(
    live: Simulator,
) -> None:
    members = accounts(live, 2)
    async with fleet(live, members, models=False) as stream:
        await until(lambda: live.subscriptions() == 2)
        live.push("spot", balance(1), key(0))
        live.push("spot", balance(2), key(1))
        got = []
        async with asyncio.timeout(10):
            async for account, item, text in stream.with_text():
                assert isinstance(item, RawEvent)
                assert item.text == text
                got.append((account, item.event_type, item.event_time, item.model().to_dict()))
                if len(got) == 2:
                    break
    assert sorted(got) == [
        ("acct-0", "balanceUpdate", 1, balance(1)),
        ("acct-1", "balanceUpdate", 2, balance(2)),
    ]


async def test_with_text_is_refused_when_texts_are_not_kept(live: Simulator) -> None:
    async with fleet(live, accounts(live, 1)) as stream:
        with pytest.raises(ValueError, match="keep_text=True"):
            await anext(stream.with_text())


def negotiated(stream: AsyncFleet) -> list[list[str]]:
    """The WebSocket extensions each of the fleet's connections agreed on with the server."""
    sockets = stream._driver.sockets.values()
    return [[extension.name for extension in s.ws.protocol.extensions] for s in sockets]


@pytest.mark.parametrize(("compression", "extensions"), [("deflate", ["permessage-deflate"]), (None, [])])
async def test_a_fleet_asks_for_deflated_frames_or_not_as_told_and_its_events_arrive_either_way(
    live: Simulator, compression: str | None, extensions: list[str]
) -> None:
    async with fleet(live, accounts(live, 2), compression=compression) as stream:
        await until(lambda: live.subscriptions() == 2)
        assert negotiated(stream) == [extensions]
        live.push("spot", balance(7), key(1))
        [(account, item)] = await take(stream, 1)
    assert (account, item.event_time) == ("acct-1", 7)


def test_a_compression_other_than_deflate_or_none_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="compression is 'deflate' or None, not 'gzip'"):
        AsyncFleet([], market="spot", compression="gzip")
