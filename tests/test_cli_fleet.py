"""`binance-userstream fleet`, run as a real process against the simulator (spot, the WebSocket API):
every account's events as JSON lines tagged with its id, a gap and an account's end as lines of
their own; signals, --for and exit codes as `listen`'s; the accounts file refused unless mode 0600;
never a key or secret printed, even with the debug log on."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from binance_userstream.simulator import Simulator
from tests._docs import section
from tests.test_cli import CLI, spawn
from tests.test_cli_account import live

__all__ = ["live"]  # the fixture: a simulator on real time

PATIENCE = 15.0


def key(n: int) -> str:
    return f"CliFleetKey{n:053d}"


def secret(n: int) -> str:
    return f"CliFleetSecret{n:050d}"


def accounts_file(sim: Simulator, directory: Path, count: int, *, wrong: tuple[int, ...] = ()) -> Path:
    """`count` accounts registered with the simulator, their keys and secrets in files (account n's
    secret is wrong for n in `wrong`), listed in directory/accounts.toml, mode 0600."""
    (directory / "keys").mkdir()
    tables = []
    for n in range(count):
        sim.register_key(key(n), secret=secret(n))
        (directory / "keys" / f"{n}.key").write_text(key(n) + "\n")
        (directory / "keys" / f"{n}.secret").write_text(("W" * 64 if n in wrong else secret(n)) + "\n")
        files = f'api_key_file = "keys/{n}.key"\napi_secret_file = "keys/{n}.secret"\n'
        tables.append(f'[[account]]\nid = "acct-{n}"\n{files}')
    path = directory / "accounts.toml"
    path.write_text("\n".join(tables))
    path.chmod(0o600)
    return path


def env() -> dict[str, str]:
    names = ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE")
    return {name: value for name, value in os.environ.items() if name not in names}


def fleet(sim: Simulator, accounts: Path, *extra: str) -> list[str]:
    ws = sim.url.replace("http://", "ws://")
    return [*CLI, "fleet", "--accounts", str(accounts), "--base-url", sim.url, "--stream-url", ws, *extra]


def balance(n: int) -> dict[str, Any]:
    return {"e": "balanceUpdate", "E": n, "a": "BTC", "d": "0.1", "T": n}


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def lines(proc: subprocess.Popen[str], count: int) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    return [json.loads(proc.stdout.readline()) for _ in range(count)]


def test_each_accounts_events_are_listen_s_json_lines_tagged_with_its_id(
    live: Simulator, tmp_path: Path
) -> None:
    with spawn(fleet(live, accounts_file(live, tmp_path, 3)), **_pipes()) as proc:
        eventually(lambda: live.subscriptions() == 3, "the fleet never subscribed its accounts")
        for n in range(3):
            live.push("spot", balance(10 + n), key(n))
        got = lines(proc, 3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 130
    assert sorted(got, key=lambda line: line["account"]) == [
        {"account": f"acct-{n}", **balance(10 + n)} for n in range(3)
    ]


def test_an_account_signing_with_an_ed25519_key_file_gets_its_events(live: Simulator, tmp_path: Path) -> None:
    path = accounts_file(live, tmp_path, 1)
    private = Ed25519PrivateKey.generate()
    live.register_key(
        key(9), public_key=private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "keys" / "9.key").write_text(key(9))
    (tmp_path / "keys" / "9.pem").write_bytes(
        private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    with path.open("a") as file:
        file.write('\n[[account]]\nid = "ed"\napi_key_file = "keys/9.key"\nprivate_key_file = "keys/9.pem"\n')
    with spawn(fleet(live, path), **_pipes()) as proc:
        eventually(lambda: live.subscriptions() == 2, "the fleet never subscribed its accounts")
        live.push("spot", balance(3), key(9))
        got = lines(proc, 1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 130
    assert got == [{"account": "ed", **balance(3)}]


def test_a_dropped_connection_is_a_gap_line_for_each_of_its_accounts_and_one_line_on_stderr(
    live: Simulator, tmp_path: Path
) -> None:
    with spawn(fleet(live, accounts_file(live, tmp_path, 3)), **_pipes()) as proc:
        eventually(lambda: live.subscriptions() == 3, "the fleet never subscribed its accounts")
        live.drop_streams("spot")
        gaps = lines(proc, 3)
        eventually(lambda: live.subscriptions() == 3, "the fleet never resubscribed")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 143
    assert sorted(line["account"] for line in gaps) == ["acct-0", "acct-1", "acct-2"]
    assert all(line["event"] == "gap" and line["reason"] == "disconnected" for line in gaps)
    assert err.count("stream disconnected") == 1
    assert "account acct-" not in err  # the connection's loss, not each account's


def test_an_account_refused_ends_in_a_line_of_its_own_and_the_others_go_on(
    live: Simulator, tmp_path: Path
) -> None:
    with spawn(fleet(live, accounts_file(live, tmp_path, 3, wrong=(1,))), **_pipes()) as proc:
        [ended] = lines(proc, 1)
        eventually(lambda: live.subscriptions() == 2, "the others never subscribed")
        live.push("spot", balance(7), key(2))
        [event] = lines(proc, 1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 130
    assert ended["account"] == "acct-1"
    assert ended["event"] == "ended"
    assert ended["error"] == "SignatureError"
    assert event == {"account": "acct-2", **balance(7)}


def test_once_every_account_has_ended_the_command_exits_with_the_first_ones_code(
    live: Simulator, tmp_path: Path
) -> None:
    proc = subprocess.run(
        fleet(live, accounts_file(live, tmp_path, 2, wrong=(0, 1))),
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,
    )
    assert proc.returncode == 3  # the API key refused: a wrong signature
    ended = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(line["account"] for line in ended) == ["acct-0", "acct-1"]
    assert "every account ended" in proc.stderr


def test_fleet_stops_after_for_and_says_its_connection_on_stderr(live: Simulator, tmp_path: Path) -> None:
    proc = subprocess.run(
        fleet(live, accounts_file(live, tmp_path, 2), "--for", "1s"),
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "stream connected connection=" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_accounts_file_others_can_read_is_refused_before_anything_is_sent(
    live: Simulator, tmp_path: Path
) -> None:
    path = accounts_file(live, tmp_path, 1)
    path.chmod(0o644)
    proc = subprocess.run(fleet(live, path), capture_output=True, text=True, env=env(), timeout=30)
    assert proc.returncode == 2
    assert f"chmod 600 {path}" in proc.stderr
    assert json.loads(proc.stdout)["error"] == "AccountsFileError"  # a JSON line, as listen --json says one
    assert live.subscriptions() == 0
    assert live.deliveries == []


def test_an_accounts_file_error_is_said_in_the_file_s_own_field_names(
    live: Simulator, tmp_path: Path
) -> None:
    path = accounts_file(live, tmp_path, 1)
    path.write_text(path.read_text() + f'api_secret = "{secret(0)}"\nsymbol = "BTC/USDT"\n')
    proc = subprocess.run(fleet(live, path), capture_output=True, text=True, env=env(), timeout=30)
    assert proc.returncode == 2
    assert "account 'acct-0', api_secret: a secret is never written in the accounts file" in proc.stderr
    assert "--api-secret-file" not in proc.stderr
    assert secret(0) not in proc.stdout + proc.stderr


def test_no_key_or_secret_is_printed_even_with_the_debug_log(live: Simulator, tmp_path: Path) -> None:
    with spawn(fleet(live, accounts_file(live, tmp_path, 3, wrong=(2,)), "-vv"), **_pipes()) as proc:
        eventually(lambda: live.subscriptions() == 2, "the fleet never subscribed its accounts")
        live.push("spot", balance(1), key(0))
        live.drop_streams("spot")
        eventually(lambda: live.subscriptions() == 2, "the fleet never resubscribed")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert "DEBUG" in err  # the log was on
    for n in range(3):
        assert key(n) not in out + err
        assert secret(n) not in out + err
    assert "W" * 64 not in out + err


def test_the_cli_guide_s_many_accounts_example_runs(live: Simulator, tmp_path: Path) -> None:
    """The guide's accounts file and command line, with its key files made for the simulator."""
    part = section("docs/guides/cli.md", "## Many accounts: `fleet`")
    toml = part.split("```toml\n", 1)[1].split("```", 1)[0]
    command = next(line for line in part.splitlines() if line.startswith("binance-userstream fleet "))
    (tmp_path / "keys").mkdir()
    for name, pair in (("alice", 0), ("bob", 1)):
        live.register_key(key(pair), secret=secret(pair))
        (tmp_path / "keys" / f"{name}.key").write_text(key(pair))
        (tmp_path / "keys" / f"{name}.secret").write_text(secret(pair))
    (tmp_path / "accounts.toml").write_text(toml)
    (tmp_path / "accounts.toml").chmod(0o600)
    port = live.url.rpartition(":")[2]
    args = [*CLI, *shlex.split(command.replace("127.0.0.1:8765", f"127.0.0.1:{port}"))[1:]]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env(), timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "stream connected connection=" in proc.stderr


def _pipes() -> dict[str, Any]:
    return {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": env()}
