"""The asyncio driver's connection lifecycle against hostile or unlucky servers, over loopback:
leaving a server that ignores the close handshake, how each close is reported (code, reason,
who closed), handshakes refused with Retry-After, and a listenKey closed by another program.

The listenKey's REST calls go to the simulator; the stream to a scripted WebSocket server
(tests/_scripted_ws.py) where a test needs exact control of a fault, else to the simulator itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Close as CloseFrame
from websockets.http11 import Request, Response

from binance_userstream import (
    AsyncUserDataStream,
    BackoffGate,
    IPBannedError,
    RateLimitedError,
    SteppedClock,
    UserDataStream,
)
from binance_userstream._gate import DEFAULT_BAN_SECONDS
from binance_userstream._hosts import ban_group
from binance_userstream._session import EventKind
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from binance_userstream.stream import _async as stream_module
from binance_userstream.stream._async import _close_detail, _resync_detail
from binance_userstream.stream._core import StreamEventKind
from tests._scripted_ws import ScriptedStreamServer, ThreadedStreamServer
from tests._stream_helpers import FAST, take, times
from tests.conftest import API_KEY
from tests.test_cli import CLI
from tests.test_cli_signals import ENV, PROMPT, read_until, stop

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
        ws.deafen()
        started = loop.time()
        await stream.__aexit__(None, None, None)
        took = loop.time() - started
        ws.drop()  # the deaf server's side, which would wait for the client
    assert took < 3 * 0.3, f"leaving took {took:.2f} s"


# -- a listenKey closed by another program (item: a key closed elsewhere) ------------------------


def _order(n: int) -> dict[str, object]:
    return {"e": "ACCOUNT_UPDATE", "E": n, "T": n, "a": {"m": "ORDER", "B": [], "P": []}}


async def _close_the_account_s_key(sim: Simulator) -> str:
    """What another program does: get the account's key (the same one: keys are per account) and
    DELETE it. The key closed."""
    async with AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm") as other:
        key = await other.create()
        await other.close(key)
    return key


async def _noted(notes: list[Any], kind: StreamEventKind | EventKind, count: int = 1) -> None:
    async with asyncio.timeout(10):
        while sum(getattr(n, "kind", None) is kind for n in notes) < count:
            await asyncio.sleep(0.01)


async def test_a_key_closed_by_another_program_is_replaced_at_once_and_the_hole_is_a_gap() -> None:
    """The simulator closes the key's connection saying so ("listenKey closed"), and refuses
    every upgrade for it. The stream and the simulator share a SteppedClock that nothing steps:
    the stream is back without waiting for any backoff, nor for the session's keepalive (30
    minutes away), and the new key is the one the session keeps alive."""
    clock = SteppedClock()
    notes: list[Any] = []
    with Simulator(clock=clock) as sim:
        uds = AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm", stream_url=_ws(sim))
        async with uds, uds.events(clock=clock, on_event=notes.append) as stream:
            await _noted(notes, StreamEventKind.CONNECTED)
            sim.push("usdm", _order(1))
            items = await take(stream, 1)
            closed = await _close_the_account_s_key(sim)
            await _noted(notes, StreamEventKind.CONNECTED, 2)
            sim.push("usdm", _order(2))
            items += await take(stream, 2)
            kept = stream._session.listen_key
    assert times(items) == [1, ("gap", "disconnected"), 2]
    assert clock.now() == 0.0  # no time had to pass
    assert kept is not None
    assert kept != closed
    kinds = [n.kind for n in notes]
    assert StreamEventKind.KEY_REFUSED in kinds
    assert StreamEventKind.KEY_REPLACED in kinds


async def test_a_handshake_refused_for_a_closed_key_asks_for_the_account_s_key() -> None:
    """The key is closed while the stream is between connections: its next handshake is refused
    (400, -1125), and the stream connects with the account's new key at once."""
    clock = SteppedClock()
    notes: list[Any] = []
    with Simulator(clock=clock) as sim:
        uds = AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm", stream_url=_ws(sim))
        async with uds, uds.events(clock=clock, on_event=notes.append) as stream:
            await _noted(notes, StreamEventKind.CONNECTED)
            sim.drop_streams("usdm")
            await _noted(notes, StreamEventKind.RECONNECTING)  # lost soon after opening: a backoff
            await _close_the_account_s_key(sim)
            clock.advance(60.0)  # the backoff passes: the next handshake carries the closed key
            await _noted(notes, StreamEventKind.CONNECTED, 2)
            assert clock.now() == 60.0
            sim.push("usdm", _order(2))
            items = await take(stream, 2)
    assert times(items) == [("gap", "disconnected"), 2]
    (refused,) = [n for n in notes if n.kind is StreamEventKind.KEY_REFUSED]
    assert "HTTP 400" in refused.detail
    assert "-1125" in refused.detail


