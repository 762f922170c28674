"""Signing Binance's SIGNED requests: the secret or private key, the payloads, the timestamps.

A SIGNED request carries a `timestamp` and a `signature` over its parameters. The signature's
kind follows the API key's type: HMAC-SHA256 keyed with the secret (lowercase hex; Binance calls
HMAC keys deprecated), RSA PKCS#1 v1.5 with SHA-256, or Ed25519 (both base64; Ed25519 is the one
Binance recommends). The payload differs between Binance's two APIs: REST signs its query string
(and form body) percent-encoded, as sent (required since 2026-01-15); the WebSocket API signs the
parameters sorted by name, joined as they are, with no percent-encoding.

The secret, the private key and its passphrase never leave a `Signer`: its repr shows the kind
alone, and every error message here says what to check without repeating what was given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
from collections.abc import Mapping, Sequence
from typing import Literal
from urllib.parse import urlencode

import attrs
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from binance_userstream._clock import Clock, wall_time
from binance_userstream._secrets import check_token, clean_secret, redact
from binance_userstream.errors import SignerMissingError

SECRET_ENV = "BINANCE_API_SECRET"  # noqa: S105 (a variable's name, not a secret)
PRIVATE_KEY_ENV = "BINANCE_PRIVATE_KEY_FILE"
PASSPHRASE_ENV = "BINANCE_PRIVATE_KEY_PASSPHRASE"  # noqa: S105 (a variable's name)

#: The largest PEM file read: a 4096-bit RSA key is about 3.3 KB, so this refuses a wrong file.
_MAX_PEM_BYTES = 64 * 1024
#: Binance's largest recvWindow, in milliseconds.
MAX_RECV_WINDOW_MS = 60_000
#: The largest clock offset a server's time answer may teach, in milliseconds: an hour. Binance
#: takes a timestamp up to recvWindow (at most 60 s) behind its clock and 1 s ahead, so the offset
#: only has to make up for this machine's clock error, which NTP keeps under a second and a clock
#: left unsynchronised for months puts at minutes. A clock hours off is misconfigured (a local
#: time set as UTC), and an answer that far off (ten years ahead, 10**400) is more likely wrong
#: than the clock: the offset would misdate every signed request of the client, REST and
#: WebSocket alike, so it is refused rather than shared.
MAX_CLOCK_OFFSET_MS = 3_600_000
#: The parameters `Credentials.sign_ws` sets itself.
_SIGNED_NAMES = frozenset({"apiKey", "timestamp", "recvWindow", "signature"})

SignerKind = Literal["hmac", "rsa", "ed25519"]
_PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class Signer:
    """Signs a payload with one secret or private key; `kind` says which (its repr shows nothing more)."""

    __slots__ = ("_private_key", "_secret", "kind")

    def __init__(
        self, kind: SignerKind, *, secret: bytes = b"", private_key: _PrivateKey | None = None
    ) -> None:
        self.kind: SignerKind = kind
        self._secret = secret
        self._private_key = private_key

    def sign(self, payload: str) -> str:
        """The signature of `payload` (its UTF-8 bytes): lowercase hex for HMAC, base64 otherwise."""
        data = payload.encode("utf-8")
        key = self._private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return base64.b64encode(key.sign(data)).decode("ascii")
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"Signer(kind={self.kind!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Signer holds a secret or a private key: it is not pickled or copied")


def load_signer(
    api_secret: str | None = None,
    private_key: bytes | str | os.PathLike[str] | None = None,
    passphrase: bytes | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Signer | None:
    """The Signer for the secret or private key given, else the environment's; None when there is none.

    `api_secret` is an HMAC secret. `private_key` is PEM bytes, PEM text (a str that starts with
    `-----BEGIN`), or the path of a PEM file (str or PathLike), holding an Ed25519 or RSA private
    key, encrypted with `passphrase` or not. With neither given, $BINANCE_API_SECRET or
    $BINANCE_PRIVATE_KEY_FILE (a path) is used; `passphrase` defaults to
    $BINANCE_PRIVATE_KEY_PASSPHRASE, ignored for a key that is not encrypted. Anything wrong is a
    ValueError that says what to check and never repeats the secret, the key or the passphrase.
    """
    env = os.environ if environ is None else environ
    if api_secret is not None and private_key is not None:
        raise ValueError(
            "pass api_secret= or private_key=, not both: an API key is either HMAC (a secret) "
            "or RSA/Ed25519 (a private key)"
        )
    passphrase_from_env = passphrase is None
    if passphrase is None:
        passphrase = env.get(PASSPHRASE_ENV)
    if api_secret is not None:
        return _hmac_signer(check_token(api_secret, "api_secret"))
    if private_key is not None:
        return _key_signer(private_key, passphrase, passphrase_from_env)
    secret, path = env.get(SECRET_ENV), env.get(PRIVATE_KEY_ENV)
    if secret is not None and path is not None:
        raise ValueError(
            f"both ${SECRET_ENV} and ${PRIVATE_KEY_ENV} are set: unset the one this API key is not"
        )
    if secret is not None:
        return _hmac_signer(check_token(clean_secret(secret), f"the secret in ${SECRET_ENV}"))
    if path is not None:
        return _key_signer(os.fspath(clean_secret(path)), passphrase, passphrase_from_env)
    return None


def _hmac_signer(secret: str) -> Signer:
    return Signer("hmac", secret=secret.encode("ascii"))


def _pem_bytes(private_key: bytes | str | os.PathLike[str]) -> tuple[bytes, str]:
    """The PEM data, and how to name where it came from in an error."""
    if isinstance(private_key, bytes):
        return private_key, "private_key"
    if isinstance(private_key, str) and private_key.lstrip().startswith("-----BEGIN"):
        return private_key.encode("utf-8"), "private_key"
    if not isinstance(private_key, str | os.PathLike):
        raise TypeError(f"private_key must be bytes, str or a path, not {type(private_key).__name__}")
    path = os.fspath(private_key)
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_PEM_BYTES + 1)
    except (OSError, ValueError) as error:
        # A str path is not repeated: a str that is no path may be key material pasted in the wrong
        # place. A PathLike was meant as a path (the CLI's --private-key-file): it is named.
        why = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        named = f" {path!r}" if isinstance(private_key, os.PathLike) else ""
        raise ValueError(
            f"cannot read the private key file{named}: {why} (pass PEM bytes, PEM text starting with "
            "-----BEGIN, or the path of a PEM file)"
        ) from None
    where = f"the private key file {path!r}"
    if len(data) > _MAX_PEM_BYTES:
        raise ValueError(f"{where} is too large to hold a private key (more than {_MAX_PEM_BYTES} bytes)")
    return data, where


def _is_encrypted(data: bytes) -> bool:
    """A PKCS#8 `ENCRYPTED PRIVATE KEY`, or a traditional PEM with `Proc-Type: 4,ENCRYPTED`."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def _key_signer(
    private_key: bytes | str | os.PathLike[str], passphrase: bytes | str | None, passphrase_from_env: bool
) -> Signer:
    data, where = _pem_bytes(private_key)
    if b"-----BEGIN" not in data:
        raise ValueError(f"{where} is not PEM: Binance's keys are PEM files (-----BEGIN PRIVATE KEY-----)")
    password = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    if not _is_encrypted(data):
        if password is not None and not passphrase_from_env:
            raise ValueError(f"{where} is not encrypted, but a passphrase was given: leave it out")
        password = None
    elif password is None:
        raise ValueError(f"{where} is encrypted: pass private_key_passphrase= (or set ${PASSPHRASE_ENV})")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except UnsupportedAlgorithm:
        raise ValueError(
            f"{where} holds a key of a type this system cannot load: Binance takes Ed25519 or RSA keys"
        ) from None
    except (ValueError, TypeError):
        if password is not None:
            raise ValueError(f"cannot decrypt {where}: check the passphrase") from None
        raise ValueError(
            f"{where} is not a PEM private key (a public key or a certificate?): pass the private "
            "key whose public key was registered with the API key"
        ) from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return Signer("ed25519", private_key=key)
    if isinstance(key, rsa.RSAPrivateKey):
        return Signer("rsa", private_key=key)
    raise ValueError(
        f"{where} holds a {type(key).__name__.removeprefix('_')}, which Binance does not take: "
        "use an Ed25519 key (recommended) or an RSA key"
    )


