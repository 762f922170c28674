"""Nothing secret of signing leaks: the API secret, the private key's PEM and its passphrase stay out
of every log record, repr and exception text, on a signed call that succeeds and on ones that fail.

Binance's docs: "Both API key and secret key are sensitive. Never share them with anyone"
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security). The
signature is no secret, but it is kept out of logs too, like the listenToken of the answer.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from pathlib import Path

import pytest
from binance_userstream_client.api.margin import create_margin_listen_token
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from binance_userstream import AsyncUserDataStream, BackoffGate, UserDataStream, UserStreamError
from binance_userstream._signing import load_signer
from tests._scripted import Reply, ScriptedServer
from tests.conftest import API_KEY, FAST_RETRY

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PASSPHRASE = "a passphrase nobody may see"
TOKEN = "6xXxePXwZRjVSHKhzUCCGnmN3fkvMTXru+pYJS8RwijXk9Vcyr3rkwfVOTcP2OkONqciYA"
TOKEN_REPLY = Reply(body={"token": TOKEN, "expirationTime": 1758792204196})
FAILURES = {
    "-1022": [Reply(status=400, body={"code": -1022, "msg": "Signature for this request is not valid."})],
    "-1021": [
        Reply(
            status=400,
            body={"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
        )
    ]
    * 2,
    "server": [Reply(status=503, body={"code": -1001, "msg": "busy"})] * 5,
}


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )


@pytest.fixture(params=["hmac", "ed25519"])
def credentials(request: pytest.FixtureRequest, key_pem: bytes, tmp_path: Path) -> dict[str, object]:
    """The client's signing keywords: an HMAC secret, or an encrypted Ed25519 key file and its passphrase."""
    if request.param == "hmac":
        return {"api_secret": SECRET}
    path = tmp_path / "key.pem"
    path.write_bytes(key_pem)
    return {"private_key": path, "private_key_passphrase": PASSPHRASE}


def secrets_of(key_pem: bytes) -> list[str]:
    lines = [line.decode() for line in key_pem.splitlines() if line and not line.startswith(b"-----")]
    return [SECRET, PASSPHRASE, key_pem.decode(), *lines]


def assert_clean(text: str, key_pem: bytes) -> None:
    for secret in secrets_of(key_pem):
        assert secret not in text


def _calls(
    mode: str,
    server: ScriptedServer,
    gate: BackoffGate,
    credentials: dict[str, object],
    url: str | None = None,
) -> list[object]:
    """A succeeding signed call, then one for each failure; the reprs and errors seen on the way."""
    seen: list[object] = []
    options = dict(api_key=API_KEY, base_url=url or server.url, gate=gate, retry=FAST_RETRY, **credentials)

    def sync() -> None:
        with UserDataStream(**options) as uds:  # type: ignore[arg-type]
            seen.extend([uds, uds._credentials, uds._credentials.signer, uds.client])
            server.script(TOKEN_REPLY, TOKEN_REPLY)
            seen.append(uds.create_listen_token())
            seen.append(create_margin_listen_token.sync_detailed(client=uds.client))
            for replies in FAILURES.values():
                server.script(*replies)
                with pytest.raises(UserStreamError) as caught:
                    uds.create_listen_token()
                seen.append(caught.value)

    async def asynchronous() -> None:
        async with AsyncUserDataStream(**options) as uds:  # type: ignore[arg-type]
            seen.extend([uds, uds._credentials, uds._credentials.signer])
            server.script(TOKEN_REPLY)
            seen.append(await uds.create_listen_token())
            for replies in FAILURES.values():
                server.script(*replies)
                with pytest.raises(UserStreamError) as caught:
                    await uds.create_listen_token()
                seen.append(caught.value)

    if mode == "sync":
        sync()
    else:
        asyncio.run(asynchronous())
    return seen


@pytest.mark.usefixtures("listen_token_declared_signed")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_no_log_record_repr_or_error_of_a_signed_call_holds_a_signing_secret(
    mode: str,
    server: ScriptedServer,
    gate: BackoffGate,
    credentials: dict[str, object],
    key_pem: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = _calls(mode, server, gate, credentials)
    records = caplog.records
    assert any(r.name == "httpx" and "userListenToken" in r.getMessage() for r in records)
    assert any("-1021" in r.getMessage() for r in records)
    signatures = [seen.raw_query.rpartition("signature=")[2] for seen in server.requests]
    assert len(signatures) >= 5
    for record in records:
        message = record.getMessage()
        assert_clean(message, key_pem)
        assert_clean(logging.Formatter("%(message)s %(args)s").format(record), key_pem)
        assert TOKEN not in message
        for signature in signatures:
            assert signature not in message
    for thing in seen:
        assert_clean(repr(thing) + str(thing), key_pem)
        assert TOKEN not in repr(thing)
        if isinstance(thing, BaseException):
            assert_clean("".join(traceback.format_exception(thing)), key_pem)


@pytest.mark.usefixtures("listen_token_declared_signed")
def test_a_network_error_of_a_signed_call_holds_no_signing_secret(
    gate: BackoffGate, credentials: dict[str, object], key_pem: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with UserDataStream(API_KEY, "http://127.0.0.1:9", gate=gate, retry=FAST_RETRY, **credentials) as uds:  # type: ignore[arg-type]
        with pytest.raises(UserStreamError) as caught:
            uds.create_listen_token()
    assert_clean("".join(traceback.format_exception(caught.value)) + repr(caught.value), key_pem)
    for record in caplog.records:
        assert_clean(record.getMessage(), key_pem)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"api_secret": SECRET + " tail"}, "whitespace"),
        ({"private_key": SECRET}, "cannot read"),
        ({"private_key_passphrase": "wrong " + PASSPHRASE}, "check the passphrase"),
        ({"api_secret": SECRET, "private_key": b"-----BEGIN PRIVATE KEY-----"}, "not both"),
    ],
    ids=["bad-secret", "secret-as-path", "wrong-passphrase", "both"],
)
def test_a_client_refuses_bad_signing_input_without_repeating_it(
    options: dict[str, object], match: str, key_pem: bytes, gate: BackoffGate
) -> None:
    if "private_key_passphrase" in options:
        options = {**options, "private_key": key_pem}
    with pytest.raises(ValueError, match=match) as caught:
        UserDataStream(API_KEY, "http://127.0.0.1:9", gate=gate, **options)  # type: ignore[arg-type]
    text = str(caught.value) + "".join(traceback.format_exception(caught.value))
    assert_clean(text, key_pem)
    assert "wrong " + PASSPHRASE not in text


def test_a_client_repr_shows_the_signer_kind_and_nothing_else(key_pem: bytes, gate: BackoffGate) -> None:
    with UserDataStream(API_KEY, "http://127.0.0.1:9", gate=gate, api_secret=SECRET) as uds:
        assert repr(uds) == (
            "UserDataStream(market='spot', base_url='http://127.0.0.1:9', api_key='vmPU…', signer='hmac')"
        )
    assert (
        repr(load_signer(private_key=key_pem, passphrase=PASSPHRASE, environ={})) == "Signer(kind='ed25519')"
    )
