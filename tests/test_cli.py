"""The `binance-userstream` command, run as a real process against the simulator.

Exit codes are the documented ones (`binance-userstream --help`); errors are one line, with no
traceback and no secret; the API key never comes from the command line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Fault, Simulator
from tests.conftest import API_KEY

CLI = [sys.executable, "-m", "binance_userstream"]


@pytest.fixture
def live() -> Iterator[Simulator]:
    """A simulator on real time (the CLI runs in another process, with its own clock), serving spot's
    retired listenKey lifecycle (retired=False), which the CLI's lifecycle commands use by default."""
    with Simulator(retired=False) as sim:
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


@contextmanager
def spawn(args: list[str], **options: Any) -> Iterator[subprocess.Popen[str]]:
    """A CLI process that is killed if the test fails before it ends (no test waits forever)."""
    with subprocess.Popen(args, **options) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


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
    with Simulator(api_keys=["Only1"], retired=False) as sim:
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
        [*CLI, "simulator", "--port", "0", "--no-retired", "--fault", "503", "--fault", "429:2"],
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


@pytest.mark.parametrize(
    ("options", "spot", "isolated"),
    [
        ([], 410, {"BTCUSDT": 200, "DOGEUSDT": 400}),
        (["--no-retired", "--isolated-symbols", "DOGEUSDT"], 200, {"BTCUSDT": 400, "DOGEUSDT": 200}),
        (["--any-isolated-symbol"], 410, {"BTCUSDT": 200, "DOGEUSDT": 200}),
    ],
)
def test_the_simulator_command_answers_as_production_unless_told_to_be_lenient(
    options: list[str], spot: int, isolated: dict[str, int]
) -> None:
    """Production answers spot's listenKey 410 since 2026-02-20 and refuses a pair without an
    isolated margin account (-11001); --no-retired and --any-isolated-symbol serve old programs."""
    with spawn([*CLI, "simulator", "--port", "0", *options], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        headers = {"X-MBX-APIKEY": API_KEY}
        assert httpx.post(url + "/api/v3/userDataStream", headers=headers).status_code == spot
        for symbol, status in isolated.items():
            assert mint_isolated(url, symbol).status_code == status
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def mint_isolated(url: str, symbol: str) -> httpx.Response:
    """`POST /sapi/v1/userListenToken` for `symbol`'s isolated margin account, signed by the test account."""
    query = f"isIsolated=TRUE&symbol={symbol}&timestamp={int(time.time() * 1000)}"
    signature = hmac.new(TEST_API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    return httpx.post(
        f"{url}/sapi/v1/userListenToken?{query}&signature={signature}", headers={"X-MBX-APIKEY": TEST_API_KEY}
    )


def test_the_simulator_command_takes_isolated_pairs_or_any_pair_not_both() -> None:
    proc = cli(
        "simulator", "--port", "0", "--isolated-symbols", "BTCUSDT", "--any-isolated-symbol", timeout=10
    )
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr


def test_the_simulator_command_takes_strict_or_lenient_events_not_both() -> None:
    proc = cli("simulator", "--port", "0", "--strict-events", "--lenient-events", timeout=10)
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr


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
        [*CLI, "simulator", "--host", everywhere, "--port", "0", "--no-retired"],
        stdout=subprocess.PIPE,
        text=True,
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


# -- key files (item 19) ---------------------------------------------------------------------------


def test_create_key_file_replaces_a_world_readable_file_with_a_private_one(
    live: Simulator, tmp_path: Path
) -> None:
    target = tmp_path / "key"
    target.write_text("old\n")
    target.chmod(0o644)
    assert cli("create", "--base-url", live.url, "--key-file", str(target)).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert live.exchange.is_live(target.read_text().strip())


def test_create_key_file_refuses_a_symlink_before_sending(live: Simulator, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("precious\n")
    (tmp_path / "key").symlink_to(elsewhere)
    proc = cli("create", "--base-url", live.url, "--key-file", str(tmp_path / "key"))
    assert proc.returncode == 2
    assert "symbolic link" in proc.stderr
    assert elsewhere.read_text() == "precious\n"
    assert live.request_count == 0


def test_create_key_file_in_a_missing_directory_exits_2_before_sending(live: Simulator) -> None:
    proc = cli("create", "--base-url", live.url, "--key-file", "/missing/dir/k")
    assert proc.returncode == 2
    assert live.request_count == 0
    assert live.exchange.live_keys() == 0


# -- one-line errors, never a traceback or an echoed secret (item 20) ------------------------------


def one_line_usage_error(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2  # the error on one line, then where help is (not the whole usage)
    assert "error:" in lines[0]
    assert lines[1].startswith("Try 'binance-userstream")


@pytest.mark.parametrize("port", ["-1", "70000", "http"])
def test_the_simulator_refuses_a_port_out_of_range(port: str) -> None:
    one_line_usage_error(cli("simulator", "--port", port))


@pytest.mark.parametrize("limit", ["-5", "0", "1e3"])
def test_the_simulator_refuses_a_weight_limit_below_one(limit: str) -> None:
    one_line_usage_error(cli("simulator", "--port", "0", "--weight-limit", limit))


@pytest.mark.parametrize("spec", ["delay:-1", "delay:inf", "delay:nan", "429:-3", "418:inf"])
def test_the_simulator_refuses_a_fault_with_bad_seconds(spec: str) -> None:
    proc = cli("simulator", "--port", "0", "--fault", spec)
    one_line_usage_error(proc)
    assert "finite" in proc.stderr


def test_the_unknown_fault_message_lists_every_fault() -> None:
    proc = cli("simulator", "--port", "0", "--fault", "teapot")
    for name in ("5XX", "429:", "418:", "410", "drop", "lose-keys", "delay:"):
        assert name in proc.stderr


def test_close_with_a_huge_listen_key_exits_2_with_one_line(live: Simulator) -> None:
    proc = cli("close", "k" * 100_000, "--base-url", live.url)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "at most 256" in proc.stderr
    assert live.request_count == 0


@pytest.mark.parametrize(
    "args",
    [
        [API_KEY],
        ["run", "--interval", API_KEY],
        ["run", "--for", API_KEY],
        ["create", "--timeout", API_KEY],
        ["simulator", "--port", API_KEY],
        ["simulator", "--fault", API_KEY],
        ["keepalive", "a", API_KEY],
    ],
)
def test_usage_errors_never_repeat_what_was_typed(args: list[str]) -> None:
    proc = cli(*args)  # cli() asserts that API_KEY is in neither stdout nor stderr
    assert proc.returncode == 2


def test_a_bad_subcommand_still_lists_the_choices() -> None:
    proc = cli("crate")
    assert proc.returncode == 2
    assert "crate" not in proc.stderr.replace("create", "")
    assert "'create'" in proc.stderr


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"binance-userstream {version('binance-userstream')}"


def test_in_json_mode_a_failure_is_a_json_line_on_stdout_too() -> None:
    with Simulator(retired=True) as sim:
        proc = cli("run", "--base-url", sim.url, "--json")
    assert proc.returncode == 6
    error = json.loads(proc.stdout.splitlines()[-1])
    assert error["event"] == "error"
    assert error["error"] == "EndpointRetiredError"
    assert error["exit"] == 6
    assert "2026-02-20" in proc.stderr


def test_in_json_mode_a_usage_error_is_a_json_line_on_stdout_too() -> None:
    proc = cli("run", "--json", "--interval", "2h")
    assert proc.returncode == 2
    error = json.loads(proc.stdout)
    assert (error["event"], error["error"], error["exit"]) == ("error", "UsageError", 2)
    assert "3000 seconds" in error["detail"]


def test_run_json_into_a_pipe_closed_early_exits_promptly(live: Simulator) -> None:
    """`run --json | head -n 2`: when the reader goes, run ends (141, as if killed by SIGPIPE)."""
    env = {**os.environ, "BINANCE_API_KEY": API_KEY}
    args = [*CLI, "run", "--base-url", live.url, "--json", "--speed", "3600", "--close-on-exit"]
    with spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        proc.stdout.close()
        assert proc.wait(timeout=10) == 141
        stderr = proc.stderr.read()
    assert [json.loads(line)["event"] for line in lines] == ["created", "kept_alive"]
    assert "Traceback" not in stderr
    assert live.exchange.live_keys() == 0  # --close-on-exit was honoured


# -- listenKeys from a file or stdin everywhere (item 21) ------------------------------------------


def test_keepalive_and_close_read_the_key_from_a_file(live: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert cli("create", "--base-url", live.url, "--key-file", str(path)).returncode == 0
    key = path.read_text().strip()
    ok = cli("keepalive", "--key-file", str(path), "--base-url", live.url)
    assert ok.returncode == 0
    assert key not in ok.stdout
    assert cli("close", "--key-file", str(path), "--base-url", live.url).returncode == 0
    assert not live.exchange.is_live(key)


def test_keepalive_needs_a_key_from_somewhere(live: Simulator) -> None:
    proc = cli("keepalive", "--base-url", live.url)
    assert proc.returncode == 2
    assert live.request_count == 0


def test_run_adopts_a_key_from_a_file(live: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert cli("create", "--base-url", live.url, "--key-file", str(path)).returncode == 0
    proc = cli("run", "--base-url", live.url, "--listen-key-file", str(path), "--for", "1s", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout.splitlines()[0])["event"] == "adopted"


@pytest.mark.parametrize("command", ["keepalive", "close", "run"])
def test_help_says_a_key_argument_is_visible_in_ps(command: str) -> None:
    text = " ".join(cli(command, "--help").stdout.split())
    assert "visible to every user of this machine (ps)" in text


def test_a_session_failing_during_run_ends_it_with_its_exit_code_and_a_json_error(live: Simulator) -> None:
    env = {**os.environ, "BINANCE_API_KEY": API_KEY}
    args = [*CLI, "run", "--base-url", live.url, "--json", "--interval", "1s"]
    with spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["event"] == "created"
        live.exchange.retired = True
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 6
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events[-3:]] == ["failed", "stopped", "error"]
    assert events[-1]["error"] == "EndpointRetiredError"
    assert err.startswith("binance-userstream: error: ")
    assert "2026-02-20" in err


def test_the_simulator_commands_keys_file_takes_a_secret_per_key_and_refuses_other_keys(
    tmp_path: Path,
) -> None:
    """A line 'KEY SECRET' registers the key's HMAC secret, so that another process can run many
    signing accounts against one simulator; a key not in the file is refused -2015."""
    signer, plain = "BenchSigner" + "1" * 53, "BenchPlain" + "2" * 54
    secret = "BenchSecret" + "3" * 53
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{signer} {secret}\n{plain}\n\n")
    with spawn(
        [*CLI, "simulator", "--port", "0", "--api-keys-file", str(keys)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        query = f"timestamp={int(time.time() * 1000)}"

        def mint(key: str) -> httpx.Response:
            signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            return httpx.post(
                f"{url}/sapi/v1/userListenToken?{query}&signature={signature}", headers={"X-MBX-APIKEY": key}
            )

        assert mint(signer).status_code == 200
        assert mint(plain).json()["code"] == -2015  # accepted, but it has no secret to verify with
        assert mint("BenchOther" + "4" * 54).json()["code"] == -2015
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_the_simulator_commands_connection_limit_refuses_the_next_websocket_upgrade_429() -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with spawn(
        [*CLI, "simulator", "--port", "0", "--connection-limit", "1"], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        ws_api = proc.stdout.readline().split()[-1].replace("http", "ws") + "/ws-api/v3"
        with connect(ws_api):
            pass
        with pytest.raises(InvalidStatus) as refused, connect(ws_api):
            pass
        assert refused.value.response.status_code == 429
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_the_simulator_commands_ws_weight_limit_refuses_requests_past_it_429() -> None:
    from websockets.sync.client import connect

    with spawn(
        [*CLI, "simulator", "--port", "0", "--ws-weight-limit", "3"], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        ws_api = proc.stdout.readline().split()[-1].replace("http", "ws") + "/ws-api/v3"
        with connect(ws_api) as ws:  # connecting: 2 of the 3
            statuses = []
            for n in range(3):
                ws.send(json.dumps({"id": n, "method": "time"}))
                statuses.append(json.loads(ws.recv(timeout=5))["status"])
        assert statuses == [200, 429, 429]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
