"""What `listen` accepts: the inputs a person copies from Binance's documentation or from the
simulator's own output are taken as they stand, and still checked before anything is sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    PublicFormat,
)

from binance_userstream import MARKETS, AsyncUserDataStream
from binance_userstream._hosts import resolve_stream_url
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from tests.test_cli import CLI, live, spawn
from tests.test_cli_listen import _listen_ws_api, _wait_subscribed

__all__ = ["live"]


def test_listen_decrypts_a_private_key_with_a_passphrase_that_holds_a_space(
    live: Simulator, tmp_path: Path
) -> None:
    """The credentials guide's own example passphrase, "my passphrase", in a file as an editor leaves it."""
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "ed25519.pem"
    pem.write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"my passphrase"))
    )
    passphrase = tmp_path / "passphrase.txt"
    passphrase.write_text("my passphrase\n")
    api_key = "CliPassphrase" + "k" * 51
    live.register_key(
        api_key, public_key=key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    env = {**os.environ, "BINANCE_API_KEY": api_key}
    args = _listen_ws_api(
        live, "spot", "--private-key-file", str(pem), "--private-key-passphrase-file", str(passphrase)
    )
    with spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        _wait_subscribed(live)
        live.push("spot", {"e": "balanceUpdate", "E": 7, "a": "BTC", "d": "1.0", "T": 7}, api_key)
        line = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
        stderr = proc.stderr.read() if proc.stderr else ""
    assert line["E"] == 7
    assert "my passphrase" not in stderr


@pytest.mark.parametrize("market", ["spot", "margin"])
def test_stream_url_takes_binances_documented_websocket_api_url_with_its_port_and_path(market: str) -> None:
    """Binance's web-socket-api.md: "The base endpoint is: wss://ws-api.binance.com:443/ws-api/v3"."""
    documented = "wss://ws-api.binance.com:443/ws-api/v3"
    assert resolve_stream_url(documented, MARKETS[market]) == "wss://ws-api.binance.com:443"


def test_stream_url_takes_the_simulators_websocket_api_url(live: Simulator) -> None:
    uds = AsyncUserDataStream(
        TEST_API_KEY, live.url, market="spot", api_secret=TEST_API_SECRET, stream_url=live.ws_api_url
    )
    assert uds.stream_url == live.url.replace("http://", "ws://")


def test_the_websocket_api_url_the_simulator_command_prints_is_one_spot_and_margin_accept() -> None:
    with subprocess.Popen([*CLI, "simulator", "--port", "0"], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            _, ws_api_line = proc.stdout.readline(), proc.stdout.readline()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    printed = ws_api_line.split()[-1]
    assert printed.startswith("ws://127.0.0.1:")
    assert printed.endswith("/ws-api/v3")
    for market in ("spot", "margin"):
        assert resolve_stream_url(printed, MARKETS[market]) == printed.removesuffix("/ws-api/v3")
