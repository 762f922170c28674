"""Decoding frames: every frame becomes a generated model or an UnknownEvent, never an exception.

Frames as Binance sends them: the raw event on `/private/ws` (USD-M), `{"stream": ..., "data": ...}`
on `/private/stream`, and `{"subscriptionId": ..., "event": ...}` on the spot WebSocket API
(binance-spot-api-docs, user-data-stream.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from binance_userstream_client.models import (
    ListenKeyExpired,
    OrderTradeUpdate,
    ServerShutdown,
    UnknownEvent,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_userstream.stream._decode import FAST_PARSER, RAW, decode, event_time, parse, unwrap
from tests._samples import SAMPLES, market_of, model_of, sample_id
from tests.conftest import ROOT


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_each_documented_sample_frame_decodes_to_its_markets_model_and_back(path: Path) -> None:
    text = path.read_text()
    event = decode(text, market_of(path).event_types)
    assert type(event) is model_of(path)
    assert event.to_dict() == json.loads(text)


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_each_documented_sample_frame_in_a_stream_envelope_decodes_to_its_markets_model(path: Path) -> None:
    payload = json.loads(path.read_text())
    event = decode(json.dumps({"stream": "somekey", "data": payload}), market_of(path).event_types)
    assert type(event) is model_of(path)
    assert event.to_dict() == payload


def test_a_stream_mode_frame_is_unwrapped() -> None:
    payload = json.loads((ROOT / "tests/data/events/usdm/ORDER_TRADE_UPDATE.json").read_text())
    event = decode(json.dumps({"stream": "somekey", "data": payload}))
    assert isinstance(event, OrderTradeUpdate)
    assert event.to_dict() == payload


def test_a_websocket_api_frame_is_unwrapped() -> None:
    payload = {"e": "serverShutdown", "E": 1}
    assert isinstance(decode(json.dumps({"subscriptionId": 0, "event": payload})), ServerShutdown)
    assert isinstance(decode(json.dumps({"event": payload})), ServerShutdown)


def test_an_unknown_event_type_keeps_its_raw_payload() -> None:
    payload = {"e": "NEW_THING", "E": 5, "x": {"y": "1.10"}}
    event = decode(json.dumps(payload))
    assert isinstance(event, UnknownEvent)
    assert event.to_dict() == payload


def test_a_payload_its_model_refuses_becomes_an_unknown_event_with_the_payload() -> None:
    payload = {"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 2, "o": "not an object"}
    event = decode(json.dumps(payload))
    assert isinstance(event, UnknownEvent)
    assert event.to_dict() == payload


def test_a_payload_without_a_type_is_an_unknown_event() -> None:
    assert decode('{"result": null, "id": 1}').to_dict() == {"result": None, "id": 1}


@pytest.mark.parametrize(
    "text",
    ["not json", "[1, 2]", "42", '{"e": ', "\x00", '{"e": "x"} {"e": "y"}', '{"e": "x"} ]', "\ufeff{}"],
)
def test_a_frame_that_is_not_a_json_object_keeps_its_text(text: str) -> None:
    event = decode(text)
    assert isinstance(event, UnknownEvent)
    assert event[RAW] == text


#: The parsers a frame may meet: msgspec's (a dependency) and the
#: standard library's (raw_decode), each checked against json.loads.
PARSERS = {"msgspec": FAST_PARSER, "stdlib": None}

#: Texts where a parser could differ from json.loads: whitespace, duplicate keys, what json takes
#: and msgspec refuses (NaN, a lone surrogate, 1e400), integers beyond 64 bits (orjson's trap).
TRICKY = [
    '{"e": "x", "E": 1}',
    ' {"e": "x", "E": 1}',
    '{"e": "x", "E": 1}\n',
    '\t\r\n {"e": "x", "E": 1} \r\n',
    '{"stream": "s", "data": {"e": "x", "E": 1}}',
    '{"e": "x", "E": 1, "e": "y"}',
    '{"a": 1, "b": 2, "a": 3}',
    '{"e": "x", "E": NaN}',
    '{"e": "x", "E": -Infinity}',
    '{"e": "x", "E": 1e400}',
    '{"e": "\\ud800"}',
    '{"e": "x", "E": 123456789012345678901234567890}',
    '{"e": "x", "E": 18446744073709551616}',
    '{"e": "x", "E": -9223372036854775809}',
    '{"e": "x", "E": -0.0, "p": 2.2250738585072011e-308}',
    '{"e": "\\u0000\\ud83d\\ude00"}',
    '"e"',
    "[]",
    "",
    " ",
    '{"e": "x"}\x0b',
    '{"e": "x"} {"e": "y"}',
    "\ufeff{}",
    '{"e": "\x01"}',
    "[" * 5000 + "]" * 5000,
    '{"a":' * 5000 + "1" + "}" * 5000,
]


def expected_parse(text: str) -> dict[str, Any] | None:
    """What parse must answer: json.loads's object, unwrapped, or None."""
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return unwrap(payload) if isinstance(payload, dict) else None


