"""The event stream's rules, without sockets: the sans-I/O core fed happenings with their times.

Binance's rules (the derivatives "User Data Streams" and "WebSocket Market Streams" pages): the
server pings every 3 minutes (Options 5); a connection lives at most 24 hours; `listenKeyExpired`
is pushed when a key expires; `serverShutdown` precedes a planned close (spot changelog
2026-05-08). The client's rules are in the docstring of binance_userstream.stream._core.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from binance_userstream_client.models import ListenKeyExpired, OrderTradeUpdate, UnknownEvent

from binance_userstream import StreamGap
from binance_userstream.stream._core import (
    Close,
    Connect,
    RenewKey,
    RenewToken,
    StreamCore,
    StreamEventKind,
    StreamTiming,
)
from tests.conftest import ROOT

KEY = "A" * 60
NEW_KEY = "B" * 60
TIMING = StreamTiming(ping_interval=180.0)
DAY = 23.5 * 3600


def url(key: str) -> str:
    return f"wss://stream.test/private/ws?listenKey={key}"


def core(random: Callable[[], float] = lambda: 1.0, maxsize: int = 100, max_bytes: int = 2**20) -> StreamCore:
    return StreamCore(url, TIMING, random=random, maxsize=maxsize, max_bytes=max_bytes)


def frame(n: int, kind: str = "TEST_EVENT", **extra: Any) -> str:
    return json.dumps({"e": kind, "E": n, **extra})


def opened(stream: StreamCore, at: float = 0.0) -> int:
    """Start the stream and open its first connection; its id."""
    (connect,) = stream.start(KEY, at)
    assert isinstance(connect, Connect)
    stream.connected(connect.conn_id, at)
    return connect.conn_id


def drain(stream: StreamCore, at: float = 0.0) -> list[Any]:
    items = []
    while (item := stream.pop(at)) is not None:
        items.append(item)
    return items


def times(items: list[Any]) -> list[Any]:
    """Each event's E, and each gap as ("gap", reason)."""
    return [("gap", i.reason) if isinstance(i, StreamGap) else i.to_dict()["E"] for i in items]


def connects(actions: list[Any]) -> list[Connect]:
    return [a for a in actions if isinstance(a, Connect)]


# -- connecting and delivering ---------------------------------------------------------------------


def test_start_connects_to_the_url_for_the_key() -> None:
    (action,) = core().start(KEY, 0.0)
    assert isinstance(action, Connect)
    assert action.url == url(KEY)


def test_the_connect_action_keeps_the_url_out_of_its_repr() -> None:
    (action,) = core().start(KEY, 0.0)
    assert KEY not in repr(action)


def test_frames_are_delivered_in_order_as_models() -> None:
    stream = core()
    conn = opened(stream)
    sample = json.loads((ROOT / "tests/data/events/usdm/ORDER_TRADE_UPDATE.json").read_text())
    stream.frame(conn, json.dumps(sample), 1.0)
    stream.frame(conn, frame(2), 2.0)
    first, second = drain(stream)
    assert isinstance(first, OrderTradeUpdate)
    assert first.to_dict() == sample
    assert isinstance(second, UnknownEvent)


def test_nothing_is_delivered_before_a_frame_arrives() -> None:
    stream = core()
    opened(stream)
    assert stream.pop(1.0) is None


def test_a_frame_that_is_not_json_is_delivered_as_an_unknown_event_with_its_text() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, "garbage", 1.0)
    (item,) = drain(stream)
    assert isinstance(item, UnknownEvent)
    assert item["raw"] == "garbage"


@pytest.mark.parametrize("kind", ['["serverShutdown"]', "{}", "1", "null"])
def test_an_event_type_that_is_not_a_string_is_delivered_as_an_unknown_event(kind: str) -> None:
    stream = core()
    conn = opened(stream)
    assert stream.frame(conn, f'{{"e": {kind}, "E": 1}}', 1.0) == []
    (item,) = drain(stream)
    assert isinstance(item, UnknownEvent)
    assert stream.frame(conn, '{"e": "x", "E": 2}', 2.0) == []  # the connection serves on


@pytest.mark.parametrize("stamp", ['"²"', f'"{"9" * 5000}"', "9" * 400, "-5"])
def test_an_unusable_event_time_is_treated_as_missing_and_the_frame_and_the_next_are_delivered(
    stamp: str,
) -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(1), 1.0)
    assert stream.frame(conn, f'{{"e": "TEST_EVENT", "E": {stamp}, "n": 2}}', 2.0) == []
    stream.frame(conn, '{"e": "TEST_EVENT", "n": 3}', 3.0)
    (again,) = connects(stream.closed(conn, 200.0))
    stream.connected(again.conn_id, 201.0)
    first, second, third, gap = drain(stream)
    assert [first.to_dict()["E"], second["n"], third["n"]] == [1, 2, 3]
    assert gap == StreamGap("disconnected", 200.0, 201.0, last_event_time=1)


