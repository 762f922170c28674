"""The facade: key handling, Binance-aware retries and typed errors, sync and async alike.

Facts from Binance's spot API docs. Every test talks HTTP over loopback to a scripted server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from binance_userstream import (
    AuthenticationError,
    BackoffGate,
    BinanceAPIError,
    EndpointRetiredError,
    IPBannedError,
    ListenKeyNotFoundError,
    NetworkError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    UserDataStream,
    UserStreamError,
)
from tests._both import Facade
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY, FAST_RETRY, FakeClock

RETIRED_HTML = (
    b"<html><head><title>410 Gone</title></head><body><center><h1>410 Gone</h1></center></body></html>"
)


def error_body(code: int, msg: str = "error") -> dict[str, Any]:
    return {"code": code, "msg": msg}


# -- the wire -------------------------------------------------------------------------------------


def test_create_returns_the_listen_key_sent_with_only_the_key_header(
    facade: Facade, server: ScriptedServer
) -> None:
    """USER_STREAM security: the API key in X-MBX-APIKEY, no signature, no timestamp."""
    assert facade("create") == LISTEN_KEY
    [seen] = server.requests
    assert (seen.method, seen.path, seen.query, seen.body) == ("POST", "/api/v3/userDataStream", {}, b"")
    assert seen.headers["x-mbx-apikey"] == API_KEY


def test_keepalive_sends_the_listen_key_in_a_form_body_and_returns_none(
    facade: Facade, server: ScriptedServer
) -> None:
    assert facade("keepalive", LISTEN_KEY) is None
    [seen] = server.requests
    assert (seen.method, seen.query, seen.form) == ("PUT", {}, {"listenKey": [LISTEN_KEY]})
    assert seen.headers["x-mbx-apikey"] == API_KEY


def test_close_sends_the_listen_key_in_the_query_and_returns_none(
    facade: Facade, server: ScriptedServer
) -> None:
    assert facade("close", LISTEN_KEY) is None
    [seen] = server.requests
    assert (seen.method, seen.query) == ("DELETE", {"listenKey": [LISTEN_KEY]})
    assert API_KEY not in seen.path
    assert seen.headers["x-mbx-apikey"] == API_KEY


def test_the_api_key_comes_from_the_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch, server: ScriptedServer, gate: BackoffGate
) -> None:
    monkeypatch.setenv("BINANCE_API_KEY", "env-key-123")
    with UserDataStream(base_url=server.url, gate=gate) as uds:
        uds.create()
    assert server.requests[0].headers["x-mbx-apikey"] == "env-key-123"


def test_no_api_key_anywhere_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="BINANCE_API_KEY"):
        UserDataStream(base_url="http://127.0.0.1:9")


def test_used_weight_reports_the_last_weight_headers(server: ScriptedServer, gate: BackoffGate) -> None:
    """Every response carries X-MBX-USED-WEIGHT-<n><S|M|H|D>."""
    server.script(Reply(body={"listenKey": LISTEN_KEY}, headers={"X-MBX-USED-WEIGHT-1M": "42"}))
    with UserDataStream(API_KEY, server.url, gate=gate) as uds:
        assert uds.used_weight == {}
        uds.create()
        assert uds.used_weight == {"1M": 42}


def test_named_hosts_resolve_to_binance_urls(gate: BackoffGate) -> None:
    assert UserDataStream(API_KEY, "testnet", gate=gate).base_url == "https://testnet.binance.vision"
    assert UserDataStream(API_KEY, "api3", gate=gate).base_url == "https://api3.binance.com"
    assert UserDataStream(API_KEY, gate=gate).base_url == "https://api.binance.com"


# -- bad input: a clear error, nothing sent -------------------------------------------------------

BAD_TOKENS = ["", " ", "abc def", "abc\n", "abc\x00", "clé", "\t", "key\r\nX-Evil: 1"]


@pytest.mark.parametrize("bad", BAD_TOKENS)
def test_a_malformed_api_key_is_refused_before_anything_is_sent(
    bad: str, server: ScriptedServer, gate: BackoffGate
) -> None:
    with pytest.raises(ValueError, match="api_key") as caught:
        UserDataStream(api_key=bad, base_url=server.url, gate=gate)
    assert server.requests == []
    if bad.strip():
        assert bad not in str(caught.value)


@pytest.mark.parametrize("bad", BAD_TOKENS)
@pytest.mark.parametrize("operation", ["keepalive", "close"])
def test_a_malformed_listen_key_is_refused_before_anything_is_sent(
    facade: Facade, server: ScriptedServer, operation: str, bad: str
) -> None:
    with pytest.raises(ValueError, match="listen_key"):
        facade(operation, bad)
    assert server.requests == []


def test_a_listen_key_that_is_not_a_string_is_refused(facade: Facade, server: ScriptedServer) -> None:
    with pytest.raises(TypeError, match="listen_key"):
        facade("keepalive", 12345)
    assert server.requests == []


@pytest.mark.parametrize(
    "url", ["http://api.binance.com", "http://10.0.0.1:8080", "ftp://127.0.0.1", "api.binance.com", "nohost"]
)
def test_plain_http_to_a_remote_host_and_odd_urls_are_refused(url: str, gate: BackoffGate) -> None:
    with pytest.raises(ValueError, match=r"base_url|plain http"):
        UserDataStream(API_KEY, url, gate=gate)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1", "https://x.test"]
)
def test_plain_http_to_loopback_and_any_https_are_allowed(url: str, gate: BackoffGate) -> None:
    UserDataStream(API_KEY, url, gate=gate)


# -- typed errors ----------------------------------------------------------------------------------

ERRORS = [
    # (status, body, expected class, expected code): binance-spot-api-docs errors.md
    (400, error_body(-1125, "This listenKey does not exist."), ListenKeyNotFoundError, -1125),
    (400, error_body(-2014, "API-key format invalid."), AuthenticationError, -2014),
    (401, error_body(-2015, "Invalid API-key, IP, or permissions for action."), AuthenticationError, -2015),
    (401, error_body(-1002, "You are not authorized to execute this request."), AuthenticationError, -1002),
    (400, error_body(-1102, "Mandatory parameter 'listenKey' was not sent."), BinanceAPIError, -1102),
    (403, error_body(-1000, "WAF"), BinanceAPIError, -1000),
]


@pytest.mark.parametrize(("status", "body", "cls", "code"), ERRORS)
@pytest.mark.parametrize("operation", ["create", "keepalive", "close"])
def test_a_4xx_answer_raises_its_class_at_once_without_retrying(
    facade: Facade, server: ScriptedServer, operation: str, status: int, body: Any, cls: type, code: int
) -> None:
    """4XX: the request is wrong; do not retry (except 429)."""
    server.script(Reply(status=status, body=body))
    args = () if operation == "create" else (LISTEN_KEY,)
    with pytest.raises(cls) as caught:
        facade(operation, *args)
    assert type(caught.value) is cls
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert body["msg"] in caught.value.msg
    assert len(server.requests) == 1


def test_a_4xx_with_a_body_that_is_not_json_still_raises_binance_api_error(
    facade: Facade, server: ScriptedServer
) -> None:
    server.script(Reply(status=403, raw=b"<html>Forbidden</html>", content_type="text/html"))
    with pytest.raises(BinanceAPIError) as caught:
        facade("create")
    assert (caught.value.status_code, caught.value.code) == (403, None)


@pytest.mark.parametrize("operation", ["create", "keepalive", "close"])
def test_410_with_an_html_body_names_the_retirement_and_is_never_retried(
    facade: Facade, server: ScriptedServer, operation: str
) -> None:
    """Since 2026-02-20 production answers 410 Gone with an HTML body (spot CHANGELOG 2026-01-21)."""
    server.script(Reply(status=410, raw=RETIRED_HTML, content_type="text/html"))
    args = () if operation == "create" else (LISTEN_KEY,)
    with pytest.raises(EndpointRetiredError) as caught:
        facade(operation, *args)
    text = str(caught.value)
    assert "2026-02-20" in text
    assert "userDataStream.subscribe" in text
    assert "WebSocket API" in text
    assert "<html>" not in text
    assert caught.value.status_code == 410
    assert len(server.requests) == 1


def test_a_200_with_a_malformed_body_is_a_user_stream_error(facade: Facade, server: ScriptedServer) -> None:
    server.script(Reply(body={"unexpected": True}))
    with pytest.raises(UserStreamError, match="malformed answer"):
        facade("create")


# -- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_answers_are_retried_until_success(facade: Facade, server: ScriptedServer, status: int) -> None:
    """5XX: outcome unknown; safe to retry, every operation is idempotent in effect."""
    server.script(Reply(status=status, body=error_body(-1001)), Reply(status=status, body=error_body(-1001)))
    assert facade("keepalive", LISTEN_KEY) is None
    assert [s.method for s in server.requests] == ["PUT"] * 3


def test_5xx_after_every_attempt_raises_server_error(facade: Facade, server: ScriptedServer) -> None:
    server.script(*[Reply(status=503, body=error_body(-1001, "Internal error; unable to process"))] * 5)
    with pytest.raises(ServerError) as caught:
        facade("create")
    assert (caught.value.status_code, caught.value.code) == (503, -1001)
    assert len(server.requests) == 5


def test_a_5xx_with_an_html_body_raises_server_error(facade: Facade, server: ScriptedServer) -> None:
    server.script(*[Reply(status=502, raw=b"<html>Bad Gateway</html>", content_type="text/html")] * 5)
    with pytest.raises(ServerError) as caught:
        facade("create")
    assert caught.value.code is None


def test_a_dropped_connection_is_retried(facade: Facade, server: ScriptedServer) -> None:
    """A server that closes the connection without answering: retried like any network failure."""
    server.script(Reply(drop=True), Reply(drop=True))
    assert facade("create") == LISTEN_KEY
    assert len(server.requests) == 3


def test_connections_dropped_every_time_raise_network_error_after_all_attempts(
    facade: Facade, server: ScriptedServer
) -> None:
    server.script(*[Reply(drop=True)] * 5)
    with pytest.raises(NetworkError, match="after 5 attempts"):
        facade("close", LISTEN_KEY)
    assert len(server.requests) == 5
    assert not isinstance(NetworkError("x"), BinanceAPIError)


def test_a_refused_connection_raises_network_error(gate: BackoffGate) -> None:
    retry = RetryPolicy(attempts=2, backoff_base=0.01)
    with UserDataStream(API_KEY, "http://127.0.0.1:9", retry=retry, gate=gate) as uds:
        with pytest.raises(NetworkError, match="ConnectError after 2 attempts"):
            uds.create()


def test_a_read_timeout_is_retried(server: ScriptedServer, gate: BackoffGate) -> None:
    server.script(Reply(delay=0.5))
    with UserDataStream(API_KEY, server.url, timeout=0.1, retry=FAST_RETRY, gate=gate) as uds:
        assert uds.create() == LISTEN_KEY
    assert len(server.requests) == 2


def test_429_waits_at_least_retry_after_then_succeeds(facade: Facade, server: ScriptedServer) -> None:
    """429 carries Retry-After in seconds; backing off is the client's obligation."""
    server.script(
        Reply(status=429, body=error_body(-1003, "Too many requests."), headers={"Retry-After": "1"})
    )
    assert facade("keepalive", LISTEN_KEY) is None
    first, second = server.requests
    assert second.at - first.at >= 1.0


