"""A local Binance user-data-stream simulator for tests and demos: real HTTP on loopback.

    from binance_userstream.simulator import Fault, Simulator

    with Simulator() as sim:
        sim.inject(Fault.rate_limited(retry_after=1), Fault.drop())
        ...  # point any client at sim.url

It answers POST/PUT/DELETE /api/v3/userDataStream with Binance's documented semantics (see
`Exchange`), or, with `retired=True`, the way production has since 2026-02-20 (410, HTML).
The server is aiohttp's, so the event-stream WebSocket endpoints can be served on the same port,
by the same handler, sharing `Simulator.exchange`.
"""

from binance_userstream._clock import AcceleratedClock, SystemClock, VirtualClock
from binance_userstream.simulator._exchange import Exchange
from binance_userstream.simulator._faults import Fault
from binance_userstream.simulator._server import Simulator

__all__ = ["AcceleratedClock", "Exchange", "Fault", "Simulator", "SystemClock", "VirtualClock"]
