"""The HTTP layer against hostile or broken servers: bodies that fail, trickle or explode, server
text that carries secrets or terminal escapes, redirects, and misuse.

Each test talks HTTP over loopback to the scripted server (tests/_scripted.py).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from binance_userstream import (
    AsyncUserDataStream,
    BackoffGate,
    BinanceAPIError,
    ListenKeyNotFoundError,
    NetworkError,
    RetryPolicy,
    UserDataStream,
    UserStreamError,
)
from binance_userstream.errors import MalformedAnswerError
from tests._both import Facade
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY, FAST_RETRY


def listen_key_body() -> bytes:
    return b'{"listenKey": "' + LISTEN_KEY.encode() + b'"}'


# -- 1. a 2XX whose body fails is retried, and ends as NetworkError ------------------------------


def test_a_2xx_whose_body_is_cut_short_is_retried(facade: Facade, server: ScriptedServer) -> None:
    """The connection closes before Content-Length bytes arrived: retried like a dropped connection."""
    server.script(Reply(raw=listen_key_body(), length=500))
    assert facade("create") == LISTEN_KEY
    assert len(server.requests) == 2


def test_a_2xx_that_stalls_after_its_headers_is_retried(server: ScriptedServer, gate: BackoffGate) -> None:
    server.script(Reply(raw=listen_key_body(), stall=1.0))
    with UserDataStream(API_KEY, server.url, timeout=0.2, retry=FAST_RETRY, gate=gate) as uds:
        assert uds.create() == LISTEN_KEY
    assert len(server.requests) == 2


def test_a_2xx_with_a_bad_gzip_body_every_time_ends_in_network_error(
    facade: Facade, server: ScriptedServer
) -> None:
    server.script(*[Reply(raw=b"this is not gzip", headers={"Content-Encoding": "gzip"})] * 5)
    with pytest.raises(NetworkError, match="DecodingError after 5 attempts"):
        facade("create")
    assert len(server.requests) == 5


def test_a_2xx_cut_short_every_time_ends_in_network_error(facade: Facade, server: ScriptedServer) -> None:
    server.script(*[Reply(raw=listen_key_body(), length=500)] * 5)
    with pytest.raises(NetworkError, match="RemoteProtocolError after 5 attempts"):
        facade("create")


def test_a_gzip_answer_is_decoded(facade: Facade, server: ScriptedServer) -> None:
    server.script(Reply(raw=gzip.compress(listen_key_body()), headers={"Content-Encoding": "gzip"}))
    assert facade("create") == LISTEN_KEY
    assert "gzip" in server.requests[0].headers["accept-encoding"]


# -- 2. the deadline bounds the whole call, bodies included ---------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_trickling_body_cannot_hold_a_call_past_its_deadline(
    mode: str, server: ScriptedServer, gate: BackoffGate
) -> None:
    """A byte every 0.1 s never trips the 1 s read timeout; the 2 s deadline still ends the call."""
    padded = b'{"listenKey": "' + LISTEN_KEY.encode() + b'"' + b" " * 200 + b"}"
    server.script(*[Reply(raw=padded, trickle=0.1)] * 5)
    retry = RetryPolicy(attempts=5, backoff_base=0.01, deadline=2.0)
    facade = Facade(mode, api_key=API_KEY, base_url=server.url, timeout=1.0, retry=retry, gate=gate)
    started = time.monotonic()
    with pytest.raises(NetworkError, match="deadline"):
        facade("create")
    assert time.monotonic() - started < 2.6
    assert len(server.requests) == 1


def test_an_attempt_may_not_wait_past_the_deadline_for_an_answer(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    """A 10 s read timeout is cut to what the 1 s deadline leaves."""
    server.script(Reply(delay=3.0))
    retry = RetryPolicy(deadline=1.0)
    started = time.monotonic()
    with UserDataStream(API_KEY, server.url, timeout=10.0, retry=retry, gate=gate) as uds:
        with pytest.raises(NetworkError, match="Timeout"):
            uds.create()
    assert time.monotonic() - started < 1.6


# -- 4. answers are capped; a listenKey must be sane ----------------------------------------------


def test_an_answer_over_the_size_cap_is_refused_and_not_retried(
    facade: Facade, server: ScriptedServer
) -> None:
    server.script(Reply(raw=b'{"listenKey": "' + b"a" * (2 << 20) + b'"}'))
    with pytest.raises(MalformedAnswerError, match="larger than 1048576 bytes"):
        facade("create")
    assert len(server.requests) == 1


def test_a_gzip_bomb_is_cut_off_at_the_cap(server: ScriptedServer, gate: BackoffGate) -> None:
    """50 KB of gzip that decodes to 50 MB: refused with a few MB of memory at most."""
    bomb = gzip.compress(b'{"listenKey": "' + b"a" * (50 << 20) + b'"}', compresslevel=9)
    server.script(Reply(raw=bomb, headers={"Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        with UserDataStream(API_KEY, server.url, gate=gate) as uds:
            with pytest.raises(MalformedAnswerError, match="decoded"):
                uds.create()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


@pytest.mark.parametrize("bad", ["a" * 257, "abc def", "\x1b[31mkey", "", 12345, None, ["k"]])
def test_a_create_answer_without_a_sane_listen_key_is_a_malformed_answer(
    facade: Facade, server: ScriptedServer, bad: Any
) -> None:
    server.script(Reply(body={"listenKey": bad}))
    with pytest.raises(MalformedAnswerError, match="create"):
        facade("create")


# -- 5. msg is Binance's msg; the operation is in str(error) --------------------------------------


def test_msg_is_exactly_binances_msg_and_str_names_the_operation(
    facade: Facade, server: ScriptedServer
) -> None:
    server.script(Reply(status=400, body={"code": -1125, "msg": "This listenKey does not exist."}))
    with pytest.raises(ListenKeyNotFoundError) as caught:
        facade("keepalive", LISTEN_KEY)
    assert caught.value.msg == "This listenKey does not exist."
    assert (
        str(caught.value)
        == "PUT /api/v3/userDataStream: HTTP 400, code -1125: This listenKey does not exist."
    )


# -- 6. server text is scrubbed, escaped and bounded ----------------------------------------------


def assert_safe(error: BaseException) -> None:
    for text in (str(error), repr(error)):
        assert API_KEY not in text
        assert LISTEN_KEY not in text
        assert "\x1b" not in text
        assert "\x07" not in text
        assert "\r" not in text


def test_a_gateway_echoing_the_api_key_header_in_msg_is_scrubbed(
    facade: Facade, server: ScriptedServer
) -> None:
    echoed = f"bad request; headers were X-MBX-APIKEY: {API_KEY}"
    server.script(Reply(status=400, body={"code": -1102, "msg": echoed}))
    with pytest.raises(BinanceAPIError) as caught:
        facade("keepalive", LISTEN_KEY)
    assert_safe(caught.value)
    assert API_KEY not in caught.value.msg
    assert "vmPU…" in str(caught.value)


def test_the_listen_key_echoed_in_msg_is_scrubbed_even_without_its_parameter_name(
    facade: Facade, server: ScriptedServer
) -> None:
    server.script(Reply(status=400, body={"code": -1102, "msg": f"unknown key {LISTEN_KEY}"}))
    with pytest.raises(BinanceAPIError) as caught:
        facade("close", LISTEN_KEY)
    assert_safe(caught.value)


def test_the_reason_phrase_is_scrubbed(facade: Facade, server: ScriptedServer) -> None:
    server.script(
        Reply(status=403, raw=b"<html>no</html>", content_type="text/html", reason=f"Denied {API_KEY}")
    )
    with pytest.raises(BinanceAPIError) as caught:
        facade("create")
    assert_safe(caught.value)
    assert caught.value.msg.startswith("Denied ")


def test_terminal_escapes_in_server_text_are_escaped(facade: Facade, server: ScriptedServer) -> None:
    server.script(Reply(status=400, body={"code": -1102, "msg": "\x1b]0;pwned\x07\x1b[2J\r\nFAKE LINE"}))
    with pytest.raises(BinanceAPIError) as caught:
        facade("create")
    assert_safe(caught.value)
    assert "\\x1b]0;pwned\\x07" in str(caught.value)


def test_long_server_text_is_bounded_in_the_message(facade: Facade, server: ScriptedServer) -> None:
    server.script(Reply(status=400, body={"code": -1102, "msg": "too long " * 10_000}))
    with pytest.raises(BinanceAPIError) as caught:
        facade("create")
    assert len(str(caught.value)) < 500
    assert "more characters" in str(caught.value)


@pytest.fixture
def garbled() -> Iterator[str]:
    """A server that answers every request with a status line echoing the API key and an escape."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 2x0 " + API_KEY.encode() + b"\x1b[2J\r\nContent-Length: 2\r\n\r\n{}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()


