"""`binance-userstream listen`, run as a real process against the simulator's REST and streams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from tests.conftest import API_KEY
from tests.test_cli import CLI, cli, live, spawn

__all__ = ["live"]  # the fixture, shared with test_cli


def _listen(sim: Simulator, *extra: str) -> list[str]:
    ws = sim.url.replace("http://", "ws://")
    return [*CLI, "listen", "--market", "usdm", "--base-url", sim.url, "--stream-url", ws, *extra]


def _wait_connected(sim: Simulator) -> None:
    deadline = time.monotonic() + 15
    while sim.stream_connections("usdm") == 0:
        assert time.monotonic() < deadline, "listen never connected"
        time.sleep(0.02)


def test_listen_prints_each_event_as_json_and_a_drop_as_a_gap(live: Simulator) -> None:
    env = {**os.environ, "BINANCE_API_KEY": API_KEY}
    with spawn(
        _listen(live, "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        _wait_connected(live)
        sent = live.traffic("usdm")
        lines = [json.loads(proc.stdout.readline()) for _ in sent]
        live.drop_streams("usdm")
        gap = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 130
        stderr = proc.stderr.read() if proc.stderr else ""
    assert lines == [json.loads(d.text) for d in live.deliveries]
    assert gap["event"] == "gap"
    assert gap["reason"] == "disconnected"
    assert gap["last_event_time"] == lines[-1]["E"]
    assert "Traceback" not in stderr


def test_listen_prints_readable_lines_filtered_by_events(live: Simulator) -> None:
    env = {**os.environ, "BINANCE_API_KEY": API_KEY}
    args = _listen(live, "--events", "ORDER_TRADE_UPDATE")
    with spawn(args, stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        _wait_connected(live)
        live.traffic("usdm")
        orders = sum(json.loads(d.text)["e"] == "ORDER_TRADE_UPDATE" for d in live.deliveries)
        lines = [proc.stdout.readline() for _ in range(orders)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
    assert all(line.startswith("OrderTradeUpdate 20") for line in lines)
    assert all("symbol=BTCUSDT, side=BUY" in line for line in lines)
    assert all("status=" in line and "quantity=" in line and "price=" in line for line in lines)


def test_listen_stops_after_for(live: Simulator) -> None:
    proc = cli(*_listen(live, "--for", "1s")[len(CLI) :], timeout=20)
    assert proc.returncode == 0, proc.stderr


def test_listen_refuses_an_unknown_event_name_before_sending(live: Simulator) -> None:
    proc = cli(*_listen(live, "--events", "NOPE")[len(CLI) :])
    assert proc.returncode == 2
    assert "ORDER_TRADE_UPDATE" in proc.stderr
    assert live.exchange.live_keys() == 0


@pytest.mark.parametrize("stream_url", ["ws://10.0.0.1:9", "wss://user:pw@fstream.binance.com"])
def test_listen_refuses_a_stream_url_it_must_not_use(live: Simulator, stream_url: str) -> None:
    proc = cli("listen", "--market", "usdm", "--base-url", live.url, "--stream-url", stream_url)
    assert proc.returncode == 2
    assert "pw" not in proc.stderr
    assert live.exchange.live_keys() == 0


def test_listen_never_prints_the_listen_key_of_an_expired_key(live: Simulator) -> None:
    env = {**os.environ, "BINANCE_API_KEY": API_KEY}
    with spawn(_listen(live, "--json"), stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        _wait_connected(live)
        [key] = live.exchange.live_listen_keys("usdm")
        live.expire_key(key)
        expired = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        proc.wait(timeout=5)
    assert expired["e"] == "listenKeyExpired"
    assert key not in json.dumps(expired) + rest
    assert expired["listenKey"] == key[:4] + "…"


def _listen_ws_api(sim: Simulator, market: str, *extra: str) -> list[str]:
    ws = sim.url.replace("http://", "ws://")
    return [*CLI, "listen", "--market", market, "--base-url", sim.url, "--stream-url", ws, "--json", *extra]


def _wait_subscribed(sim: Simulator) -> None:
    deadline = time.monotonic() + 15
    while sim.subscriptions() == 0:
        assert time.monotonic() < deadline, "listen never subscribed"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("market", "extra"), [("spot", ()), ("margin", ()), ("margin", ("--symbol", "ETHBTC"))]
)
def test_listen_subscribes_spot_and_margin_with_a_secret_from_a_file(
    live: Simulator, tmp_path: Path, market: str, extra: tuple[str, ...]
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(TEST_API_SECRET + "\n")
    env = {**os.environ, "BINANCE_API_KEY": TEST_API_KEY}
    env.pop("BINANCE_API_SECRET", None)
    args = _listen_ws_api(live, market, "--api-secret-file", str(secret), *extra)
    with spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        _wait_subscribed(live)
        symbol = extra[1] if extra else None
        live.push(market, {"e": "balanceUpdate", "E": 5, "a": "BTC", "d": "1.0", "T": 5}, symbol=symbol)
        line = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
        stderr = proc.stderr.read() if proc.stderr else ""
    assert line == {"e": "balanceUpdate", "E": 5, "a": "BTC", "d": "1.0", "T": 5}
    assert TEST_API_SECRET not in stderr
    assert "Traceback" not in stderr


def test_listen_signs_spot_with_a_private_key_file(live: Simulator, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "ed25519.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    api_key = "CliEd25519" + "k" * 54
    live.register_key(
        api_key, public_key=key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    env = {**os.environ, "BINANCE_API_KEY": api_key}
    args = _listen_ws_api(live, "spot", "--private-key-file", str(pem))
    with spawn(args, stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        _wait_subscribed(live)
        live.push("spot", {"e": "balanceUpdate", "E": 6, "a": "BTC", "d": "1.0", "T": 6}, api_key)
        line = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 130
    assert line["E"] == 6


def test_listen_on_spot_without_a_secret_exits_2_before_sending(live: Simulator) -> None:
    env = {**os.environ, "BINANCE_API_KEY": TEST_API_KEY}
    for name in ("BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE"):
        env.pop(name, None)
    proc = subprocess.run(
        _listen_ws_api(live, "spot"), env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert "--api-secret-file or --private-key-file" in proc.stderr
    assert live.request_count == 0
    assert live.stream_connections("spot") == 0


def test_a_wrong_secret_ends_listen_with_the_auth_exit_code_and_a_line_that_says_what_to_check(
    live: Simulator, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("W" * 64)
    env = {**os.environ, "BINANCE_API_KEY": TEST_API_KEY}
    proc = subprocess.run(
        _listen_ws_api(live, "spot", "--api-secret-file", str(secret)),
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "-1022" in proc.stderr
    assert "W" * 64 not in proc.stdout + proc.stderr
