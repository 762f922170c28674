"""The fault matrix: every fault x every operation x sync/async, against the simulator.

Each cell states the expected outcome (retried and succeeded, or the right error class), how many
requests reach the server, and that it ends in bounded time. Facts: Binance's errors.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from attrs import frozen

from binance_userstream import (
    BackoffGate,
    EndpointRetiredError,
    IPBannedError,
    NetworkError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    UserDataStream,
)
from binance_userstream.simulator import Fault, Simulator
from tests._both import Facade
from tests.conftest import API_KEY, FakeClock

RETRY = RetryPolicy(attempts=5, backoff_base=0.01, backoff_cap=0.02, deadline=5.0)
TIMEOUT = 0.3


@frozen
class Cell:
    name: str
    faults: tuple[Fault, ...]
    outcome: type[Exception] | None  # None: retried and succeeded
    requests: int


MATRIX = [
    Cell("one 503", (Fault.server_error(503),), None, 2),
    Cell("one 500 then one 502", (Fault.server_error(500), Fault.server_error(502)), None, 3),
    Cell("429 with a short Retry-After", (Fault.rate_limited(0.05),), None, 2),
    Cell("a dropped connection", (Fault.drop(),), None, 2),
    Cell("an answer slower than the timeout", (Fault.slow(TIMEOUT + 0.3),), None, 2),
    Cell("503 on every attempt", (Fault.server_error(503),) * 5, ServerError, 5),
    Cell("dropped on every attempt", (Fault.drop(),) * 5, NetworkError, 5),
    Cell("429 waiting past the deadline", (Fault.rate_limited(60),), RateLimitedError, 1),
    Cell("418 ban", (Fault.banned(120),), IPBannedError, 1),
    Cell("410 retired", (Fault.retired(),), EndpointRetiredError, 1),
]
OPERATIONS = ["create", "keepalive", "close"]


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    """Spot's retired lifecycle served (retired=False): the client's default market's faults."""
    with Simulator(weight_limit=10**9, retired=False) as sim:
        yield sim


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("cell", MATRIX, ids=[c.name for c in MATRIX])
def test_fault_matrix(simulator: Simulator, cell: Cell, operation: str, mode: str) -> None:
    gate = BackoffGate(clock=FakeClock())
    args: tuple[str, ...] = ()
    if operation != "create":
        with UserDataStream(API_KEY, simulator.url, gate=gate) as setup:
            args = (setup.create(),)
    facade = Facade(mode, api_key=API_KEY, base_url=simulator.url, retry=RETRY, gate=gate, timeout=TIMEOUT)
    simulator.inject(*cell.faults)
    before = len(simulator.requests)
    started = time.monotonic()
    if cell.outcome is None:
        result = facade(operation, *args)
        assert (result is None) == (operation != "create")
    else:
        with pytest.raises(cell.outcome):
            facade(operation, *args)
    assert time.monotonic() - started < 5.0
    assert len(simulator.requests) - before == cell.requests
    assert simulator.pending_faults() == 0