def test_server_text_in_a_network_error_is_scrubbed(garbled: str, gate: BackoffGate) -> None:
    """httpx quotes a malformed status line in its error: the key in it must not reach the message."""
    with UserDataStream(API_KEY, garbled, retry=RetryPolicy.off(), gate=gate) as uds:
        with pytest.raises(NetworkError, match="illegal status line") as caught:
            uds.keepalive(LISTEN_KEY)
    assert_safe(caught.value)


# -- 7. redirects are refused ----------------------------------------------------------------------


def test_a_redirect_is_refused_naming_only_the_origin(facade: Facade, server: ScriptedServer) -> None:
    location = f"https://evil.example:8443/steal?listenKey={LISTEN_KEY}&k={API_KEY}"
    server.script(Reply(status=307, headers={"Location": location}))
    with pytest.raises(BinanceAPIError) as caught:
        facade("close", LISTEN_KEY)
    assert caught.value.status_code == 307
    assert "https://evil.example:8443" in str(caught.value)
    assert "steal" not in str(caught.value)
    assert_safe(caught.value)
    assert len(server.requests) == 1


def test_follow_redirects_in_httpx_args_is_refused(gate: BackoffGate) -> None:
    with pytest.raises(ValueError, match="redirects are never followed"):
        UserDataStream(API_KEY, "http://127.0.0.1:9", gate=gate, httpx_args={"follow_redirects": True})


