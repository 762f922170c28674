"""UserDataStream.events(): the sync stream (the asyncio driver on a private loop thread, the key
kept alive by the sync client's KeepaliveSession), over loopback against the scripted WebSocket
server (on a thread of its own) and the simulator. The same rules as test_stream_async.py.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from binance_userstream_client.models import ListenKeyExpired, OrderTradeUpdate

from binance_userstream import EndpointRetiredError, EventStream, UserDataStream
from binance_userstream.simulator import Fault, Simulator
from binance_userstream.stream._core import StreamTiming
from tests._scripted_ws import LOG, ThreadedStreamServer
from tests._stream_helpers import FAST, PINGS, SAMPLE, Seen, event, times
from tests.conftest import API_KEY


@pytest.fixture
def ws() -> Iterator[ThreadedStreamServer]:
    with ThreadedStreamServer() as server:
        yield server


def client(sim: Simulator, ws: ThreadedStreamServer, market: str = "usdm") -> UserDataStream:
    return UserDataStream(api_key=API_KEY, base_url=sim.url, stream_url=ws.url, market=market)


def take(stream: EventStream, n: int) -> list[Any]:
    items = []
    for item in stream:
        items.append(item)
        if len(items) == n:
            break
    return items


def test_it_connects_to_the_private_route_with_the_key_and_the_events_allow_list(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        ws.wait(1)
        key = ws.key_of(0)
        assert key not in repr(stream)
    path, _, query = ws.paths[0].partition("?")
    assert path == "/private/ws"
    assert query.startswith(f"listenKey={key}&events=")


def test_events_arrive_in_order_as_generated_models(sim: Simulator, ws: ThreadedStreamServer) -> None:
    with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        ws.wait(1)
        for text in (SAMPLE, event(2), event(3)):
            ws.send(text)
        items = take(stream, 3)
    assert isinstance(items[0], OrderTradeUpdate)
    assert times(items[1:]) == [2, 3]


def test_a_dropped_connection_is_reconnected_and_a_gap_marks_the_hole(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        ws.wait(1)
        ws.send(event(1))
        assert times(take(stream, 1)) == [1]
        ws.drop()
        ws.wait(2, open_now=1)
        ws.send(event(2))
        assert times(take(stream, 2)) == [("gap", "disconnected"), 2]


def test_a_silent_connection_is_a_stall_closed_and_replaced_with_a_gap(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    with client(sim, ws) as uds, uds.events(timing=PINGS) as stream:
        ws.wait(2, open_now=1)
        ws.send(event(2))
        assert times(take(stream, 2)) == [("gap", "stalled"), 2]


def test_a_key_replaced_by_the_session_is_reconnected_with_a_gap(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    with client(sim, ws) as uds, uds.events(timing=FAST, interval=1.0) as stream:
        ws.wait(1)
        uds.close(ws.key_of(0))
        ws.wait(2, open_now=1, timeout=10)
        ws.send(event(2))
        items = take(stream, 2)
    assert ws.key_of(1) != ws.key_of(0)
    assert times(items) == [("gap", "key_replaced"), 2]


def test_listen_key_expired_renews_the_key_and_reconnects_with_a_gap(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        ws.wait(1)
        ws.send(json.dumps({"e": "listenKeyExpired", "E": 5, "listenKey": ws.key_of(0)}))
        ws.wait(2, open_now=1)
        ws.send(event(6))
        items = take(stream, 3)
    assert isinstance(items[0], ListenKeyExpired)
    assert times(items[1:]) == [("gap", "listen_key_expired"), 6]


def test_a_planned_rotation_loses_nothing_and_delivers_nothing_twice(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    timing = StreamTiming(ping_interval=5, overlap=0.3, rotate_after=0.5)
    with client(sim, ws) as uds, uds.events(timing=timing) as stream:
        ws.wait(1)
        ws.send(event(1))
        ws.wait(2, open_now=2)
        ws.send(event(2))
        ws.wait(2, open_now=1)
        ws.send(event(3))
        assert times(take(stream, 3)) == [1, 2, 3]
    assert ws.server.closed_codes[0] == 1000


def test_a_slow_consumer_gets_an_overflow_gap_with_the_count(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    seen = Seen(threading.Event())
    with client(sim, ws) as uds, uds.events(timing=FAST, maxsize=2, on_event=seen) as stream:
        assert seen.connected.wait(5)
        for n in range(1, 6):
            ws.send(event(n))
        ws.round_trip()  # the client has read them all
        assert "overflow" in seen.kinds()
        items = take(stream, 3)
        ws.send(event(6))
        items += take(stream, 1)
    assert times(items) == [1, 2, ("gap", "overflow"), 6]
    assert items[2].dropped == 3


def test_large_events_overflow_the_byte_bound_before_the_count_bound(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    seen = Seen(threading.Event())
    with (
        client(sim, ws) as uds,
        uds.events(timing=FAST, maxsize=100, max_bytes=2**20, on_event=seen) as stream,
    ):
        assert seen.connected.wait(5)
        for n in (1, 2, 3):  # 400 KB each: the third would make 1.2 MB of the 1 MiB allowed
            ws.send(json.dumps({"e": "TEST_EVENT", "E": n, "pad": "x" * 400_000}))
        ws.round_trip()
        items = take(stream, 3)
        ws.send(event(4))
        items += take(stream, 1)
    assert times(items) == [1, 2, ("gap", "overflow"), 4]
    assert items[2].dropped == 1


def test_the_stream_holds_no_more_than_maxsize_events_in_all_those_next_took_at_once_included(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    seen = Seen(threading.Event())
    with client(sim, ws) as uds, uds.events(timing=FAST, maxsize=4, on_event=seen) as stream:
        assert seen.connected.wait(5)
        for n in (1, 2, 3, 4):
            ws.send(event(n))
        ws.round_trip()
        items = take(stream, 1)  # next() took the four at once: they are still the stream's
        for n in (5, 6, 7, 8):
            ws.send(event(n))
        ws.round_trip()
        items += take(stream, 4)
        ws.send(event(9))
        items += take(stream, 1)
    assert times(items) == [1, 2, 3, 4, ("gap", "overflow"), 9]
    assert items[4].dropped == 4


def test_a_fatal_error_is_raised_after_the_buffered_events_and_the_gap_of_the_loss_in_progress(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    items: list[Any] = []
    with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        ws.wait(1)
        sim.inject(Fault("status", status=410))  # the key's renewal after its expiry: retired
        for n in (1, 2, 3):
            ws.send(event(n))
        ws.send(json.dumps({"e": "listenKeyExpired", "E": 4, "listenKey": ws.key_of(0)}))
        with pytest.raises(EndpointRetiredError):
            items.extend(stream)
    assert times(items) == [1, 2, 3, 4, ("gap", "listen_key_expired")]


def test_close_from_another_thread_ends_a_blocked_iteration(sim: Simulator, ws: ThreadedStreamServer) -> None:
    with client(sim, ws) as uds, uds.events(timing=FAST) as stream:
        ws.wait(1)
        threading.Timer(0.2, stream.close).start()
        assert list(stream) == []


def test_no_thread_or_socket_is_left_behind(sim: Simulator, ws: ThreadedStreamServer) -> None:
    before = set(threading.enumerate())
    with client(sim, ws) as uds:
        with uds.events(timing=FAST):
            ws.wait(1)
            ws.drop()
            ws.wait(2, open_now=1)
        assert set(threading.enumerate()) - before == set()
        ws.wait(2, open_now=0)


def test_no_listen_key_in_any_log_record_at_debug(
    sim: Simulator, ws: ThreadedStreamServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with client(sim, ws, "coinm") as uds, uds.events(timing=FAST) as stream:
        ws.wait(1)
        key = ws.key_of(0)
        ws.drop()
        ws.wait(2, open_now=1)
        ws.send(event(1))
        take(stream, 2)
    text = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != LOG.name
    )
    assert "websockets" in text
    assert key not in text


def test_a_fatal_session_answer_ends_the_iteration_with_its_typed_error(
    sim: Simulator, ws: ThreadedStreamServer
) -> None:
    with client(sim, ws) as uds, uds.events(timing=FAST, interval=1.0) as stream:
        ws.wait(1)
        sim.inject(Fault("status", status=410))
        with pytest.raises(EndpointRetiredError):
            take(stream, 1)


def test_bad_stream_options_are_refused_before_anything_is_sent(sim: Simulator) -> None:
    with UserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm") as uds:
        with pytest.raises(ValueError, match="maxsize"):
            uds.events(maxsize=0)
        with pytest.raises(ValueError, match="max_bytes"):
            uds.events(max_bytes=0)
        with pytest.raises(ValueError, match="max_bytes must be at least 1048576, the largest frame"):
            uds.events(max_bytes=2**20 - 1)
        with pytest.raises(TypeError, match="on_event"):
            uds.events(on_event="print")  # type: ignore[arg-type]
    assert list(sim.requests) == []


def test_the_sync_client_checks_stream_url_too() -> None:
    with pytest.raises(ValueError, match="plain ws"):
        UserDataStream(api_key=API_KEY, market="usdm", stream_url="ws://example.com")
