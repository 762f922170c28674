"""SIGNED operations are signed by the HTTP layer because the spec's security says so.

The package's own operations are all USER_STREAM (margin's listenToken too: see
tests/test_listen_token.py), so these tests sign the listenToken mint as a spec declaring it SIGNED
would (`listen_token_declared_signed`): the package's one REST operation with parameters.

Binance's rules (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security):
a SIGNED request carries `timestamp` and `signature`, the signature computed over `totalParams`,
the query string followed by the form body with no separator, percent-encoded (required since
2026-01-15); -1022 answers a wrong signature, -1021 a timestamp outside recvWindow. The margin
listenToken is https://developers.binance.com/docs/margin_trading/trade-data-stream/Listen-Token-Websocket-API.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from binance_userstream_client.models import ListenToken
from binance_userstream_client.security import OPERATION_EXTENSION
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from binance_userstream import (
    AsyncUserDataStream,
    BackoffGate,
    RetryPolicy,
    SignatureError,
    SignerMissingError,
    TimestampError,
    UserDataStream,
    VirtualClock,
)
from binance_userstream._signing import Credentials, load_signer
from binance_userstream._transport import RetryingTransport, UsedWeight
from tests._both import Facade
from tests._scripted import Reply, ScriptedServer, Seen
from tests.conftest import API_KEY, FAST_RETRY

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
TOKEN = "6xXxePXwZRjVSHKhzUCCGnmN3fkvMTXru+pYJS8RwijXk9Vcyr3rkwfVOTcP2OkONqciYA"
TOKEN_REPLY = Reply(body={"token": TOKEN, "expirationTime": 1758792204196})
PATH = "/sapi/v1/userListenToken"
pytestmark = pytest.mark.usefixtures("listen_token_declared_signed")


@pytest.fixture(autouse=True)
def _no_signing_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE", "BINANCE_PRIVATE_KEY_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)


def hmac_hex(payload: str) -> str:
    return hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


def split_signature(raw: str) -> tuple[str, str]:
    """(the signed part, the signature) of a query or body whose last parameter is the signature."""
    signed, _, last = raw.rpartition("&")
    name, _, value = last.partition("=")
    assert name == "signature", raw
    return signed, unquote(value)


def timestamp_of(seen: Seen) -> int:
    (value,) = seen.query["timestamp"]
    return int(value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_listen_token_request_carries_timestamp_then_an_hmac_signature_last(
    mode: str, server: ScriptedServer, gate: BackoffGate
) -> None:
    server.script(TOKEN_REPLY)
    facade = Facade(mode, api_key=API_KEY, base_url=server.url, gate=gate, api_secret=SECRET)
    before = int(time.time() * 1000)
    answer = facade("create_listen_token")
    assert isinstance(answer, ListenToken)
    assert answer.token == TOKEN
    assert answer.expiration_time == 1758792204196
    (seen,) = server.requests
    assert (seen.method, seen.path) == ("POST", PATH)
    assert seen.headers["x-mbx-apikey"] == API_KEY
    signed, signature = split_signature(seen.raw_query)
    assert signed == f"timestamp={timestamp_of(seen)}"
    assert signature == hmac_hex(signed)
    assert before <= timestamp_of(seen) <= int(time.time() * 1000)


def test_an_isolated_token_sends_symbol_and_is_isolated_true_and_validity_in_milliseconds(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    """Binance documents isIsolated as a BOOLEAN, "true means isolated"."""
    server.script(TOKEN_REPLY)
    with UserDataStream(API_KEY, server.url, gate=gate, api_secret=SECRET) as uds:
        uds.create_listen_token("BNBUSDT", validity=3600)
    (seen,) = server.requests
    signed, signature = split_signature(seen.raw_query)
    assert signed == f"symbol=BNBUSDT&isIsolated=true&validity=3600000&timestamp={timestamp_of(seen)}"
    assert signature == hmac_hex(signed)


@pytest.mark.parametrize("validity", [0, -1, 86_401, float("nan"), True])
def test_a_validity_binance_refuses_is_a_value_error_before_sending(
    validity: float, server: ScriptedServer, gate: BackoffGate
) -> None:
    with UserDataStream(API_KEY, server.url, gate=gate, api_secret=SECRET) as uds:
        with pytest.raises(ValueError, match="validity"):
            uds.create_listen_token(validity=validity)
    assert server.requests == []


def test_an_ed25519_signature_is_percent_encoded_base64_that_verifies(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server.script(TOKEN_REPLY)
    with UserDataStream(API_KEY, server.url, gate=gate, private_key=pem) as uds:
        uds.create_listen_token("BTCUSDT")
        assert repr(uds).endswith("signer='ed25519')")
    (seen,) = server.requests
    signed, signature = split_signature(seen.raw_query)
    assert seen.raw_query.rpartition("signature=")[2] == quote(signature, safe="")
    key.public_key().verify(base64.b64decode(signature, validate=True), signed.encode())


class SteppingClock(VirtualClock):
    """Virtual time whose wall time moves a second each time it is read: each attempt's own timestamp."""

    def wall(self) -> float:
        self.advance(1.0)
        return super().wall()


