"""Signed requests: the API keys' credentials, their signatures, and the timestamp's recvWindow.

Binance signs with one of three key types (https://developers.binance.com/docs/binance-spot-api-docs/faqs/api_key_types):
an HMAC secret (HMAC-SHA256, the signature in hex, any case), an RSA key (RSASSA-PKCS1-v1_5 with
SHA-256, base64) or an Ed25519 key (base64). The simulator verifies each as Binance does, with
`cryptography` for RSA and Ed25519. What is signed differs by API, and is the caller's business:
the WebSocket API signs its params sorted by name and joined as `k=v&...` without percent-encoding
(web-socket-api.md, "SIGNED request security"); REST signs the query string and body exactly as
sent, percent-encoded (required since 2026-01-15, CHANGELOG 2025-12-17).

Time (web-socket-api.md, "Timing security"): a request is accepted if its `timestamp` (ms, or µs)
is less than 1 s ahead of the server's time and no more than `recvWindow` ms (default 5000, at
most 60000, up to 3 decimals) behind it, so a replayed request is refused once its window passed.

A credential's repr names its type only: secrets and keys never reach a log or an error text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import threading
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Literal
from urllib.parse import parse_qs

from attrs import field, frozen
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

#: The test account's API key and HMAC secret: the example pair of Binance's own documentation
#: (web-socket-api.md, "SIGNED request example (HMAC)"), so signatures computed from the docs'
#: examples verify. Not secrets: they are published, and the simulator accepts them from anyone.
TEST_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
TEST_API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"  # noqa: S105

#: recvWindow when a request names none, and the largest it may name (ms).
RECV_WINDOW = Decimal(5000)
MAX_RECV_WINDOW = Decimal(60000)
#: How far ahead of the server's time a timestamp may be (ms).
AHEAD = 1000
#: A timestamp above this is in microseconds (a millisecond one has 13 digits until the year 2286).
_MICROSECONDS = 10**14
_RECV_WINDOW = re.compile(r"[0-9]{1,5}(\.[0-9]{1,3})?")
_HEX = re.compile(r"[0-9a-fA-F]{64}")

KeyType = Literal["HMAC", "RSA", "Ed25519"]


@frozen
class Refusal:
    """Why a request is refused, as Binance answers it: an HTTP status, an error code, a message."""

    status: int
    code: int
    msg: str


BAD_SIGNATURE = Refusal(400, -1022, "Signature for this request is not valid.")
#: The refusals of the one key rule (`Exchange.key_account`), the same on REST and the WebSocket API.
UNKNOWN_KEY = Refusal(401, -2015, "Invalid API-key, IP, or permissions for action.")
BAD_KEY_FORMAT = Refusal(401, -2014, "API-key format invalid.")
OUTSIDE_WINDOW = Refusal(400, -1021, "Timestamp for this request is outside of the recvWindow.")
AHEAD_OF_SERVER = Refusal(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def missing(name: str) -> Refusal:
    return Refusal(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


@frozen
class Credential:
    """What verifies one API key's signatures: an HMAC secret, or an RSA or Ed25519 public key."""

    type: KeyType
    _key: bytes | rsa.RSAPublicKey | ed25519.Ed25519PublicKey = field(repr=False)

    @classmethod
    def of(cls, secret: str | None = None, public_key: bytes | str | None = None) -> Credential:
        """The credential for an HMAC `secret`, or a PEM `public_key` (RSA or Ed25519); one of them."""
        if (secret is None) == (public_key is None):
            raise ValueError("give an HMAC secret or a PEM public key (RSA or Ed25519), one of them")
        if secret is not None:
            if not isinstance(secret, str) or not secret:
                raise ValueError("an HMAC secret is a non-empty str")
            return cls("HMAC", secret.encode())
        pem = public_key.encode() if isinstance(public_key, str) else public_key
        try:
            key = serialization.load_pem_public_key(pem or b"")
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError("the public key is not a PEM RSA or Ed25519 public key") from None
        if isinstance(key, rsa.RSAPublicKey):
            return cls("RSA", key)
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls("Ed25519", key)
        raise ValueError(f"Binance takes RSA and Ed25519 public keys, not {type(key).__name__}")

    def verify(self, payload: str, signature: str) -> bool:
        """Whether `signature` is this key's signature of `payload` (UTF-8): HMAC-SHA256 in hex (any
        case), RSA PKCS#1 v1.5 SHA-256 or Ed25519 in base64 (case matters)."""
        data = payload.encode()
        if isinstance(self._key, bytes):
            if not _HEX.fullmatch(signature):
                return False
            expected = hmac.new(self._key, data, hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            if isinstance(self._key, rsa.RSAPublicKey):
                self._key.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                self._key.verify(raw, data)
        except InvalidSignature:
            return False
        return True


class Keys:
    """The API keys whose signatures the simulator can verify, each with its credential. Starts with
    the test account's (TEST_API_KEY, TEST_API_SECRET). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: dict[str, Credential] = {TEST_API_KEY: Credential.of(secret=TEST_API_SECRET)}

    def register(self, api_key: str, credential: Credential) -> None:
        with self._lock:
            self._credentials[api_key] = credential

    def get(self, api_key: str) -> Credential | None:
        with self._lock:
            return self._credentials.get(api_key)

    def __repr__(self) -> str:
        with self._lock:
            return f"Keys({len(self._credentials)} registered)"


def refuse_signed(
    raw_query: str, raw_body: str, credential: Credential | None, server_ms: float
) -> Refusal | None:
    """Why a signed REST request is refused (None if it is not): the key's credential (none: the
    simulator cannot verify what it holds no key for, so, as Binance, the key is unknown), then the
    signature over Binance's totalParams (the query string, then the body, each as sent, without
    `signature`), then the timestamp's recvWindow."""
    if credential is None:
        return UNKNOWN_KEY
    params = request_params(raw_query, raw_body)
    signature = params.get("signature")
    if not signature:
        return missing("signature")
    if not credential.verify(_signed_text(raw_query) + _signed_text(raw_body), signature):
        return BAD_SIGNATURE
    return check_time(params, server_ms)


