"""`make demo` keeps working: it runs the CLI against the simulator and checks its own transcript."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_demo_rides_out_every_fault_and_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    # 10 for the keepalive session, 7 for the event stream, 5 for spot and margin
    assert proc.stdout.count("demo │ ok") == 22
