"""ccxt 4.5.90's binance, binanceusdm and binancecoinm against the simulator, unchanged but for their URLs.

Each exchange loads its markets first (`load_markets()`: the coins of `GET /sapi/v1/capital/config/getall`,
the margin pairs, and the exchangeInfo of every market it trades), then `watchOrders()` and
`watchBalance()` reach the user stream: binance (spot) subscribes with
`userDataStream.subscribe.signature` on the WebSocket API; binanceusdm mints a listenKey with
`POST /fapi/v1/listenKey` and connects to `/private/ws?listenKey=...` with no `events=` list, which
production reportedly answers with nothing (unicorn's PR #446, 2026-05-21) and the simulator too by
default, so the check runs it with the lenient switch (`strict_events=False`); binancecoinm mints one with
`POST /dapi/v1/listenKey` and connects to `/ws/<listenKey>`. Only the hosts of the URLs in each
exchange's `urls["api"]` are pointed at the simulator; the key pair is the test account's documented
one. Each exchange must receive one order's pushed events as an order and a balance.

ccxt's margin flow (`defaultType: "margin"`) mints its listenToken unsigned, as Binance documents
`POST /sapi/v1/userListenToken` (USER_STREAM), then subscribes with
`userDataStream.subscribe.listenToken`: it must receive its order too.
Not part of `make test` (ccxt lives in the bench's venv): run it with

    make .venv-bench/.installed && .venv-bench/bin/python scripts/check_ccxt.py
"""

import asyncio
import re
from collections.abc import Callable
from typing import Any

import ccxt
import ccxt.pro

from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator

#: Real seconds an exchange may take to connect, or an event to arrive.
WAIT = 10.0


def pointed(urls: Any, http: str, ws: str) -> Any:
    """`urls` (ccxt's nested dict of base URLs) with every host replaced by the simulator's."""
    if isinstance(urls, dict):
        return {name: pointed(value, http, ws) for name, value in urls.items()}
    if isinstance(urls, str):
        return re.sub(r"^wss://[^/]+", ws, re.sub(r"^https://[^/]+", http, urls))
    return urls


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds (of the simulator's connections or subscriptions)."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.02)


async def watch(
    sim: Simulator, name: str, streams: Callable[[], int], push: Callable[[], object], **options: Any
) -> tuple[list[Any], dict[str, Any]]:
    """One exchange's orders and balance after `push()`: both watches are started, the stream is
    waited for, then the events are pushed."""
    exchange = getattr(ccxt.pro, name)(
        {"apiKey": TEST_API_KEY, "secret": TEST_API_SECRET, "options": options}
    )
    exchange.urls["api"] = pointed(exchange.urls["api"], sim.url, sim.stream_url)
    try:
        await exchange.load_markets()
        orders = asyncio.ensure_future(exchange.watch_orders())
        balance = asyncio.ensure_future(exchange.watch_balance())
        stream = asyncio.ensure_future(until(lambda: streams() > 0))
        await asyncio.wait({orders, balance, stream}, return_when=asyncio.FIRST_COMPLETED)
        if not stream.done():  # a watch failed before the stream was there: its error says why
            stream.cancel()
            errors = [task.exception() for task in (orders, balance) if task.done() and task.exception()]
            for task in (orders, balance):
                task.cancel()
            if errors:
                raise errors[0]  # type: ignore[misc]
        await stream
        push()
        async with asyncio.timeout(WAIT):
            return await orders, await balance
    finally:
        # ccxt's close() rejects its own pending futures, which asyncio may report as "Future exception
        # was never retrieved" (ExchangeClosedByUser): ccxt's noise at exit, not a failure here.
        await exchange.close()


async def main(sim: Simulator) -> None:
    spot = await watch(sim, "binance", sim.subscriptions, lambda: sim.traffic("spot"))
    usdm = await watch(
        sim, "binanceusdm", lambda: sim.stream_connections("usdm"), lambda: sim.traffic("usdm")
    )
    coin_order = {"symbol": "BTCUSD_PERP", "asset": "BTC", "quantity": "2", "balance": "100.00000000"}
    coinm = await watch(
        sim,
        "binancecoinm",
        lambda: sim.stream_connections("coinm"),
        lambda: sim.traffic("coinm", **coin_order),
    )
    for name, (orders, balance), symbol, asset in (
        ("binance", spot, "BTC/USDT", "USDT"),
        ("binanceusdm", usdm, "BTC/USDT:USDT", "USDT"),
        ("binancecoinm", coinm, "BTC/USD:BTC", "BTC"),
    ):
        print(f"{name}: orders", [(o["symbol"], o["status"], o["filled"]) for o in orders])
        print(f"{name}: balance {asset}", balance.get(asset))
        assert orders, name
        assert orders[0]["symbol"] == symbol, orders
        assert balance.get(asset) is not None, balance
    await until(lambda: sim.subscriptions() == 0)  # spot's, ended with its exchange: not margin's
    margin, _ = await watch(
        sim, "binance", sim.subscriptions, lambda: sim.traffic("margin"), defaultType="margin"
    )
    print("binance margin: orders", [(o["symbol"], o["status"], o["filled"]) for o in margin])
    assert margin[0]["symbol"] == "BTC/USDT", margin


if __name__ == "__main__":
    with Simulator(strict_events=False) as sim:  # binanceusdm sends no events= (above)
        asyncio.run(main(sim))
        print("requested:", ", ".join(sorted({f"{method} {path}" for method, path in sim.requests})))
    print("ccxt 4.5.90 (binance, binanceusdm, binancecoinm): OK")
