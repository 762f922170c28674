"""The extending guide's "Extend the client" walkthrough (docs/guides/extending.md), run as a user
runs it.

The test copies the spec, adds the guide's YAML under `paths:`, regenerates into a temporary
folder, then type-checks the guide's Python with `mypy --strict` and runs it (in a process whose
`binance_userstream_client` is the regenerated one) against a scripted loopback server. The new
operation gets the key header, the retries and the typed errors with no facade change.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._docs import section
from tests._extended import extended_client
from tests._package_operations import package_operations
from tests._scripted import LISTEN_KEY, Reply, ScriptedServer
from tests.conftest import API_KEY

SECTION = section("docs/guides/extending.md", "## Extend the client by editing the YAML")
YAML_BLOCK = re.findall(r"```yaml\n(.*?)```", SECTION, re.DOTALL)[0]
PYTHON_BLOCK = re.findall(r"```python\n(.*?)```", SECTION, re.DOTALL)[0]
BIN = Path(sys.executable).parent
#: The section's operations: path -> method -> operation.
ADDED: dict[str, dict[str, Any]] = yaml.safe_load("paths:\n" + YAML_BLOCK)["paths"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package generated from the spec plus the guide's YAML: a folder for PYTHONPATH."""
    return extended_client(tmp_path_factory.mktemp("extended"), ADDED)


def _run_readme_python(regenerated: Path, base_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "walkthrough.py"
    code = PYTHON_BLOCK.replace('"https://api.binance.com"', repr(base_url))
    script.write_text(code + "print(key)\n")
    env = {**os.environ, "PYTHONPATH": str(regenerated), "BINANCE_API_KEY": API_KEY}
    return subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=False)


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


def test_the_new_operation_is_sent_with_the_key_header_and_retried(
    regenerated: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    server.script(Reply(status=503, body={"code": -1001, "msg": "busy"}), Reply(drop=True))
    proc = _run_readme_python(regenerated, server.url, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == LISTEN_KEY
    assert [(s.method, s.path) for s in server.requests] == [("POST", "/sapi/v1/margin/listen-key")] * 3
    assert all(s.headers["x-mbx-apikey"] == API_KEY for s in server.requests)


def test_the_new_operation_raises_the_typed_errors(
    regenerated: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    server.script(Reply(status=400, body={"code": -1125, "msg": "This listenKey does not exist."}))
    proc = _run_readme_python(regenerated, server.url, tmp_path)
    assert proc.returncode != 0
    assert "ListenKeyNotFoundError" in proc.stderr
    assert len(server.requests) == 1


def test_the_new_operation_works_through_the_async_client(
    regenerated: Path, server: ScriptedServer, tmp_path: Path
) -> None:
    server.script(Reply(status=502, body={"code": -1001, "msg": "busy"}))
    script = tmp_path / "walkthrough_async.py"
    script.write_text(
        "import asyncio\n"
        "from binance_userstream import AsyncUserDataStream\n"
        "from binance_userstream_client.api.margin_risk import create_margin_risk_listen_key\n"
        "from binance_userstream_client.models import ListenKey\n"
        "async def main() -> str:\n"
        f"    async with AsyncUserDataStream(base_url={server.url!r}) as uds:\n"
        "        answer = await uds.call(create_margin_risk_listen_key.asyncio_detailed, ListenKey)\n"
        "        return answer.listen_key\n"
        "print(asyncio.run(main()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(regenerated), "BINANCE_API_KEY": API_KEY}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == LISTEN_KEY
    assert len(server.requests) == 2


def test_the_walkthrough_adds_operations_the_package_does_not_call() -> None:
    """The walkthrough must stay a real extension, and one the suite keeps green: an operation the
    package calls must be served by the simulator (tests/test_conformance.py), a user's need not."""
    added = {operation["operationId"] for item in ADDED.values() for operation in item.values()}
    assert added
    assert not added & package_operations()