def _text(value: object) -> str:
    """A parameter's value as the WebSocket API signs it: JSON's true/false for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ws_api_payload(params: Mapping[str, object]) -> str:
    """The WebSocket API's signature payload: the parameters sorted by name, `name=value` joined by
    `&`, with no percent-encoding (booleans as true/false; `signature` and None values left out)."""
    return "&".join(
        f"{name}={_text(value)}"
        for name, value in sorted(params.items())
        if name != "signature" and value is not None
    )


def rest_payload(params: Sequence[tuple[str, str]]) -> str:
    """A REST query string (or form body) in the given order, percent-encoded: what REST signs."""
    return urlencode(list(params))


def _recv_window(value: float) -> int | float:
    """`recvWindow` in milliseconds, up to three decimals, at most 60 000, or ValueError."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError("recv_window must be a finite number of milliseconds")
    if not 0 < value <= MAX_RECV_WINDOW_MS:
        raise ValueError(f"recv_window must be more than 0 and at most {MAX_RECV_WINDOW_MS} milliseconds")
    rounded = round(float(value), 3)
    return int(rounded) if rounded.is_integer() else rounded


class ClockOffsetError(ValueError):
    """A server's time answer that would put the clock offset beyond MAX_CLOCK_OFFSET_MS: refused."""