def test_frames_from_a_connection_the_core_closed_are_ignored() -> None:
    stream = core()
    conn = opened(stream)
    stream.tick(TIMING.stall_after)  # stalled: closed by the core
    stream.frame(conn, frame(1), TIMING.stall_after + 1)
    assert [i for i in drain(stream) if not isinstance(i, StreamGap)] == []


def test_maxsize_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        core(maxsize=0)


# -- unplanned loss: gaps -----------------------------------------------------------------------


def test_a_dropped_connection_is_reconnected_at_once_to_the_same_url() -> None:
    stream = core()
    conn = opened(stream)
    actions = stream.closed(conn, 100.0, "code 1006")
    assert [a.url for a in connects(actions)] == [url(KEY)]


def test_a_dropped_connection_yields_a_gap_between_the_last_event_before_and_the_first_after() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(1), 1.0)
    (again,) = connects(stream.closed(conn, 100.0))
    stream.connected(again.conn_id, 102.0)
    stream.frame(again.conn_id, frame(2), 103.0)
    assert times(drain(stream)) == [1, ("gap", "disconnected"), 2]


def test_the_gap_says_when_the_loss_began_and_ended_and_the_last_event_time_before_it() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(1234), 1.0)
    (again,) = connects(stream.closed(conn, 100.0))
    stream.connected(again.conn_id, 102.5)
    gap = drain(stream)[1]
    assert gap == StreamGap("disconnected", started_at=100.0, ended_at=102.5, last_event_time=1234)
    assert gap.duration == 2.5


def test_the_gap_waits_until_a_connection_is_open_again() -> None:
    stream = core()
    conn = opened(stream)
    stream.closed(conn, 100.0)
    assert drain(stream) == []


def test_failed_reconnects_back_off_exponentially_to_the_cap() -> None:
    stream = core(random=lambda: 1.0)
    conn = opened(stream)
    (attempt,) = connects(stream.closed(conn, 1000.0))
    at, waits = 1000.0, []
    for _ in range(9):
        assert stream.closed(attempt.conn_id, at) == []
        waits.append(stream.next_deadline() - at)
        at = stream.next_deadline()
        (attempt,) = connects(stream.tick(at))
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_is_full_jitter_drawn_from_the_injected_random() -> None:
    draws = itertools.cycle([0.25, 0.0])
    stream = core(random=lambda: next(draws))
    conn = opened(stream)
    (attempt,) = connects(stream.closed(conn, 1000.0))
    stream.closed(attempt.conn_id, 1000.0)
    assert stream.next_deadline() == 1000.25
    (attempt,) = connects(stream.tick(1000.25))
    stream.closed(attempt.conn_id, 1000.25)
    assert stream.next_deadline() == 1000.25  # a draw of 0: at once


def test_reconnects_go_on_forever() -> None:
    stream = core()
    conn = opened(stream)
    (attempt,) = connects(stream.closed(conn, 1000.0))
    at = 1000.0
    for _ in range(200):
        stream.closed(attempt.conn_id, at)
        at = stream.next_deadline()
        (attempt,) = connects(stream.tick(at))
    stream.connected(attempt.conn_id, at)
    assert times(drain(stream)) == [("gap", "disconnected")]


def test_a_connection_lost_soon_after_opening_is_retried_after_a_backoff() -> None:
    stream = core()
    conn = opened(stream)
    (attempt,) = connects(stream.closed(conn, 1000.0))
    stream.connected(attempt.conn_id, 1001.0)
    assert connects(stream.closed(attempt.conn_id, 1002.0)) == []
    assert stream.next_deadline() > 1002.0


def test_a_long_lived_connection_lost_is_reconnected_at_once_even_after_earlier_failures() -> None:
    stream = core()
    conn = opened(stream)
    (attempt,) = connects(stream.closed(conn, 1000.0))
    stream.closed(attempt.conn_id, 1000.0)
    (attempt,) = connects(stream.tick(stream.next_deadline()))
    stream.connected(attempt.conn_id, 1010.0)
    assert len(connects(stream.closed(attempt.conn_id, 5000.0))) == 1


def test_no_frame_or_ping_for_the_ping_interval_plus_a_minute_is_a_stall() -> None:
    stream = core()
    conn = opened(stream)
    assert stream.tick(239.9) == []
    actions = stream.tick(240.0)
    assert Close(conn) in actions
    (again,) = connects(actions)
    stream.connected(again.conn_id, 241.0)
    assert drain(stream) == [StreamGap("stalled", 240.0, 241.0)]


def test_a_ping_keeps_a_quiet_connection_alive() -> None:
    stream = core()
    conn = opened(stream)
    stream.ping(conn, 200.0)
    assert stream.tick(300.0) == []
    assert stream.next_deadline() == 440.0


