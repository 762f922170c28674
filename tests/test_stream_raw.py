"""Events without models (`RawEvent`, `models=False`): read for their `e` and `E` alone, they say
exactly what the model would (type, time, text, the model itself on demand) and publish exactly
as it does; whatever the frame, reading it alone agrees with the full parse."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from binance_userstream_client.models import EVENT_TYPES
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_userstream import RawEvent
from binance_userstream.sink._subjects import Addresses
from binance_userstream.stream._decode import decode, parse
from binance_userstream.stream._raw import event_text, read
from tests._samples import SAMPLES, load, market_of, sample_id

LISTEN_KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"


def compact(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"))


def frames_of(path: Path) -> list[str]:
    """A sample as Binance sends it: in a WebSocket API envelope, as the event object itself (a
    derivatives stream), and as the file writes it (indented: not the way Binance writes it)."""
    event = compact(load(path))
    return [f'{{"subscriptionId":7,"event":{event}}}', event, path.read_text(encoding="utf-8")]


def full(frame: str, events: Any) -> RawEvent:
    """The RawEvent the full parse makes of a frame."""
    return RawEvent.of(frame, parse(frame), events)


# -- what a RawEvent says ------------------------------------------------------------------------------


def test_a_websocket_api_event_is_read_for_its_type_time_and_text_out_of_its_envelope() -> None:
    event = '{"e":"balanceUpdate","E":1700000000000,"a":"BTC","d":"0.10000000","T":1700000000000}'
    raw = read(f'{{"subscriptionId":12,"event":{event}}}')
    assert raw is not None
    assert (raw.event_type, raw.event_time, raw.text) == ("balanceUpdate", 1700000000000, event)


def test_an_event_time_sent_as_digits_is_read_as_milliseconds_and_an_unusable_one_as_none() -> None:
    assert read('{"e":"ORDER_TRADE_UPDATE","E":"1700000000000"}') == RawEvent(
        "ORDER_TRADE_UPDATE", 1700000000000, '{"e":"ORDER_TRADE_UPDATE","E":"1700000000000"}'
    )
    assert [read(f'{{"e":"x","E":{value}}}').event_time for value in ('"²"', "-5", "1.5", "null")] == [  # type: ignore[union-attr]
        None
    ] * 4


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_a_raw_event_gives_the_model_a_fleet_with_models_gives(path: Path) -> None:
    events = market_of(path).event_types
    for frame in frames_of(path):
        raw = full(frame, events) if (fast := read(frame, events)) is None else fast
        assert raw.model() == decode(frame, events)
        assert raw.to_dict() == load(path)


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_a_raw_event_is_published_exactly_as_its_model_with_the_same_text(path: Path) -> None:
    """Subject, headers (its msg id and event time among them) and payload: what `with_text()`
    gives the sink for an event is the same with models and without."""
    market = market_of(path)
    addresses = Addresses(market.name)
    for frame in frames_of(path):
        text = event_text(frame, parse(frame))
        raw = full(frame, market.event_types) if (fast := read(frame, market.event_types)) is None else fast
        assert raw.text == text
        model = decode(frame, market.event_types)
        assert addresses.envelope("acct-1", raw, raw.text) == addresses.envelope("acct-1", model, text)


def test_an_event_without_its_text_is_published_as_its_model_is() -> None:
    """A sink handed no text serializes the item's `to_dict()`: the parsed JSON, as the model's."""
    frame = '{"e":"balanceUpdate","E":5,"a":"BTC","d":"0.10000000","T":5}'
    raw = read(frame)
    assert raw is not None
    addresses = Addresses("spot")
    assert addresses.envelope("a", raw, None) == addresses.envelope("a", decode(frame), None)


def test_a_frame_that_is_no_json_object_is_a_raw_event_without_type_whose_model_keeps_the_text() -> None:
    raw = full("[1, 2]", {})
    assert (raw.event_type, raw.event_time, raw.text) == (None, None, "[1, 2]")
    assert raw.model() == decode("[1, 2]")
    assert raw.to_dict() == {"raw": "[1, 2]"}


def test_an_envelope_written_otherwise_is_left_to_the_full_parse() -> None:
    frame = json.dumps({"event": {"e": "balanceUpdate", "E": 3}, "subscriptionId": 4}, indent=1)
    assert read(frame) is None
    assert full(frame, {}).text == '{"e":"balanceUpdate","E":3}'


def test_a_raw_events_repr_shows_no_listen_key() -> None:
    raw = read(f'{{"e":"listenKeyExpired","E":1,"listenKey":"{LISTEN_KEY}"}}')
    assert raw is not None
    assert LISTEN_KEY not in repr(raw)
    assert "listenKeyExpired" in repr(raw)


def test_a_frame_longer_than_the_integer_digit_limit_is_left_to_the_full_parse() -> None:
    """json.loads refuses an integer of more digits than Python allows (msgspec's skip does not
    look): such a frame is no JSON to the full parse, so reading it alone must not say otherwise."""
    frame = '{"e":"x","n":' + "9" * (sys.get_int_max_str_digits() + 1) + "}"
    assert parse(frame) is None
    assert read(frame) is None


# -- reading alone agrees with the full parse, whatever the frame --------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(["executionReport", "serverShutdown", "listenKeyExpired", "1700000000000", "²"])
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["e", "E", "event", "subscriptionId", "x", "y"]), children, max_size=4
        )
    ),
    max_leaves=12,
)
EVENTS = st.fixed_dictionaries({}, optional={"e": SCALARS, "E": SCALARS, "x": JSON, "event": JSON})
#: Frames as Binance writes them, and bent: the envelope's id any text, its key another, the event
#: any JSON, a frame cut short or with text after it, spaces where Binance writes none.
FRAMES = st.builds(
    lambda number, key, event, cut, tail: (
        (f'{{"subscriptionId":{number},"{key}":{event}}}' if number is not None else event)[:cut] + tail
    ),
    st.none() | st.sampled_from(["1", "0", "01", "-1", "1.0", "", "²", '"1"', "99999999999999999999999"]),
    st.sampled_from(["event", "event", "event", "evenT", "data"]),
    st.builds(
        lambda value, compact_it: json.dumps(value, separators=(",", ":") if compact_it else None),
        EVENTS | JSON,
        st.booleans(),
    ),
    st.none() | st.integers(min_value=0, max_value=80),
    st.sampled_from(["", " ", "}", ',"event":{}}', ',"e":1}', "x"]),
)


#: An envelope's beginning whose id is a JSON integer, as a connection's own is known to be.
OWN = re.compile(r'\{"subscriptionId":-?(0|[1-9][0-9]*),')


@settings(max_examples=1500, deadline=None)
@given(frame=FRAMES)
def test_reading_a_frame_alone_says_what_the_full_parse_says(frame: str) -> None:
    """Read alone, or past its connection's own envelope: whenever a frame is read at all."""
    own = OWN.match(frame)
    for fast in (read(frame), read(frame, EVENT_TYPES, own.end()) if own else None):
        if fast is not None:
            slow = full(frame, EVENT_TYPES)
            assert fast == slow  # its type, its time, its text
            assert fast.to_dict() == slow.to_dict() == parse(frame)
            assert fast.model() == slow.model() == decode(frame)