def test_a_redirect_is_not_followed_even_when_a_caller_asks_httpx_to(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    other = ScriptedServer().start()
    try:
        server.script(Reply(status=307, headers={"Location": f"{other.url}/api/v3/userDataStream"}))
        with UserDataStream(API_KEY, server.url, gate=gate) as uds:
            with pytest.raises(BinanceAPIError, match=r"redirected to http://127\.0\.0\.1"):
                uds.client.get_httpx_client().post("/api/v3/userDataStream", follow_redirects=True)
        assert other.requests == []
    finally:
        other.stop()


# -- 8. httpx_args: a small allow-list -------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        {"transport": httpx.HTTPTransport()},
        {"mounts": {"http://": httpx.HTTPTransport()}},
        {"base_url": "https://evil.example"},
        {"max_redirects": 3},
        {"auth": ("u", "p")},
        {"cookies": {"a": "b"}},
        {"timeout": 3},
        {"event_hooks": {"request": []}},
        {"params": {"a": "b"}},
        {"headers": {"X-MBX-APIKEY": "other"}},
        {"headers": {"Host": "evil.example"}},
        {"headers": {"User-Agent": "bad\r\nX-Evil: 1"}},
        {"headers": "User-Agent: x"},
    ],
    ids=lambda args: ",".join(args),
)
def test_httpx_args_outside_the_allow_list_are_refused_at_construction(
    args: dict[str, Any], gate: BackoffGate
) -> None:
    for cls in (UserDataStream, AsyncUserDataStream):
        with pytest.raises(ValueError, match=r"httpx_args|User-Agent") as caught:
            cls(API_KEY, "http://127.0.0.1:9", gate=gate, httpx_args=args)
        assert "evil" not in str(caught.value)
        assert "other" not in str(caught.value)


def test_a_user_agent_in_httpx_args_is_sent(facade: Facade, server: ScriptedServer) -> None:
    facade.options["httpx_args"] = {"headers": {"User-Agent": "my-bot/1.0"}}
    facade("create")
    assert server.requests[0].headers["user-agent"] == "my-bot/1.0"
    assert server.requests[0].headers["x-mbx-apikey"] == API_KEY


def test_transport_options_in_httpx_args_configure_the_default_transport(
    facade: Facade, server: ScriptedServer
) -> None:
    """`proxy` reaches the default transport: the request goes through the 'proxy' (the server)."""
    facade.options.update(base_url="http://127.0.0.1:9", httpx_args={"proxy": server.url})
    server.script(Reply(status=503, body={"code": -1001, "msg": "busy"}))
    assert facade("create") == LISTEN_KEY  # retried: the proxy sits under the layer, not around it
    assert [s.path for s in server.requests] == ["/api/v3/userDataStream"] * 2


