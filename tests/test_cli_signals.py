"""`run` stops within about a second on Ctrl-C or SIGTERM, whatever it is doing at the time.

Each test starts the real command, brings it to one state (a request to a hanging server in
flight, a 429 wait, a retry wait, a failed keepalive's wait), signals it, and times the exit.
Exit codes as `--help` documents them: 0 once run had a key, 128 + the signal before.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from binance_userstream.simulator import Fault, Simulator
from tests._scripted import Reply, ScriptedServer
from tests.conftest import API_KEY
from tests.test_cli import CLI

#: Signal to exit, allowing for the interpreter's own start and stop on a loaded machine.
PROMPT = 2.5
ENV = {**os.environ, "BINANCE_API_KEY": API_KEY}
HANG = Reply(delay=30)
TOO_MANY = Reply(status=429, body={"code": -1003, "msg": "Too many requests"}, headers={"Retry-After": "20"})


def run(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for another process to reach a state no clock of ours can tell."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        pause.wait(0.01)


def read_until(stream: object, text: bytes, timeout: float = 10.0) -> bytes:
    """Read a pipe until `text` appears (or fail after `timeout`: never hang the suite)."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while text not in seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; read {seen!r}"
            assert selector.select(remaining), f"timed out; read {seen!r}"
            chunk = os.read(fd, 65536)
            assert chunk, f"closed; read {seen!r}"
            seen += chunk
    return seen


def stop(proc: subprocess.Popen[bytes], signum: int) -> tuple[int, float, bytes, bytes]:
    """Signal `proc`; its exit code, the seconds it took, and the rest of its output."""
    began = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=15)
    return proc.returncode, time.monotonic() - began, out, err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_create_hangs_ends_run_at_once(server: ScriptedServer, signum: int, code: int) -> None:
    server.script(HANG)
    with run("--base-url", server.url) as proc:
        try:
            eventually(lambda: len(server.requests) == 1)
            returncode, took, out, err = stop(proc, signum)
        finally:
            proc.kill()
    assert (returncode, took < PROMPT) == (code, True), (took, err)
    assert b"created" not in out
    assert err.decode().endswith(" before the session had a key\n")
    assert len(server.requests) == 1  # no key was created after the signal


def test_a_signal_during_a_429_wait_ends_run_at_once(server: ScriptedServer) -> None:
    server.script(TOO_MANY)
    with run("--base-url", server.url, "--json") as proc:
        try:
            eventually(lambda: len(server.requests) == 1)
            returncode, took, out, err = stop(proc, signal.SIGTERM)
        finally:
            proc.kill()
    assert (returncode, took < PROMPT) == (143, True), (took, err)
    assert json.loads(out) == {
        "event": "error",
        "error": "Terminated",
        "detail": "terminated before the session had a key",
        "exit": 143,
    }
    assert len(server.requests) == 1


def test_a_signal_while_retrying_an_unreachable_server_exits_130_not_7() -> None:
    with run("--base-url", "http://127.0.0.1:9", "-v") as proc:
        try:
            read_until(proc.stderr, b"retrying in")
            returncode, took, _, err = stop(proc, signal.SIGINT)
        finally:
            proc.kill()
    assert (returncode, took < PROMPT) == (130, True), (took, err)
    assert b"Traceback" not in err


def test_a_signal_while_a_failed_keepalive_waits_stops_run_and_closes_the_key() -> None:
    with (
        Simulator(retired=False) as sim,
        run("--base-url", sim.url, "--interval", "1s", "--no-retry", "--close-on-exit") as proc,
    ):
        try:
            read_until(proc.stdout, b"created")
            sim.inject(Fault.server_error(503))
            read_until(proc.stdout, b"keepalive_failed")  # now waiting 60 s to retry
            returncode, took, out, err = stop(proc, signal.SIGINT)
        finally:
            proc.kill()
        assert sim.exchange.live_keys() == 0
    assert (returncode, took < PROMPT) == (0, True), (took, err)
    last_two = [line.split()[1] for line in out.rstrip().splitlines()[-2:]]
    assert last_two == [b"closed", b"stopped"]


def test_a_signal_while_a_keepalive_hangs_leaves_within_the_close_grace(server: ScriptedServer) -> None:
    with run("--base-url", server.url, "--interval", "1s", "--close-on-exit") as proc:
        try:
            read_until(proc.stdout, b"created")
            server.script(HANG, HANG)  # the keepalive, then the close
            eventually(lambda: [r.method for r in server.requests] == ["POST", "PUT"])
            returncode, took, out, err = stop(proc, signal.SIGTERM)
        finally:
            proc.kill()
    assert (returncode, took < 1.0 + PROMPT) == (0, True), (took, err)
    assert [r.method for r in server.requests] == ["POST", "PUT", "DELETE"]  # the close was tried
    assert b"stopped before the key could be closed" in err
    assert out.rstrip().splitlines()[-1].split()[1] == b"stopped"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("command", ["create", "keepalive", "close"])
def test_a_signal_ends_a_one_shot_command_with_its_exit_code(
    server: ScriptedServer, tmp_path: Path, command: str, signum: int, code: int
) -> None:
    server.script(HANG)
    key_file = tmp_path / "key"
    key_file.write_text("k" * 60 + "\n")
    key = [] if command == "create" else ["--key-file", str(key_file)]
    with subprocess.Popen(
        [*CLI, command, *key, "--base-url", server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    ) as proc:
        try:
            eventually(lambda: len(server.requests) == 1)
            returncode, took, _, err = stop(proc, signum)
        finally:
            proc.kill()
    assert (returncode, took < PROMPT) == (code, True), (took, err)
    assert b"Traceback" not in err