@attrs.define(repr=False)
class Credentials:
    """The API key, the Signer (None: the client cannot sign) and the clock offset, shared by every
    request of one client, REST and WebSocket alike: an offset one of them learns serves all.

    `offset_ms` is the server's time minus the local time, learned by `resync`; timestamps are read
    from `clock`'s wall time (`_clock.wall_time`), so a client on an accelerated clock signs on that
    clock's scale.
    """

    api_key: str
    signer: Signer | None
    offset_ms: float = 0.0
    clock: Clock | None = None

    def timestamp(self) -> int:
        """Now on the server's clock as far as it is known, in milliseconds since the epoch."""
        return int(wall_time(self.clock) * 1000 + self.offset_ms)

    def wall_ms(self) -> float:
        """The local wall time in milliseconds, on the clock's scale: what `resync` takes."""
        return wall_time(self.clock) * 1000

    def resync(self, server_time_ms: int, sent_at_ms: float, received_at_ms: float) -> float:
        """Learn the offset from a server time read between `sent_at_ms` and `received_at_ms` (local
        wall times, `wall_ms()`): the server is taken to have read it at the midpoint. Returns it.

        An offset beyond MAX_CLOCK_OFFSET_MS (an hour) is a ClockOffsetError, and the offset in use
        stays what it was."""
        if received_at_ms < sent_at_ms:
            raise ValueError("received_at_ms is before sent_at_ms")
        midpoint = (sent_at_ms + received_at_ms) / 2
        try:
            offset = server_time_ms - midpoint
        except OverflowError:  # an integer beyond a float's range
            offset = math.inf if server_time_ms > midpoint else -math.inf
        if not abs(offset) <= MAX_CLOCK_OFFSET_MS:  # NaN too
            way = "ahead of" if offset > 0 else "behind"
            raise ClockOffsetError(
                f"the server's time is more than an hour {way} this machine's clock: not taken as the "
                "clock offset (if the local clock is wrong, synchronise it: NTP)"
            )
        self.offset_ms = offset
        return offset

    def sign_ws(self, params: Mapping[str, object], *, recv_window: float | None = None) -> dict[str, object]:
        """`params` signed for the WebSocket API: with `apiKey`, `timestamp`, `recvWindow` (when
        given, in milliseconds) and last `signature` over `ws_api_payload`. None values are left out.

        Raises SignerMissingError when there is no secret or private key.
        """
        if self.signer is None:
            raise SignerMissingError(
                "this request must be signed: pass api_secret= or private_key= to the client "
                f"(or set ${SECRET_ENV} or ${PRIVATE_KEY_ENV})"
            )
        taken = _SIGNED_NAMES & set(params)
        if taken:
            raise ValueError(f"sign_ws sets {', '.join(sorted(taken))} itself: leave them out of params")
        signed = {name: value for name, value in params.items() if value is not None}
        signed["apiKey"] = self.api_key
        if recv_window is not None:
            signed["recvWindow"] = _recv_window(recv_window)
        signed["timestamp"] = self.timestamp()
        signed["signature"] = self.signer.sign(ws_api_payload(signed))
        return signed

    def __repr__(self) -> str:
        kind = None if self.signer is None else self.signer.kind
        return f"Credentials(api_key={redact(self.api_key)!r}, signer={kind!r})"
