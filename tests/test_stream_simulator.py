"""`events()` end to end against the simulator: REST and streams on its one port, nothing scripted.

The client and the simulator were written against the same wire contract (Binance's documented
paths, the USD-M allow-list, one serialisation of each event for every connection); these tests
are where the two meet: every event the simulator sent is delivered once, in order, or falls
inside a StreamGap the application received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from binance_userstream_client.models import OrderTradeUpdate

from binance_userstream import (
    MARKETS,
    AcceleratedClock,
    AsyncUserDataStream,
    SteppedClock,
    StreamGap,
    UserDataStream,
)
from binance_userstream.simulator import Simulator
from binance_userstream.stream._core import StreamEventKind, StreamTiming
from tests._stream_helpers import take as _take
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio

#: Binance's rules with short waits: quick retries, a 0.2 s overlap on rotation.
FAST = StreamTiming(
    ping_interval=180, stall_grace=60, overlap=0.2, first_retry=0.05, max_retry=0.2, rotate_after=3600
)
LIVE = ["usdm", "coinm", "portfolio", "options"]


@pytest.fixture
def live() -> Iterator[Simulator]:
    """A simulator on real time: the stream's own timers run on the event loop's clock."""
    with Simulator() as sim:
        yield sim


def _client(sim: Simulator, market: str = "usdm") -> AsyncUserDataStream:
    return AsyncUserDataStream(
        API_KEY, sim.url, market=market, stream_url=sim.url.replace("http://", "ws://")
    )


async def _connected(sim: Simulator, market: str, count: int = 1) -> None:
    async with asyncio.timeout(10):
        while sim.stream_connections(market) < count:
            await asyncio.sleep(0.01)


def _event_times(items: list[Any]) -> list[Any]:
    return [("gap", i.reason) if isinstance(i, StreamGap) else i.to_dict()["E"] for i in items]


def _balance_event(market: str, n: int) -> dict[str, Any]:
    """A balance change numbered `n`, in the market's own shape (Options has no futures `a`)."""
    if market == "options":
        return {"e": "BALANCE_POSITION_UPDATE", "E": n, "T": n, "m": "ORDER", "B": []}
    return {"e": "ACCOUNT_UPDATE", "E": n, "T": n, "a": {"m": "ORDER", "B": [], "P": []}}


@pytest.mark.parametrize("market", LIVE)
async def test_each_market_delivers_pushed_events_in_order(market: str, live: Simulator) -> None:
    async with _client(live, market) as uds, uds.events(timing=FAST) as stream:
        await _connected(live, market)
        for n in range(1, 6):
            live.push(market, _balance_event(market, n))
        items = await _take(stream, 5)
    assert [i.to_dict()["E"] for i in items] == [1, 2, 3, 4, 5]
    assert all(type(i) is MARKETS[market].event_types[i.to_dict()["e"]] for i in items)


async def test_realistic_traffic_arrives_as_typed_models_with_exact_decimals(live: Simulator) -> None:
    async with _client(live) as uds, uds.events(timing=FAST) as stream:
        await _connected(live, "usdm")
        sent = live.traffic("usdm")
        items = await _take(stream, len(sent))
    orders = [i for i in items if isinstance(i, OrderTradeUpdate)]
    assert orders
    assert all(isinstance(o.order.quantity, str) for o in orders)
    assert [i.to_dict() for i in items] == [json.loads(d.text) for d in live.deliveries]  # nothing lost