def test_a_frame_keeps_a_connection_alive() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(1), 200.0)
    assert stream.next_deadline() == 440.0


def test_the_stall_deadline_follows_the_markets_ping_interval() -> None:
    stream = StreamCore(url, StreamTiming(ping_interval=300.0), random=lambda: 1.0)
    opened(stream)
    assert stream.next_deadline() == 360.0


def test_listen_key_expired_is_delivered_then_the_connections_close_and_a_key_is_asked_for() -> None:
    stream = core()
    conn = opened(stream)
    actions = stream.frame(conn, frame(7, "listenKeyExpired", listenKey=KEY), 10.0)
    assert actions == [Close(conn), RenewKey()]
    (item,) = drain(stream)
    assert isinstance(item, ListenKeyExpired)


def test_after_an_expiry_the_new_key_is_connected_and_a_gap_marks_the_hole() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(7, "listenKeyExpired", listenKey=KEY), 10.0)
    (connect,) = connects(stream.key_replaced(NEW_KEY, 11.0))
    assert connect.url == url(NEW_KEY)
    stream.connected(connect.conn_id, 12.0)
    assert times(drain(stream)) == [7, ("gap", "listen_key_expired")]


def test_a_renewal_that_failed_is_asked_for_again_after_a_backoff() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(7, "listenKeyExpired", listenKey=KEY), 10.0)
    assert stream.renew_failed(11.0) == []
    assert stream.tick(stream.next_deadline()) == [RenewKey()]


def test_listen_key_expired_for_another_key_is_only_delivered() -> None:
    stream = core()
    conn = opened(stream)
    assert stream.frame(conn, frame(7, "listenKeyExpired", listenKey="OLD"), 10.0) == []


def test_a_key_replaced_by_the_session_reconnects_to_its_url_with_a_gap() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(1), 1.0)
    actions = stream.key_replaced(NEW_KEY, 50.0)
    assert Close(conn) in actions
    (connect,) = connects(actions)
    assert connect.url == url(NEW_KEY)
    stream.connected(connect.conn_id, 51.0)
    stream.frame(connect.conn_id, frame(2), 52.0)
    assert times(drain(stream)) == [1, ("gap", "key_replaced"), 2]


def test_the_same_key_reported_again_changes_nothing() -> None:
    stream = core()
    opened(stream)
    assert stream.key_replaced(KEY, 50.0) == []


def test_one_loss_is_one_gap_whatever_follows_until_recovery() -> None:
    stream = core()
    conn = opened(stream)
    stream.closed(conn, 10.0)
    (connect,) = connects(stream.key_replaced(NEW_KEY, 11.0))
    stream.connected(connect.conn_id, 12.0)
    assert drain(stream) == [StreamGap("disconnected", 10.0, 12.0)]


# -- planned rotation ---------------------------------------------------------------------------


def test_a_second_connection_opens_23h30m_after_the_first_opened() -> None:
    stream = core()
    conn = opened(stream, at=5.0)
    stream.ping(conn, 5.0 + DAY - 10)  # pings every 3 minutes keep it from stalling meanwhile
    assert stream.tick(5.0 + DAY - 1) == []
    (connect,) = connects(stream.tick(5.0 + DAY))
    assert connect.url == url(KEY)


def rotated(stream: StreamCore, at: float = DAY) -> tuple[int, int]:
    """A stream whose second connection has just opened for a rotation: (old, new)."""
    old = opened(stream)
    stream.ping(old, at - 1)
    (connect,) = connects(stream.tick(at))
    stream.connected(connect.conn_id, at + 1)
    return old, connect.conn_id


def test_the_old_connection_is_closed_once_the_new_one_has_been_open_for_the_overlap() -> None:
    stream = core()
    old, _new = rotated(stream)
    assert stream.tick(DAY + 1 + TIMING.overlap - 0.1) == []
    assert stream.tick(DAY + 1 + TIMING.overlap) == [Close(old)]


def test_a_rotation_yields_no_gap() -> None:
    stream = core()
    old, new = rotated(stream)
    stream.frame(old, frame(1), DAY + 2)
    stream.frame(new, frame(1), DAY + 2)
    stream.tick(DAY + 10)
    stream.frame(new, frame(2), DAY + 11)
    assert times(drain(stream)) == [1, 2]


def test_during_the_overlap_a_frame_seen_on_both_connections_is_delivered_once() -> None:
    stream = core()
    old, new = rotated(stream)
    for n in (1, 2):
        stream.frame(old, frame(n), DAY + 2)
    for n in (1, 2, 3):
        stream.frame(new, frame(n), DAY + 2)
    stream.frame(old, frame(3), DAY + 3)
    assert times(drain(stream)) == [1, 2, 3]


