"""`RawEvent`: an event as Binance sent it, read for its type and time alone, its model made on demand.

A consumer that stores events rather than reads them (a durable log) needs neither the full parse
nor the generated model, which together cost about 40% of what an event costs a fleet:
`AsyncFleet(..., models=False)` hands out RawEvents instead. `read` takes an event's `e` and `E`
from a frame written as Binance writes it (the WebSocket API's `{"subscriptionId":N,"event":{...}}`,
or the event object itself, `{"e":...}`) with a msgspec decoder that skips every other field, and
still checks the whole text is JSON; any other frame (an envelope written otherwise, text that is
no JSON object) is for the full parse (`RawEvent.of`). Either way a RawEvent says what the model
would: its `event_type` and `event_time` are what a sink reads of the model, `model()` is that model.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from attrs import field, frozen
from binance_userstream_client.models import EVENT_TYPES, UnknownEvent

from binance_userstream._secrets import server_text
from binance_userstream.stream._decode import (
    MAX_EVENT_TIME,
    RAW,
    Event,
    EventTypes,
    decode_payload,
    loads,
    millis,
)

try:
    from msgspec import Struct as _Struct
    from msgspec.json import Decoder as _Decoder
except ImportError:  # PyPy, or installed with --no-deps: every frame takes the full parse
    _Struct = None  # type: ignore[assignment,misc]
    _Decoder = None  # type: ignore[assignment,misc]


@frozen
class RawEvent:
    """An event not turned into its model (`AsyncFleet(..., models=False)`): its wire name `e`, its
    time `E` and its JSON text; `model()` makes the model the fleet would otherwise have handed out.

    `event_type` is the event's `"e"` (None when it has none, or one that is no string);
    `event_time` its `"E"` in milliseconds when usable (an integer, or the digits USD-M sometimes
    sends), else None: what a sink reads of a model. `text` is the event's JSON as Binance sent it,
    out of its envelope (a frame that is no JSON object: the frame itself), as `with_text()` gives it.
    """

    event_type: str | None
    event_time: int | None
    text: str = field(repr=lambda text: repr(server_text(text)))  # a listenKeyExpired names its key
    _events: EventTypes = field(default=EVENT_TYPES, repr=False, eq=False)
    _payload: dict[str, Any] | None = field(default=None, repr=False, eq=False)

    @classmethod
    def of(cls, frame: str, payload: dict[str, Any] | None, events: EventTypes = EVENT_TYPES) -> RawEvent:
        """The RawEvent of a frame already parsed (`payload`: its event object, None when it is no
        JSON object), for the frames `read` leaves to the full parse."""
        if payload is None:
            return cls(None, None, frame, events)
        kind = payload.get("e")
        text = event_text(frame, payload)
        return cls(kind if type(kind) is str else None, millis(payload.get("E")), text, events, payload)

    def to_dict(self) -> dict[str, Any]:
        """The event's JSON object, parsed (as the model's `to_dict()`, the text of a frame that is no
        JSON object under the key "raw")."""
        payload = self._parsed()
        return {RAW: self.text} if payload is None else dict(payload)

    def model(self) -> Event:
        """The generated model of this event, from the market's table: the item a fleet with models
        would have handed out (an UnknownEvent for what no model takes)."""
        payload = self._parsed()
        if payload is None:
            return UnknownEvent.from_dict({RAW: self.text})
        return decode_payload(payload, self._events)

    def _parsed(self) -> dict[str, Any] | None:
        """The event object: the text is the object itself (no envelope to take off again)."""
        if self._payload is not None:
            return self._payload
        payload = loads(self.text)
        return payload if type(payload) is dict else None


#: An event object's `e` and `E`, read by msgspec, which skips (and checks) every other field.
_read_head: Callable[[str], Any] | None = None
if _Struct is not None:

    class _Head(_Struct):
        e: Any = None
        E: Any = None

    _read_head = _Decoder(_Head).decode

_SUBSCRIPTION = '{"subscriptionId":'
_EVENT = ',"event":'


def read(frame: str, events: EventTypes = EVENT_TYPES, envelope: int = 0) -> RawEvent | None:
    """The RawEvent of a frame Binance writes, reading its `e` and `E` alone; None for any other
    frame (the full parse's: `RawEvent.of`). `envelope`: the length of the frame's beginning
    already known to be `{"subscriptionId":<a JSON integer>,` (its connection's own, `StreamCore`).

    A WebSocket API frame qualifies only as `{"subscriptionId":<digits>,"event":<object>}`, and the
    object must decode whole: then the frame is that JSON and the slice is its event, byte for
    byte (`,"event":` cannot occur inside a JSON string, and a slice from a nested one is no
    single JSON value). A frame longer than Python's limit on an integer's digits is left to the
    full parse too, which refuses such an integer (msgspec skips it)."""
    if envelope:
        if not frame.startswith('"event":', envelope) or not frame.endswith("}"):
            return None
        inner = frame[envelope + 8 : -1]
    elif frame.startswith('{"e":'):
        inner = frame
    elif frame.startswith(_SUBSCRIPTION):
        start = frame.find(_EVENT, 18)
        number = frame[18:start]
        if (
            start < 0
            or not frame.endswith("}")
            or not (number.isascii() and number.isdigit())
            or (number[0] == "0" and len(number) > 1)
        ):
            return None
        inner = frame[start + 9 : -1]
    else:
        return None
    if len(frame) > 640 and 0 < sys.get_int_max_str_digits() < len(frame):
        return None
    if _read_head is None:  # pragma: no cover
        return None
    try:
        head = _read_head(inner)
    except (ValueError, RecursionError):  # not JSON, not an object: the full parse says what it is
        return None
    kind, stamp = head.e, head.E
    if type(stamp) is not int or not 0 < stamp < MAX_EVENT_TIME:  # a string (USD-M), junk
        stamp = millis(stamp)
    return _made(kind if type(kind) is str else None, stamp, inner, events)


_new = object.__new__
_set_type, _set_time, _set_text, _set_events, _set_payload = (
    RawEvent.__dict__[name].__set__  # the slots' own setters: what attrs' frozen __init__ calls, less a layer
    for name in ("event_type", "event_time", "text", "_events", "_payload")
)


def _made(kind: str | None, stamp: int | None, text: str, events: EventTypes) -> RawEvent:
    """`RawEvent(kind, stamp, text, events)`, made in two thirds of the time (an event's hot path)."""
    raw: RawEvent = _new(RawEvent)
    _set_type(raw, kind)
    _set_time(raw, stamp)
    _set_text(raw, text)
    _set_events(raw, events)
    _set_payload(raw, None)
    return raw


def event_text(text: str, payload: dict[str, Any] | None) -> str:
    """The event's JSON in a frame's `text`, out of its envelope: sliced as the server wrote it
    (a WebSocket API `{"subscriptionId":N,"event":{...}}`, a combined stream's `{"stream":..,
    "data":{...}}`), re-encoded compactly from `payload` when written otherwise. A frame that is
    not a JSON object stays as it is."""
    if payload is None:
        return text
    if text.startswith('{"subscriptionId":'):
        start = text.find(',"event":')
        if start > 0 and text.endswith("}"):
            return text[start + 9 : -1]
    elif text.startswith('{"stream":"'):
        start = text.find('","data":')
        if start > 0 and text.endswith("}"):
            return text[start + 10 : -1]
    if "".join(text[:40].split()).startswith(('{"subscriptionId"', '{"stream"', '{"event"')):
        return json.dumps(payload, separators=(",", ":"))  # an envelope written otherwise
    return text  # the event object itself