async def test_a_dropped_connection_is_reconnected_and_the_hole_is_a_gap(live: Simulator) -> None:
    async with _client(live) as uds, uds.events(timing=FAST) as stream:
        await _connected(live, "usdm")
        live.push("usdm", {"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "ORDER", "B": [], "P": []}})
        first = await _take(stream, 1)
        live.drop_streams("usdm")
        await _connected(live, "usdm")
        live.push("usdm", {"e": "ACCOUNT_UPDATE", "E": 2, "T": 2, "a": {"m": "ORDER", "B": [], "P": []}})
        rest = await _take(stream, 2)
    assert _event_times(first + rest) == [1, ("gap", "disconnected"), 2]
    gap = rest[0]
    assert gap.last_event_time == 1
    assert gap.ended_at >= gap.started_at


async def test_an_expired_key_is_renewed_and_reported_as_a_gap(live: Simulator) -> None:
    async with _client(live) as uds, uds.events(timing=FAST) as stream:
        await _connected(live, "usdm")
        live.expire_key(market="usdm")
        items = await _take(stream, 1)
        await _connected(live, "usdm")
        live.push("usdm", {"e": "ACCOUNT_UPDATE", "E": 7, "T": 7, "a": {"m": "ORDER", "B": [], "P": []}})
        items += await _take(stream, 2)
    kinds = [type(i).__name__ for i in items]
    assert kinds[0] == "ListenKeyExpired"
    assert items[1].reason == "listen_key_expired"
    assert items[2].to_dict()["E"] == 7


async def test_server_shutdown_rotates_make_before_break_with_no_gap_and_no_duplicate(
    live: Simulator,
) -> None:
    async with _client(live) as uds, uds.events(timing=FAST) as stream:
        await _connected(live, "usdm")
        live.shutdown_notice("usdm")
        await _connected(live, "usdm", 2)  # the new connection opens before the old one closes
        for n in range(1, 4):  # sent to both connections during the overlap
            live.push("usdm", {"e": "ACCOUNT_UPDATE", "E": n, "T": n, "a": {"m": "ORDER", "B": [], "P": []}})
        items = await _take(stream, 4)
        live.push("usdm", {"e": "ACCOUNT_UPDATE", "E": 9, "T": 9, "a": {"m": "ORDER", "B": [], "P": []}})
        items += await _take(stream, 1)
        assert await _settled(live) == 1  # the old connection closed once the overlap passed
    # USD-M does not document serverShutdown (spot's WebSocket API does): acted on, delivered untyped.
    assert items[0].to_dict()["e"] == "serverShutdown"
    assert _event_times(items[1:]) == [1, 2, 3, 9]


async def _settled(sim: Simulator) -> int:
    async with asyncio.timeout(5):
        while sim.stream_connections("usdm") > 1:
            await asyncio.sleep(0.02)
    return sim.stream_connections("usdm")


def test_the_sync_stream_delivers_from_the_simulator_and_reports_a_drop(live: Simulator) -> None:
    stream_url = live.url.replace("http://", "ws://")
    with UserDataStream(API_KEY, live.url, market="coinm", stream_url=stream_url) as uds:
        with uds.events(timing=FAST) as stream:
            items: list[Any] = []
            iterator = iter(stream)
            _wait_for(lambda: live.stream_connections("coinm") == 1)
            live.push("coinm", {"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "ORDER", "B": [], "P": []}})
            items.append(next(iterator))
            live.drop_streams("coinm")
            _wait_for(lambda: live.stream_connections("coinm") == 1)
            live.push("coinm", {"e": "ACCOUNT_UPDATE", "E": 2, "T": 2, "a": {"m": "ORDER", "B": [], "P": []}})
            items += [next(iterator), next(iterator)]
    assert _event_times(items) == [1, ("gap", "disconnected"), 2]


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


async def test_the_24_hour_rotation_on_a_shared_stepped_clock_loses_nothing_and_duplicates_nothing() -> None:
    """Binance closes a connection at 24 hours; the stream replaces it make-before-break at 23h30m.

    The simulator and the stream share one SteppedClock, moved a minute at a time through 25
    hours (an accelerated clock made this test depend on the machine's load), and an event is
    pushed at every step: every one arrives once, in order, and no gap is reported.
    """
    clock = SteppedClock()
    notes: list[Any] = []
    with Simulator(clock=clock) as sim:
        uds = _client(sim)
        async with uds, uds.events(clock=clock, on_event=notes.append) as stream:
            await _connected(sim, "usdm")
            received: list[Any] = []
            for pushed in range(1, 25 * 60 + 1):  # past the first connection's 24 hours
                clock.advance(60.0)
                sim.tick()
                await asyncio.sleep(0.001)  # let the stream's timers act on the step
                sim.push(
                    "usdm",
                    {"e": "ACCOUNT_UPDATE", "E": pushed, "T": pushed, "a": {"m": "ORDER", "B": [], "P": []}},
                )
                received += await _take(stream, 1)
            connections = sim.stream_connections("usdm")
    kinds = [getattr(note, "kind", None) for note in notes]
    assert StreamEventKind.ROTATED in kinds, [k for k in kinds if isinstance(k, StreamEventKind)]
    assert StreamEventKind.DISCONNECTED not in kinds
    assert _event_times(received) == list(range(1, pushed + 1))
    assert connections == 1


async def test_a_stalled_connection_is_replaced_and_the_silence_is_a_gap() -> None:
    """No frame and no ping for longer than the market's ping rules allow: the stream moves on."""
    clock = AcceleratedClock(600)  # the simulator pings every 3 simulated minutes: 0.3 s
    timing = StreamTiming(ping_interval=180, stall_grace=600, overlap=60, first_retry=6, max_retry=60)
    with Simulator(clock=clock) as sim:
        uds = _client(sim)
        notes: list[Any] = []
        async with uds, uds.events(timing=timing, clock=clock, on_event=notes.append) as stream:
            await _connected(sim, "usdm")
            sim.push("usdm", {"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "ORDER", "B": [], "P": []}})
            items = await _take(stream, 1)
            sim.stall_streams(24 * 3600, "usdm")  # the connection falls silent for good
            sim.push("usdm", {"e": "ACCOUNT_UPDATE", "E": 2, "T": 2, "a": {"m": "ORDER", "B": [], "P": []}})
            kinds = [StreamEventKind.STALLED, StreamEventKind.CONNECTED]
            async with asyncio.timeout(10):  # stalled, then connected again
                while [n.kind for n in notes if getattr(n, "kind", None) in kinds][-2:] != kinds:
                    await asyncio.sleep(0.01)
            sim.push("usdm", {"e": "ACCOUNT_UPDATE", "E": 3, "T": 3, "a": {"m": "ORDER", "B": [], "P": []}})
            items += await _take(stream, 2)
    assert _event_times(items) == [1, ("gap", "stalled"), 3]
    assert items[1].last_event_time == 1
