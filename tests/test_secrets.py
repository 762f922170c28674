"""Nothing secret leaks: the API key and full listenKeys stay out of logs, reprs and exception text.

Binance's docs: a listenKey is a credential (whoever holds it reads the account's private
stream); API keys printed by debug logging are a known complaint about other clients.
"""

from __future__ import annotations

import logging
import traceback

import pytest

from binance_userstream import BackoffGate, UserDataStream, UserStreamError
from tests._both import Facade
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY, FAST_RETRY

SECRETS = (API_KEY, LISTEN_KEY)
FAULTS = [
    Reply(status=503, body={"code": -1001, "msg": "Internal error"}),
    Reply(drop=True),
    Reply(status=429, body={"code": -1003, "msg": "Too many requests"}, headers={"Retry-After": "0"}),
]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_no_log_record_of_any_logger_at_any_level_holds_a_secret(
    mode: str, server: ScriptedServer, gate: BackoffGate, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs request URLs at INFO, httpcore its traffic at DEBUG: all of it is scanned."""
    facade = Facade(mode, api_key=API_KEY, base_url=server.url, retry=FAST_RETRY, gate=gate)
    caplog.set_level(logging.DEBUG)
    for operation, args in [("create", ()), ("keepalive", (LISTEN_KEY,)), ("close", (LISTEN_KEY,))]:
        server.script(*FAULTS)
        facade(operation, *args)
    server.script(Reply(status=400, body={"code": -1125, "msg": "This listenKey does not exist."}))
    with pytest.raises(UserStreamError):
        facade("close", LISTEN_KEY)

    records = caplog.records
    loggers = {r.name for r in records}
    assert "httpx" in loggers  # the DELETE URL, with its listenKey, was logged ...
    assert any(r.name.startswith("httpcore") for r in records)
    assert any(r.name == "binance_userstream" and "retrying in" in r.getMessage() for r in records)
    for record in records:  # ... and redacted, like everything else
        assert_no_secret(record.getMessage())
        assert_no_secret(logging.Formatter("%(message)s %(args)s").format(record))
    assert any("listenKey=pqia…" in r.getMessage() for r in records)


def test_reprs_show_at_most_a_key_prefix(server: ScriptedServer, gate: BackoffGate) -> None:
    with UserDataStream(API_KEY, server.url, gate=gate) as uds:
        uds.create()
        for text in (repr(uds), str(uds), repr(uds.client), repr(uds.client.get_httpx_client())):
            assert_no_secret(text)
        assert "vmPU…" in repr(uds)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=400, body={"code": -1125, "msg": "This listenKey does not exist."}),
        Reply(status=400, body={"code": -1102, "msg": f"bad listenKey={LISTEN_KEY}"}),
        Reply(status=410, raw=b"<html>Gone</html>", content_type="text/html"),
        Reply(status=418, body={"code": -1003, "msg": "banned"}, headers={"Retry-After": "5"}),
    ],
)
def test_exception_text_and_traceback_hold_no_secret(
    server: ScriptedServer, gate: BackoffGate, reply: Reply
) -> None:
    server.script(reply)
    with UserDataStream(API_KEY, server.url, gate=gate) as uds, pytest.raises(UserStreamError) as caught:
        uds.close(LISTEN_KEY)
    assert_no_secret(str(caught.value))
    assert_no_secret(repr(caught.value))
    assert_no_secret("".join(traceback.format_exception(caught.value)))


def test_network_error_text_holds_no_secret(gate: BackoffGate) -> None:
    with UserDataStream(API_KEY, "http://127.0.0.1:9", retry=FAST_RETRY, gate=gate) as uds:
        with pytest.raises(UserStreamError) as caught:
            uds.close(LISTEN_KEY)
    assert_no_secret("".join(traceback.format_exception(caught.value)))


def test_an_invalid_key_is_not_echoed_in_the_error(gate: BackoffGate) -> None:
    bad = API_KEY + " tail"
    with pytest.raises(ValueError, match="whitespace") as caught:
        UserDataStream(bad, "http://127.0.0.1:9", gate=gate)
    assert API_KEY not in str(caught.value)
