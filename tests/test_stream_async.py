"""AsyncUserDataStream.events(): the asyncio driver over loopback, against a scripted WebSocket
server (tests/_scripted_ws.py) for the stream and the simulator for the listenKey's REST calls.

The rules themselves are tested without sockets in test_stream_core.py; here each is seen end to
end: the URL, events in order, gaps after a drop, a stall, an expiry and a replaced key, a rotation
without gap or duplicate, overflow, close(), nothing left behind, no listenKey in any log record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator

import pytest
from binance_userstream_client.models import ListenKeyExpired, OrderTradeUpdate

from binance_userstream import AsyncUserDataStream, EndpointRetiredError
from binance_userstream.simulator import TEST_API_SECRET, Fault, Simulator
from binance_userstream.stream._core import StreamEventKind, StreamTiming
from tests._scripted_ws import LOG, ScriptedStreamServer
from tests._stream_helpers import FAST, PINGS, SAMPLE, Seen, event, take, times
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio


@pytest.fixture
async def ws() -> AsyncIterator[ScriptedStreamServer]:
    async with ScriptedStreamServer() as server:
        yield server


def client(sim: Simulator, ws: ScriptedStreamServer, market: str = "usdm") -> AsyncUserDataStream:
    return AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, stream_url=ws.url, market=market)


async def test_it_connects_to_the_private_route_with_the_key_and_the_events_allow_list(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        key = ws.key_of(0)
        assert repr(stream).count(key[:4]) == 1
        assert key not in repr(stream)
    path, _, query = ws.paths[0].partition("?")
    assert path == "/private/ws"
    assert query.startswith(f"listenKey={key}&events=")
    assert "listenKeyExpired" in query


async def test_coinm_connects_to_its_path(sim: Simulator, ws: ScriptedStreamServer) -> None:
    async with client(sim, ws, "coinm") as uds, uds.events(timing=FAST):
        await ws.wait(1)
    assert ws.paths[0].startswith("/ws/")


async def test_events_arrive_in_order_as_generated_models(sim: Simulator, ws: ScriptedStreamServer) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        for text in (SAMPLE, event(2), event(3)):
            await ws.send(text)
        items = await take(stream, 3)
    assert isinstance(items[0], OrderTradeUpdate)
    assert items[0].to_dict() == json.loads(SAMPLE)
    assert times(items[1:]) == [2, 3]


async def test_a_dropped_connection_is_reconnected_and_a_gap_marks_the_hole(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        await ws.send(event(1))
        assert times(await take(stream, 1)) == [1]
        ws.drop()
        await ws.wait(2, open_now=1)
        await ws.send(event(2))
        items = await take(stream, 2)
    assert times(items) == [("gap", "disconnected"), 2]
    assert items[0].last_event_time == 1


async def test_a_silent_connection_is_a_stall_closed_and_replaced_with_a_gap(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    async with client(sim, ws) as uds, uds.events(timing=PINGS) as stream:
        await ws.wait(1)
        await ws.wait(2, open_now=1)  # nothing sent for 0.6 s: the client gave up on the first
        await ws.send(event(2))
        items = await take(stream, 2)
    assert times(items) == [("gap", "stalled"), 2]


async def test_server_pings_keep_a_quiet_connection(sim: Simulator, ws: ScriptedStreamServer) -> None:
    async with client(sim, ws) as uds, uds.events(timing=PINGS) as stream:
        await ws.wait(1)
        for _ in range(10):
            await ws.ping()
            await asyncio.sleep(0.1)
        await ws.send(event(1))
        items = await take(stream, 1)
    assert times(items) == [1]
    assert len(ws.paths) == 1


async def test_a_key_replaced_by_the_session_is_reconnected_with_a_gap(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST, interval=1.0) as stream:
        await ws.wait(1)
        await uds.close(ws.key_of(0))  # the next keepalive (in 1 s) finds it gone: a new key
        await ws.wait(2, open_now=1, timeout=10)
        await ws.send(event(2))
        items = await take(stream, 2)
    assert ws.key_of(1) != ws.key_of(0)
    assert times(items) == [("gap", "key_replaced"), 2]


async def test_listen_key_expired_renews_the_key_and_reconnects_with_a_gap(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        key = ws.key_of(0)
        await ws.send(json.dumps({"e": "listenKeyExpired", "E": 5, "listenKey": key}))
        await ws.wait(2, open_now=1)
        await ws.send(event(6))
        items = await take(stream, 3)
    assert isinstance(items[0], ListenKeyExpired)
    assert times(items[1:]) == [("gap", "listen_key_expired"), 6]


async def test_a_planned_rotation_loses_nothing_and_delivers_nothing_twice(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    timing = StreamTiming(ping_interval=5, overlap=0.3, rotate_after=0.5)
    async with client(sim, ws) as uds, uds.events(timing=timing) as stream:
        await ws.wait(1)
        await ws.send(event(1))
        await ws.wait(2, open_now=2)  # the new connection is open, the old one still
        await ws.send(event(2))  # sent on both, as the server does
        await ws.wait(2, open_now=1)  # the old one closed by the client after the overlap
        await ws.send(event(3))
        items = await take(stream, 3)
        await asyncio.sleep(0.1)
        assert len(stream._core) == 0
    assert times(items) == [1, 2, 3]
    assert ws.closed_codes[0] == 1000


async def test_server_shutdown_rotates_without_a_gap(sim: Simulator, ws: ScriptedStreamServer) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        await ws.send(json.dumps({"e": "serverShutdown", "E": 1}))
        await ws.wait(2, open_now=2)
        await ws.send(event(2))
        await ws.wait(2, open_now=1)
        await ws.send(event(3))
        items = await take(stream, 3)
    assert times(items) == [1, 2, 3]


async def test_a_slow_consumer_gets_an_overflow_gap_with_the_count(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    seen = Seen(asyncio.Event())
    async with client(sim, ws) as uds, uds.events(timing=FAST, maxsize=2, on_event=seen) as stream:
        await connected(seen)
        for n in range(1, 6):
            await ws.send(event(n))
        await ws.round_trip()  # the client has read them all
        assert "overflow" in seen.kinds()
        items = await take(stream, 3)
        await ws.send(event(6))
        items += await take(stream, 1)
    assert times(items) == [1, 2, ("gap", "overflow"), 6]
    assert items[2].dropped == 3


async def connected(seen: Seen) -> None:
    """Until the stream's connection is open (within 5 seconds)."""
    async with asyncio.timeout(5):
        await seen.connected.wait()


