"""The simulator's HTTP server against hostile or careless peers, and its lifecycle.

Control requests (`/_simulator/`) come only from this machine and carry `X-Simulator-Control`, so
that neither another host nor a web page can drive them. Requests are bounded in size (64 KiB of
body) and time (`request_timeout`), malformed ones are answered 400, and no failure of a handler
escapes as a traceback. Binding errors name the address; a wildcard bind gives a URL clients accept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from binance_userstream import UserDataStream, VirtualClock
from binance_userstream.simulator import Fault, Simulator
from tests.conftest import API_KEY

PATH = "/api/v3/userDataStream"
#: Spot's old lifecycle, retired in production, is the plain request these tests send.
pytestmark = pytest.mark.simulator(retired=False)
CONTROL = {"X-Simulator-Control": "1"}
DROP = json.dumps([Fault.drop().to_json()])


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def raw(url: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send `data` as is; return what comes back once a response head is in, or the server closes."""
    with socket.create_connection((urlsplit(url).hostname, port_of(url)), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
                received += chunk
        return received


def status_of(answer: bytes) -> int:
    """The status code of a raw answer (aiohttp answers a request it cannot parse in HTTP/1.0)."""
    return int(answer.split(b"\r\n", 1)[0].split()[1])


def server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the simulator and its HTTP library logged (not the test's own client)."""
    return [r for r in caplog.records if r.name.startswith(("binance_userstream.simulator", "aiohttp"))]


def non_loopback_address() -> str:
    """An address of this machine that is not loopback (where a packet from it would come from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, a route is chosen
        except OSError:
            pytest.skip("this machine has no non-loopback IPv4 address")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


# -- control requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/_simulator/faults"), ("POST", "/_simulator/forget-keys"), ("GET", "/_simulator/state")],
)
def test_control_requests_without_the_control_header_are_refused(
    sim: Simulator, method: str, path: str
) -> None:
    response = httpx.request(method, sim.url + path, content=DROP if method == "POST" else None)
    assert response.status_code == 403
    assert "X-Simulator-Control" in response.json()["msg"]
    assert sim.pending_faults() == 0


def test_a_web_page_cannot_inject_faults_with_a_text_plain_post(sim: Simulator) -> None:
    """What a cross-origin form or fetch() can send without a CORS preflight: a 'simple' request."""
    headers = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
    response = httpx.post(sim.url + "/_simulator/faults", content=DROP, headers=headers)
    assert response.status_code == 403
    assert sim.pending_faults() == 0


def test_control_requests_naming_another_host_are_refused(sim: Simulator) -> None:
    """A page that rebinds its own DNS name to 127.0.0.1 may send any header, but its Host is its name."""
    headers = {**CONTROL, "Host": f"rebound.example:{port_of(sim.url)}"}
    response = httpx.post(sim.url + "/_simulator/faults", content=DROP, headers=headers)
    assert response.status_code == 403
    assert sim.pending_faults() == 0


def test_control_requests_from_another_machine_are_refused(vclock: VirtualClock) -> None:
    address = non_loopback_address()
    with Simulator("0.0.0.0", clock=vclock, retired=False) as sim:  # noqa: S104 (the point of the test)
        url = f"http://{address}:{port_of(sim.url)}"
        response = httpx.post(url + "/_simulator/faults", content=DROP, headers=CONTROL)
        assert response.status_code == 403
        assert "loopback" in response.json()["msg"]
        assert sim.pending_faults() == 0
        assert httpx.post(url + PATH, headers={"X-MBX-APIKEY": API_KEY}).status_code == 200


# -- WebSocket upgrades from web pages -------------------------------------------------------------


def upgrade(url: str, origin: str | None) -> int:
    """The status a WebSocket upgrade of `url` with this Origin header is answered (101: upgraded)."""
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    if origin is not None:
        headers["Origin"] = origin
    with httpx.stream("GET", url, headers=headers) as response:
        return response.status_code


@pytest.mark.parametrize("path", ["/ws-api/v3", "/private/ws?listenKey=x", "/ws/x"])
@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_a_websocket_upgrade_from_a_web_page_of_another_origin_is_refused(
    sim: Simulator, path: str, origin: str
) -> None:
    """A browser sends Origin with every upgrade and WebSockets know no CORS: without this check any
    page a developer visits could open the WebSocket API with the published test key."""
    assert upgrade(sim.url + path, origin) == 403


@pytest.mark.parametrize(
    "origin",
    [None, "http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:5173", "https://app.example"],
)
def test_python_clients_this_machines_pages_and_allowed_origins_may_upgrade(
    vclock: VirtualClock, origin: str | None
) -> None:
    with Simulator(clock=vclock, allowed_origins=["https://APP.example/"]) as sim:
        assert upgrade(sim.ws_api_url.replace("ws://", "http://"), origin) == 101


def test_allowed_origins_none_lets_any_page_upgrade(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, allowed_origins=None) as sim:
        assert upgrade(sim.ws_api_url.replace("ws://", "http://"), "https://evil.example") == 101


@pytest.mark.parametrize("origins", ["https://app.example", ["app.example"], ["https://app.example/path"]])
def test_an_allowed_origin_that_is_no_origin_is_refused(origins: object) -> None:
    with pytest.raises(ValueError, match="origin"):
        Simulator(allowed_origins=origins)  # type: ignore[arg-type]


def test_the_simulator_command_allows_the_origins_it_is_given() -> None:
    command = [sys.executable, "-m", "binance_userstream", "simulator", "--port", "0"]
    with subprocess.Popen(
        [*command, "--allow-origin", "https://app.example"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split()[-1] + "/ws-api/v3"
            statuses = [upgrade(url, origin) for origin in ("https://app.example", "https://evil.example")]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert statuses == [101, 403]


def test_control_requests_with_the_header_from_this_machine_are_served(sim: Simulator) -> None:
    response = httpx.post(sim.url + "/_simulator/faults", content=DROP, headers=CONTROL)
    assert response.json() == {"queued": 1}
    assert httpx.get(sim.url + "/_simulator/state", headers=CONTROL).json()["pending_faults"] == 1


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "JSON"),
        (b'{"kind": "drop"}', "list"),
        (b'[{"kind": "teapot"}]', "unknown fault kind"),
        (b'[{"kind": "status", "status": 200}]', "410, 418, 429 or a 5XX"),
        (b'[{"kind": "status", "status": "abc"}]', "status must be an integer"),
        (b'[{"kind": "delay", "delay": -1}]', "delay must be"),
        (b'[{"kind": "delay", "delay": NaN}]', "delay must be"),
        (b'[{"kind": "status", "status": 429, "retry_after": Infinity}]', "retry_after must be"),
        (b"[" * 30_000 + b"]" * 30_000, "JSON"),
        (b"[\xff]", "JSON"),
    ],
)
def test_a_bad_fault_is_answered_400_with_what_is_wrong(sim: Simulator, body: bytes, complaint: str) -> None:
    response = httpx.post(sim.url + "/_simulator/faults", content=body, headers=CONTROL)
    assert response.status_code == 400
    assert complaint in response.json()["msg"]
    assert sim.pending_faults() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Fault.slow(-1),
        lambda: Fault.slow(math.nan),
        lambda: Fault.slow(math.inf),
        lambda: Fault.rate_limited(math.inf),
        lambda: Fault.server_error(200),
        lambda: Fault("status"),
    ],
)
def test_a_fault_the_server_could_not_serve_is_refused(make: object) -> None:
    with pytest.raises(ValueError, match=r"must be|a status fault"):
        make()  # type: ignore[operator]


def test_the_unknown_fault_message_lists_every_form() -> None:
    with pytest.raises(ValueError, match="unknown fault") as caught:
        Fault.parse("teapot")
    for form in ("5XX", "429:SECONDS", "418:SECONDS", "410", "drop", "lose-keys", "delay:SECONDS"):
        assert form in str(caught.value)


# -- bounded requests ---------------------------------------------------------------------------


def test_a_body_announced_over_64_kib_is_answered_413_without_being_read(sim: Simulator) -> None:
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {300 * 2**20}\r\n\r\n".encode()
    assert status_of(raw(sim.url, head)) == 413
    assert sim.exchange.live_keys() == 0


def test_a_chunked_body_over_64_kib_is_answered_413(sim: Simulator) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"listenKey=" + b"x" * 4096

    response = httpx.put(
        sim.url + PATH,
        content=chunks(),
        headers={"X-MBX-APIKEY": API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


def test_a_query_past_aiohttps_8_kib_request_line_is_answered_in_binances_json(sim: Simulator) -> None:
    """aiohttp refuses a request line over 8190 bytes itself, in text/plain, before the simulator's
    handler; the simulator reads up to 1 MiB, so such a query gets Binance's JSON error."""
    response = httpx.put(sim.url + PATH + "?listenKey=" + "x" * 9000, headers={"X-MBX-APIKEY": API_KEY})
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == -1125


def test_a_header_past_aiohttps_8_kib_is_answered_in_binances_json(sim: Simulator) -> None:
    response = httpx.post(sim.url + PATH, headers={"X-MBX-APIKEY": "x" * 9000})
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == -2014


def test_a_request_line_over_1_mib_is_refused(sim: Simulator) -> None:
    head = f"PUT {PATH}?listenKey={'x' * 2**20} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    assert status_of(raw(sim.url, head)) == 400


def test_a_body_of_64_kib_is_read(sim: Simulator) -> None:
    body = b"listenKey=" + b"x" * (64 * 1024 - 10)
    response = httpx.put(
        sim.url + PATH,
        content=body,
        headers={"X-MBX-APIKEY": API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["code"] == -1125


@pytest.mark.parametrize("length", ["-5", "abc", "1e3", "5, 6"])
def test_a_bad_content_length_is_answered_400(sim: Simulator, length: str) -> None:
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    assert status_of(raw(sim.url, head)) == 400


def test_a_malformed_request_is_answered_400_and_logged_at_debug_only(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = raw(
        sim.url, f"PUT {PATH}?listenKey={'k' * 60} HTTP/1.1\r\nHost: x\r\nBad\x01: y\r\n\r\n".encode()
    )
    assert status_of(answer) == 400
    assert server_records(caplog)
    assert all(r.levelno == logging.DEBUG for r in server_records(caplog))
    assert "k" * 60 not in "".join(r.getMessage() for r in server_records(caplog))


def test_a_half_sent_request_head_is_dropped_after_the_request_timeout(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, request_timeout=0.5) as sim:
        started = time.monotonic()
        answer = raw(sim.url, f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode(), timeout=10)
        assert answer == b""
        assert time.monotonic() - started < 5


def test_a_half_sent_body_is_answered_408_after_the_request_timeout(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, request_timeout=0.5) as sim:
        started = time.monotonic()
        head = f"PUT {PATH} HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: {API_KEY}\r\nContent-Length: 100\r\n\r\n"
        answer = raw(sim.url, head.encode() + b"listenKey=", timeout=10)
        assert status_of(answer) == 408
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf])
def test_the_request_timeout_must_be_positive_and_finite(timeout: float) -> None:
    with pytest.raises(ValueError, match="request_timeout"):
        Simulator(request_timeout=timeout)


def test_a_failing_handler_answers_500_without_a_traceback_or_a_secret(
    sim: Simulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s" * 60

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"the exchange broke on listenKey {secret}")

    monkeypatch.setattr(sim.exchange, "handle", broken)
    caplog.set_level(logging.DEBUG)
    response = httpx.put(sim.url + PATH, params={"listenKey": secret}, headers={"X-MBX-APIKEY": API_KEY})
    assert response.status_code == 500
    assert response.json()["code"] == -1000
    assert "Traceback" not in response.text
    logged = "".join(r.getMessage() for r in server_records(caplog))
    assert secret not in response.text + logged
    assert API_KEY not in logged
    assert all(r.levelno == logging.DEBUG for r in server_records(caplog))
    assert "RuntimeError" in logged
    assert httpx.post(sim.url + "/_simulator/forget-keys", headers=CONTROL).status_code == 200


# -- binding and lifecycle ----------------------------------------------------------------------


def test_an_address_in_use_is_named_in_the_error(sim: Simulator) -> None:
    port = port_of(sim.url)
    with pytest.raises(OSError, match=rf"127\.0\.0\.1:{port}.*in use") as caught:
        Simulator(port=port)
    assert "\n" not in str(caught.value)


def test_a_wildcard_bind_gives_a_loopback_url_that_clients_accept(vclock: VirtualClock) -> None:
    with Simulator("0.0.0.0", clock=vclock, retired=False) as sim:  # noqa: S104 (the point of the test)
        assert sim.url == f"http://127.0.0.1:{port_of(sim.url)}"
        assert sim.all_interfaces
        with UserDataStream(API_KEY, sim.url) as uds:
            assert len(uds.create()) == 60


def test_an_ipv6_wildcard_bind_gives_the_ipv6_loopback_url(vclock: VirtualClock) -> None:
    try:
        sim = Simulator("::", clock=vclock, retired=False)
    except OSError:
        pytest.skip("no IPv6 on this machine")
    with sim:
        assert sim.url == f"http://[::1]:{port_of(sim.url)}"
        assert httpx.post(sim.url + PATH, headers={"X-MBX-APIKEY": API_KEY}).status_code == 200


def test_a_loopback_bind_is_not_all_interfaces(sim: Simulator) -> None:
    assert not sim.all_interfaces
    assert sim.url == f"http://127.0.0.1:{port_of(sim.url)}"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"weight_limit": 0}, "weight_limit"),
        ({"weight_limit": -5}, "weight_limit"),
        ({"violations_before_ban": -1}, "violations_before_ban"),
        ({"port": -1}, "port"),
        ({"port": 70000}, "port"),
    ],
)
def test_out_of_range_options_are_refused(options: dict[str, int], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Simulator(**options)  # type: ignore[arg-type]


def test_stop_does_not_wait_for_a_delayed_answer(vclock: VirtualClock) -> None:
    sim = Simulator(clock=vclock).start()
    sim.inject(Fault.slow(30))
    done = threading.Event()

    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(sim.url + PATH, headers={"X-MBX-APIKEY": API_KEY}, timeout=60)
        done.set()

    threading.Thread(target=call, daemon=True).start()
    deadline = time.monotonic() + 5
    while sim.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 3
    assert done.wait(5)


def test_a_stopped_simulator_frees_its_port(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock) as sim:
        port = port_of(sim.url)
    with Simulator(port=port, clock=vclock, retired=False) as again:
        assert httpx.post(again.url + PATH, headers={"X-MBX-APIKEY": API_KEY}).status_code == 200


def test_a_shortened_ping_interval_and_lifetime_are_the_streams() -> None:
    with Simulator(ping_interval=0.5, connection_lifetime=3.0) as sim:
        assert set(sim.streams.ping_intervals.values()) == {0.5}
        assert sim.streams.connection_lifetime == 3.0


def test_by_default_streams_ping_and_live_as_binance_s() -> None:
    with Simulator() as sim:
        assert sim.streams.ping_intervals["usdm"] == 180.0
        assert sim.streams.connection_lifetime == 86_400.0


@pytest.mark.parametrize("option", ["ping_interval", "connection_lifetime"])
@pytest.mark.parametrize("seconds", [0, -1, float("inf"), "1"])
def test_a_ping_interval_or_lifetime_that_is_no_positive_number_is_refused(
    option: str, seconds: object
) -> None:
    with pytest.raises(ValueError, match=f"{option} must be a finite number of seconds > 0"):
        Simulator(**{option: seconds})  # type: ignore[arg-type]
