"""Properties of the stream's sans-I/O core over generated inputs (hypothesis): frame handling never
raises, whatever the text; a slow consumer loses nothing outside a gap, and never sees two overflow
gaps in a row."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_userstream._stream_core import Connect, StreamCore, StreamTiming

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
