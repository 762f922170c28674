"""What one WebSocket connection may hold is bounded, whatever the server does.

A server that pings and never reads makes the client's pongs pile up unsent (RFC 6455 §5.5.2: a
ping is answered with a pong "as soon as practical"); frames that come before the connection is
counted open are held until it is, up to a bound. Past each bound the connection is dropped, and
the stream reports it (a note with the reason, a gap) and reconnects after its backoff. Answers are
read as they come (nothing queues them), and events of no subscription the connection holds are
dropped at once, counted and noted: neither is held.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from binance_userstream import SHARED_GATE, AsyncUserDataStream, FleetLimits, StreamGap
from binance_userstream._markets import MARKETS
from binance_userstream.fleet._core import FleetCore
from binance_userstream.fleet._driver import Driver, _Early
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Fault, Simulator
from binance_userstream.stream import _async as stream_module
from binance_userstream.stream._async import MAX_HELD_CHARS, MAX_HELD_FRAMES, MAX_UNSENT, _Backoff, _Watched
from binance_userstream.stream._core import StreamEvent, StreamEventKind
from tests._scripted_ws import DeafPingServer, ScriptedStreamServer
from tests._stream_helpers import FAST, event, take
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


class Notes:
    """The stream's notes, and a way to wait for the first of a kind."""

    def __init__(self) -> None:
        self.seen: list[StreamEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, note: object) -> None:
        if isinstance(note, StreamEvent):
            self.seen.append(note)
            self._changed.set()

    async def first(self, kind: StreamEventKind, timeout: float = 10.0) -> StreamEvent:
        async with asyncio.timeout(timeout):
            while True:
                for note in self.seen:
                    if note.kind is kind:
                        return note
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def unsent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The client's unsent bytes (its transport's write buffer) after each write of a connection."""
    sizes: list[int] = []
    send_data = _Watched.send_data

    def watched(self: _Watched) -> None:
        send_data(self)
        sizes.append(self.transport.get_write_buffer_size())

    monkeypatch.setattr(_Watched, "send_data", watched)
    return sizes


async def test_a_server_that_pings_and_never_reads_is_dropped_before_the_clients_unsent_bytes_pass_the_cap(
    sim: Simulator, unsent: list[int]
) -> None:
    notes = Notes()
    async with (
        DeafPingServer(flood=32 * MAX_UNSENT, then=event(1)) as deaf,
        AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, stream_url=deaf.url, market="usdm") as uds,
        uds.events(timing=FAST, on_event=notes) as stream,
    ):
        dropped = await notes.first(StreamEventKind.DISCONNECTED)
        (item,) = await take(stream, 1)
    assert "does not read" in (dropped.detail or "")
    assert isinstance(item, StreamGap)
    assert max(unsent) > MAX_UNSENT // 2  # the flood did fill the buffer
    assert max(unsent) <= MAX_UNSENT


def spot_event(n: int, pad: int = 0) -> str:
    """An event frame of the WebSocket API (`{"subscriptionId": .., "event": ..}`), padded to size."""
    return json.dumps({"subscriptionId": 0, "event": {"e": "TEST_EVENT", "E": n, "pad": "x" * pad}})


async def test_events_of_no_subscription_flooding_an_open_connection_are_dropped_noted_and_held_nowhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server reads the subscription, never answers it, and floods events: each is dropped as
    another subscription's (noted), none is held, and the subscription is given up after its
    timeout and tried again."""
    monkeypatch.setattr(stream_module, "OPEN_TIMEOUT", 0.3)
    notes = Notes()
    async with (
        ScriptedStreamServer() as ws,
        AsyncUserDataStream(
            API_KEY, "http://127.0.0.1:9", stream_url=ws.url, market="spot", api_secret=SECRET
        ) as uds,
        uds.events(timing=FAST, on_event=notes) as stream,
    ):
        await ws.wait(1)
        await ws.open[0].recv()  # the subscription: the client counts the connection open
        for n in range(MAX_HELD_FRAMES + 1):
            await ws.send(spot_event(n))
        dropped = await notes.first(StreamEventKind.OTHER_SUBSCRIPTION)
        given_up = await notes.first(StreamEventKind.RECONNECTING)
        assert stream._core.pop(0) is None  # nothing was delivered
    assert "subscriptionId 0" in (dropped.detail or "")
    assert "not answered within 0.3 s" in (given_up.detail or "")


def driver() -> Driver:
    market = MARKETS["usdm"]
    core = FleetCore(market, limits=FleetLimits(), random=random.random, dedicated=True, quiet=True)
    return Driver(
        market,
        core,
        url="ws://127.0.0.1:9/private/stream",
        stream_base="ws://127.0.0.1:9",
        gate=SHARED_GATE,
        clock=None,
        on_event=None,
        log=stream_module.log,
        tag_accounts=False,
    )


@pytest.mark.parametrize(
    ("frames", "pad"),
    [(MAX_HELD_FRAMES + 1, 0), (MAX_HELD_CHARS // 500_000 + 1, 500_000)],
    ids=["count", "characters"],
)
def test_frames_flooding_a_connection_before_it_is_counted_open_fail_the_attempt_at_once(
    frames: int, pad: int
) -> None:
    held = driver()
    held.early[1] = _Early()
    texts = held._texts_of(1)
    for n in range(frames - 1):
        texts(event(n) + " " * pad)
    with pytest.raises(_Backoff, match="came before the connection opened"):
        texts(event(frames - 1) + " " * pad)
    texts(event(frames))  # the connection is being dropped: what still comes is let go
    assert 1 not in held.early


async def test_a_connection_dropped_for_its_unsent_bytes_while_its_listen_token_was_minted_says_why(
    sim: Simulator,
) -> None:
    """The pongs pile up while the mint is under way (the simulator answers it late): the
    subscription's send then finds the connection dropped, and the note says why, not a bare 1006."""
    notes = Notes()
    sim.inject(Fault.slow(1.0))
    async with (
        DeafPingServer(flood=32 * MAX_UNSENT, then=event(1)) as deaf,
        AsyncUserDataStream(
            TEST_API_KEY, sim.url, stream_url=deaf.url, market="margin", api_secret=TEST_API_SECRET
        ) as uds,
        uds.events(timing=FAST, on_event=notes),
    ):
        failed = await notes.first(StreamEventKind.RECONNECTING)
    assert "does not read" in (failed.detail or "")
