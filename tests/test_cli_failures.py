"""`listen` never retries in silence: the first failure of a run and every tenth after it are said
on stderr, a refusal no retry can mend ends it with its typed error, and a stream that never
connected is no success."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from binance_userstream import AsyncUserDataStream, BinanceAPIError, EventKind, SessionEvent
from binance_userstream._cli import _Failures
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from binance_userstream.stream._core import StreamEvent, StreamEventKind
from tests._scripted import Reply, ScriptedServer
from tests._scripted_ws import ScriptedStreamServer
from tests._stream_helpers import FAST, take
from tests.conftest import FAST_RETRY
from tests.test_cli import CLI, cli, live

__all__ = ["live"]

#: Binance's answer to a listenToken for an isolated margin account that does not exist.
NO_SUCH_ACCOUNT = Reply(400, {"code": -11001, "msg": "Isolated margin account does not exist."})


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _failed(at: float) -> StreamEvent:
    return StreamEvent(StreamEventKind.RECONNECTING, at, retry_in=1.0, detail="ConnectionRefusedError")


def test_the_first_failure_of_a_run_and_every_tenth_are_said_then_the_recovery() -> None:
    failures = _Failures(every=10)
    lines = [failures.line(_failed(n)) for n in range(1, 26)]
    recovered = failures.line(StreamEvent(StreamEventKind.CONNECTED, 26.0, 1))
    said = [n for n, line in enumerate(lines, 1) if line is not None]
    assert said == [1, 10, 20]
    assert "ConnectionRefusedError" in str(lines[0])
    assert "failure 20 in a row" in str(lines[19])
    assert recovered is not None
    assert "after 25 failures" in recovered


def test_a_failed_keepalive_is_a_failure_said_too() -> None:
    failures = _Failures()
    line = failures.line(SessionEvent(EventKind.KEEPALIVE_FAILED, 1.0, "k" * 60, retry_in=60.0))
    assert line is not None
    assert "keepalive_failed" in line
    assert "k" * 60 not in line


def test_a_connection_that_never_fails_says_nothing() -> None:
    failures = _Failures()
    assert failures.line(StreamEvent(StreamEventKind.CONNECTING, 0.0, 1)) is None
    assert failures.line(StreamEvent(StreamEventKind.CONNECTED, 0.1, 1)) is None


def test_listen_against_a_dead_stream_url_says_the_first_failure_on_stderr(
    live: Simulator, dead_port: int
) -> None:
    proc = cli(
        "listen", "--market", "usdm", "--base-url", live.url, "--stream-url", f"ws://127.0.0.1:{dead_port}",
        "--for", "1s",
    )  # fmt: skip
    first = proc.stderr.splitlines()[0] if proc.stderr else ""
    assert "reconnecting" in first
    assert "refused" in first.lower()
    assert "failure 1 in a row" in first


def test_listen_that_never_connected_within_for_exits_7_naming_the_last_failure(
    live: Simulator, dead_port: int
) -> None:
    proc = cli(
        "listen", "--market", "usdm", "--base-url", live.url, "--stream-url", f"ws://127.0.0.1:{dead_port}",
        "--for", "1s",
    )  # fmt: skip
    assert proc.returncode == 7
    assert "never connected" in proc.stderr.splitlines()[-1]


@pytest.mark.anyio
async def test_a_listen_token_refused_with_a_4xx_ends_the_stream_with_its_typed_error_after_one_mint(
    server: ScriptedServer,
) -> None:
    """Binance answers a listenToken for an isolated pair with no margin account with HTTP 400,
    -11001 (margin_trading error codes: "Isolated margin account does not exist"): sent again, it
    is refused again."""
    server.script(NO_SUCH_ACCOUNT)
    async with ScriptedStreamServer() as ws:
        uds = AsyncUserDataStream(
            TEST_API_KEY, server.url, market="margin", symbol="NOPEUSDT", api_secret=TEST_API_SECRET,
            stream_url=ws.url, retry=FAST_RETRY,
        )  # fmt: skip
        async with uds:
            with pytest.raises(BinanceAPIError) as caught:
                async with uds.events(timing=FAST) as stream:
                    await take(stream, 1, timeout=10)
    assert caught.value.status_code == 400
    assert caught.value.code == -11001
    assert [r.path for r in server.requests] == ["/sapi/v1/userListenToken"]


def test_listen_on_margin_refused_its_listen_token_exits_with_one_line_naming_the_code(
    server: ScriptedServer, live: Simulator
) -> None:
    server.script(NO_SUCH_ACCOUNT)
    secret_env = {"BINANCE_API_SECRET": TEST_API_SECRET}
    env = {**os.environ, "BINANCE_API_KEY": TEST_API_KEY, **secret_env}
    args = [*CLI, "listen", "--market", "margin", "--symbol", "NOPEUSDT", "--base-url", server.url]
    args += ["--stream-url", live.url.replace("http://", "ws://")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "-11001" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [r.path for r in server.requests] == ["/sapi/v1/userListenToken"]
