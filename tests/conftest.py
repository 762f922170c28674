from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from binance_userstream import SHARED_BUDGET, BackoffGate, RetryPolicy, VirtualClock
from binance_userstream.simulator import Simulator
from tests._both import Facade
from tests._nats import NatsServer
from tests._scripted import ScriptedServer

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


@pytest.fixture(autouse=True)
def _fresh_shared_budget() -> None:
    """The process-wide weight budget counts every test's calls to production hosts (mocked)
    within one wall-clock minute: each test starts with an empty count, as a process would."""
    SHARED_BUDGET.reset()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted loopback server, started for the test and stopped after it."""
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a free loopback port, its store in the test's own directory."""
    srv = NatsServer(tmp_path / "jetstream").start()
    yield srv
    srv.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gate(clock: FakeClock) -> BackoffGate:
    """A backoff gate of the test's own, on the fake clock (the shared one would leak across tests)."""
    return BackoffGate(clock=clock)


#: Retries as by default, with waits short enough for a test.
FAST_RETRY = RetryPolicy(attempts=5, backoff_base=0.01, backoff_cap=0.02, deadline=30.0)


@pytest.fixture(params=["sync", "async"])
def facade(request: pytest.FixtureRequest, server: ScriptedServer, gate: BackoffGate) -> Facade:
    """The operations, through a client (sync, then async) with the test's own gate and fast retries."""
    return Facade(request.param, api_key=API_KEY, base_url=server.url, retry=FAST_RETRY, gate=gate)


@pytest.fixture
def vclock() -> VirtualClock:
    """Virtual time: it moves only when something waits on it (or a test advances it)."""
    return VirtualClock()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "simulator(**options): Simulator options for the `sim` fixture (retired=False, ...)"
    )


@pytest.fixture
def sim(vclock: VirtualClock, request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """The simulator on a free loopback port, on virtual time. A test (or a module's `pytestmark`)
    marked `@pytest.mark.simulator(retired=False)` gets it with those options: the lenient switches
    for tests of the old lifecycles, which production no longer serves."""
    marker = request.node.get_closest_marker("simulator")
    with Simulator(clock=vclock, **(marker.kwargs if marker else {})) as simulator:
        yield simulator


@pytest.fixture
def listen_token_declared_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP layer signs `create_margin_listen_token` as if the spec declared it SIGNED, as a user's
    spec may declare an operation (docs, "A signed operation"). Binance documents the listenToken
    as USER_STREAM, so the package declares no SIGNED operation; the signing tests use this one, the
    package's only REST operation with parameters, to exercise the layer's signing."""
    monkeypatch.setattr(
        "binance_userstream._transport.SIGNED_OPERATIONS", frozenset({"create_margin_listen_token"})
    )
