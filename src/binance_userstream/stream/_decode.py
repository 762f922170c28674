"""Frame text to a generated event model: exact, forgiving, and never an exception.

A frame is one JSON text. Envelopes are unwrapped: stream mode's `{"stream": ..., "data": {...}}`
and the spot WebSocket API's `{"subscriptionId": ..., "event": {...}}`. The payload's `"e"` picks
the model from a table of wire names: a market's own (`Market.event_types`, what a stream decodes
with: one wire name can have another shape on another market) or, by default, the generated shared
`EVENT_TYPES`; numbers-as-strings (prices, quantities) stay strings, so decimals are exact.
Whatever cannot be decoded is still delivered, as the generated `UnknownEvent`: an unknown `"e"`
(or one the market does not send) or a payload its model refuses keeps its raw payload; a frame
that is not a JSON object keeps its text under the key `"raw"` (`event["raw"]`).

JSON is parsed by msgspec (a dependency), in half the time of the standard library's json, which
parses it where msgspec is missing (PyPy, an install with --no-deps). Either way the result is
json.loads's: msgspec keeps every integer exact (orjson turns one beyond 64 bits into a float,
which is why it is not the choice), and what it refuses (NaN, a lone surrogate, 1e400, which
json accepts) goes to json.loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from binance_userstream_client.models import EVENT_TYPES, UnknownEvent, UserDataEvent

try:
    from msgspec.json import Decoder as _MsgspecDecoder
except ImportError:  # PyPy, or installed with --no-deps: the standard library parses
    _MsgspecDecoder = None  # type: ignore[assignment,misc]

Event = UserDataEvent | UnknownEvent
"""What the stream yields for a frame: a generated event model, or an UnknownEvent."""

#: The key under which an UnknownEvent keeps a frame that is not a JSON object.
RAW = "raw"


def unwrap(payload: dict[str, Any]) -> dict[str, Any]:
    """The event inside a stream-mode or WebSocket API envelope; any other payload as it is."""
    if "e" not in payload:
        inner = payload.get("event")
        if "subscriptionId" in payload:  # the WebSocket API's, every spot event: first, without a set
            return inner if isinstance(inner, dict) else payload
        data = payload.get("data")
        if len(payload) == 2 and "stream" in payload and isinstance(data, dict):
            return data  # exactly {"stream", "data"}
        if len(payload) == 1 and isinstance(inner, dict):  # connection events carry no id
            return inner
    return payload


#: msgspec's parser (None where msgspec is not installed).
FAST_PARSER: Callable[[str], Any] | None = None if _MsgspecDecoder is None else _MsgspecDecoder().decode

#: `raw_decode` is json.loads without its layers: loads() and decode() check the type, look for
#: a BOM and match a regular expression for whitespace at both ends, about 0.9 µs of an event's
#: 4 (a frame from Binance has none). A frame it does not take whole goes to json.loads, so the
#: answer is always json.loads's.
_raw_decode = json.JSONDecoder().raw_decode


def parse(text: str, fast: Callable[[str], Any] | None = FAST_PARSER) -> dict[str, Any] | None:
    """The event object in a frame, unwrapped; None if the frame is not a JSON object. `fast`: a
    parser to try first (msgspec's, when installed); what it refuses, json.loads reads."""
    try:
        payload = fast(text) if fast is not None else loads(text, None)  # the common case: one call
    except (ValueError, RecursionError):
        payload = loads(text, None)
    if type(payload) is dict and "e" in payload:  # the common case, without a call
        return payload
    return unwrap(payload) if isinstance(payload, dict) else None


#: What `loads` returns for a text that is no JSON at all.
NOT_JSON: Any = object()


def loads(text: str, fast: Callable[[str], Any] | None = FAST_PARSER) -> Any:
    """The JSON value of `text` as json.loads reads it (`fast` tried first), or NOT_JSON."""
    try:
        if fast is not None:
            return fast(text)
        payload, end = _raw_decode(text)
        return payload if end == len(text) else json.loads(text)
    except (ValueError, RecursionError):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return NOT_JSON


EventTypes = Mapping[str, type[UserDataEvent]]
"""Wire names (`"e"`) to the models their payloads decode to: EVENT_TYPES, or a market's table."""


def decode_payload(payload: dict[str, Any], events: EventTypes = EVENT_TYPES) -> Event:
    """The model `events` names for an event object; UnknownEvent when it names none or its model
    refuses the payload."""
    model = events.get(payload["e"]) if isinstance(payload.get("e"), str) else None
    if model is not None:
        try:
            return model.from_dict(payload)
        except Exception:  # whatever a model refuses a payload with, the event is still delivered
            return UnknownEvent.from_dict(payload)
    return UnknownEvent.from_dict(payload)


def decode(text: str, events: EventTypes = EVENT_TYPES) -> Event:
    """The model for one frame's text, picked from `events` (see the module's docstring); never raises."""
    payload = parse(text)
    if payload is None:
        return UnknownEvent.from_dict({RAW: text})
    return decode_payload(payload, events)


#: Event times are milliseconds in a signed 64-bit integer (Binance's servers are Java): anything
#: outside (0, 2**63) is no event time, and bounds what a gap's description prints.
MAX_EVENT_TIME = 2**63


def event_time(payload: dict[str, Any] | None) -> int | None:
    """The payload's event time `E` in milliseconds, or None (see `millis`)."""
    return None if payload is None else millis(payload.get("E"))


def millis(value: object) -> int | None:
    """An event time `E` in milliseconds (USD-M sometimes sends it as a string), or None when it is
    missing or unusable: not an integer nor ASCII digits ("²" is a digit to str.isdigit and not to
    int), or out of range (5,000 nines, which int() refuses past its digit limit)."""
    if type(value) is str and 0 < len(value) < 20 and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is int and 0 < value < MAX_EVENT_TIME:
        return value
    return None