def test_transport_options_beside_an_explicit_transport_are_refused(gate: BackoffGate) -> None:
    with pytest.raises(ValueError, match="configure that transport instead"):
        UserDataStream(
            API_KEY,
            "http://127.0.0.1:9",
            gate=gate,
            transport=httpx.HTTPTransport(),
            httpx_args={"verify": False},
        )


# -- 10. misuse: before `with`, after it, twice ---------------------------------


def test_a_call_before_with_is_a_user_stream_error(server: ScriptedServer, gate: BackoffGate) -> None:
    uds = UserDataStream(API_KEY, server.url, gate=gate)
    with pytest.raises(UserStreamError, match=r"not open.*with UserDataStream"):
        uds.create()
    assert server.requests == []


def test_a_call_after_with_is_a_user_stream_error(server: ScriptedServer, gate: BackoffGate) -> None:
    with UserDataStream(API_KEY, server.url, gate=gate) as uds:
        uds.create()
    with pytest.raises(UserStreamError, match="closed"):
        uds.create()
    with pytest.raises(UserStreamError, match="closed"):
        uds.client.get_httpx_client().post("/api/v3/userDataStream")
    with pytest.raises(UserStreamError, match="entered once"):
        uds.__enter__()
    assert len(server.requests) == 1


def test_async_calls_outside_async_with_are_user_stream_errors(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    async def main() -> None:
        uds = AsyncUserDataStream(API_KEY, server.url, gate=gate)
        with pytest.raises(UserStreamError, match=r"not open.*async with AsyncUserDataStream"):
            await uds.create()
        async with uds:
            await uds.create()
        with pytest.raises(UserStreamError, match="closed"):
            await uds.keepalive(LISTEN_KEY)
        with pytest.raises(UserStreamError, match="closed"):
            await uds.client.get_async_httpx_client().post("/api/v3/userDataStream")

    asyncio.run(main())
    assert len(server.requests) == 1


# -- 12. the key header is masked; errors carry no httpx objects -----------------------------------


def test_the_key_header_is_masked_in_a_requests_headers_repr() -> None:
    """While a request is in flight its headers hold the key: their repr hides it."""
    from binance_userstream._transport import _MaskedHeaders

    headers = _MaskedHeaders({"X-MBX-APIKEY": API_KEY, "Accept": "*/*"})
    assert API_KEY not in repr(headers)
    assert "[secure]" in repr(headers)
    assert "*/*" in repr(headers)


def test_the_httpx_clients_default_headers_never_hold_the_key(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    with UserDataStream(API_KEY, server.url, gate=gate) as uds:
        uds.create()
        headers = uds.client.get_httpx_client().headers
        assert API_KEY not in repr(headers)
        assert "x-mbx-apikey" not in headers
    assert server.requests[0].headers["x-mbx-apikey"] == API_KEY


def test_a_sent_requests_repr_and_headers_repr_hide_the_secrets(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    with UserDataStream(API_KEY, server.url, gate=gate) as uds:
        response = uds.client.get_httpx_client().delete(
            "/api/v3/userDataStream", params={"listenKey": LISTEN_KEY}
        )
    assert server.requests[0].headers["x-mbx-apikey"] == API_KEY  # sent ...
    assert "x-mbx-apikey" not in response.request.headers  # ... and taken out once answered
    assert LISTEN_KEY not in repr(response.request)
    assert "listenKey=pqia…" in repr(response.request)


def test_a_network_error_chains_no_httpx_error_and_its_frames_show_no_key(gate: BackoffGate) -> None:
    """An error tracker records the chain and each frame's locals by repr."""
    with UserDataStream(API_KEY, "http://127.0.0.1:9", retry=FAST_RETRY, gate=gate) as uds:
        with pytest.raises(NetworkError) as caught:
            uds.close(LISTEN_KEY)
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None
    tb = error.__traceback__
    seen_request = False
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            text = repr(value)
            assert API_KEY not in text
            if isinstance(value, httpx.Request):
                seen_request = True
                assert LISTEN_KEY not in text
        tb = tb.tb_next
    assert seen_request
