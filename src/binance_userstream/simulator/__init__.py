"""A local Binance user-data-stream simulator for tests and demos: real HTTP on loopback.

    from binance_userstream.simulator import Fault, Simulator

    with Simulator() as sim:
        sim.inject(Fault.rate_limited(retry_after=1), Fault.drop())
        ...  # point any client at sim.url

It serves every listenKey market on one port, each with its documented semantics (the rows of
`MARKETS`: spot's /api/v3/userDataStream, USD-M's /fapi/v1/listenKey, COIN-M's /dapi, Portfolio
Margin's /papi, Options' /eapi; see `Exchange`). With `retired=True` spot answers the way
production has since 2026-02-20 (410, HTML) while the derivatives stay live; margin's retired
/sapi/v1/userDataStream paths always answer 410. The server is aiohttp's, so the event-stream
WebSocket endpoints can be served on the same port, sharing `Simulator.exchange`.
"""

from binance_userstream._clock import AcceleratedClock, SystemClock, VirtualClock
from binance_userstream.simulator._exchange import Exchange
from binance_userstream.simulator._faults import Fault
from binance_userstream.simulator._markets import MARKETS, Market
from binance_userstream.simulator._server import Simulator

__all__ = [
    "MARKETS",
    "AcceleratedClock",
    "Exchange",
    "Fault",
    "Market",
    "Simulator",
    "SystemClock",
    "VirtualClock",
]
