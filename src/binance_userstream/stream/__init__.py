"""The event stream: an account's events as typed models, in order, with a StreamGap wherever some were lost.

Every decision (which URL, when to rotate, what is a gap, when to retry) is the sans-I/O core's
(`_core`, with the WebSocket API's subscription in `_wsapi`); `_async` is the thin asyncio driver
that does its I/O, and `_sync` runs that driver on a thread of its own for the blocking client.
"""

from binance_userstream.stream._async import AsyncEventStream
from binance_userstream.stream._core import StreamEvent, StreamEventKind, StreamTiming
from binance_userstream.stream._gap import GapReason, StreamGap
from binance_userstream.stream._raw import RawEvent
from binance_userstream.stream._sync import EventStream

__all__ = [
    "AsyncEventStream",
    "EventStream",
    "GapReason",
    "RawEvent",
    "StreamEvent",
    "StreamEventKind",
    "StreamGap",
    "StreamTiming",
]
