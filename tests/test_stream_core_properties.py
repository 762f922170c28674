"""Properties of the stream's sans-I/O core over generated inputs (hypothesis): frame handling never
raises, whatever the text; a slow consumer loses nothing outside a gap, never sees two overflow
gaps in a row, and the stream never holds more than its bounds."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_userstream import StreamGap
from binance_userstream.stream._core import Connect, StreamCore, StreamTiming

KEY = "A" * 60
#: The keys the core reads from a payload or its envelope, so that generated objects carry them often.
KEYS = st.sampled_from(["e", "E", "listenKey", "subscriptionId", "event", "stream", "data"]) | st.text(
    max_size=3
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["serverShutdown", "listenKeyExpired", "eventStreamTerminated", KEY, "²", "9" * 30])
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=15,
)

#: Event objects: the keys the core reads, with any value, and some other keys.
EVENTS = st.fixed_dictionaries({}, optional={"e": SCALARS, "E": SCALARS, "listenKey": SCALARS, "x": JSON})
#: What a frame may be: any JSON value, an event object, or one in either envelope.
FRAMES = (
    JSON
    | EVENTS
    | st.builds(lambda sid, event: {"subscriptionId": sid, "event": event}, SCALARS, EVENTS)
    | st.builds(lambda name, event: {"stream": name, "data": event}, SCALARS, EVENTS)
)


def opened_core() -> tuple[StreamCore, int]:
    stream = StreamCore(
        lambda key: f"wss://stream.test/ws/{key}", StreamTiming(ping_interval=180.0), random=lambda: 1.0
    )
    (connect,) = stream.start(KEY, 0.0)
    assert isinstance(connect, Connect)
    stream.connected(connect.conn_id, 0.0)
    return stream, connect.conn_id


@settings(max_examples=500, deadline=None)
@given(value=FRAMES, ensure_ascii=st.booleans())
def test_any_json_frame_is_delivered_and_never_raises(value: Any, ensure_ascii: bool) -> None:
    stream, conn = opened_core()
    stream.frame(conn, json.dumps(value, ensure_ascii=ensure_ascii), 1.0)
    assert len(stream) == 1


#: JSON-like text: JSON's tokens and the core's keys in any order, mostly not JSON at all.
TOKENS = st.sampled_from(
    ['{"E":', "{", "}", "[", "]", ":", ",", " ", '"e"', '"E"', '"event"', '"²"', '"1"', "1", "-", "null"]
)
#: Texts: token soup, frames cut short at any point (and whole), and any text at all.
TEXTS = (
    st.lists(TOKENS, max_size=20).map("".join)
    | st.builds(
        lambda value, cut: json.dumps(value)[:cut],
        FRAMES,
        st.none() | st.integers(min_value=0, max_value=120),
    )
    | st.text()
)


@settings(max_examples=500, deadline=None)
@given(text=TEXTS)
def test_any_text_frame_is_delivered_and_never_raises(text: str) -> None:
    stream, conn = opened_core()
    stream.frame(conn, text, 1.0)
    assert len(stream) == 1


# -- a slow consumer: the bounds, the low-water mark, and one gap per hole ---------------------------


def sized(n: int, cost: int) -> str:
    """Event `n`'s frame, padded to `cost` characters (what the buffer counts)."""
    text = json.dumps({"e": "TEST_EVENT", "E": n, "pad": ""}, separators=(",", ":"))
    return text[:-2] + "x" * (cost - len(text)) + '"}'


#: What happens next: a frame of a size, or the consumer takes (one item, or a batch of up to k).
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("frame"), st.integers(min_value=40, max_value=400)),
        st.tuples(st.just("take"), st.integers(min_value=1, max_value=8)),
    ),
    max_size=120,
)


@settings(max_examples=1000, deadline=None)
@given(
    steps=STEPS,
    maxsize=st.integers(min_value=1, max_value=6),
    max_bytes=st.integers(min_value=400, max_value=1000),
    batches=st.booleans(),
)
def test_a_slow_consumer_loses_nothing_outside_a_gap_and_never_gets_two_gaps_in_a_row(
    steps: list[tuple[str, int]], maxsize: int, max_bytes: int, batches: bool
) -> None:
    """Whatever the sizes and the pace, as the async stream (pop) or the sync one (batches): the
    stream never holds more than its bounds, batches included; each event is delivered in order or
    counted by the overflow gap where it is missing; no two gaps are adjacent."""
    stream = StreamCore(
        lambda key: key,
        StreamTiming(ping_interval=180.0),
        random=lambda: 1.0,
        maxsize=maxsize,
        max_bytes=max_bytes,
    )
    (connect,) = stream.start(KEY, 0.0)
    assert isinstance(connect, Connect)
    stream.connected(connect.conn_id, 0.0)
    cost: dict[int, int] = {}
    delivered: list[Any] = []
    batch: list[Any] = []  # the sync consumer's last batch, counted until its next take
    for at, (step, size) in enumerate(steps, start=1):
        if step == "frame":
            cost[len(cost) + 1] = size
            stream.frame(connect.conn_id, sized(len(cost), size), float(at))
        elif batches:
            stream.batch_done(float(at))
            batch = stream.pop_batch(size, float(at))
            delivered += batch
        else:
            delivered += [item for item in [stream.pop(float(at))] if item is not None]
        held = [
            item.event_time
            for item in [*(i for i, _ in stream._buffer), *batch]
            if not isinstance(item, StreamGap)
        ]
        assert len(held) <= maxsize
        assert sum(cost[n] for n in held) <= max_bytes
    stream.batch_done(float(len(steps) + 1))
    while (item := stream.pop(float(len(steps) + 1))) is not None:
        delivered.append(item)

    expected, dropped = 1, 0
    for before, item in zip([None, *delivered], delivered, strict=False):
        if isinstance(item, StreamGap):
            assert not isinstance(before, StreamGap)
            assert item.reason == "overflow"
            assert item.dropped > 0
            dropped += item.dropped
        else:
            assert item.event_time == expected + dropped  # every event before it delivered or counted
            expected += 1
    assert expected - 1 + dropped == len(cost)