def test_each_retry_is_signed_anew_with_a_fresh_timestamp(server: ScriptedServer, gate: BackoffGate) -> None:
    server.script(Reply(status=503, body={"code": -1001, "msg": "busy"}), Reply(drop=True), TOKEN_REPLY)
    with UserDataStream(API_KEY, server.url, gate=gate, retry=FAST_RETRY, api_secret=SECRET) as uds:
        uds._credentials.clock = SteppingClock()
        uds.create_listen_token()
    stamps = [timestamp_of(seen) for seen in server.requests]
    assert len(stamps) == 3
    assert len(set(stamps)) == 3
    for seen in server.requests:
        assert seen.raw_query.count("timestamp=") == 1
        assert seen.raw_query.count("signature=") == 1
        signed, signature = split_signature(seen.raw_query)
        assert signature == hmac_hex(signed)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_no_signer_fails_before_sending_naming_the_operation_and_what_to_pass(
    mode: str, server: ScriptedServer, gate: BackoffGate
) -> None:
    facade = Facade(mode, api_key=API_KEY, base_url=server.url, gate=gate)
    with pytest.raises(SignerMissingError, match="create_margin_listen_token") as caught:
        facade("create_listen_token")
    assert "api_secret= or private_key=" in str(caught.value)
    assert server.requests == []