async def collect(stream: AsyncIterator[object], items: list[object]) -> None:
    """Every item of `stream` into `items`, until it ends (or raises), within 10 seconds."""
    async with asyncio.timeout(10):
        async for item in stream:
            items.append(item)


async def test_large_events_overflow_the_byte_bound_before_the_count_bound(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    seen = Seen(asyncio.Event())
    async with (
        client(sim, ws) as uds,
        uds.events(timing=FAST, maxsize=100, max_bytes=2**20, on_event=seen) as stream,
    ):
        await connected(seen)
        for n in (1, 2, 3):  # 400 KB each: the third would make 1.2 MB of the 1 MiB allowed
            await ws.send(json.dumps({"e": "TEST_EVENT", "E": n, "pad": "x" * 400_000}))
        await ws.round_trip()
        items = await take(stream, 3)
        await ws.send(event(4))
        items += await take(stream, 1)
    assert times(items) == [1, 2, ("gap", "overflow"), 4]
    assert items[2].dropped == 1


async def test_a_fatal_error_is_raised_after_the_buffered_events_and_the_gap_of_the_loss_in_progress(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        sim.inject(Fault("status", status=410))  # the key's renewal after its expiry: retired
        for n in (1, 2, 3):
            await ws.send(event(n))
        await ws.send(json.dumps({"e": "listenKeyExpired", "E": 4, "listenKey": ws.key_of(0)}))
        items: list[object] = []
        with pytest.raises(EndpointRetiredError):
            await collect(stream, items)
    assert times(items) == [1, 2, 3, 4, ("gap", "listen_key_expired")]


async def test_close_from_another_thread_ends_the_iteration(sim: Simulator, ws: ScriptedStreamServer) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        threading.Timer(0.2, stream.close).start()
        async with asyncio.timeout(5):
            items = [item async for item in stream]
    assert items == []


async def test_nothing_is_left_behind_after_the_block(sim: Simulator, ws: ScriptedStreamServer) -> None:
    async with client(sim, ws) as uds:
        async with uds.events(timing=FAST):
            await ws.wait(1)
            ws.drop()
            await ws.wait(2, open_now=1)
        assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("binance-")] == []
        await ws.wait(2, open_now=0)


async def test_a_session_event_and_connection_events_reach_the_callback(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    kinds: list[str] = []
    async with client(sim, ws) as uds, uds.events(timing=FAST, on_event=lambda e: kinds.append(e.kind.value)):
        await ws.wait(1)
        ws.drop()
        await ws.wait(2, open_now=1)
        await asyncio.sleep(0.05)
    assert kinds[:3] == ["created", "connecting", "connected"]
    assert "disconnected" in kinds


@pytest.mark.parametrize("market", ["usdm", "coinm"])
async def test_no_listen_key_in_any_log_record_at_debug(
    sim: Simulator, ws: ScriptedStreamServer, caplog: pytest.LogCaptureFixture, market: str
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client(sim, ws, market) as uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        key = ws.key_of(0)
        ws.drop()
        await ws.wait(2, open_now=1)
        await ws.send(event(1))
        await take(stream, 2)
    text = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != LOG.name
    )
    assert "websockets" in text  # the library did log its handshakes
    assert key not in text
    assert key[:4] in text


async def test_a_websocket_api_market_without_signing_credentials_is_refused_before_anything_is_sent(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    async with AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, market="spot") as uds:
        with pytest.raises(ValueError, match="need a signature"):
            uds.events()
    assert sim.request_count == 0


def test_stream_url_is_checked_when_the_client_is_made() -> None:
    with pytest.raises(ValueError, match="plain ws"):
        AsyncUserDataStream(api_key=API_KEY, market="usdm", stream_url="ws://example.com")


async def test_a_fatal_session_answer_ends_the_iteration_with_its_typed_error(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    async with client(sim, ws) as uds, uds.events(timing=FAST, interval=1.0) as stream:
        await ws.wait(1)
        sim.inject(Fault("status", status=410))  # the next keepalive: the endpoint is retired
        with pytest.raises(EndpointRetiredError):
            await take(stream, 1, timeout=10)


async def test_an_event_of_another_subscription_on_a_websocket_api_connection_is_dropped_and_reported(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    """Binance's WebSocket API wraps each event as {"subscriptionId": N, "event": ...} with the N its
    subscribe answered (user-data-stream.md, 2025-08-12); a connection may carry others' events."""
    notes: list[object] = []
    uds = AsyncUserDataStream(
        api_key=API_KEY, api_secret=TEST_API_SECRET, base_url=sim.url, stream_url=ws.url, market="spot"
    )
    async with uds, uds.events(timing=FAST, on_event=notes.append) as stream:
        await ws.wait(1)
        request = json.loads(await ws.open[0].recv())
        await ws.send(json.dumps({"id": request["id"], "status": 200, "result": {"subscriptionId": 0}}))
        await ws.send('{"subscriptionId":1,"event":{"e":"TEST_EVENT","E":1}}')
        await ws.send('{"subscriptionId":0,"event":{"e":"TEST_EVENT","E":2}}')
        items = await take(stream, 1)
    assert times(items) == [2]
    (other,) = [n for n in notes if getattr(n, "kind", None) is StreamEventKind.OTHER_SUBSCRIPTION]
    assert "subscriptionId 1" in str(other.detail)
