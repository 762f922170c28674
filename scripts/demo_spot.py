"""The third part of `make demo`: spot and margin, the way Binance serves them since 2026-02-20.

Spot's listenKey is gone (410), so the client subscribes on the WebSocket API with a signed
`userDataStream.subscribe.signature`, here signed with the simulator's test secret while this
machine's clock runs ten minutes late: the first subscription is refused (-1021), the client
reads the server's time once and subscribes again. An order arrives as typed events; the exchange
drops the connection, and the reconnect is signed afresh, with a gap where events may be missing.
Then margin: a listenToken minted with the API key alone (USER_STREAM, no secret), two-hour tokens
renewed on the same connection as a stepped clock passes five hours, with no gap and nothing lost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from binance_userstream import AsyncUserDataStream, SteppedClock, StreamGap
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from binance_userstream.stream._core import StreamEvent, StreamEventKind


def say(text: str) -> None:
    print(f"demo │ {text}", flush=True)


def show(text: str, market: str = "spot") -> None:
    print(f"  {market:>6} │ {text}", flush=True)


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def spot() -> dict[str, bool]:
    notes: list[StreamEventKind] = []

    def happening(event: object) -> None:
        if isinstance(event, StreamEvent):
            notes.append(event.kind)
            show(f"· {event.describe()}")

    items: list[Any] = []
    with Simulator() as sim:
        uds = AsyncUserDataStream(
            TEST_API_KEY,
            sim.url,
            market="spot",
            stream_url=sim.url.replace("http://", "ws://"),
            api_secret=TEST_API_SECRET,
        )
        async with uds:
            uds._credentials.offset_ms = -600_000.0  # this machine's clock: ten minutes late
            async with uds.events(on_event=happening) as stream:

                async def take(count: int) -> None:
                    async with asyncio.timeout(10):
                        for _ in range(count):
                            item = await anext(stream)
                            items.append(item)
                            if isinstance(item, StreamGap):
                                show(f"GAP {item.describe()}")
                            else:
                                order = getattr(item, "order_status", "")
                                show(f"{type(item).__name__} {getattr(item, 'symbol', '')} {order}".rstrip())

                await _until(lambda: sim.subscriptions() >= 1)
                say("spot: an order, placed, partly filled, filled, with the balances")
                await take(len(sim.traffic("spot")))
                say("spot: the exchange drops the connection and sends an order while nobody listens")
                sim.drop_streams("spot")
                sim.traffic("spot", symbol="ETHBTC")
                await take(1)  # the gap, once subscribed again
                await _until(lambda: sim.subscriptions() >= 1)
                await take(len(sim.traffic("spot", symbol="BNBBTC")))
    gaps = [i.reason for i in items if isinstance(i, StreamGap)]
    return {
        "spot: the clock ten minutes late was resynced once (-1021), then subscribed": notes.count(
            StreamEventKind.RESYNCED
        )
        == 1,
        "spot: the order arrived as typed executionReports": any(
            type(i).__name__ == "ExecutionReport" and i.order_status == "FILLED" for i in items
        ),
        "spot: the drop was one gap, and the reconnect was signed afresh": gaps == ["disconnected"]
        and notes.count(StreamEventKind.SUBSCRIBED) == 2,
    }


async def margin() -> dict[str, bool]:
    clock = SteppedClock()
    notes: list[StreamEventKind] = []
    seen: list[Any] = []
    with Simulator(clock=clock) as sim:
        uds = AsyncUserDataStream(
            TEST_API_KEY,
            sim.url,
            market="margin",
            stream_url=sim.url.replace("http://", "ws://"),
        )
        real = uds.create_listen_token

        async def two_hours(symbol: str | None = None, *, validity: float | None = None) -> Any:
            return await real(symbol, validity=7200.0)  # Binance's default is 24 hours

        uds.create_listen_token = two_hours  # type: ignore[method-assign]

        def happening(event: object) -> None:
            if isinstance(event, StreamEvent):
                notes.append(event.kind)
                if event.kind in (StreamEventKind.SUBSCRIBED, StreamEventKind.TOKEN_RENEWED):
                    hours = clock.now() / 3600
                    show(f"· +{hours:.1f} h {event.describe()}", "margin")

        async with uds, uds.events(clock=clock, on_event=happening) as stream:

            async def consume() -> None:
                async for item in stream:
                    seen.append(item)

            consumer = asyncio.create_task(consume())
            await _until(lambda: sim.subscriptions() >= 1)
            say("margin: a listenToken, renewed before each expiry, over five hours (a minute a step)")
            for n in range(1, 5 * 60 + 1):
                clock.advance(60.0)
                sim.tick()
                await asyncio.sleep(0.001)
                sim.push(
                    "margin", {"e": "balanceUpdate", "E": n, "a": "BTC", "d": "0.1", "T": n}, TEST_API_KEY
                )
                await _until(lambda n=n: bool(seen) and seen[-1].to_dict().get("E") == n, timeout=5)
            stream.close()
            await consumer
    return {
        "margin: each two-hour listenToken was renewed on the same connection": notes.count(
            StreamEventKind.TOKEN_RENEWED
        )
        >= 3
        and notes.count(StreamEventKind.CONNECTING) == 1,
        "margin: 300 balance updates, none lost, none twice, no gap": [i.to_dict().get("E") for i in seen]
        == list(range(1, 301)),
    }


def main() -> bool:
    say("spot and margin on the WebSocket API (their listenKeys were retired on 2026-02-20)")
    checks = {**asyncio.run(spot()), **asyncio.run(margin())}
    for name, ok in checks.items():
        say(f"{'ok  ' if ok else 'FAIL'} {name}")
    return all(checks.values())


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
