"""The `binance-userstream` command, run as a real process against the simulator.

Exit codes are the documented ones (`binance-userstream --help`); errors are one line, with no
traceback and no secret; the API key never comes from the command line.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from binance_userstream.simulator import Fault, Simulator
from tests.conftest import API_KEY

CLI = [sys.executable, "-m", "binance_userstream"]


@pytest.fixture
def live() -> Iterator[Simulator]:
    """A simulator on real time (the CLI runs in another process, with its own clock)."""
    with Simulator() as sim:
        yield sim


def cli(
    *args: str, key: str | None = API_KEY, stdin: str = "", timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BINANCE_API_KEY"}
    if key is not None:
        env["BINANCE_API_KEY"] = key
    proc = subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout
    )
    assert API_KEY not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def test_create_prints_only_a_key_prefix_by_default(live: Simulator) -> None:
    proc = cli("create", "--base-url", live.url)
    assert proc.returncode == 0
    assert proc.stdout.startswith("created listenKey ")
    assert len(proc.stdout.split()[2]) == 5  # four characters and an ellipsis


def test_create_print_key_prints_the_whole_key_alone(live: Simulator) -> None:
    proc = cli("create", "--base-url", live.url, "--print-key")
    assert proc.returncode == 0
    assert live.exchange.is_live(proc.stdout.strip())


def test_create_key_file_writes_the_key_readable_by_the_owner_only(live: Simulator, tmp_path: Path) -> None:
    target = tmp_path / "key"
    proc = cli("create", "--base-url", live.url, "--key-file", str(target))
    assert proc.returncode == 0
    key = target.read_text().strip()
    assert live.exchange.is_live(key)
    assert key not in proc.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_keepalive_and_close_take_the_key_as_an_argument_or_from_stdin(live: Simulator) -> None:
    key = cli("create", "--base-url", live.url, "--print-key").stdout.strip()
    assert cli("keepalive", key, "--base-url", live.url).returncode == 0
    ok = cli("keepalive", "-", "--base-url", live.url, stdin=key + "\n")
    assert ok.returncode == 0
    assert key not in ok.stdout
    assert cli("close", "-", "--base-url", live.url, stdin=key).returncode == 0
    assert not live.exchange.is_live(key)


@pytest.mark.parametrize("command", ["keepalive", "close"])
def test_an_unknown_key_exits_4_with_one_line(live: Simulator, command: str) -> None:
    proc = cli(command, "x" * 60, "--base-url", live.url)
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1
    assert "-1125" in proc.stderr
    assert "x" * 60 not in proc.stderr


def test_no_api_key_exits_2_and_names_the_variable(live: Simulator) -> None:
    proc = cli("create", "--base-url", live.url, key=None)
    assert proc.returncode == 2
    assert "BINANCE_API_KEY" in proc.stderr
    assert live.request_count == 0


def test_the_api_key_can_come_from_a_file_or_stdin(live: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "api-key"
    path.write_text(API_KEY + "\n")
    assert cli("create", "--base-url", live.url, "--api-key-file", str(path), key=None).returncode == 0
    assert (
        cli("create", "--base-url", live.url, "--api-key-file", "-", key=None, stdin=API_KEY).returncode == 0
    )


def test_there_is_no_api_key_option() -> None:
    proc = cli("create", "--api-key", API_KEY)
    assert proc.returncode == 2


def test_a_malformed_listen_key_exits_2_before_sending(live: Simulator) -> None:
    assert cli("keepalive", "bad key", "--base-url", live.url).returncode == 2
    assert live.request_count == 0


def test_plain_http_to_a_remote_host_exits_2() -> None:
    proc = cli("create", "--base-url", "http://api.binance.com")
    assert proc.returncode == 2
    assert "plain http" in proc.stderr


def test_an_unknown_api_key_exits_3() -> None:
    with Simulator(api_keys=["Only1"]) as sim:
        proc = cli("create", "--base-url", sim.url)
    assert proc.returncode == 3
    assert "-2015" in proc.stderr


def test_a_ban_exits_5(live: Simulator) -> None:
    live.inject(Fault.banned(300))
    proc = cli("create", "--base-url", live.url)
    assert proc.returncode == 5
    assert "retry after 300 s" in proc.stderr


def test_retired_endpoints_exit_6_with_the_retirement_notice() -> None:
    with Simulator(retired=True) as sim:
        proc = cli("create", "--base-url", sim.url)
        assert len(sim.requests) == 1
    assert proc.returncode == 6
    assert "2026-02-20" in proc.stderr
    assert "userDataStream.subscribe" in proc.stderr


def test_an_unreachable_server_exits_7() -> None:
    proc = cli("create", "--base-url", "http://127.0.0.1:9", "--no-retry")
    assert proc.returncode == 7


def test_help_shows_examples_and_exit_codes() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout
    assert "exit codes:" in proc.stdout
    assert "--api-key-file" in cli("run", "--help").stdout


def test_run_keeps_a_key_alive_and_prints_json_lines(live: Simulator) -> None:
    proc = cli("run", "--base-url", live.url, "--json", "--speed", "3600", "--for", "2h", "--close-on-exit")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "created"
    assert kinds.count("kept_alive") >= 3
    assert kinds[-2:] == ["closed", "stopped"]
    assert all(len(e["key"]) == 5 for e in events)
    assert live.exchange.live_keys() == 0


def test_run_stops_cleanly_on_sigterm(live: Simulator) -> None:
    env = {**os.environ, "BINANCE_API_KEY": API_KEY}
    with subprocess.Popen(
        [*CLI, "run", "--base-url", live.url], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "created" in first
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        assert proc.wait(timeout=10) == 0
    assert "stopped" in rest
    assert live.exchange.live_keys() == 1  # not closed: the key is shared by the account


def test_run_against_retired_endpoints_exits_6() -> None:
    with Simulator(retired=True) as sim:
        proc = cli("run", "--base-url", sim.url, "--for", "1s")
    assert proc.returncode == 6


def test_the_simulator_command_serves_and_injects_faults() -> None:
    with subprocess.Popen(
        [*CLI, "simulator", "--port", "0", "--fault", "503", "--fault", "429:2"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split()[-1]
        assert line.startswith("simulator listening on http://127.0.0.1:")
        headers = {"X-MBX-APIKEY": API_KEY}
        statuses = [httpx.post(url + "/api/v3/userDataStream", headers=headers).status_code for _ in range(3)]
        assert statuses == [503, 429, 200]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_the_simulator_command_refuses_an_unknown_fault() -> None:
    proc = cli("simulator", "--port", "0", "--fault", "teapot")
    assert proc.returncode == 2
    assert "unknown fault" in proc.stderr


def test_the_simulator_command_names_a_port_in_use(live: Simulator) -> None:
    port = live.address[1]
    proc = cli("simulator", "--port", str(port))
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in proc.stderr
    assert "in use" in proc.stderr


def test_the_simulator_command_on_all_interfaces_prints_a_url_clients_accept() -> None:
    everywhere = "0.0.0.0"  # noqa: S104 (the point of the test)
    with subprocess.Popen(
        [*CLI, "simulator", "--host", everywhere, "--port", "0"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            url = line.split()[-1]
            assert "all interfaces" in line
            assert url.startswith("http://127.0.0.1:")
            assert cli("create", "--base-url", url).returncode == 0
        finally:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_run_status_lines_count_from_the_creation_of_the_key(live: Simulator) -> None:
    proc = cli("run", "--base-url", live.url, "--speed", "3600", "--for", "1h")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0].startswith("+00:00:00 created key=")