def test_msgspec_is_installed_for_the_tests() -> None:
    assert FAST_PARSER is not None  # else the "msgspec" cases below would test the stdlib twice


@pytest.mark.parametrize("parser", PARSERS.values(), ids=PARSERS.keys())
@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_a_frame_is_read_as_json_loads_reads_it(text: str, parser: Any) -> None:
    assert repr(parse(text, parser)) == repr(expected_parse(text))  # repr: NaN is not equal to itself


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_json, ensure_ascii=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_any_json_text_parses_as_json_loads_parses_it(
    value: Any, ensure_ascii: bool, indent: int | None
) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    for parser in PARSERS.values():
        assert repr(parse(text, parser)) == repr(expected_parse(text))


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='{}[]":,0123456789.eE-+ \ntrufalsnN\\u', max_size=40))
def test_any_text_parses_as_json_loads_parses_it(text: str) -> None:
    for parser in PARSERS.values():
        assert repr(parse(text, parser)) == repr(expected_parse(text))


def test_without_msgspec_the_standard_library_parses() -> None:
    code = (
        "import sys; sys.modules['msgspec'] = None\n"
        "from binance_userstream.stream._decode import FAST_PARSER, decode\n"
        "assert FAST_PARSER is None\n"
        'print(type(decode(\'{"e": "listenKeyExpired", "E": 1, "listenKey": "k"}\')).__name__)'
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ListenKeyExpired"


def test_decimals_stay_exact_strings() -> None:
    payload = json.loads((ROOT / "tests/data/events/usdm/ORDER_TRADE_UPDATE.json").read_text())
    payload["o"]["p"] = "0.10000000000000000001"
    event = decode(json.dumps(payload))
    assert isinstance(event, OrderTradeUpdate)
    assert event.to_dict()["o"]["p"] == "0.10000000000000000001"


def test_listen_key_expired_with_a_string_time_decodes() -> None:
    event = decode('{"e": "listenKeyExpired", "E": "1736996475556", "listenKey": "abc"}')
    assert isinstance(event, ListenKeyExpired)


@pytest.mark.parametrize(
    "value", ["²", "9" * 5000, "\uff11\uff12", "-5", -5, 0, 2**63, 10**400, 1.5, float("nan"), [1], {"E": 1}]
)
def test_an_event_time_that_is_no_usable_number_of_milliseconds_is_none(value: object) -> None:
    """A "²" is a digit to str.isdigit and not to int(); 5,000 nines pass the test and exceed int()'s
    digit limit: both used to raise ValueError inside the stream's frame handling."""
    assert event_time({"E": value}) is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [({"E": 12}, 12), ({"E": "12"}, 12), ({"E": True}, None), ({"E": "x"}, None), ({}, None), (None, None)],
)
def test_event_time_reads_numbers_and_digit_strings(
    payload: dict[str, object] | None, expected: int | None
) -> None:
    assert event_time(payload) == expected


def envelope_spec(payload: dict[str, Any]) -> dict[str, Any]:
    """What `unwrap` takes off: a payload without an `e` that is exactly `{"stream", "data"}` (an
    object), has a `subscriptionId` and an object `event`, or is exactly `{"event"}` (an object)."""
    if "e" not in payload:
        if set(payload) == {"stream", "data"} and isinstance(payload["data"], dict):
            return payload["data"]
        if "subscriptionId" in payload and isinstance(payload.get("event"), dict):
            return payload["event"]
        if set(payload) == {"event"} and isinstance(payload["event"], dict):
            return payload["event"]
    return payload


@settings(max_examples=500, deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(["e", "stream", "data", "event", "subscriptionId", "x"]),
        st.none() | st.integers() | st.dictionaries(st.just("e"), st.integers(), max_size=1),
        max_size=4,
    )
)
def test_only_an_envelope_is_taken_off(payload: dict[str, Any]) -> None:
    assert unwrap(payload) is envelope_spec(payload)