# -- a stream without models behaves as one with them ------------------------------------------------

KEY = "K" * 60
EXECUTION_REPORT = compact(load(next(p for p in SAMPLES if p.name == "executionReport.json")))
#: Events as Binance sends them, the ones that change the connections among them, and any frame.
STREAM_FRAMES = (
    st.builds(
        lambda n, kind: compact({"e": kind, "E": n, "a": "BTC", "d": "0.1", "T": n}),
        st.integers(min_value=-1, max_value=2**64),
        st.sampled_from(["balanceUpdate", "balanceUpdate", "ORDER_TRADE_UPDATE", "serverShutdown"]),
    )
    | st.just(EXECUTION_REPORT)
    | st.sampled_from(
        [
            compact({"e": "listenKeyExpired", "E": 9, "listenKey": KEY}),
            compact({"e": "listenKeyExpired", "E": 9, "listenKey": "another"}),
            compact({"e": "eventStreamTerminated", "E": 9}),
        ]
    )
    | FRAMES
)
FRAME_STEP = st.tuples(st.just("frame"), st.integers(min_value=0, max_value=3), STREAM_FRAMES)
STREAM_STEPS = st.lists(
    st.one_of(
        FRAME_STEP,
        FRAME_STEP,
        FRAME_STEP,
        st.tuples(st.just("take"), st.integers(min_value=1, max_value=4), st.none()),
        st.tuples(st.just("take"), st.integers(min_value=1, max_value=4), st.none()),
        st.tuples(st.just("lose"), st.integers(min_value=0, max_value=3), st.none()),
        st.tuples(st.just("tick"), st.integers(min_value=1, max_value=5), st.none()),
    ),
    max_size=60,
)