def test_a_frame_the_old_connection_delivered_is_dropped_when_the_new_one_sends_it_after_the_overlap() -> (
    None
):
    """The new connection can lag: its copy of a frame may come after the old one was retired."""
    stream = core()
    old, new = rotated(stream)
    stream.frame(old, frame(1), DAY + 2)
    stream.frame(old, frame(2), DAY + 2)
    stream.tick(DAY + 1 + TIMING.overlap)  # the old connection is retired
    for n in (1, 2, 3, 4):
        stream.frame(new, frame(n), DAY + 1 + TIMING.overlap + 1)
    assert times(drain(stream)) == [1, 2, 3, 4]


def test_after_the_first_new_frame_past_the_retired_ones_the_same_text_is_delivered_again() -> None:
    """Echoes of the retired connection are expected only before the new one moves past them."""
    stream = core()
    old, new = rotated(stream)
    stream.frame(old, frame(1), DAY + 2)
    stream.tick(DAY + 1 + TIMING.overlap)
    stream.frame(new, frame(2), DAY + 10)
    stream.frame(new, frame(1), DAY + 11)  # not an echo any more: a new event that reads the same
    assert times(drain(stream)) == [1, 2, 1]


def test_frames_of_an_old_connection_the_server_closed_in_the_overlap_are_not_delivered_twice() -> None:
    stream = core()
    old, new = rotated(stream)
    stream.frame(old, frame(1), DAY + 2)
    stream.closed(old, DAY + 3, "code 1001")
    stream.frame(new, frame(1), DAY + 4)
    stream.frame(new, frame(2), DAY + 4)
    assert times(drain(stream)) == [1, 2]


def test_the_same_text_twice_on_one_connection_is_delivered_twice() -> None:
    stream = core()
    old, new = rotated(stream)
    stream.frame(new, frame(1), DAY + 2)
    stream.frame(new, frame(1), DAY + 2)
    stream.frame(old, frame(1), DAY + 2)
    assert times(drain(stream)) == [1, 1]


def test_server_shutdown_starts_a_rotation() -> None:
    stream = core()
    conn = opened(stream)
    (connect,) = connects(stream.frame(conn, frame(1, "serverShutdown"), 60.0))
    stream.connected(connect.conn_id, 61.0)
    assert stream.tick(61.0 + TIMING.overlap) == [Close(conn)]
    assert [i for i in drain(stream) if isinstance(i, StreamGap)] == []


def test_a_second_server_shutdown_during_a_rotation_opens_no_third_connection() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(1, "serverShutdown"), 60.0)
    assert connects(stream.frame(conn, frame(2, "serverShutdown"), 61.0)) == []


def test_a_failed_rotation_attempt_is_retried_while_the_old_connection_serves() -> None:
    stream = core()
    old = opened(stream)
    stream.ping(old, DAY - 1)
    (attempt,) = connects(stream.tick(DAY))
    assert stream.closed(attempt.conn_id, DAY + 1) == []
    (retry,) = connects(stream.tick(stream.next_deadline()))
    stream.connected(retry.conn_id, DAY + 5)
    assert [i for i in drain(stream) if isinstance(i, StreamGap)] == []


def test_the_old_connection_lost_before_the_new_one_opened_is_a_gap_the_new_one_ends() -> None:
    stream = core()
    old = opened(stream)
    stream.ping(old, DAY - 1)
    (attempt,) = connects(stream.tick(DAY))
    assert connects(stream.closed(old, DAY + 1)) == []  # the rotation's attempt is the reconnect
    stream.connected(attempt.conn_id, DAY + 2)
    assert drain(stream) == [StreamGap("disconnected", DAY + 1, DAY + 2)]


def test_the_old_connection_closed_by_the_server_during_the_overlap_is_no_gap() -> None:
    stream = core()
    old, new = rotated(stream)
    assert stream.closed(old, DAY + 2) == []
    stream.frame(new, frame(1), DAY + 3)
    assert times(drain(stream)) == [1]


def test_after_a_rotation_the_next_is_due_23h30m_after_the_new_connection_opened() -> None:
    stream = core()
    _old, new = rotated(stream)
    stream.tick(DAY + 10)
    stream.ping(new, 2 * DAY)
    assert len(connects(stream.tick(DAY + 1 + DAY))) == 1


# -- a slow consumer --------------------------------------------------------------------------


def test_a_full_buffer_drops_events_until_the_consumer_has_drained_it_to_half_then_reports_how_many() -> None:
    stream = core(maxsize=4)
    conn = opened(stream)
    for n in range(1, 8):
        stream.frame(conn, frame(n), float(n))
    assert len(stream) == 4
    assert times([stream.pop(10.0)]) == [1]
    stream.frame(conn, frame(8), 11.0)  # one slot free, above the low-water mark: still dropped
    assert times([stream.pop(12.0)]) == [2]  # two held: half the buffer, it reopens
    stream.frame(conn, frame(9), 13.0)
    items = drain(stream, 14.0)
    assert times(items) == [3, 4, ("gap", "overflow"), 9]
    assert items[2] == StreamGap("overflow", 5.0, 12.0, last_event_time=4, dropped=4)


