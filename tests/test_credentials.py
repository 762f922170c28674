"""The API key and listenKeys are bounded and cleaned the same way wherever they come from.

Binance issues 64-character API keys and 60-character listenKeys
(https://developers.binance.com/docs/binance-spot-api-docs/user-data-stream); anything much longer
is a wrong file or a hostile value, refused with a ValueError before a byte is sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from binance_userstream import BackoffGate, UserDataStream
from binance_userstream._secrets import MAX_TOKEN_LENGTH, read_secret, resolve_api_key
from tests._both import Facade
from tests._scripted import ScriptedServer
from tests.conftest import API_KEY

BOM = "\ufeff"


def test_an_api_key_longer_than_the_bound_is_refused_before_sending(
    server: ScriptedServer, gate: BackoffGate
) -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_TOKEN_LENGTH}"):
        UserDataStream("k" * 100_000, server.url, gate=gate)
    assert server.requests == []


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("operation", ["keepalive", "close"])
def test_a_listen_key_longer_than_the_bound_is_refused_before_sending(
    mode: str, operation: str, server: ScriptedServer, gate: BackoffGate
) -> None:
    facade = Facade(mode, api_key=API_KEY, base_url=server.url, gate=gate)
    with pytest.raises(ValueError, match=f"at most {MAX_TOKEN_LENGTH}"):
        facade(operation, "k" * (MAX_TOKEN_LENGTH + 1))
    assert server.requests == []


def test_a_listen_key_at_the_bound_is_sent(server: ScriptedServer, gate: BackoffGate) -> None:
    with UserDataStream(API_KEY, server.url, gate=gate) as uds:
        uds.keepalive("k" * MAX_TOKEN_LENGTH)
    assert server.requests[0].form["listenKey"] == ["k" * MAX_TOKEN_LENGTH]


@pytest.mark.parametrize("raw", [f"  {API_KEY}\n", f"{BOM}{API_KEY}\r\n", f"{BOM} {API_KEY}\t"])
def test_the_environment_variable_is_cleaned_like_a_key_file(
    raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINANCE_API_KEY", raw)
    path = tmp_path / "key"
    path.write_bytes(raw.encode())
    assert resolve_api_key(None) == API_KEY
    assert read_secret(str(path), "API key") == API_KEY


def test_a_huge_key_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"k" * 10_000_000)
    with pytest.raises(ValueError, match="too large"):
        read_secret(str(path), "API key")


def test_a_key_file_that_is_not_text_is_named_and_its_content_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "key.bin"
    path.write_bytes(b"\xff\xfeSECRETSECRET\x80")
    with pytest.raises(ValueError, match="not UTF-8") as caught:
        read_secret(str(path), "API key")
    assert str(path) in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_a_key_file_that_cannot_be_opened_does_not_echo_the_path(tmp_path: Path) -> None:
    """A path that does not exist may be a key pasted in the wrong place."""
    with pytest.raises(ValueError, match="cannot read") as caught:
        read_secret(API_KEY, "API key")
    assert API_KEY not in str(caught.value)


def test_a_key_file_with_two_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(f"{API_KEY}\n{API_KEY}\n")
    with pytest.raises(ValueError, match="whitespace") as caught:
        read_secret(str(path), "API key")
    assert API_KEY not in str(caught.value)
