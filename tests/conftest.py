from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._scripted import ScriptedServer

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted loopback server, started for the test and stopped after it."""
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