def test_a_full_buffer_of_large_events_drops_by_size_before_the_count_is_reached() -> None:
    stream = core(maxsize=100, max_bytes=1000)
    conn = opened(stream)
    for n in range(1, 6):
        stream.frame(conn, frame(n, pad="x" * 300), float(n))  # about 340 characters each
    assert len(stream) == 2
    assert stream.notes[-1].kind is StreamEventKind.OVERFLOW
    items = drain(stream, 10.0)
    assert times(items) == [1, 2, ("gap", "overflow")]
    assert items[2].dropped == 3


def test_an_overflow_that_begins_again_before_any_event_followed_its_gap_grows_that_gap() -> None:
    stream = core(max_bytes=1000)
    conn = opened(stream)
    for n in (1, 2, 3):
        stream.frame(conn, frame(n, pad="x" * 380), float(n))  # 400 characters each: the third is dropped
    assert times([stream.pop(4.0)]) == [1]  # 400 held, at most half: the gap is buffered
    stream.frame(conn, frame(5, pad="x" * 680), 5.0)  # 700 more would be too many: dropped again
    assert "again" in str(stream.notes[-1].detail)
    assert times([stream.pop(6.0)]) == [2]
    stream.frame(conn, frame(7), 7.0)
    (gap, last) = drain(stream, 8.0)
    assert gap == StreamGap("overflow", 3.0, 6.0, last_event_time=2, dropped=2)
    assert times([last]) == [7]


def test_a_batch_counts_against_the_bounds_until_it_has_been_handed_out() -> None:
    stream = core(maxsize=3)
    conn = opened(stream)
    for n in (1, 2, 3):
        stream.frame(conn, frame(n), float(n))
    assert times(stream.pop_batch(3, 4.0)) == [1, 2, 3]
    stream.frame(conn, frame(4), 5.0)  # the consumer still holds three
    stream.batch_done(6.0)
    stream.frame(conn, frame(7), 7.0)
    assert times(stream.pop_batch(3, 8.0)) == [("gap", "overflow"), 7]


def test_a_batch_ends_before_a_gap_so_that_an_overflow_beginning_again_can_grow_it() -> None:
    stream = core(max_bytes=1000)
    conn = opened(stream)
    for n in (1, 2, 3):
        stream.frame(conn, frame(n, pad="x" * 380), float(n))  # 400 characters each: the third is dropped
    assert times(stream.pop_batch(1, 4.0)) == [1]
    stream.batch_done(5.0)  # 400 held, at most half: the gap follows event 2
    assert times(stream.pop_batch(5, 6.0)) == [2]
    stream.frame(conn, frame(7, pad="x" * 680), 7.0)  # 700 more than the 400 lent: dropped again
    stream.batch_done(8.0)
    (gap,) = stream.pop_batch(5, 9.0)
    assert gap == StreamGap("overflow", 3.0, 8.0, last_event_time=2, dropped=2)


def test_max_bytes_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        core(max_bytes=0)


def test_a_loss_gap_is_never_dropped_by_a_full_buffer() -> None:
    stream = core(maxsize=1)
    conn = opened(stream)
    stream.frame(conn, frame(1), 1.0)
    (again,) = connects(stream.closed(conn, 200.0))
    stream.connected(again.conn_id, 201.0)
    assert times(drain(stream)) == [1, ("gap", "disconnected")]


def test_an_overflow_before_a_loss_is_reported_before_the_loss() -> None:
    stream = core(maxsize=1)
    conn = opened(stream)
    stream.frame(conn, frame(1), 1.0)
    stream.frame(conn, frame(2), 1.5)
    (again,) = connects(stream.closed(conn, 200.0))
    stream.connected(again.conn_id, 201.0)
    assert times(drain(stream)) == [1, ("gap", "overflow"), ("gap", "disconnected")]


# -- what the driver reports ------------------------------------------------------------------


def test_happenings_are_noted_for_the_callback_and_the_log() -> None:
    stream = core()
    conn = opened(stream)
    (attempt,) = connects(stream.closed(conn, 100.0, "code 1006"))
    stream.closed(attempt.conn_id, 100.0)
    kinds = [note.kind for note in stream.notes]
    assert kinds == [
        StreamEventKind.CONNECTING,
        StreamEventKind.CONNECTED,
        StreamEventKind.DISCONNECTED,
        StreamEventKind.CONNECTING,
        StreamEventKind.RECONNECTING,
    ]
    assert stream.notes[2].detail == "code 1006"
    assert stream.notes[-1].retry_in == 1.0


def test_with_no_connection_there_is_no_deadline() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(7, "listenKeyExpired"), 10.0)
    assert stream.next_deadline() == math.inf


