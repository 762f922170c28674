"""What one WebSocket connection may hold is bounded, whatever the server does.

A server that pings and never reads makes the client's pongs pile up unsent (RFC 6455 §5.5.2: a
ping is answered with a pong "as soon as practical"); events or answers that flood a connection
before its task reads them pile up in its inbox. Past each bound the connection is dropped, and
the stream reports it (a note with the reason, a gap) and reconnects after its backoff.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from binance_userstream import AsyncUserDataStream, StreamGap
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Fault, Simulator
from binance_userstream.stream._async import (
    MAX_HELD_CHARS,
    MAX_HELD_FRAMES,
    MAX_UNSENT,
    _Backoff,
    _Inbox,
    _Watched,
)
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


@pytest.mark.parametrize(
    ("frames", "pad"),
    [(MAX_HELD_FRAMES + 1, 0), (MAX_HELD_CHARS // 500_000 + 1, 500_000)],
    ids=["count", "characters"],
)
async def test_events_flooding_a_connection_before_its_subscription_is_confirmed_fail_the_attempt_at_once(
    frames: int, pad: int
) -> None:
    """The server never answers the subscription and floods events: the attempt fails past the
    bound, with the reason, rather than holding them all until the subscription times out."""
    notes = Notes()
    async with (
        ScriptedStreamServer() as ws,
        AsyncUserDataStream(
            API_KEY, "http://127.0.0.1:9", stream_url=ws.url, market="spot", api_secret=SECRET
        ) as uds,
        uds.events(timing=FAST, on_event=notes) as stream,
    ):
        await ws.wait(1)
        for n in range(frames):
            await ws.send(spot_event(n, pad))
        failed = await notes.first(StreamEventKind.RECONNECTING, timeout=5.0)
        await ws.wait(2, open_now=1)  # and a new attempt is made
        assert stream._core.pop(0) is None  # nothing of the failed attempt was delivered
    assert "before the subscription was confirmed" in (failed.detail or "")
    assert ws.closed_codes[0] == 1006  # dropped, not a close handshake with the flooding server


def inbox() -> _Inbox:
    return _Inbox(deliver=lambda text: None, answers_wanted=True)


def test_answers_left_unread_past_the_bound_fail_the_attempt_and_what_follows_is_let_go() -> None:
    held = inbox()
    answer = '{"id":7,"status":200,"result":{}}'
    for _ in range(MAX_HELD_FRAMES):
        held.put(answer)
    with pytest.raises(_Backoff, match=f"{MAX_HELD_FRAMES + 1} answers .* came unread"):
        held.put(answer)
    held.put(answer)  # the connection is being dropped: what still comes is let go
    assert held.answers.qsize() == MAX_HELD_FRAMES + 1


def test_answers_larger_in_all_than_the_bound_fail_the_attempt() -> None:
    held = inbox()
    big = json.dumps({"id": 7, "status": 400, "error": {"code": -1, "msg": "x" * (MAX_HELD_CHARS // 4)}})
    for _ in range(3):
        held.put(big)
    with pytest.raises(_Backoff, match="4 answers"):
        held.put(big)


async def test_an_answer_is_not_handed_on_once_the_attempt_has_failed() -> None:
    held = inbox()
    reader: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for n in range(MAX_HELD_FRAMES):
        held.put(json.dumps({"id": n, "status": 200, "result": {}}))
    with pytest.raises(_Backoff):
        held.put(json.dumps({"id": MAX_HELD_FRAMES, "status": 200, "result": {}}))
    with pytest.raises(_Backoff, match="came unread"):
        await held.answer(reader)


def test_an_inbox_that_failed_never_goes_live_with_what_it_let_go() -> None:
    delivered: list[str] = []
    held = _Inbox(deliver=delivered.append, answers_wanted=False)
    for n in range(MAX_HELD_FRAMES):
        held.put(event(n))
    with pytest.raises(_Backoff):
        held.put(event(MAX_HELD_FRAMES))
    held.put(event(MAX_HELD_FRAMES + 1))
    assert held.early == []
    with pytest.raises(_Backoff, match="before the subscription was confirmed"):
        held.go_live()
    assert delivered == []


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
