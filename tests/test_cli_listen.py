"""`binance-userstream listen`, run as a real process against the simulator's REST and streams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from binance_userstream.simulator import Simulator
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
    assert all(line.startswith("OrderTradeUpdate event_time=") for line in lines)
    assert all("order=" not in line for line in lines)  # nested objects are left out


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
