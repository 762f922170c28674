"""`make demo` keeps working: it runs the CLI against the simulator and checks its own transcript."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    """One run of `make demo` (about a minute), read by every test here."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, timeout=120
    )


def test_the_demo_rides_out_every_fault_and_exits_0(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "FAIL" not in demo.stdout
    # 10 for the keepalive session, 7 for the event stream, 5 for spot and margin, 10 for the mirror,
    # 5 for the durable log
    assert demo.stdout.count("demo │ ok") == 37


@pytest.mark.parametrize("market", ["usdm", "spot"])
def test_the_demo_shows_the_mirror_heal_a_gap(demo: subprocess.CompletedProcess[str], market: str) -> None:
    lines = [line for line in demo.stdout.splitlines() if f"{market} │" in line or f" {market}: " in line]
    text = "\n".join(lines)
    assert f"{market}: the mirror's first snapshot" in text
    assert "StreamGap: gap (disconnected)" in text
    assert "Reconciled: 7 changes, 3 recovered trades" in text
    assert text.count("recovered trade ") == 3
    assert f"ok   {market}: the mirror's state equals the simulator's ledger" in text
    assert f"ok   {market}: each trade made while the mirror ran reached the program once" in text


def test_the_demo_shows_a_worker_fail_over(demo: subprocess.CompletedProcess[str]) -> None:
    lines = demo.stdout.splitlines()
    killed = next(i for i, line in enumerate(lines) if "kill -9 w1" in line)
    after = "\n".join(lines[killed:])
    assert re.search(r"log │ acct-\d\d GAP \(failover\) +by w2", after)
    assert re.search(
        r"failover: w2's first message of each of w1's \d+ accounts came [\d.]+ to [\d.]+ s", after
    )
    for check in (
        "every order and trade made is in the log once for its account, or inside its gap",
        "accounts starts again with a failover gap from w2",
        "after the failover every account is published by w2 alone",
        "the durable consumer read and acknowledged every message",
        "no API key or secret of the accounts file was printed or published to NATS",
    ):
        assert re.search(rf"demo │ ok   .*{re.escape(check)}", after), check


def test_the_demo_prints_no_secret(demo: subprocess.CompletedProcess[str]) -> None:
    assert TEST_API_KEY not in demo.stdout + demo.stderr
    assert TEST_API_SECRET not in demo.stdout + demo.stderr
