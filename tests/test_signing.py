"""Signing: the payloads, the three key types, loading secrets and PEM keys, timestamps.

The vectors are Binance's own: the WebSocket API's "SIGNED request example (HMAC)" (order.place,
ASCII and non-ASCII symbol) and the REST API's "SIGNED Endpoint Examples for POST /api/v3/order"
(https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/request-security and
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security), with the
example key pair both pages publish. The docs' RSA and Ed25519 examples sign with private keys they
do not publish, so those two are checked by round trip with keys made here, and Ed25519's
determinism against RFC 8032's test vectors.
"""

from __future__ import annotations

import base64
import pickle
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa

from binance_userstream import SignerMissingError, UserStreamError
from binance_userstream._signing import (
    PASSPHRASE_ENV,
    PRIVATE_KEY_ENV,
    SECRET_ENV,
    Credentials,
    Signer,
    load_signer,
    rest_payload,
    ws_api_payload,
)
from tests.conftest import API_KEY

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PASSPHRASE = "correct horse battery staple"
#: The docs' non-ASCII symbol: six fullwidth digits, one to six.
FULLWIDTH = "".join(chr(0xFF11 + i) for i in range(6))
#: The subscribe.signature payloads of the brief's vectors (userDataStream.subscribe.signature).
SUBSCRIBE = f"apiKey={API_KEY}&timestamp=1747385641636"
SUBSCRIBE_WITH_WINDOW = f"apiKey={API_KEY}&recvWindow=5000&timestamp=1747385641636"
ORDER = {
    "symbol": "BTCUSDT",
    "side": "SELL",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.01000000",
    "price": "52000.00",
    "recvWindow": 100,
    "timestamp": 1645423376532,
    "apiKey": API_KEY,
}
ORDER_NON_ASCII = {
    **ORDER,
    "symbol": FULLWIDTH,
    "side": "BUY",
    "quantity": "1.00000000",
    "price": "0.10000000",
    "recvWindow": 5000,
}
REST_ORDER = [
    ("symbol", "LTCBTC"),
    ("side", "BUY"),
    ("type", "LIMIT"),
    ("timeInForce", "GTC"),
    ("quantity", "1"),
    ("price", "0.1"),
    ("recvWindow", "5000"),
    ("timestamp", "1499827319559"),
]


class FixedClock:
    """A clock whose wall time is the epoch: a Credentials timestamp is then its offset alone."""

    def now(self) -> float:
        return 0.0

    def wall(self) -> float:
        return 0.0

    def wait(self, seconds: float, stop: object) -> bool:
        return False

    async def sleep(self, seconds: float) -> None:
        pass


def hmac_signer() -> Signer:
    signer = load_signer(SECRET, environ={})
    assert signer is not None
    return signer


def pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    password: bytes | None = None,
) -> bytes:
    encryption = (
        serialization.NoEncryption() if password is None else serialization.BestAvailableEncryption(password)
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- payloads and the documented vectors ---------------------------------------------------------


def test_hmac_signs_the_subscribe_payload_as_the_vector_says() -> None:
    assert hmac_signer().sign(SUBSCRIBE) == "681110a6057ad58657af22f5640fab9dd17418834cdfccdc81be8b0f7b2cde3e"


def test_hmac_signs_the_subscribe_payload_with_recv_window_sorted_in() -> None:
    payload = ws_api_payload({"timestamp": 1747385641636, "apiKey": API_KEY, "recvWindow": 5000})
    assert payload == SUBSCRIBE_WITH_WINDOW
    assert hmac_signer().sign(payload) == "49601ffc5b0122c3c7ee3ea85ef7d6cd76256f5191a57c976418faa32e917653"


def test_the_websocket_api_order_place_example_signs_as_documented() -> None:
    payload = ws_api_payload(ORDER)
    assert payload == (
        f"apiKey={API_KEY}&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL"
        "&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
    )
    assert hmac_signer().sign(payload) == "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"


def test_the_websocket_api_signs_non_ascii_values_without_percent_encoding() -> None:
    payload = ws_api_payload(ORDER_NON_ASCII)
    assert f"symbol={FULLWIDTH}&" in payload
    assert "%" not in payload
    assert hmac_signer().sign(payload) == "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd"


def test_the_rest_order_example_signs_as_documented() -> None:
    payload = rest_payload(REST_ORDER)
    assert payload == (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
        "&timestamp=1499827319559"
    )
    assert hmac_signer().sign(payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_rest_percent_encodes_non_ascii_values_before_signing() -> None:
    """Required since 2026-01-15 (spot API CHANGELOG 2025-12-17)."""
    payload = rest_payload([("symbol", FULLWIDTH), *REST_ORDER[1:]])
    assert payload.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")
    assert hmac_signer().sign(payload) == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"


def test_rest_keeps_the_given_order_and_encodes_reserved_characters() -> None:
    assert rest_payload([("b", "a b+c&d=e/%"), ("a", "1")]) == "b=a+b%2Bc%26d%3De%2F%25&a=1"


def test_ws_payload_writes_booleans_as_json_and_leaves_out_signature_and_none() -> None:
    payload = ws_api_payload({"isIsolated": True, "b": False, "signature": "x", "skip": None, "a": 1})
    assert payload == "a=1&b=false&isIsolated=true"


# --- the three key types ----------------------------------------------------------------------


def test_hmac_signatures_are_lowercase_hex() -> None:
    signature = hmac_signer().sign("anything")
    assert len(signature) == 64
    assert signature == signature.lower()
    int(signature, 16)


@pytest.mark.parametrize(
    ("seed", "message", "signature"),
    [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "r",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
    ],
    ids=["rfc8032-test-1", "rfc8032-test-2"],
)
def test_ed25519_is_deterministic_a_fixed_key_gives_the_rfc_8032_signature(
    seed: str, message: str, signature: str
) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
    signer = load_signer(private_key=pem(key), environ={})
    assert signer is not None
    assert signer.kind == "ed25519"
    assert signer.sign(message) == base64.b64encode(bytes.fromhex(signature)).decode()
    assert signer.sign(message) == signer.sign(message)


def test_ed25519_signatures_verify_with_the_public_key() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signer = load_signer(private_key=pem(key), environ={})
    assert signer is not None
    signature = base64.b64decode(signer.sign(SUBSCRIBE), validate=True)
    key.public_key().verify(signature, SUBSCRIBE.encode())


def test_rsa_signatures_are_pkcs1_v15_sha256_and_verify(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = load_signer(private_key=pem(rsa_key), environ={})
    assert signer is not None
    assert signer.kind == "rsa"
    payload = ws_api_payload(ORDER_NON_ASCII)
    signature = base64.b64decode(signer.sign(payload), validate=True)
    rsa_key.public_key().verify(signature, payload.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())


# --- loading ------------------------------------------------------------------------------------


def test_a_pem_key_loads_from_bytes_text_a_str_path_and_a_pathlike(tmp_path: Path) -> None:
    data = pem(ed25519.Ed25519PrivateKey.generate())
    path = tmp_path / "key.pem"
    path.write_bytes(data)
    for source in (data, data.decode(), "\n" + data.decode(), str(path), path):
        signer = load_signer(private_key=source, environ={})
        assert signer is not None, source
        assert signer.kind == "ed25519"


def test_an_encrypted_key_loads_with_its_passphrase_as_str_or_bytes(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(pem(ed25519.Ed25519PrivateKey.generate(), PASSPHRASE.encode()))
    for passphrase in (PASSPHRASE, PASSPHRASE.encode()):
        signer = load_signer(private_key=path, passphrase=passphrase, environ={})
        assert signer is not None
        assert signer.kind == "ed25519"


def test_a_traditional_encrypted_rsa_key_loads(rsa_key: rsa.RSAPrivateKey) -> None:
    data = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    assert b"Proc-Type: 4,ENCRYPTED" in data
    signer = load_signer(private_key=data, passphrase=PASSPHRASE, environ={})
    assert signer is not None
    assert signer.kind == "rsa"


def test_nothing_given_and_nothing_in_the_environment_is_no_signer() -> None:
    assert load_signer(environ={}) is None
    assert load_signer(environ={"BINANCE_API_KEY": API_KEY}) is None


def test_the_secret_defaults_to_the_environment_cleaned_like_a_key_file() -> None:
    signer = load_signer(environ={SECRET_ENV: f"\ufeff {SECRET}\n"})
    assert signer is not None
    assert signer.kind == "hmac"
    assert signer.sign(SUBSCRIBE) == hmac_signer().sign(SUBSCRIBE)


def test_the_private_key_and_passphrase_default_to_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(pem(ed25519.Ed25519PrivateKey.generate(), PASSPHRASE.encode()))
    signer = load_signer(environ={PRIVATE_KEY_ENV: f"{path}\n", PASSPHRASE_ENV: PASSPHRASE})
    assert signer is not None
    assert signer.kind == "ed25519"


def test_a_passphrase_in_the_environment_is_ignored_for_a_key_that_is_not_encrypted() -> None:
    data = pem(ed25519.Ed25519PrivateKey.generate())
    signer = load_signer(private_key=data, environ={PASSPHRASE_ENV: PASSPHRASE})
    assert signer is not None


def test_an_argument_wins_over_the_environment() -> None:
    signer = load_signer(SECRET, environ={PRIVATE_KEY_ENV: "/nonexistent"})
    assert signer is not None
    assert signer.kind == "hmac"


# --- bad input: a ValueError that repeats nothing secret -----------------------------------------


def _refused(match: str, *secrets: str | bytes, **kwargs: object) -> None:
    kwargs.setdefault("environ", {})
    with pytest.raises(ValueError, match=match) as caught:
        load_signer(**kwargs)  # type: ignore[arg-type]
    text = str(caught.value) + repr(caught.value)
    assert caught.value.__cause__ is None
    for secret in secrets:
        assert (secret.decode(errors="replace") if isinstance(secret, bytes) else secret) not in text


@pytest.mark.parametrize(
    ("secret", "match"),
    [
        ("", "empty"),
        (f"{SECRET} {SECRET}", "whitespace"),
        (f"{SECRET}\x00", "control"),
        (SECRET * 5, "at most 256"),
    ],
    ids=["empty", "whitespace", "control", "too-long"],
)
def test_a_bad_secret_is_refused_without_repeating_it(secret: str, match: str) -> None:
    _refused(match, *(secret and [SECRET]), api_secret=secret)


def test_a_bad_secret_in_the_environment_is_named_and_not_repeated() -> None:
    _refused(f"\\${SECRET_ENV}", SECRET, environ={SECRET_ENV: f"{SECRET} tail"})


def test_a_secret_and_a_private_key_together_are_refused() -> None:
    _refused("not both", SECRET, api_secret=SECRET, private_key=pem(ed25519.Ed25519PrivateKey.generate()))


def test_both_environment_variables_set_are_refused() -> None:
    _refused("both", SECRET, environ={SECRET_ENV: SECRET, PRIVATE_KEY_ENV: "/some/key.pem"})


def test_an_unreadable_path_is_refused_without_repeating_it() -> None:
    """A str that is no path may be key material pasted in the wrong place."""
    _refused("cannot read the private key file", SECRET, private_key=SECRET)


def test_a_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text(SECRET)
    _refused("not PEM", SECRET, private_key=path)


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 1_000_000)
    _refused("too large", private_key=path)


def test_a_public_key_is_refused_as_not_a_private_key() -> None:
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _refused("not a PEM private key", public.decode(), private_key=public)


def test_a_corrupt_pem_is_refused_without_repeating_it() -> None:
    data = pem(ed25519.Ed25519PrivateKey.generate())
    corrupt = data.replace(data.splitlines()[1], b"A" * 40 + data.splitlines()[1][40:])
    _refused("not a PEM private key", data.splitlines()[1].decode(), private_key=corrupt)


def test_an_encrypted_key_without_passphrase_is_refused() -> None:
    data = pem(ed25519.Ed25519PrivateKey.generate(), PASSPHRASE.encode())
    _refused("encrypted: pass private_key_passphrase=", data.decode(), private_key=data)


def test_an_encrypted_key_with_a_wrong_passphrase_is_refused_without_repeating_either() -> None:
    data = pem(ed25519.Ed25519PrivateKey.generate(), PASSPHRASE.encode())
    wrong = "Tr0ub4dor&3-not-it"
    _refused("check the passphrase", data.decode(), wrong, PASSPHRASE, private_key=data, passphrase=wrong)


def test_a_passphrase_for_a_key_that_is_not_encrypted_is_refused() -> None:
    data = pem(ed25519.Ed25519PrivateKey.generate())
    _refused("not encrypted", PASSPHRASE, private_key=data, passphrase=PASSPHRASE)


@pytest.mark.parametrize("kind", ["ec", "dsa"])
def test_an_unsupported_key_type_is_refused(kind: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else dsa.generate_private_key(1024)  # noqa: S505
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _refused("Ed25519 key \\(recommended\\) or an RSA key", data.decode(), private_key=data)


# --- credentials ------------------------------------------------------------------------------


def test_sign_ws_signs_the_subscribe_request_as_the_vector_says() -> None:
    credentials = Credentials(API_KEY, hmac_signer(), offset_ms=1747385641636, clock=FixedClock())
    assert credentials.sign_ws({}) == {
        "apiKey": API_KEY,
        "timestamp": 1747385641636,
        "signature": "681110a6057ad58657af22f5640fab9dd17418834cdfccdc81be8b0f7b2cde3e",
    }
    signed = credentials.sign_ws({}, recv_window=5000)
    assert signed["recvWindow"] == 5000
    assert signed["signature"] == "49601ffc5b0122c3c7ee3ea85ef7d6cd76256f5191a57c976418faa32e917653"
    assert list(signed)[-1] == "signature"


def test_sign_ws_keeps_the_params_given_and_signs_them() -> None:
    credentials = Credentials(API_KEY, hmac_signer(), offset_ms=1747385641636, clock=FixedClock())
    signed = credentials.sign_ws({"listenToken": "abc", "skip": None})
    assert signed["listenToken"] == "abc"
    assert "skip" not in signed
    payload = f"apiKey={API_KEY}&listenToken=abc&timestamp=1747385641636"
    assert signed["signature"] == hmac_signer().sign(payload)


@pytest.mark.parametrize("window", [0, -1, 60_001, float("nan"), float("inf")])
def test_sign_ws_refuses_a_recv_window_binance_refuses(window: float) -> None:
    with pytest.raises(ValueError, match="recv_window"):
        Credentials(API_KEY, hmac_signer()).sign_ws({}, recv_window=window)


def test_sign_ws_keeps_up_to_three_decimals_of_recv_window() -> None:
    signed = Credentials(API_KEY, hmac_signer()).sign_ws({}, recv_window=6000.3461)
    assert signed["recvWindow"] == 6000.346


def test_sign_ws_refuses_params_it_sets_itself() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        Credentials(API_KEY, hmac_signer()).sign_ws({"timestamp": 1})


def test_sign_ws_without_a_signer_says_what_to_pass() -> None:
    with pytest.raises(SignerMissingError, match="api_secret= or private_key=") as caught:
        Credentials(API_KEY, None).sign_ws({})
    assert isinstance(caught.value, UserStreamError)
    assert isinstance(caught.value, ValueError)


def test_timestamps_follow_the_clocks_wall_time_and_the_offset() -> None:
    credentials = Credentials(API_KEY, None, offset_ms=-250.0, clock=FixedClock())
    assert credentials.timestamp() == -250
    before = int(time.time() * 1000)
    assert before <= Credentials(API_KEY, None).timestamp() <= before + 1000


def test_resync_takes_the_server_time_at_the_midpoint_of_the_exchange() -> None:
    credentials = Credentials(API_KEY, None, clock=FixedClock())
    credentials.resync(server_time_ms=10_000, sent_at_ms=1_000.0, received_at_ms=1_200.0)
    assert credentials.offset_ms == 8_900.0
    assert credentials.timestamp() == 8_900
    with pytest.raises(ValueError, match="before"):
        credentials.resync(10_000, 2_000.0, 1_000.0)


# --- reprs ---------------------------------------------------------------------------------------


def test_reprs_show_the_signer_kind_and_the_key_prefix_only(rsa_key: rsa.RSAPrivateKey) -> None:
    ed = load_signer(private_key=pem(ed25519.Ed25519PrivateKey.generate()), environ={})
    assert repr(ed) == "Signer(kind='ed25519')"
    assert repr(load_signer(private_key=pem(rsa_key), environ={})) == "Signer(kind='rsa')"
    credentials = Credentials(API_KEY, hmac_signer(), offset_ms=12.5)
    assert repr(credentials) == "Credentials(api_key='vmPU…', signer='hmac')"
    assert SECRET not in repr(credentials) + str(credentials)


def test_a_signer_is_not_pickled() -> None:
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(hmac_signer())


def test_the_environment_default_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRIVATE_KEY_ENV, raising=False)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    signer = load_signer()
    assert signer is not None
    assert signer.kind == "hmac"
    monkeypatch.delenv(SECRET_ENV)
    assert load_signer() is None
