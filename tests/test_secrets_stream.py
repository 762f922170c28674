"""No piece of a secret in the WebSocket library's DEBUG log of a stream, even where it cuts a frame.

websockets logs each frame at DEBUG, a long one as its head and tail (`'{"e":"TES...vw0MuIg"}'`):
the cut can fall inside a listenKey or an API key a server echoes, leaving a piece with no key
name before it and too short to look like a key. Binance's docs: a listenKey is a credential.
"""

from __future__ import annotations

import json
import logging
import string
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Close, Frame, Opcode

from binance_userstream import AsyncUserDataStream
from binance_userstream._secrets import StreamRedactingFilter, watch_secret
from binance_userstream.simulator import Simulator
from tests._scripted_ws import LOG, ScriptedStreamServer
from tests._stream_helpers import FAST, take
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio

#: The shortest piece of a secret that counts as a leak.
PIECE = 8


@pytest.fixture
async def ws() -> AsyncIterator[ScriptedStreamServer]:
    async with ScriptedStreamServer() as server:
        yield server


def pieces(secret: str) -> list[str]:
    return [secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1)]


def frames_around(secret: str) -> list[str]:
    """Frames long enough to be cut, with `secret` across the cut: at the end (its tail survives
    the cut), and starting inside the head (its first characters survive)."""
    return [
        json.dumps({"e": "TEST_EVENT", "E": 1, "msg": f"Invalid API-key, IP, or permissions: {secret}"}),
        json.dumps({"e": "TEST_EVENT", "E": 2, "k": secret, "pad": "x" * 80}),
    ]


@pytest.mark.parametrize("market", ["usdm", "coinm"])
async def test_no_piece_of_a_listen_key_or_the_api_key_survives_a_cut_frame_in_the_debug_log(
    sim: Simulator, ws: ScriptedStreamServer, caplog: pytest.LogCaptureFixture, market: str
) -> None:
    caplog.set_level(logging.DEBUG)
    uds = AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, stream_url=ws.url, market=market)
    async with uds, uds.events(timing=FAST) as stream:
        await ws.wait(1)
        key = ws.key_of(0)
        frames = frames_around(key) + frames_around(API_KEY)
        for frame in frames:
            await ws.send(frame)
        await take(stream, len(frames))
        await ws.open[0].close(1008, f"invalid API-key {API_KEY}")  # returns once the client answered
    text = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != LOG.name
    )
    assert '< TEXT \'{"e": "TEST_EVENT"' in text  # the library logged the frames, cut ...
    assert "< CLOSE 1008" in text
    for secret in (key, API_KEY):  # ... and no piece of a secret was left at either side of a cut
        assert [piece for piece in pieces(secret) if piece in text] == []


#: A secret's characters (Binance's keys are letters and digits), and frame text that holds none.
KEYS = st.text(alphabet=string.ascii_letters + string.digits, min_size=60, max_size=64)
AROUND = ' {}":,_-'


def logged(frame: Frame, secret: str) -> str:
    """`frame` as websockets logs it at DEBUG, through the stream's filter, `secret` watched."""
    record = logging.LogRecord("websockets.client", logging.DEBUG, "", 0, "< %s", (frame,), None)
    watch_secret(secret, True)
    try:
        StreamRedactingFilter().filter(record)
    finally:
        watch_secret(secret, False)
    return record.getMessage()


@settings(max_examples=300, deadline=None)
@given(before=st.text(AROUND, max_size=120), secret=KEYS, after=st.text(AROUND, max_size=120))
def test_no_piece_of_a_watched_secret_survives_wherever_websockets_cuts_a_text_frame(
    before: str, secret: str, after: str
) -> None:
    message = logged(Frame(Opcode.TEXT, (before + secret + after).encode()), secret)
    assert [piece for piece in pieces(secret) if piece in message] == []


@settings(max_examples=300, deadline=None)
@given(before=st.text(AROUND, max_size=29), secret=KEYS, after=st.text(AROUND, max_size=29))
def test_no_piece_of_a_watched_secret_survives_wherever_websockets_cuts_a_close_reason(
    before: str, secret: str, after: str
) -> None:
    message = logged(Frame(Opcode.CLOSE, Close(1008, before + secret + after).serialize()), secret)
    assert [piece for piece in pieces(secret) if piece in message] == []


def test_the_rest_of_a_cut_frame_is_kept() -> None:
    secret = "Zq9" + "k" * 50 + "Xy7Wv3Tu"
    message = logged(Frame(Opcode.TEXT, f'{{"e":"x","msg":"bad key {secret}"}}'.encode()), secret)
    assert message == '< TEXT \'{"e":"x","msg":"bad key …...…"}\' [87 bytes]'
