"""Decoding frames: every frame becomes a generated model or an UnknownEvent, never an exception.

Frames as Binance sends them: the raw event on `/private/ws` (USD-M), `{"stream": ..., "data": ...}`
on `/private/stream`, and `{"subscriptionId": ..., "event": ...}` on the spot WebSocket API
(binance-spot-api-docs, user-data-stream.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from binance_userstream_client.models import (
    EVENT_TYPES,
    ListenKeyExpired,
    OrderTradeUpdate,
    ServerShutdown,
    UnknownEvent,
)

from binance_userstream._decode import RAW, decode, event_time, parse, unwrap
from tests.conftest import ROOT

SAMPLES = sorted((ROOT / "tests" / "data" / "events").glob("*/*.json"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_documented_sample_frame_decodes_to_its_model_and_back(path: Path) -> None:
    text = path.read_text()
    payload = json.loads(text)
    event = decode(text)
    assert type(event) is EVENT_TYPES[payload["e"]]
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


@pytest.mark.parametrize(
    "text",
    [
        '{"e": "x", "E": 1}',
        ' {"e": "x", "E": 1}',
        '{"e": "x", "E": 1}\n',
        '\t\r\n {"e": "x", "E": 1} \r\n',
        '{"stream": "s", "data": {"e": "x", "E": 1}}',
        '{"e": "x", "E": 1, "e": "y"}',
        '{"e": "x", "E": NaN}',
        '{"e": "x", "E": 123456789012345678901234567890}',
        '"e"',
        "",
        " ",
        '{"e": "x"}\x0b',
    ],
)
def test_a_frame_is_read_as_json_loads_reads_it(text: str) -> None:
    # The fast path (raw_decode) must answer what json.loads answers, whitespace, duplicate keys,
    # NaN and huge numbers included.
    try:
        expected = json.loads(text)
    except ValueError:
        expected = None
    expected = unwrap(expected) if isinstance(expected, dict) else None
    assert repr(parse(text)) == repr(expected)  # repr: NaN is not equal to itself


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
    ("payload", "expected"),
    [({"E": 12}, 12), ({"E": "12"}, 12), ({"E": True}, None), ({"E": "x"}, None), ({}, None), (None, None)],
)
def test_event_time_reads_numbers_and_digit_strings(
    payload: dict[str, object] | None, expected: int | None
) -> None:
    assert event_time(payload) == expected
