"""One contender of the stream benchmark, in a process of its own; prints one JSON line of results.

    python scripts/bench_stream_client.py CONTENDER WS_URL REST_URL COUNT [--profile FILE]

CONTENDER is one of CONTENDERS. It connects the way its library does (the listenKey created over
REST where the library does that), takes COUNT ORDER_TRADE_UPDATE events from
scripts/bench_stream_server.py and checks each by its sequence number (`o.i`): how many are
missing, duplicated or out of order. It reports the time from the connect call to the first event,
the rate and the client's CPU per event between the first event and the last
(`time.process_time()`: every thread of the process), and the one-way latency of each event, its
receipt (`time.time_ns()`) less its send time (`T`, ns, the server's `time.time_ns()`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

API_KEY = "BenchApiKey" + "0" * 53
SECRET = "BenchSecret" + "0" * 53
IDLE_TIMEOUT = 10.0  # no event for this long: the run ends with what arrived


class Tally:
    """Sequence checks and timings for every event a contender delivers: `see(seq, sent_ns)`."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seen = bytearray(count + 1)
        self.unique = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.highest = 0
        self.latencies: list[int] = []
        self.started = time.perf_counter()
        self.first: tuple[float, float] | None = None  # perf_counter, process_time
        self.last: tuple[float, float] | None = None
        self.done = asyncio.Event() if _has_loop() else None
        self.on_done: Callable[[], None] | None = None
        self.parser: str | None = None  # how this project's contenders parsed the JSON

    def see(self, seq: int, sent_ns: int) -> None:
        self.latencies.append(time.time_ns() - sent_ns)
        if self.first is None:
            self.first = (time.perf_counter(), time.process_time())
        if not 0 < seq <= self.count or self.seen[seq]:
            self.duplicates += 1
            return
        self.seen[seq] = 1
        self.unique += 1
        if seq < self.highest:
            self.out_of_order += 1
        else:
            self.highest = seq
        if self.unique == self.count:
            self.last = (time.perf_counter(), time.process_time())
            if self.on_done is not None:
                self.on_done()

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events": self.count,
            "received": self.unique,
            "missing": self.count - self.unique,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
        }
        if self.parser is not None:
            out["parser"] = self.parser
        if self.first is not None:
            out["first_event_ms"] = round((self.first[0] - self.started) * 1000, 1)
        if self.first is not None and self.last is not None and self.unique > 1:
            wall, cpu = self.last[0] - self.first[0], self.last[1] - self.first[1]
            out["events_per_s"] = round((self.unique - 1) / wall) if wall > 0 else None
            out["cpu_us_per_event"] = round(cpu / (self.unique - 1) * 1e6, 2)
            out["cpu_share"] = round(cpu / wall, 3) if wall > 0 else None
        if self.latencies:
            ordered = sorted(self.latencies)
            out["latency_p50_us"] = round(ordered[len(ordered) // 2] / 1000, 1)
            out["latency_p99_us"] = round(ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)] / 1000, 1)
            out["latency_max_us"] = round(ordered[-1] / 1000, 1)
            out["latency_mean_us"] = round(statistics.fmean(ordered) / 1000, 1)
        return out


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def until_done(tally: Tally) -> None:
    """Wait until every event came, or none came for IDLE_TIMEOUT."""
    assert tally.done is not None
    tally.on_done = tally.done.set
    seen = -1
    while not tally.done.is_set() and tally.unique != seen:
        seen = tally.unique
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.done.wait(), IDLE_TIMEOUT)


# -- the contenders ---------------------------------------------------------------------------


async def raw(
    ws_url: str, rest_url: str, count: int, loads: Callable[[str | bytes], Any] = json.loads
) -> Tally:
    """The floor: websockets' asyncio client and stdlib json (or `loads`), a dict to a callback."""
    from websockets.asyncio.client import connect

    tally = Tally(count)

    def callback(event: dict[str, Any]) -> None:
        tally.see(event["o"]["i"], event["T"])

    url = f"{ws_url}/private/ws?listenKey=bench&events=ORDER_TRADE_UPDATE/listenKeyExpired"
    async with connect(url, max_size=2**20, compression=None) as ws:
        async for message in ws:
            callback(loads(message))
            if tally.unique == count:
                break
    return tally


async def raw_msgspec(ws_url: str, rest_url: str, count: int) -> Tally:
    """The floor with msgspec's parser instead of json's: what this project's stream starts from."""
    from msgspec.json import Decoder

    return await raw(ws_url, rest_url, count, Decoder().decode)


async def facade_async(ws_url: str, rest_url: str, count: int) -> Tally:
    """This project: AsyncUserDataStream.events(), typed models (the key created over REST), as
    installed (msgspec parses the JSON)."""
    from binance_userstream_client.models import OrderTradeUpdate

    from binance_userstream import AsyncUserDataStream
    from binance_userstream.stream._decode import FAST_PARSER

    tally = Tally(count)
    tally.parser = "stdlib json" if FAST_PARSER is None else "msgspec"
    async with (
        AsyncUserDataStream(API_KEY, rest_url, market="usdm", stream_url=ws_url) as uds,
        uds.events() as stream,
    ):
        async for item in stream:
            if isinstance(item, OrderTradeUpdate):
                tally.see(item.order.order_id, item.transaction_time)
                if tally.unique == count:
                    break
            else:
                print(f"bench: {item!r}", file=sys.stderr)
    return tally