def test_429_whose_wait_passes_the_deadline_fails_fast_with_retry_after(
    facade: Facade, server: ScriptedServer
) -> None:
    server.script(
        Reply(status=429, body=error_body(-1003, "Too many requests."), headers={"Retry-After": "60"})
    )
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        facade("create")
    assert time.monotonic() - started < 5
    assert (caught.value.status_code, caught.value.code, caught.value.retry_after) == (429, -1003, 60)
    assert len(server.requests) == 1


def test_after_a_429_nothing_is_sent_to_that_host_until_retry_after_has_passed(
    facade: Facade, server: ScriptedServer, clock: FakeClock
) -> None:
    server.script(Reply(status=429, body=error_body(-1003), headers={"Retry-After": "60"}))
    with pytest.raises(RateLimitedError):
        facade("create")
    with pytest.raises(RateLimitedError) as caught:
        facade("create")
    assert caught.value.retry_after == pytest.approx(60)
    assert len(server.requests) == 1
    clock.advance(60)
    assert facade("create") == LISTEN_KEY
    assert len(server.requests) == 2


def test_418_fails_fast_and_then_nothing_is_sent_until_the_ban_has_passed(
    facade: Facade, server: ScriptedServer, clock: FakeClock
) -> None:
    """418: the IP is banned for going on after 429s; bans last 2 minutes to 3 days."""
    ban = error_body(-1003, "Way too much request weight used; IP banned until 1767225600000.")
    server.script(Reply(status=418, body=ban, headers={"Retry-After": "120"}))
    with pytest.raises(IPBannedError) as caught:
        facade("keepalive", LISTEN_KEY)
    assert (caught.value.status_code, caught.value.code, caught.value.retry_after) == (418, -1003, 120)
    assert len(server.requests) == 1
    clock.advance(119)
    for operation, args in [("create", ()), ("keepalive", (LISTEN_KEY,)), ("close", (LISTEN_KEY,))]:
        with pytest.raises(IPBannedError) as again:
            facade(operation, *args)
        assert again.value.retry_after == pytest.approx(1)
    assert len(server.requests) == 1
    clock.advance(1)
    assert facade("create") == LISTEN_KEY
    assert len(server.requests) == 2


