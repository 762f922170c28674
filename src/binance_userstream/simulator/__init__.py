"""A local Binance user-data-stream simulator for tests and demos: real HTTP on loopback.

    from binance_userstream.simulator import Fault, Simulator

    with Simulator() as sim:
        sim.inject(Fault.rate_limited(retry_after=1), Fault.drop())
        ...  # point any client at sim.url

It serves every listenKey market on one port, each with its documented semantics (the rows of
`MARKETS`: spot's /api/v3/userDataStream, USD-M's /fapi/v1/listenKey, COIN-M's /dapi, Portfolio
Margin's /papi, Options' /eapi; see `Exchange`). With `retired=True` spot answers the way
production has since 2026-02-20 (410, HTML) while the derivatives stay live; margin's retired
/sapi/v1/userDataStream paths always answer 410. The same port serves the derivatives' user-data
event streams (USD-M `/private/ws?listenKey=&events=`, `/private/stream`, COIN-M `/ws/<key>`,
Portfolio Margin `/pm/ws/<key>`, Options `/private/ws/<key>`), fed by `sim.push` and `sim.traffic`,
sharing `Simulator.exchange`; see `_streams`.
"""

from binance_userstream._clock import AcceleratedClock, SystemClock, VirtualClock
from binance_userstream.simulator._exchange import Exchange
from binance_userstream.simulator._faults import Fault
from binance_userstream.simulator._markets import MARKETS, Market
from binance_userstream.simulator._server import Simulator
from binance_userstream.simulator._streams import Delivery
from binance_userstream.simulator._traffic import Traffic

__all__ = [
    "MARKETS",
    "AcceleratedClock",
    "Delivery",
    "Exchange",
    "Fault",
    "Market",
    "Simulator",
    "SystemClock",
    "Traffic",
    "VirtualClock",
]