def test_the_sync_stream_replaces_a_key_closed_by_another_program_at_once() -> None:
    clock = SteppedClock()
    notes: list[Any] = []
    with Simulator(clock=clock) as sim:
        uds = UserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm", stream_url=_ws(sim))
        with uds, uds.events(clock=clock, on_event=notes.append) as stream:
            _wait_for(lambda: sum(getattr(n, "kind", None) is StreamEventKind.CONNECTED for n in notes) == 1)
            sim.push("usdm", _order(1))
            iterator = iter(stream)
            items = [next(iterator)]
            closed = asyncio.run(_close_the_account_s_key(sim))
            _wait_for(lambda: sum(getattr(n, "kind", None) is StreamEventKind.CONNECTED for n in notes) == 2)
            sim.push("usdm", _order(2))
            items += [next(iterator), next(iterator)]
            kept = stream._inner._thread_session.listen_key
    assert times(items) == [1, ("gap", "disconnected"), 2]
    assert clock.now() == 0.0
    assert kept is not None
    assert kept != closed


def _ws(sim: Simulator) -> str:
    return sim.url.replace("http://", "ws://")


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


async def test_after_an_expiry_the_session_keeps_the_renewed_key_alive_not_the_dead_one() -> None:
    """The stream renews the key after listenKeyExpired; the session's next keepalive is for that
    key, so it does not find its own key gone and replace it a second time (make demo's stray
    key_lost and replaced half an hour after a renewal)."""
    clock = SteppedClock()
    notes: list[Any] = []
    with Simulator(clock=clock) as sim:
        uds = AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm", stream_url=_ws(sim))
        async with uds, uds.events(clock=clock, interval=60.0, on_event=notes.append):
            await _noted(notes, StreamEventKind.CONNECTED)
            sim.expire_key(market="usdm")
            await _noted(notes, StreamEventKind.CONNECTED, 2)
            clock.advance(60.0)  # the session's keepalive is due
            await _noted(notes, EventKind.KEPT_ALIVE)
    kinds = [n.kind for n in notes]
    assert EventKind.KEY_LOST not in kinds
    assert kinds.count(EventKind.REPLACED) == 1  # the renewal's key, announced once


# -- how a close and a failed attempt are reported --------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "said"), [(-0.4, "+0 ms"), (0.4, "+0 ms"), (-1.6, "-2 ms"), (250.0, "+250 ms")]
)
def test_a_resync_note_gives_the_offset_in_whole_ms_and_never_minus_zero(offset: float, said: str) -> None:
    assert _resync_detail(offset) == f"clock offset {said} (-1021)"


async def _disconnected(
    sim: Simulator, ws: ScriptedStreamServer, fault: Callable[[], Awaitable[None]]
) -> str:
    """The detail of the DISCONNECTED note after `fault` ends the stream's one connection."""
    notes: list[Any] = []
    async with client(sim, ws) as uds, uds.events(timing=FAST, on_event=notes.append):
        await _noted(notes, StreamEventKind.CONNECTED)
        await fault()
        await _noted(notes, StreamEventKind.DISCONNECTED)
    (note,) = [n for n in notes if n.kind is StreamEventKind.DISCONNECTED]
    assert note.detail is not None
    return note.detail


@pytest.mark.parametrize("code", [1008, 4000, 1011])
async def test_a_server_s_close_is_reported_with_its_code_and_reason(
    sim: Simulator, ws: ScriptedStreamServer, code: int
) -> None:
    async def close() -> None:
        for connection in list(ws.open):
            await connection.close(code, "maintenance window")

    assert await _disconnected(sim, ws, close) == f"closed by the server: code {code} (maintenance window)"


async def test_a_frame_too_big_is_reported_as_this_client_s_close_1009_not_1006(
    sim: Simulator, ws: ScriptedStreamServer
) -> None:
    async def too_big() -> None:
        await ws.send("x" * (stream_module.MAX_FRAME + 1))

    assert (await _disconnected(sim, ws, too_big)).startswith("closed by this client: code 1009 (")


def test_a_ping_unanswered_is_reported_as_this_client_s_close_1011() -> None:
    """websockets closes with 1011 when the server does not answer its keepalive ping; a server
    that does not answer the close either leaves no close frame received."""
    sent = CloseFrame(1011, "keepalive ping timeout")
    assert _close_detail(None, sent, None, []) == "closed by this client: code 1011 (keepalive ping timeout)"


