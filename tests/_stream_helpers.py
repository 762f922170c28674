"""What the stream tests share: shortened timings, a sample frame, and how to read a delivery."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from binance_userstream import StreamGap
from binance_userstream.stream._core import StreamTiming
from tests.conftest import ROOT

#: Binance's rules, shrunk: a 0.2 s overlap, quick retries; a stall only after 10 s of silence.
FAST = StreamTiming(
    ping_interval=10, stall_grace=0.0, overlap=0.2, first_retry=0.05, max_retry=0.2, rotate_after=3600
)
#: Pings due every 0.4 s: silence for 0.6 s is a stall.
PINGS = StreamTiming(
    ping_interval=0.4, stall_grace=0.2, overlap=0.2, first_retry=0.05, max_retry=0.2, rotate_after=3600
)
SAMPLE = (ROOT / "tests/data/events/usdm/ORDER_TRADE_UPDATE.json").read_text()


def event(n: int) -> str:
    """A frame of an event type the spec does not know, numbered by its event time."""
    return json.dumps({"e": "TEST_EVENT", "E": n})


def times(items: list[Any]) -> list[Any]:
    """Each item's event time, or ("gap", reason) for a StreamGap."""
    return [("gap", i.reason) if isinstance(i, StreamGap) else i.to_dict()["E"] for i in items]


async def take(stream: Any, n: int, timeout: float = 10.0) -> list[Any]:
    """The next `n` items of an async stream, within `timeout` real seconds."""
    items: list[Any] = []
    async with asyncio.timeout(timeout):
        async for item in stream:
            items.append(item)
            if len(items) == n:
                break
    return items


class Seen:
    """An `on_event` callback that keeps every note and sets `connected` once a connection is open
    (a `threading.Event` for a sync stream, an `asyncio.Event` for an async one): frames sent after
    that are handed to the core as they arrive, not held for the open connection."""

    def __init__(self, connected: threading.Event | asyncio.Event) -> None:
        self.notes: list[Any] = []
        self.connected = connected

    def __call__(self, note: Any) -> None:
        self.notes.append(note)
        if note.kind.value == "connected":
            self.connected.set()

    def kinds(self) -> list[str]:
        return [note.kind.value for note in self.notes]