def test_a_418_without_retry_after_bans_for_the_shortest_ban(facade: Facade, server: ScriptedServer) -> None:
    server.script(Reply(status=418, body=error_body(-1003)))
    with pytest.raises(IPBannedError) as caught:
        facade("create")
    assert caught.value.retry_after == 120


def test_the_default_gate_is_shared_by_every_client_of_a_host(server: ScriptedServer) -> None:
    """Binance bans by IP, and every client in the process shares it: one client's ban stops the rest."""
    from binance_userstream import SHARED_GATE

    server.script(Reply(status=418, body=error_body(-1003), headers={"Retry-After": "300"}))
    try:
        with UserDataStream(API_KEY, server.url) as one, UserDataStream("other-key", server.url) as two:
            with pytest.raises(IPBannedError):
                one.create()
            with pytest.raises(IPBannedError):
                two.create()
        assert len(server.requests) == 1
    finally:
        SHARED_GATE.reset()


def test_a_ban_on_one_host_does_not_stop_another(server: ScriptedServer, gate: BackoffGate) -> None:
    other = ScriptedServer().start()
    try:
        server.script(Reply(status=418, body=error_body(-1003), headers={"Retry-After": "300"}))
        with (
            UserDataStream(API_KEY, server.url, gate=gate) as banned,
            UserDataStream(API_KEY, other.url, gate=gate) as ok,
        ):
            with pytest.raises(IPBannedError):
                banned.create()
            assert ok.create() == LISTEN_KEY
    finally:
        other.stop()