async def test_a_close_reason_reaches_notes_and_logs_escaped_and_without_the_key(
    sim: Simulator, ws: ScriptedStreamServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A hostile reason: terminal escapes, a CR/LF that would forge a log line, and the key. The
    WebSocket library's own DEBUG record of the close frame included."""
    caplog.set_level(logging.DEBUG)

    async def hostile() -> None:
        key = ws.key_of(0)
        for connection in list(ws.open):
            await connection.close(1000, f"\x1b[2J\x1b[31m\r\nERROR forged {key}")

    detail = await _disconnected(sim, ws, hostile)
    key = ws.key_of(0)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("binance_userstream"))
    assert "CLOSE 1000" in logged  # the library's record of the close frame is there
    for text in (detail, logged):
        assert key not in text
        assert "\x1b" not in text
        assert "\r" not in text
    assert "\\x1b[2J\\x1b[31m\\x0d\\x0aERROR forged" in detail
    assert "\n" not in detail


def test_a_close_reason_is_scrubbed_of_the_key_in_use_whatever_its_shape() -> None:
    """Key-shaped text (60+ letters and digits) is scrubbed anyway; a key of another shape only by
    name, which the driver passes."""
    rcvd = CloseFrame(4000, "bye my-key.7_Q")
    detail = _close_detail(rcvd, None, None, ["my-key.7_Q"])
    assert "my-key.7_Q" not in detail
    assert detail.startswith("closed by the server: code 4000 (bye my-k")