def transcript(
    steps: list[tuple[str | None, int, str | None]], *, models: bool, maxsize: int, subscriptions: bool
) -> list[object]:
    """Everything a stream's driver and consumer see of `steps`: actions, notes, items (a RawEvent
    as its model) and their texts. `subscriptions`: as on the WebSocket API, each connection's
    events come in its subscription's envelope (now and then in another subscription's)."""
    from binance_userstream.stream._core import Close, Connect, RenewKey, StreamCore, StreamTiming

    core = StreamCore(
        lambda key: f"wss://stream.test/ws/{key}",
        StreamTiming(ping_interval=180.0, overlap=2.0, first_retry=1.0, max_retry=4.0),
        random=lambda: 0.5,
        maxsize=maxsize,
        max_bytes=2_000,
        keep_text=models,
        models=models,
    )
    seen: list[object] = []
    open_ids: list[int] = []
    now = 0.0

    def carry(actions: list[Any]) -> None:
        while actions:
            action = actions.pop(0)
            seen.append(action)
            if isinstance(action, Connect):
                open_ids.append(action.conn_id)
                actions += core.connected(action.conn_id, now, action.conn_id if subscriptions else None)
            elif isinstance(action, Close) and action.conn_id in open_ids:
                open_ids.remove(action.conn_id)
            elif isinstance(action, RenewKey):
                actions += core.key_replaced(f"key-{now}", now)
        seen.extend(core.notes)
        core.notes.clear()

    carry(core.start(KEY, now))
    for step, number, text in [*steps, (None, len(steps) + 1, None)]:  # all taken in the end
        now += 0.5
        if step == "frame" and open_ids and text is not None:
            conn = open_ids[number % len(open_ids)]
            if subscriptions:  # the connection's own subscription, or another's (number 3)
                text = f'{{"subscriptionId":{conn if number != 3 else 99},"event":{text}}}'
            carry(core.frame(conn, text, now))
        elif step == "lose" and open_ids:
            conn = open_ids.pop(number % len(open_ids))
            carry(core.closed(conn, now, "lost"))
        elif step == "tick":
            now += number
            carry(core.tick(now))
        if step == "take" or step is None:
            for _ in range(number):
                item = core.pop(now)
                if item is None:
                    break
                seen.append((item.model() if isinstance(item, RawEvent) else item, core.popped_text))
    return seen


@settings(max_examples=300, deadline=None)
@given(steps=STREAM_STEPS, maxsize=st.integers(min_value=1, max_value=5), subscriptions=st.booleans())
def test_a_stream_without_models_does_all_a_stream_with_them_does(
    steps: list[tuple[str | None, int, str | None]], maxsize: int, subscriptions: bool
) -> None:
    """Rotations, expiries, terminations, losses, overlaps' duplicates, overflows and their gaps
    (with the last event time each gap names): the same, and each event's model and text too."""
    options: dict[str, Any] = {"maxsize": maxsize, "subscriptions": subscriptions}
    assert transcript(steps, models=False, **options) == transcript(steps, models=True, **options)