async def facade_async_stdlib(ws_url: str, rest_url: str, count: int) -> Tally:
    """facade_async where msgspec is missing (PyPy, --no-deps): hidden, so the standard library parses."""
    sys.modules["msgspec"] = None  # type: ignore[assignment]  # import msgspec now raises ImportError
    tally = await facade_async(ws_url, rest_url, count)
    assert tally.parser == "stdlib json"
    return tally


def facade_sync(ws_url: str, rest_url: str, count: int) -> Tally:
    """This project: UserDataStream.events(), typed models, in a plain `for`."""
    from binance_userstream_client.models import OrderTradeUpdate

    from binance_userstream import UserDataStream
    from binance_userstream.stream._decode import FAST_PARSER

    tally = Tally(count)
    tally.parser = "stdlib json" if FAST_PARSER is None else "msgspec"
    with UserDataStream(API_KEY, rest_url, market="usdm", stream_url=ws_url) as uds, uds.events() as stream:
        for item in stream:
            if isinstance(item, OrderTradeUpdate):
                tally.see(item.order.order_id, item.transaction_time)
                if tally.unique == count:
                    break
            else:
                print(f"bench: {item!r}", file=sys.stderr)
    return tally


async def python_binance(ws_url: str, rest_url: str, count: int) -> Tally:
    """python-binance 1.0.37: AsyncClient + BinanceSocketManager.futures_user_socket(), dicts.

    Its queue holds 100 messages by default and, when full, ends its read loop with an error
    event: under a flood it overflows at once, so it is given room for the whole run."""
    from binance import AsyncClient, BinanceSocketManager

    tally = Tally(count)
    client = AsyncClient(API_KEY, SECRET)  # not create(): it would ping the real API
    client.FUTURES_URL = rest_url + "/fapi"
    try:
        manager = BinanceSocketManager(client, max_queue_size=count + 1000)
        manager.FSTREAM_URL = ws_url + "/"
        async with manager.futures_user_socket() as socket:
            while tally.unique < count:
                message = await asyncio.wait_for(socket.recv(), IDLE_TIMEOUT)
                if message.get("e") == "ORDER_TRADE_UPDATE":
                    tally.see(message["o"]["i"], message["T"])
                else:
                    print(f"bench: {message!r}", file=sys.stderr)
                    if message.get("e") == "error":
                        break
    finally:
        await client.close_connection()
    return tally


async def binance_sdk(ws_url: str, rest_url: str, count: int) -> Tally:
    """Binance's own USD-M SDK: REST start_user_data_stream, then websocket_streams.user_data(),
    typed pydantic models through an `on("message")` callback."""
    from binance_common.configuration import ConfigurationRestAPI, ConfigurationWebSocketStreams
    from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
        DerivativesTradingUsdsFutures,
    )

    tally = Tally(count)
    sdk = DerivativesTradingUsdsFutures(
        config_rest_api=ConfigurationRestAPI(api_key=API_KEY, api_secret=SECRET, base_path=rest_url),
        config_ws_streams=ConfigurationWebSocketStreams(stream_url=ws_url),
    )
    key = (await asyncio.to_thread(sdk.rest_api.start_user_data_stream)).data().listen_key
    connection = await sdk.websocket_streams.create_connection()
    try:
        stream = await connection.user_data(key)

        def callback(message: Any) -> None:
            event = message.actual_instance
            tally.see(event.o.i, event.T)

        stream.on("message", callback)
        await until_done(tally)
    finally:
        await connection.close_connection()
    return tally


CONTENDERS: dict[str, Callable[[str, str, int], Any]] = {
    "raw_websockets": raw,
    "raw_msgspec": raw_msgspec,
    "facade_async": facade_async,
    "facade_async_stdlib": facade_async_stdlib,
    "facade_sync": facade_sync,
    "python_binance": python_binance,
    "binance_sdk": binance_sdk,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("contender", choices=list(CONTENDERS))
    parser.add_argument("ws_url")
    parser.add_argument("rest_url")
    parser.add_argument("count", type=int)
    parser.add_argument("--profile", help="write a cProfile of the run to this file")
    args = parser.parse_args()
    run = CONTENDERS[args.contender]

    def go() -> Tally:
        if asyncio.iscoroutinefunction(run):
            return asyncio.run(run(args.ws_url, args.rest_url, args.count))
        return run(args.ws_url, args.rest_url, args.count)  # type: ignore[no-any-return]

    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        tally = profiler.runcall(go)
        profiler.dump_stats(args.profile)
    else:
        tally = go()
    print(json.dumps(tally.result()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
