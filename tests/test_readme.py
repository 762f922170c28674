"""The README's code blocks run as written, against the simulator.

Every ```python block runs in a fresh interpreter (the "Extend the client" one needs a
regenerated package: tests/test_extension.py runs it). In ```sh blocks, every `binance-userstream`
and `curl` command line runs against a simulator, with the README's port 8765 swapped for the
simulator's; `make`, `pip`, `export` and the simulator's own command are covered elsewhere
(`make test` itself, tests/test_pipeline.py, tests/test_cli.py).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from binance_userstream import SessionEvent, StreamEvent, StreamEventKind, UserDataStream
from binance_userstream.simulator import TEST_API_SECRET, Simulator
from tests.conftest import API_KEY, ROOT

README = (ROOT / "README.md").read_text()
EXTENSION = README[README.index("## Extend the client by editing the YAML") :]
EXTENSION = EXTENSION[: EXTENSION.index("\n## ", 1)]
README_PORT = "127.0.0.1:8765"
BIN = Path(sys.executable).parent


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


PYTHON = [block for block in _blocks("python") if block not in EXTENSION]
COMMANDS = [
    line.strip()
    for block in _blocks("sh")
    for line in block.splitlines()
    if line.startswith(("binance-userstream ", "curl "))
    and not line.startswith("binance-userstream simulator")
]


def _env() -> dict[str, str]:
    return {**os.environ, "BINANCE_API_KEY": API_KEY, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("block", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_each_python_block_runs(block: str, tmp_path: Path) -> None:
    with Simulator() as sim:
        code = block.replace(f"http://{README_PORT}", sim.url)
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 0, proc.stderr


def test_the_cli_lines_run_in_order_against_the_simulator(tmp_path: Path) -> None:
    assert len(COMMANDS) >= 5
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    (tmp_path / "secret.txt").write_text(TEST_API_SECRET + "\n")  # the spot line signs
    with Simulator() as sim:
        port = sim.url.rpartition(":")[2]
        for line in COMMANDS:
            command = line.replace(README_PORT, f"127.0.0.1:{port}")
            proc = subprocess.run(
                ["bash", "-c", f"set -o pipefail; {command}"],
                cwd=tmp_path,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, (line, proc.stderr)
            assert API_KEY not in proc.stdout + proc.stderr
            assert TEST_API_SECRET not in proc.stdout + proc.stderr


def test_the_curl_line_that_pushes_an_event_delivers_a_typed_event(tmp_path: Path) -> None:
    """The README's `/_simulator/events` example, run against a stream that listens: what arrives is
    the event's model, not an UnknownEvent (a bare {"e", "E"} was one)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    (line,) = [command for command in COMMANDS if "/_simulator/events" in command]
    with Simulator() as sim:
        stream_url = sim.url.replace("http://", "ws://")
        uds = UserDataStream(API_KEY, sim.url, market="usdm", stream_url=stream_url)
        connected = threading.Event()

        def on_event(event: SessionEvent | StreamEvent) -> None:
            if event.kind is StreamEventKind.CONNECTED:
                connected.set()

        with uds, uds.events(on_event=on_event) as stream:
            assert connected.wait(timeout=10), "the stream never connected"
            command = line.replace(README_PORT, sim.url.removeprefix("http://"))
            subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, capture_output=True, timeout=60)
            item = next(stream)
    assert type(item).__name__ == "AccountUpdate", item


def test_the_readme_starts_with_a_live_market_example_and_the_retirement_notice() -> None:
    head = README[: README.index("## The two commands")]
    first = _blocks("python")[0]
    assert 'market="usdm"' in first
    assert "uds.create()" in first
    assert "2026-02-20" in head
    assert "userDataStream.subscribe.signature" in head
    for market in ("usdm", "coinm", "portfolio", "options", "spot", "margin"):
        assert f'market="{market}"' in head


def test_the_spot_example_is_what_a_spot_user_reads_right_after_the_retirement_notice() -> None:
    after_notice = README[README.index("> **Which market, today.**") :]
    first_heading = after_notice[after_notice.index("\n## ") :].split("\n")[1]
    assert first_heading == "## Spot and margin on the WebSocket API"
    spot_example = after_notice.split("```python\n")[1].split("```")[0]
    assert 'market="spot"' in spot_example
    assert "uds.events()" in spot_example


def test_the_cli_examples_use_only_options_the_cli_has() -> None:
    for line in COMMANDS:
        if not line.startswith("binance-userstream"):
            continue
        words = shlex.split(line.split("<")[0])
        proc = subprocess.run(
            [sys.executable, "-m", "binance_userstream", words[1], "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        for word in words[2:]:
            if word.startswith("--"):
                assert word in proc.stdout, (line, word)
