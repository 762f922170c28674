"""No secret in the locals of the package's frames when making a client fails.

Error trackers record each frame's locals with the traceback (Sentry does by default:
https://docs.sentry.io/platforms/python/configuration/options/#include-local-variables), so a
secret, a private key's PEM or a passphrase left in a local would be sent with the error.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import binance_userstream
from binance_userstream import AsyncUserDataStream, UserDataStream
from binance_userstream._keyfile import write_secret
from binance_userstream._secrets import read_secret
from tests.conftest import API_KEY

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PASSPHRASE = "a passphrase nobody may see"
PACKAGE = Path(binance_userstream.__file__).parent

KEY = ed25519.Ed25519PrivateKey.generate()
PLAIN_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
ENCRYPTED_PEM = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.BestAvailableEncryption(PASSPHRASE.encode()),
)
#: What must not stand in any local: the secrets, and the base64 body of each PEM.
SECRETS = [
    API_KEY,
    SECRET,
    PASSPHRASE,
    PLAIN_PEM.decode().splitlines()[1],
    ENCRYPTED_PEM.decode().splitlines()[1],
]

#: Each way making a client can fail while it holds a secret: its keyword arguments, and its error.
FAILURES: dict[str, tuple[dict[str, object], str]] = {
    "a malformed API key": ({"api_key": API_KEY[:30] + " " + API_KEY[30:]}, "whitespace"),
    "a malformed API secret": ({"api_secret": SECRET[:30] + " " + SECRET[30:]}, "whitespace"),
    "a secret and an unencrypted private key": ({"api_secret": SECRET, "private_key": PLAIN_PEM}, "not both"),
    "an encrypted private key and a wrong passphrase": (
        {"private_key": ENCRYPTED_PEM, "private_key_passphrase": PASSPHRASE[:-1]},
        "check the passphrase",
    ),
    "an unencrypted private key and a passphrase": (
        {"private_key": PLAIN_PEM.decode(), "private_key_passphrase": PASSPHRASE},
        "not encrypted",
    ),
    "a loaded private key, then a bad base_url": (
        {"private_key": ENCRYPTED_PEM, "private_key_passphrase": PASSPHRASE, "base_url": "ftp://127.0.0.1"},
        "base_url must be",
    ),
    "a secret, and a market that does not exist": (
        {"api_secret": SECRET, "market": "nowhere"},
        "unknown market",
    ),
}


def package_frames(error: BaseException) -> Iterator[TracebackType]:
    """The traceback entries in the package's own files, of `error` and every exception it chains."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            if Path(tb.tb_frame.f_code.co_filename).is_relative_to(PACKAGE):
                yield tb
            tb = tb.tb_next
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def secrets_in_locals(error: BaseException, secrets: list[str]) -> list[str]:
    """`function:local` for each local of a package frame whose repr or str shows a secret."""
    found = []
    for tb in package_frames(error):
        for name, value in tb.tb_frame.f_locals.items():
            shown = repr(value) + str(value)
            if any(secret in shown for secret in secrets):
                found.append(f"{tb.tb_frame.f_code.co_name}:{name}")
    return found


@pytest.mark.parametrize("client", [UserDataStream, AsyncUserDataStream])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_client_that_cannot_be_made_leaves_no_secret_in_its_frames_locals(
    client: Callable[..., object], failure: str
) -> None:
    given, error = FAILURES[failure]
    options: dict[str, object] = {"api_key": API_KEY, "base_url": "http://127.0.0.1:9", **given}
    with pytest.raises(ValueError, match=error) as caught:
        client(**options)
    assert list(package_frames(caught.value))  # the package's frames are in the traceback ...
    assert secrets_in_locals(caught.value, SECRETS) == []  # ... with no secret in their locals


def test_a_malformed_secret_in_the_environment_is_left_in_no_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.environ itself, a local of the signer's loader, shows every variable in its repr."""
    malformed = SECRET[:30] + " " + SECRET[30:]
    monkeypatch.setenv("BINANCE_API_SECRET", malformed)
    monkeypatch.delenv("BINANCE_PRIVATE_KEY_FILE", raising=False)
    with pytest.raises(ValueError, match="whitespace") as caught:
        UserDataStream(API_KEY, "http://127.0.0.1:9")
    assert secrets_in_locals(caught.value, [SECRET[:30], API_KEY]) == []


def test_a_key_file_that_holds_a_malformed_key_leaves_it_in_no_local(tmp_path: Path) -> None:
    path = tmp_path / "api-key"
    path.write_text(API_KEY[:30] + " " + API_KEY[30:] + "\n")
    with pytest.raises(ValueError, match="whitespace") as caught:
        read_secret(str(path), "API key")
    assert list(package_frames(caught.value))
    assert secrets_in_locals(caught.value, [API_KEY[:30]]) == []


def test_a_key_file_that_cannot_be_written_leaves_the_key_in_no_local(tmp_path: Path) -> None:
    (tmp_path / "key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="symbolic link") as caught:
        write_secret(tmp_path / "key", API_KEY)
    assert list(package_frames(caught.value))
    assert secrets_in_locals(caught.value, [API_KEY]) == []


def test_the_frames_of_an_error_being_handled_outside_the_package_keep_their_locals() -> None:
    """Only the package's frames are cleared, not those of the code that called it."""

    def fail(note: str) -> None:
        raise KeyError(note)

    try:
        fail("the caller's own note")
    except KeyError:
        with pytest.raises(ValueError, match="whitespace") as caught:
            UserDataStream(API_KEY, "http://127.0.0.1:9", api_secret="a malformed secret")
    handled = caught.value.__context__
    assert isinstance(handled, KeyError)
    frames = [frame for frame, _ in traceback.walk_tb(handled.__traceback__)]
    assert frames[-1].f_locals == {"note": "the caller's own note"}