def test_unsigned_operations_carry_no_timestamp_nor_signature(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    with UserDataStream(API_KEY, server.url, market="usdm", gate=gate, api_secret=SECRET) as uds:
        uds.create()
    (seen,) = server.requests
    assert seen.raw_query == ""


@pytest.mark.parametrize("status", [400, 401])
def test_a_wrong_signature_is_a_signature_error_that_says_what_to_check(
    status: int, server: ScriptedServer, gate: BackoffGate
) -> None:
    server.script(
        Reply(status=status, body={"code": -1022, "msg": "Signature for this request is not valid."})
    )
    with UserDataStream(API_KEY, server.url, gate=gate, api_secret=SECRET) as uds:
        with pytest.raises(SignatureError) as caught:
            uds.create_listen_token()
    assert caught.value.code == -1022
    assert "secret" in str(caught.value)
    assert "key type" in str(caught.value)
    assert len(server.requests) == 1


def test_a_minus_1021_teaches_the_server_clock_from_date_and_the_call_is_sent_once_more(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    """The local clock 30 s ahead: refused, then resent on the server's clock, and accepted."""
    ahead = VirtualClock()
    ahead.advance(30)
    server.script(
        Reply(status=400, body={"code": -1021, "msg": "Timestamp for this request was 1000ms ahead"}),
        TOKEN_REPLY,
    )
    with UserDataStream(API_KEY, server.url, gate=gate, api_secret=SECRET) as uds:
        uds._credentials.clock = ahead
        uds.create_listen_token()
        offset = uds._credentials.offset_ms
    first, second = server.requests
    now = int(time.time() * 1000)
    assert timestamp_of(first) > now + 25_000
    assert now - 3_000 <= timestamp_of(second) <= now
    assert -32_000 < offset < -29_000
    signed, signature = split_signature(second.raw_query)
    assert signature == hmac_hex(signed)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_minus_1021_twice_is_a_timestamp_error_after_one_resend(
    mode: str, server: ScriptedServer, gate: BackoffGate
) -> None:
    refused = Reply(
        status=400, body={"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
    )
    server.script(refused, refused, refused)
    facade = Facade(mode, api_key=API_KEY, base_url=server.url, gate=gate, api_secret=SECRET)
    with pytest.raises(TimestampError, match="synchronise it"):
        facade("create_listen_token")
    assert len(server.requests) == 2


def test_the_clock_offset_learned_is_the_clients_one_credentials(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    """One Credentials object: what the HTTP layer learns, the WebSocket stream signs with."""
    ahead = VirtualClock()
    ahead.advance(30)
    server.script(Reply(status=400, body={"code": -1021, "msg": "ahead"}), TOKEN_REPLY)
    with UserDataStream(API_KEY, server.url, gate=gate, api_secret=SECRET) as uds:
        uds._credentials.clock = ahead
        uds.create_listen_token()
        signed = uds._credentials.sign_ws({})
    assert abs(int(signed["timestamp"]) - int(time.time() * 1000)) < 3_000  # type: ignore[call-overload]


# --- the layer alone, on a mock transport: a form body, an answer without Date --------------------


def _layer(handler: Any, credentials: Credentials) -> httpx.Client:
    transport = RetryingTransport(
        httpx.MockTransport(handler), RetryPolicy.off(), BackoffGate(), UsedWeight(), credentials=credentials
    )
    return httpx.Client(transport=transport, base_url="https://api.binance.com")


def _credentials() -> Credentials:
    return Credentials(API_KEY, load_signer(SECRET, environ={}))


def test_a_form_body_is_signed_after_the_query_with_no_separator_timestamp_and_signature_last() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with _layer(handler, _credentials()) as client:
        client.post(
            "/sapi/v1/example",
            params={"symbol": "LTCBTC"},
            data={"quantity": "1", "note": "a b+c"},
            extensions={OPERATION_EXTENSION: "create_margin_listen_token"},
        )
    (request,) = seen
    query, body = request.url.query.decode(), request.content.decode()
    assert query == "symbol=LTCBTC"
    signed, signature = split_signature(body)
    assert signed.startswith("quantity=1&note=a+b%2Bc&timestamp=")
    assert signature == hmac_hex(query + signed)
    assert request.headers["content-length"] == str(len(request.content))


def test_a_minus_1021_without_a_date_is_a_timestamp_error_at_once() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, json={"code": -1021, "msg": "outside of the recvWindow"})

    with _layer(handler, _credentials()) as client:
        with pytest.raises(TimestampError):
            client.post(PATH, extensions={OPERATION_EXTENSION: "create_margin_listen_token"})
    assert len(calls) == 1


def test_a_date_header_is_read_to_the_second() -> None:
    from binance_userstream._transport import _server_time_ms

    now = 1_758_792_204.0
    headers = httpx.Headers({"date": email.utils.formatdate(now, usegmt=True)})
    assert _server_time_ms(headers) == 1_758_792_204_000
    assert _server_time_ms(httpx.Headers({"date": "garbage"})) is None
    assert _server_time_ms(httpx.Headers()) is None


def test_the_async_client_signs_the_same_way(server: ScriptedServer, gate: BackoffGate) -> None:
    async def main() -> ListenToken:
        async with AsyncUserDataStream(API_KEY, server.url, gate=gate, api_secret=SECRET) as uds:
            return await uds.create_listen_token("ETHUSDT", validity=60.5)

    server.script(TOKEN_REPLY)
    answer = asyncio.run(main())
    assert TOKEN not in repr(answer)
    (seen,) = server.requests
    assert seen.query["validity"] == ["60500"]
    signed, signature = split_signature(seen.raw_query)
    assert signature == hmac_hex(signed)