def test_a_gap_describes_itself_in_one_line() -> None:
    gap = StreamGap("overflow", 1.0, 3.5, last_event_time=99, dropped=4)
    assert gap.describe() == (
        "gap (overflow): the consumer fell behind and the buffer was full for 2.5s; 4 events dropped;"
        " events after event time 99 may be missing; reconcile"
    )


def test_stream_gap_is_exported_at_the_top_level_and_frozen() -> None:
    import attrs

    import binance_userstream

    assert binance_userstream.StreamGap is StreamGap
    gap = StreamGap("stalled", 1.0, 2.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        gap.reason = "overflow"  # type: ignore[misc]


def test_the_core_does_no_io_and_reads_no_clock() -> None:
    import ast

    source = (ROOT / "src/binance_userstream/stream/_core.py").read_text()
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported.isdisjoint({"asyncio", "time", "socket", "threading", "websockets", "random"})


def test_a_tick_at_the_stall_deadline_acts_whatever_the_float_rounding() -> None:
    stream = core()
    conn = opened(stream)
    stream.ping(conn, 16.400000000000002)  # (16.4... + 240) - 16.4... rounds below 240
    assert Close(conn) in stream.tick(stream.next_deadline())


def test_the_old_connection_closed_by_the_server_in_the_overlap_is_not_reported_as_a_disconnection() -> None:
    stream = core()
    old, _new = rotated(stream)
    stream.notes.clear()
    stream.closed(old, DAY + 2, "code 1000")
    assert StreamEventKind.DISCONNECTED not in [note.kind for note in stream.notes]


# -- the WebSocket API (spot, margin) --------------------------------------------------------------


def envelope(n: int, subscription: int = 0, kind: str = "executionReport") -> str:
    return json.dumps({"subscriptionId": subscription, "event": {"e": kind, "E": n}}, separators=(",", ":"))


def test_event_stream_terminated_is_delivered_then_the_connection_is_replaced_with_a_gap() -> None:
    """Binance's user-data-stream.md: eventStreamTerminated ends a subscription (a listenToken
    expired unrenewed, or an unsubscribe); events after it need a new subscription."""
    stream = core()
    conn = opened(stream)
    stream.frame(conn, envelope(1), 100.0)
    actions = stream.frame(conn, envelope(2, kind="eventStreamTerminated"), 200.0)
    assert Close(conn) in actions
    (again,) = connects(actions)
    stream.connected(again.conn_id, 201.0)
    stream.frame(again.conn_id, envelope(4), 202.0)
    assert times(drain(stream)) == [1, 2, ("gap", "subscription_ended"), 4]
    assert StreamEventKind.TERMINATED in [n.kind for n in stream.notes]


def test_during_an_overlap_an_event_is_delivered_once_whatever_subscription_id_each_connection_gave() -> None:
    stream = core()
    old, new = rotated(stream)
    stream.frame(old, envelope(7, subscription=0), DAY + 2)
    stream.frame(new, envelope(7, subscription=3), DAY + 2.5)
    assert times(drain(stream)) == [7]


def test_a_listen_token_is_renewed_token_lead_before_it_expires() -> None:
    stream = core()
    opened(stream)
    stream.token_valid(expires_at=7200.0, at=0.0)
    due = 7200.0 - TIMING.token_lead
    assert not any(isinstance(a, RenewToken) for a in stream.tick(due - 1))
    assert any(isinstance(a, RenewToken) for a in stream.tick(due))


def test_a_renewed_token_moves_the_next_renewal_and_is_noted() -> None:
    stream = core()
    opened(stream)
    stream.token_valid(expires_at=3600.0, at=0.0)
    stream.tick(1800.0)
    stream.token_valid(expires_at=5400.0, at=1800.0)
    assert not any(isinstance(a, RenewToken) for a in stream.tick(3599.0))
    assert any(isinstance(a, RenewToken) for a in stream.tick(3600.0))
    assert StreamEventKind.TOKEN_RENEWED in [n.kind for n in stream.notes]


def test_a_failed_token_renewal_is_retried_before_the_old_token_runs_out() -> None:
    stream = core(random=lambda: 1.0)
    opened(stream)
    stream.token_valid(expires_at=4000.0, at=0.0)
    now = 4000.0 - TIMING.token_lead
    for _ in range(6):  # the backoff grows, but the retry comes no later than halfway to the expiry
        assert any(isinstance(a, RenewToken) for a in stream.tick(now))
        stream.token_renew_failed(now, "minting failed")
        due = min(d for d in (stream._renew_token_at,) if d is not None)
        assert now + TIMING.first_retry <= due <= max(now + TIMING.first_retry, (now + 4000.0) / 2)
        now = due
    assert StreamEventKind.TOKEN_RENEW_FAILED in [n.kind for n in stream.notes]


def test_failed_token_renewals_never_retry_in_a_tight_loop_even_past_the_expiry() -> None:
    stream = core(random=lambda: 1.0)
    opened(stream)
    stream.token_valid(expires_at=10.0, at=0.0)
    stream.token_renew_failed(9.9, "minting failed")
    first = stream._renew_token_at
    assert first is not None
    assert first >= 9.9 + TIMING.first_retry
    stream.token_renew_failed(first, "minting failed")
    assert stream._renew_token_at is not None
    assert stream._renew_token_at >= first + TIMING.first_retry


def test_replacing_the_connections_is_make_before_break_with_no_gap() -> None:
    stream = core()
    old = opened(stream)
    stream.frame(old, envelope(1), 1.0)
    (new,) = connects(stream.replace_connections(2.0, "the new listenToken was refused"))
    stream.connected(new.conn_id, 3.0)
    assert Close(old) in stream.tick(3.0 + TIMING.overlap)
    stream.frame(new.conn_id, envelope(5), 9.0)
    assert times(drain(stream)) == [1, 5]


def test_a_frame_served_while_the_rotations_connection_was_opening_is_not_delivered_again_by_it() -> None:
    """The server registers the new connection before the client has its handshake answer: events
    the old one delivers meanwhile come on the new one too."""
    stream = core()
    old = opened(stream)
    stream.ping(old, DAY - 1)
    (new,) = connects(stream.tick(DAY))
    stream.frame(old, frame(1), DAY + 0.1)  # the new connection is still opening
    stream.connected(new.conn_id, DAY + 0.2)
    stream.frame(new.conn_id, frame(1), DAY + 0.3)
    stream.frame(new.conn_id, frame(2), DAY + 0.4)
    assert times(drain(stream)) == [1, 2]


def test_a_rotation_attempt_that_failed_leaves_no_frames_remembered() -> None:
    stream = core()
    old = opened(stream)
    stream.ping(old, DAY - 1)
    (new,) = connects(stream.tick(DAY))
    stream.frame(old, frame(1), DAY + 0.1)
    stream.closed(new.conn_id, DAY + 0.2, "refused")
    stream.frame(old, frame(1), DAY + 0.3)  # the same text again on the one connection: a new event
    assert times(drain(stream)) == [1, 1]


def test_the_rotations_new_connection_lost_in_the_overlap_leaves_the_old_one_serving_and_retries_later() -> (
    None
):
    stream = core()
    old, new = rotated(stream)
    stream.closed(new, DAY + 2, "closed: code 1006")  # lost before the old one was retired
    actions = stream.tick(DAY + 1 + TIMING.overlap)
    assert Close(old) not in actions  # the old one serves on
    assert len(connects(actions)) == 1  # the rotation, tried again after its backoff
    stream.frame(old, frame(1), DAY + 10)
    assert times(drain(stream)) == [1]


def test_events_a_lost_connection_delivered_are_not_delivered_again_by_the_one_still_opening() -> None:
    """The old connection delivers e1 while the rotation's is still subscribing, then dies; the new
    one, once open, sends e1 too (the server registered it first): e1 once, then the gap."""
    stream = core()
    old = opened(stream)
    stream.ping(old, DAY - 1)
    (new,) = connects(stream.tick(DAY))
    stream.frame(old, frame(1), DAY + 0.1)
    stream.closed(old, DAY + 0.2, "closed: code 1006")
    stream.connected(new.conn_id, DAY + 0.3)
    stream.frame(new.conn_id, frame(1), DAY + 0.4)
    stream.frame(new.conn_id, frame(2), DAY + 0.5)
    assert times(drain(stream)) == [1, ("gap", "disconnected"), 2]


def test_a_token_shorter_than_the_lead_is_renewed_at_half_its_life_not_at_once() -> None:
    stream = core()
    opened(stream)
    stream.token_valid(expires_at=600.0, at=0.0)  # ten minutes, under the 30-minute lead
    assert not any(isinstance(a, RenewToken) for a in stream.tick(299.0))
    assert any(isinstance(a, RenewToken) for a in stream.tick(300.0))


def test_a_failed_attempt_the_server_said_to_retry_later_waits_at_least_that_long() -> None:
    stream = core(random=lambda: 0.0)  # a backoff of nothing: only the server's wait counts
    (connect,) = stream.start(KEY, 0.0)
    assert stream.closed(connect.conn_id, 1.0, "429", retry_after=90.0) == []
    assert stream.tick(90.9) == []
    assert len(connects(stream.tick(91.0))) == 1


# -- the WebSocket API: one connection, one subscription ---------------------------------------


def subscribed(stream: StreamCore, subscription: int = 3) -> int:
    """Start a WebSocket API stream whose first connection is subscribed as `subscription`; its id."""
    (connect,) = stream.start(KEY, 0.0)
    assert isinstance(connect, Connect)
    stream.connected(connect.conn_id, 0.0, subscription_id=subscription)
    return connect.conn_id


def test_an_event_of_another_subscription_than_the_connections_is_not_delivered() -> None:
    stream = core()
    conn = subscribed(stream, 3)
    assert stream.frame(conn, envelope(1, subscription=4), 1.0) == []
    stream.frame(conn, envelope(2, subscription=3), 2.0)
    assert times(drain(stream)) == [2]


@pytest.mark.parametrize("other", ["30", '"3"', "true", "null", "[3]"])
def test_a_subscription_id_that_only_looks_like_the_connections_is_another(other: str) -> None:
    stream = core()
    conn = subscribed(stream, 3)
    stream.frame(conn, f'{{"subscriptionId": {other}, "event": {{"e": "executionReport", "E": 1}}}}', 1.0)
    assert drain(stream) == []


def test_the_connections_own_events_are_delivered_however_their_json_is_spaced() -> None:
    stream = core()
    conn = subscribed(stream, 3)
    stream.frame(conn, '{ "subscriptionId" : 3 , "event": {"e": "executionReport", "E": 1}}', 1.0)
    stream.frame(conn, '{"event": {"e": "executionReport", "E": 2}, "subscriptionId": 3}', 2.0)
    stream.frame(conn, '{"event": {"e": "serverShutdown", "E": 3}}', 3.0)  # a connection event: no id
    assert times(drain(stream)) == [1, 2, 3]


def test_events_of_another_subscription_are_counted_and_noted_on_the_first_second_fourth_and_so_on() -> None:
    stream = core()
    conn = subscribed(stream, 3)
    stream.notes.clear()
    for n in range(1, 6):
        stream.frame(conn, envelope(n, subscription=7), float(n))
    assert [(note.kind, note.at) for note in stream.notes] == [
        (StreamEventKind.OTHER_SUBSCRIPTION, 1.0),
        (StreamEventKind.OTHER_SUBSCRIPTION, 2.0),
        (StreamEventKind.OTHER_SUBSCRIPTION, 4.0),
    ]
    assert stream.notes[-1].detail == (
        "dropped an event of subscriptionId 7, not this connection's 3 (4 dropped so far)"
    )


def test_a_renewal_that_answered_another_subscription_id_moves_the_connection_to_it() -> None:
    stream = core()
    conn = subscribed(stream, 3)
    stream.subscribed(conn, 5)
    stream.frame(conn, envelope(1, subscription=3), 1.0)
    stream.frame(conn, envelope(2, subscription=5), 2.0)
    assert times(drain(stream)) == [2]


def test_a_connection_without_a_subscription_delivers_every_envelope() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, envelope(1, subscription=4), 1.0)
    assert times(drain(stream)) == [1]