def request_params(raw_query: str, raw_body: str) -> dict[str, str]:
    """The parameters of a query string and a form body (the query's win), decoded."""
    params: dict[str, str] = {}
    for raw in (raw_body, raw_query):
        for name, values in parse_qs(raw, keep_blank_values=True).items():
            params[name] = values[0]
    return params


def _signed_text(raw: str) -> str:
    """`raw` (a query string or a form body, as sent) without its `signature` parameter: what the
    signature signs."""
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


def check_time(params: Mapping[str, object], server_ms: float) -> Refusal | None:
    """Refuse a `timestamp` outside `recvWindow` of the server's time `server_ms` (or missing)."""
    timestamp = _number(params.get("timestamp"))
    if timestamp is None or timestamp <= 0 or timestamp != timestamp.to_integral_value():
        return missing("timestamp")
    if timestamp > _MICROSECONDS:
        timestamp /= 1000
    window = RECV_WINDOW
    if params.get("recvWindow") is not None:
        given = params["recvWindow"]
        text = str(given) if isinstance(given, int | str) and not isinstance(given, bool) else ""
        if isinstance(given, float):
            text = repr(given)
        if not _RECV_WINDOW.fullmatch(text):
            return Refusal(
                400, -1100, "Illegal characters found in parameter 'recvWindow'; legal range is '0 - 60000'."
            )
        window = Decimal(text)
        if window > MAX_RECV_WINDOW:
            return Refusal(
                400, -1102, "'recvWindow' contains unexpected value. Cannot be greater than 60000."
            )
    now = Decimal(math.floor(server_ms))  # the server's time in whole milliseconds, as Binance's
    if timestamp >= now + AHEAD:
        return AHEAD_OF_SERVER
    if now - timestamp > window:
        return OUTSIDE_WINDOW
    return None


#: Digits a timestamp may have before the decimal point at most: a microsecond one has 16 until the
#: year 2286. Past it the number is malformed, not a time (and "1e999999999" would overflow the
#: decimal context's arithmetic, which raised inside the request's handler).
_MAX_DIGITS = 20


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() and number.adjusted() < _MAX_DIGITS else None
