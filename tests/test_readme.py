"""The documentation's code blocks run as written, against the simulator: the README's and every
page's under docs/ (tests/_docs.py finds them), each block once however many pages show it.

Every ```python block runs in a fresh interpreter; one that is a pytest module (it defines
`test_` functions, as the simulator guide's fixture example does) runs under pytest. A block that
needs what another test sets up (the extension walkthroughs need a regenerated package) says so
in a `<!-- run by tests/...: why -->` comment, and that test runs it. In ```sh blocks, every
`binance-userstream` and `curl` command line runs against a simulator, page by page in order, with
the docs' port 8765 swapped for the simulator's; `make`, `pip`, `export` and the simulator's own
command are covered elsewhere (`make test` itself, tests/test_pipeline.py, tests/test_cli.py).
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

from binance_userstream import MARKETS, SessionEvent, StreamEvent, StreamEventKind, UserDataStream
from binance_userstream.simulator import TEST_API_SECRET, Simulator
from tests._docs import ROOT, blocks, pages, run_elsewhere, section, text
from tests.conftest import API_KEY

README = text("README.md")
DOCS_PORT = "127.0.0.1:8765"
BIN = Path(sys.executable).parent
PAGES = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in pages()}


def _once(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(page, item) pairs with each item kept at its first page only: the README's examples are
    the guides' own, and docs/index.md is the README."""
    seen: set[str] = set()
    kept = []
    for page, item in items:
        if item not in seen:
            seen.add(item)
            kept.append((page, item))
    return kept


ELSEWHERE = {block for page in PAGES.values() for _, _, _, block in run_elsewhere(page)}
PYTHON = _once(
    [
        (name, block)
        for name, page in PAGES.items()
        for block in blocks(page, "python")
        if block not in ELSEWHERE
    ]
)
COMMANDS = _once(
    [
        (name, line.strip())
        for name, page in PAGES.items()
        for block in blocks(page, "sh")
        if block not in ELSEWHERE
        for line in block.splitlines()
        if line.startswith(("binance-userstream ", "curl "))
        and not line.startswith("binance-userstream simulator")
    ]
)


def _env() -> dict[str, str]:
    return {**os.environ, "BINANCE_API_KEY": API_KEY, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def _is_pytest_module(block: str) -> bool:
    return re.search(r"^def test_", block, re.MULTILINE) is not None


@pytest.mark.parametrize(
    ("page", "block"), PYTHON, ids=[f"{page}-python-{i}" for i, (page, _) in enumerate(PYTHON)]
)
def test_each_python_block_runs(page: str, block: str, tmp_path: Path) -> None:
    if _is_pytest_module(block):
        (tmp_path / "test_example.py").write_text(block)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"]
        proc = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
        return
    with Simulator() as sim:
        code = block.replace(f"http://{DOCS_PORT}", sim.url)
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
        for page, line in COMMANDS:
            command = line.replace(DOCS_PORT, f"127.0.0.1:{port}")
            proc = subprocess.run(
                ["bash", "-c", f"set -o pipefail; {command}"],
                cwd=tmp_path,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, (page, line, proc.stderr)
            assert API_KEY not in proc.stdout + proc.stderr
            assert TEST_API_SECRET not in proc.stdout + proc.stderr


def test_the_curl_line_that_pushes_an_event_delivers_a_typed_event(tmp_path: Path) -> None:
    """The simulator guide's `/_simulator/events` example, run against a stream that listens: what
    arrives is the event's model, not an UnknownEvent (a bare {"e", "E"} was one)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    (line,) = [command for _, command in COMMANDS if "/_simulator/events" in command]
    with Simulator() as sim:
        stream_url = sim.url.replace("http://", "ws://")
        uds = UserDataStream(API_KEY, sim.url, market="usdm", stream_url=stream_url)
        connected = threading.Event()

        def on_event(event: SessionEvent | StreamEvent) -> None:
            if event.kind is StreamEventKind.CONNECTED:
                connected.set()

        with uds, uds.events(on_event=on_event) as stream:
            assert connected.wait(timeout=10), "the stream never connected"
            command = line.replace(DOCS_PORT, sim.url.removeprefix("http://"))
            subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, capture_output=True, timeout=60)
            item = next(stream)
    assert type(item).__name__ == "AccountUpdate", item


def test_the_readme_is_a_front_page_read_in_five_minutes() -> None:
    assert len(README.splitlines()) < 250


def test_the_readme_says_which_market_uses_what_today() -> None:
    table = section("README.md", "## Which market uses what, today")
    assert "2026-02-20" in table
    assert "userDataStream.subscribe.signature" in table
    assert "userDataStream.subscribe.listenToken" in table
    for market in MARKETS:
        assert f'`market="{market}"`' in table, market


def test_the_readme_s_first_example_is_a_live_market_s_typed_events() -> None:
    first = blocks(README, "python")[0]
    assert 'market="usdm"' in first
    assert "uds.events()" in first
    assert "from binance_userstream_client.models import AccountUpdate, OrderTradeUpdate" in first
    assert "isinstance(item, OrderTradeUpdate)" in first
    assert "item.update_data.balances" in first


def test_a_spot_user_is_led_from_the_readme_to_spot_s_events() -> None:
    assert "(docs/guides/websocket-api.md)" in section("README.md", "## Which market uses what, today")
    spot_example = blocks(text("docs/guides/websocket-api.md"), "python")[0]
    assert 'market="spot"' in spot_example
    assert "uds.events()" in spot_example
    assert "isinstance(item, ExecutionReport)" in spot_example


def test_no_example_tells_events_apart_by_their_type_names() -> None:
    named = [name for name, page in PAGES.items() for block in blocks(page, "python") if "__name__" in block]
    assert named == []


def test_a_block_run_elsewhere_names_a_test_that_reads_its_page() -> None:
    marked = [(name, *mark) for name, page in PAGES.items() for mark in run_elsewhere(page)]
    assert marked, "the extension walkthroughs' Python runs in tests/test_extension*.py"
    for name, test, why, _, _ in marked:
        assert why.strip(), (name, test)
        assert name in text(test), (name, test)


def test_the_cli_examples_use_only_options_the_cli_has() -> None:
    helps: dict[str, str] = {}  # a command's --help, asked once (a second each): 6 commands, 10 lines
    for _, line in COMMANDS:
        if not line.startswith("binance-userstream"):
            continue
        words = shlex.split(line.split("<")[0])
        if words[1] not in helps:
            helps[words[1]] = subprocess.run(
                [sys.executable, "-m", "binance_userstream", words[1], "--help"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        for word in words[2:]:
            if word.startswith("--"):
                assert word in helps[words[1]], (line, word)