async def test_an_unanswered_subscription_is_reported_as_such_not_as_an_empty_timeout_error(
    sim: Simulator, ws: ScriptedStreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scripted server accepts the WebSocket API connection and never answers the subscribe."""
    monkeypatch.setattr(stream_module, "OPEN_TIMEOUT", 0.1)
    notes: list[Any] = []
    uds = AsyncUserDataStream(
        TEST_API_KEY, sim.url, market="spot", stream_url=ws.url, api_secret=TEST_API_SECRET
    )
    async with uds, uds.events(timing=FAST, on_event=notes.append):
        await _noted(notes, StreamEventKind.RECONNECTING)
    (note, *_) = [n for n in notes if n.kind is StreamEventKind.RECONNECTING]
    assert note.detail == "ConnectionError: the subscription was not answered within 0.1 s"


# -- a handshake answered 429 or 418, and the backoff gate shared with REST ---------------------------


@contextlib.asynccontextmanager
async def _refusing(status: HTTPStatus, retry_after: str | None) -> AsyncIterator[str]:
    """A WebSocket server that answers every handshake `status` (with `Retry-After` if given), as
    Binance answers a client over its limits (429) or banned (418); its URL."""

    def refuse(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(status, '{"code":-1003,"msg":"Too many requests."}')
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    async def handler(connection: ServerConnection) -> None:
        raise AssertionError("no handshake is accepted")

    async with serve(handler, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


@pytest.fixture
async def refusing() -> AsyncIterator[str]:
    async with _refusing(HTTPStatus.TOO_MANY_REQUESTS, "30") as url:
        yield url


async def test_a_handshake_answered_429_waits_its_retry_after_and_closes_the_gate_of_the_host(
    sim: Simulator, refusing: str, gate: BackoffGate
) -> None:
    """Binance: "A Retry-After header is sent with a 418 or 429 responses and will give the number
    of seconds required to wait" (rest-api.md, LIMITS). The stream's clock does not move, so the
    next try is never made; the note says when it would be."""
    clock = SteppedClock()
    notes: list[Any] = []
    uds = AsyncUserDataStream(
        api_key=API_KEY, base_url=sim.url, market="usdm", stream_url=refusing, gate=gate
    )
    async with uds, uds.events(timing=FAST, clock=clock, on_event=notes.append):
        await _noted(notes, StreamEventKind.RECONNECTING)
    (note,) = [n for n in notes if n.kind is StreamEventKind.RECONNECTING]
    assert note.retry_in >= 30
    assert "HTTP 429" in note.detail
    with pytest.raises(RateLimitedError):  # REST calls to the host's group wait too
        gate.check(refusing.removeprefix("ws://"))


async def test_a_ban_the_rest_side_saw_holds_the_stream_s_connection_back(
    sim: Simulator, ws: ScriptedStreamServer, gate: BackoffGate
) -> None:
    """A REST call to the group was answered 418 (the gate is closed for 100 s): the stream sends
    no handshake until the ban ends, and says why."""
    gate.close(ws.url.removeprefix("ws://"), 100, banned=True)
    clock = SteppedClock()
    notes: list[Any] = []
    uds = AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm", stream_url=ws.url, gate=gate)
    async with uds, uds.events(timing=FAST, clock=clock, on_event=notes.append):
        await _noted(notes, StreamEventKind.RECONNECTING)
    (note,) = [n for n in notes if n.kind is StreamEventKind.RECONNECTING]
    assert note.retry_in >= 100
    assert "IP banned" in note.detail
    assert ws.paths == []  # nothing was sent


@pytest.mark.parametrize(("status", "error"), [(429, RateLimitedError), (418, IPBannedError)])
async def test_a_subscription_answered_429_or_418_closes_the_gate_of_the_host_for_its_retry_after(
    sim: Simulator, ws: ScriptedStreamServer, gate: BackoffGate, status: int, error: type[Exception]
) -> None:
    """web-socket-api.md: a 429 or 418 answer's error.data holds serverTime and retryAfter (ms).
    Bans are per IP, so REST calls to the host's group wait for it too, as after a handshake's."""
    clock = SteppedClock()
    notes: list[Any] = []
    uds = AsyncUserDataStream(
        TEST_API_KEY, sim.url, market="spot", stream_url=ws.url, api_secret=TEST_API_SECRET, gate=gate
    )
    async with uds, uds.events(timing=FAST, clock=clock, on_event=notes.append):
        await ws.wait(1, open_now=1)
        request = json.loads(await ws.open[0].recv())
        await ws.send(
            json.dumps(
                {
                    "id": request["id"],
                    "status": status,
                    "error": {
                        "code": -1003,
                        "msg": "Way too much request weight used.",
                        "data": {"serverTime": 1000, "retryAfter": 61_000},
                    },
                }
            )
        )
        await _noted(notes, StreamEventKind.RECONNECTING)
    (note,) = [n for n in notes if n.kind is StreamEventKind.RECONNECTING]
    assert note.retry_in >= 60
    with pytest.raises(error):
        gate.check(ws.url.removeprefix("ws://"))


@pytest.mark.parametrize(
    ("stream", "rest"),
    [
        ("fstream.binance.com", "fapi.binance.com"),
        ("dstream.binance.com", "dapi.binance.com"),
        ("ws-api.binance.com:443", "api.binance.com"),
        ("ws-api.binance.com:9443", "api1.binance.com"),
        ("fstream.binancefuture.com", "testnet.binancefuture.com"),
    ],
)
def test_a_stream_host_shares_the_ban_group_of_its_api_family(stream: str, rest: str) -> None:
    """Binance: "The limits on the API are based on the IPs, not the API keys" (rest-api.md, LIMITS)."""
    assert ban_group(stream) == ban_group(rest)


def test_listen_exits_within_the_close_timeout_of_sigterm_when_the_server_ignores_the_close() -> None:
    """The command's exit is bounded as the stream's leaving is: CLOSE_TIMEOUT (2 s) for the close
    handshake, plus the interpreter's start and stop (tests/test_cli_signals.py's PROMPT); it was
    websockets' default 10 s."""
    with Simulator() as sim, ThreadedStreamServer() as ws:
        args = ["listen", "--market", "usdm", "--base-url", sim.url, "--stream-url", ws.url, "-v"]
        with subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV) as proc:
            try:
                read_until(proc.stderr, b"stream connected")
                ws.deafen()
                returncode, took, _, err = stop(proc, signal.SIGTERM)
            finally:
                proc.kill()
            ws.drop()
    assert returncode == 128 + signal.SIGTERM
    assert took < stream_module.CLOSE_TIMEOUT + PROMPT, (took, err[-500:])


async def test_a_handshake_answered_418_without_retry_after_waits_binance_s_shortest_ban(
    sim: Simulator, gate: BackoffGate
) -> None:
    """Bans "scale from 2 minutes to 3 days" (rest-api.md, LIMITS): a 418 that does not say how
    long is taken as the shortest, for the stream and for REST calls to the group."""
    clock = SteppedClock()
    notes: list[Any] = []
    async with _refusing(HTTPStatus.IM_A_TEAPOT, None) as url:
        uds = AsyncUserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm", stream_url=url, gate=gate)
        async with uds, uds.events(timing=FAST, clock=clock, on_event=notes.append):
            await _noted(notes, StreamEventKind.RECONNECTING)
    (note,) = [n for n in notes if n.kind is StreamEventKind.RECONNECTING]
    assert note.retry_in >= DEFAULT_BAN_SECONDS
    with pytest.raises(IPBannedError):
        gate.check(url.removeprefix("ws://"))