# -- a failure no retry mends ----------------------------------------------------------------------


def test_a_failure_leaves_the_buffered_events_then_the_loss_in_progress_as_a_gap() -> None:
    stream = core()
    conn = opened(stream)
    stream.frame(conn, frame(1), 1.0)
    stream.frame(conn, frame(2), 2.0)
    (attempt,) = connects(stream.closed(conn, 200.0))
    assert stream.failed(201.0) == [Close(attempt.conn_id)]
    items = drain(stream)
    assert times(items) == [1, 2, ("gap", "disconnected")]
    assert items[2] == StreamGap("disconnected", 200.0, 201.0, last_event_time=2)


def test_a_failure_ends_the_overflow_in_progress_with_its_gap() -> None:
    stream = core(maxsize=1)
    conn = opened(stream)
    stream.frame(conn, frame(1), 1.0)
    stream.frame(conn, frame(2), 2.0)
    assert stream.failed(3.0) == [Close(conn)]
    items = drain(stream)
    assert times(items) == [1, ("gap", "overflow")]
    assert items[1] == StreamGap("overflow", 2.0, 3.0, last_event_time=1, dropped=1)


def test_after_a_failure_nothing_is_scheduled_and_no_frame_is_taken() -> None:
    stream = core()
    conn = opened(stream)
    stream.failed(1.0)
    stream.frame(conn, frame(1), 2.0)
    assert stream.next_deadline() == math.inf
    assert stream.pop(3.0) is None


def test_under_a_sustained_flood_the_consumer_gets_runs_of_events_between_single_gaps() -> None:
    """Three events arrive for each one the consumer takes: it used to get a gap for every slot it
    freed, and after the first buffer's worth nothing but gaps."""
    stream = core(maxsize=10)
    conn = opened(stream)
    sent, items = 0, []
    for step in range(200):
        for _ in range(3):
            sent += 1
            stream.frame(conn, frame(sent), float(step))
        items.append(stream.pop(float(step)))
    gaps = [isinstance(item, StreamGap) for item in items]
    assert not any(a and b for a, b in itertools.pairwise(gaps))
    assert gaps.count(False) >= 4 * gaps.count(True)
