"""The asyncio driver's connection lifecycle against hostile or unlucky servers, over loopback:
leaving a server that ignores the close handshake, how each close is reported (code, reason,
who closed), handshakes refused with Retry-After, and a listenKey closed by another program.

The listenKey's REST calls go to the simulator; the stream to a scripted WebSocket server
(tests/_scripted_ws.py) where a test needs exact control of a fault, else to the simulator itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from binance_userstream import AsyncUserDataStream
from binance_userstream import _stream as stream_module
from binance_userstream._stream_core import StreamEventKind
from binance_userstream.simulator import Simulator
from tests._scripted_ws import ScriptedStreamServer
from tests._stream_helpers import FAST
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio


@pytest.fixture
async def ws() -> AsyncIterator[ScriptedStreamServer]:
    async with ScriptedStreamServer() as server:
        yield server


def _when(kind: StreamEventKind, happened: asyncio.Event) -> Callable[[object], None]:
    """An on_event callback that sets `happened` once a note of `kind` comes."""

    def on_event(note: object) -> None:
        if getattr(note, "kind", None) is kind:
            happened.set()

    return on_event


def client(sim: Simulator, ws: ScriptedStreamServer, market: str = "usdm") -> AsyncUserDataStream:
    return AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, stream_url=ws.url, market=market)


async def test_leaving_a_server_that_ignores_the_close_handshake_is_bounded_by_the_close_timeout(
    sim: Simulator, ws: ScriptedStreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server never reads the client's close frame, so never answers it: leaving waits
    CLOSE_TIMEOUT for the handshake, not websockets' default of 10 s. Measured on the loop's own
    clock; the bound is shortened so that the test does not wait the real 2 s."""
    monkeypatch.setattr(stream_module, "CLOSE_TIMEOUT", 0.3)
    loop = asyncio.get_running_loop()
    async with client(sim, ws) as uds:
        connected = asyncio.Event()
        stream = await uds.events(
            timing=FAST, on_event=_when(StreamEventKind.CONNECTED, connected)
        ).__aenter__()
        async with asyncio.timeout(10):
            await connected.wait()
        for connection in ws.open:
            connection.transport.pause_reading()  # deaf from now on: the close frame is never read
        started = loop.time()
        await stream.__aexit__(None, None, None)
        took = loop.time() - started
        for connection in ws.open:
            connection.transport.abort()  # the deaf server's side, which would wait for the client
    assert took < 3 * 0.3, f"leaving took {took:.2f} s"
