"""The extending guide's "A signed operation" walkthrough: an operation a user adds to the YAML as
SIGNED is signed by the HTTP layer, with no facade change.

As tests/test_extension.py does for the API key: the spec is copied with the guide's YAML added,
regenerated into a temporary folder, and the guide's Python runs (with that package first on
PYTHONPATH) against a scripted loopback server, which sees `timestamp` and then, last, the HMAC
`signature` over the query string as sent: Binance's rule for SIGNED endpoints
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import runpy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from binance_userstream_client.security import SIGNED_OPERATIONS

from tests._docs import section
from tests._extended import extended_client
from tests._package_operations import package_operations
from tests._scripted import Reply, ScriptedServer
from tests.conftest import API_KEY

SECTION = section("docs/guides/extending.md", "### A signed operation")
YAML_BLOCK = re.findall(r"```yaml\n(.*?)```", SECTION, re.DOTALL)[0]
PYTHON_BLOCK = re.findall(r"```python\n(.*?)```", SECTION, re.DOTALL)[0]
BIN = Path(sys.executable).parent
#: The section's operations: path -> method -> operation.
ADDED: dict[str, dict[str, Any]] = yaml.safe_load("paths:\n" + YAML_BLOCK)["paths"]
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SUMMARY = Reply(body={"normalBar": "1.5", "marginCallBar": "1.3", "forceLiquidationBar": "1.1"})


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package generated from the spec plus the guide's signed operation."""
    return extended_client(tmp_path_factory.mktemp("signed"), ADDED)


def _run(regenerated: Path, base_url: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "walkthrough.py"
    script.write_text(
        PYTHON_BLOCK.replace('"https://api.binance.com"', repr(base_url)) + "print(summary.margin_call_bar)\n"
    )
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")},
        "PYTHONPATH": str(regenerated),
        "BINANCE_API_KEY": API_KEY,
        **env,
    }
    return subprocess.run(
        [sys.executable, str(script)], env=environment, capture_output=True, text=True, check=False
    )


def test_the_regenerated_security_table_lists_the_users_operation_as_signed(regenerated: Path) -> None:
    table = runpy.run_path(str(regenerated / "binance_userstream_client" / "security.py"))
    assert table["OPERATION_SECURITY"]["get_margin_trade_coeff"] == (("ApiKeyAuth", "Signature"),)
    assert table["SIGNED_OPERATIONS"] == SIGNED_OPERATIONS | {"get_margin_trade_coeff"}


def test_the_walkthrough_python_passes_mypy_strict_as_written(regenerated: Path, tmp_path: Path) -> None:
    script = tmp_path / "walkthrough.py"
    script.write_text(PYTHON_BLOCK)
    env = {**os.environ, "MYPYPATH": str(regenerated)}
    proc = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--no-incremental", str(script)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_users_signed_operation_carries_a_timestamp_and_a_correct_signature_last(
    regenerated: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    server.script(Reply(status=503, body={"code": -1001, "msg": "busy"}), SUMMARY)
    before = int(time.time() * 1000)
    proc = _run(regenerated, server.url, tmp_path, BINANCE_API_SECRET=SECRET)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.3"
    assert [(s.method, s.path) for s in server.requests] == [("GET", "/sapi/v1/margin/tradeCoeff")] * 2
    for seen in server.requests:
        assert seen.headers["x-mbx-apikey"] == API_KEY
        signed, _, last = seen.raw_query.rpartition("&")
        assert last.startswith("signature=")
        assert signed.startswith("timestamp=")
        assert before <= int(signed.removeprefix("timestamp=")) <= int(time.time() * 1000)
        assert (
            last.removeprefix("signature=")
            == hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
        )
    assert server.requests[0].raw_query != server.requests[1].raw_query  # the retry was signed anew


def test_without_a_secret_the_users_signed_operation_fails_before_sending(
    regenerated: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    proc = _run(regenerated, server.url, tmp_path)
    assert proc.returncode != 0
    assert "SignerMissingError" in proc.stderr
    assert "get_margin_trade_coeff" in proc.stderr
    assert server.requests == []


def test_the_walkthrough_adds_operations_the_package_does_not_call() -> None:
    """The walkthrough must stay a real extension, and one the suite keeps green: an operation the
    package calls must be served by the simulator (tests/test_conformance.py), a user's need not."""
    added = {operation["operationId"] for item in ADDED.values() for operation in item.values()}
    assert added
    assert not added & package_operations()
