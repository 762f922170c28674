"""`--market` on every command, and `run --key-file`, run as real processes against the simulator.

The market table (`binance_userstream.MARKETS`) drives the CLI: its names are the choices, its
hosts the named `--base-url` values.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from binance_userstream import MARKETS
from binance_userstream.simulator import Simulator
from tests.conftest import API_KEY
from tests.test_cli import CLI, cli, live, spawn

__all__ = ["live"]  # the fixture, shared with test_cli

LIVE = [name for name, market in MARKETS.items() if market.retired is None]


def _read_key(path: Path) -> str:
    return path.read_text().strip()


@pytest.mark.parametrize("market", LIVE)
def test_create_keepalive_and_close_work_on_each_market(market: str, live: Simulator, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    common = ["--market", market, "--base-url", live.url]
    created = cli("create", *common, "--key-file", str(key_file))
    assert created.returncode == 0, created.stderr
    key = _read_key(key_file)
    assert live.exchange.is_live(key)
    assert cli("keepalive", *common, "--key-file", str(key_file)).returncode == 0
    assert cli("close", *common, "--key-file", str(key_file)).returncode == 0
    assert not live.exchange.is_live(key)
    again = cli("keepalive", *common, "--key-file", str(key_file))
    assert again.returncode == 4  # the listenKey does not exist
    assert key not in again.stdout + again.stderr


def test_the_market_choices_are_the_market_table() -> None:
    text = cli("create", "--help").stdout
    for name, market in MARKETS.items():
        assert name in text
        for host in market.hosts:
            assert host in text


def test_an_unknown_market_is_a_usage_error_that_names_the_choices() -> None:
    proc = cli("create", "--market", "futures")
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[0]
    assert "'usdm'" in error
    assert "futures" not in error  # usage errors never repeat what was typed


def test_a_host_name_the_market_lacks_exits_2_before_sending(live: Simulator) -> None:
    proc = cli("create", "--market", "portfolio", "--base-url", "testnet")
    assert proc.returncode == 2
    assert "production" in proc.stderr


def test_each_market_creates_its_own_key_for_one_account(live: Simulator) -> None:
    keys = {}
    for market in LIVE:
        proc = cli("create", "--market", market, "--base-url", live.url, "--print-key")
        assert proc.returncode == 0, proc.stderr
        keys[market] = proc.stdout.strip()
    assert keys.pop("portfolio_pro") == keys["usdm"]  # Portfolio Margin Pro's key is USD-M's
    assert len(set(keys.values())) == len(keys)


def test_the_retired_default_market_names_the_live_ones() -> None:
    with Simulator(retired=True) as sim:
        proc = cli("create", "--base-url", sim.url)
    assert proc.returncode == 6
    assert "--market usdm" in proc.stderr  # the flag, in the command's words


def test_run_key_file_follows_the_session_across_a_replacement(live: Simulator, tmp_path: Path) -> None:
    key_file = tmp_path / "current-key"
    env = {**os.environ, "BINANCE_API_KEY": API_KEY}
    args = [*CLI, "run", "--market", "usdm", "--base-url", live.url, "--json", "--interval", "1"]
    with spawn([*args, "--key-file", str(key_file)], stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline())]
        assert lines[0]["event"] == "created"
        first = _read_key(key_file)  # written before the line was printed
        assert live.exchange.is_live(first)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        live.exchange.forget_keys()  # the next keepalive finds it gone: -1125, then a new key
        for line in proc.stdout:
            lines.append(json.loads(line))
            if lines[-1]["event"] == "replaced":
                break
        replaced = _read_key(key_file)
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert replaced != first
    assert live.exchange.is_live(replaced)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [entry["event"] for entry in lines][-2:] == ["key_lost", "replaced"]
    assert all(replaced not in json.dumps(entry) for entry in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current-key"]  # no temporary file left


def test_run_key_file_in_a_missing_directory_exits_2_before_sending(live: Simulator, tmp_path: Path) -> None:
    proc = cli("run", "--market", "usdm", "--base-url", live.url, "--key-file", str(tmp_path / "no" / "k"))
    assert proc.returncode == 2
    assert live.exchange.live_keys() == 0
