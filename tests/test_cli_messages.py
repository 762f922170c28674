"""The command's messages speak to a person at a shell: they name its flags (not the library's
Python arguments), the file they could not read, one mistake in two lines, and what -v promises."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, PrivateFormat

from binance_userstream import BinanceAPIError, SignatureError
from binance_userstream._cli import error_message
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from tests.test_cli import cli, live

__all__ = ["live"]


def test_no_api_key_names_the_flag_not_the_python_argument() -> None:
    proc = cli("listen", "--market", "usdm", key=None)
    assert proc.returncode == 2
    assert "--api-key-file" in proc.stderr
    assert "api_key=" not in proc.stderr


def test_an_encrypted_key_without_a_passphrase_names_the_passphrase_flag(
    live: Simulator, tmp_path: Path
) -> None:
    pem = tmp_path / "ed25519.pem"
    key = Ed25519PrivateKey.generate()
    pem.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pass word"))
    )
    proc = cli(
        "listen", "--market", "spot", "--base-url", live.url, "--private-key-file", str(pem), key=TEST_API_KEY
    )
    assert proc.returncode == 2
    assert "--private-key-passphrase-file" in proc.stderr
    assert "private_key_passphrase=" not in proc.stderr
    assert live.request_count == 0


def test_a_signature_error_puts_one_period_before_its_advice() -> None:
    """Binance's -1022 message ends with its own period: "Signature for this request is not valid."."""
    error = SignatureError(400, -1022, "Signature for this request is not valid.")
    assert "is not valid. Check that" in str(error)
    assert ".." not in str(error)


def test_a_usage_error_is_one_line_and_where_help_is_not_the_whole_usage() -> None:
    proc = cli("listen", "--for", "soon")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "binance-userstream listen: error: argument --for: not a duration (e.g. 90s, 30m, 4h)",
        "Try 'binance-userstream listen --help' for more information.",
    ]


def test_a_misspelt_flag_is_answered_with_the_flag_meant_never_with_what_was_typed() -> None:
    proc = cli("listen", "--strem-url", "wss://fstream.binance.com")
    assert proc.returncode == 2
    assert "did you mean --stream-url?" in proc.stderr
    assert "strem" not in proc.stderr
    assert "Try 'binance-userstream listen --help'" in proc.stderr


def test_an_api_key_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "api-key.txt"
    proc = cli("listen", "--market", "usdm", "--api-key-file", str(missing), key=None)
    assert proc.returncode == 2
    assert str(missing) in proc.stderr


def test_a_private_key_file_that_cannot_be_read_is_named(live: Simulator, tmp_path: Path) -> None:
    missing = tmp_path / "ed25519.pem"
    proc = cli("listen", "--market", "spot", "--base-url", live.url, "--private-key-file", str(missing))
    assert proc.returncode == 2
    assert str(missing) in proc.stderr
    assert "PEM bytes" not in proc.stderr  # the library's advice to Python callers


def test_v_logs_the_package_but_leaves_websockets_handshakes_to_vv(live: Simulator, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(TEST_API_SECRET)
    ws = live.url.replace("http://", "ws://")
    common = ["listen", "--market", "spot", "--base-url", live.url, "--stream-url", ws]
    common += ["--api-secret-file", str(secret), "--for", "1s"]
    proc = cli(*common, "-v", key=TEST_API_KEY)
    assert proc.returncode == 0, proc.stderr
    assert "binance_userstream.stream:" in proc.stderr  # the package's own lines are there
    assert "binance_userstream.stream.websockets" not in proc.stderr


def test_a_file_named_like_a_python_argument_is_named_as_it_is(tmp_path: Path) -> None:
    """The messages' `api_key` becomes `--api-key-file`, but not inside the path they quote."""
    missing = tmp_path / "api_key.txt"
    proc = cli("listen", "--market", "usdm", "--api-key-file", str(missing), key=None)
    assert proc.returncode == 2
    assert repr(str(missing)) in proc.stderr


def test_a_malformed_listen_key_is_named_as_the_command_names_it_not_as_a_python_argument() -> None:
    proc = cli("keepalive", "--market", "usdm", "--base-url", "http://127.0.0.1:9", "not&a&key")
    assert proc.returncode == 2
    assert "listen_key" not in proc.stderr
    assert "the listenKey must be letters and digits" in proc.stderr


def test_binances_own_words_are_printed_as_binance_wrote_them() -> None:
    """-1121's msg names a symbol, not the --symbol flag: only the library's words are rewritten."""
    error = BinanceAPIError(400, -1121, "Invalid symbol.", operation="POST /sapi/v1/userListenToken")
    assert error_message(error) == "POST /sapi/v1/userListenToken: HTTP 400, code -1121: Invalid symbol."


def test_the_advice_after_binances_words_still_names_the_flags() -> None:
    message = error_message(SignatureError(400, -1022, "Signature for this request is not valid."))
    assert "--api-secret-file" in message
    assert "api_secret=" not in message