def test_the_deadline_stops_retries_whose_wait_would_pass_it(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    server.script(Reply(status=503, body=error_body(-1001), headers={"Retry-After": "2"}))
    retry = RetryPolicy(deadline=1.0)
    started = time.monotonic()
    with UserDataStream(API_KEY, server.url, retry=retry, gate=gate) as uds, pytest.raises(ServerError):
        uds.create()
    assert time.monotonic() - started < 1.0
    assert len(server.requests) == 1


def test_retries_can_be_turned_off(server: ScriptedServer, gate: BackoffGate) -> None:
    server.script(Reply(status=503, body=error_body(-1001)))
    with UserDataStream(API_KEY, server.url, retry=RetryPolicy.off(), gate=gate) as uds:
        with pytest.raises(ServerError):
            uds.create()
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "make",
    [lambda: RetryPolicy(attempts=0), lambda: RetryPolicy(deadline=0), lambda: RetryPolicy(backoff_base=-1)],
)
def test_a_nonsensical_retry_policy_is_refused(make: Callable[[], RetryPolicy]) -> None:
    with pytest.raises(ValueError, match="must be"):
        make()


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    """The n-th wait is uniform in [0, min(cap, base * 2**(n-1))]."""
    import tenacity

    policy = RetryPolicy(backoff_base=0.5, backoff_cap=8.0)
    wait = policy.tenacity_kwargs()["wait"]
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        state = tenacity.RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        state.outcome = tenacity.Future.construct(attempt, OSError(), True)
        samples = [wait(state) for _ in range(300)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8
        assert min(samples) < ceiling * 0.2


def test_the_deadline_counts_from_the_first_attempt(facade: Facade, server: ScriptedServer) -> None:
    """A slow first answer uses up the deadline too: 0.4 s answering + 0.3 s Retry-After > 0.6 s."""
    server.script(Reply(status=503, body=error_body(-1001), headers={"Retry-After": "0.3"}, delay=0.4))
    facade.options["retry"] = RetryPolicy(deadline=0.6)
    with pytest.raises(ServerError):
        facade("create")
    assert len(server.requests) == 1


def test_a_successful_call_sends_exactly_one_request(facade: Facade, server: ScriptedServer) -> None:
    facade("keepalive", LISTEN_KEY)
    assert len(server.requests) == 1


def test_cookies_set_by_a_server_are_neither_kept_nor_sent(server: ScriptedServer, gate: BackoffGate) -> None:
    """Binance's REST API uses no cookies; the client skips httpx's cookie jar (it costs time)."""
    server.script(Reply(body={"listenKey": LISTEN_KEY}, headers={"Set-Cookie": "session=abc; Path=/"}))
    with UserDataStream(API_KEY, server.url, gate=gate) as uds:
        uds.create()
        uds.create()
    assert "cookie" not in server.requests[1].headers
