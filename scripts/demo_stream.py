"""The second half of `make demo`: the account's events, through every kind of trouble.

A simulator and the client share one clock running 1,800 times faster than real time (an hour in
two seconds). The client's `events()` stream receives order traffic; then the simulator drops the
connection (the stream reconnects and reports a gap), loses every key (listenKeyExpired, a new
key, a gap), and finally the connection reaches its lifetime limit, which the stream beats by
replacing it make-before-break half an hour before: no gap, nothing lost, nothing twice. Binance
cuts a connection at 24 hours; the simulator and the stream's timing shorten that to 6 here, so
the demo lasts seconds on a clock slow enough that a loaded machine keeps the key alive: a
keepalive every 30 simulated minutes is one real second (at 7,200x it was a quarter of one, and
a run beside two CPU hogs lost its key).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from binance_userstream import AcceleratedClock, AsyncUserDataStream, SessionEvent, StreamGap
from binance_userstream.simulator import Simulator
from binance_userstream.stream._core import StreamEvent, StreamTiming

SPEED = 1800
API_KEY = "DemoApiKey0000000000000000000000000000000000000000000000000000000"
#: How long the simulator keeps a connection open (Binance: 24 hours), 12 real seconds.
LIFETIME = 6 * 3600.0
#: Binance's rules, with the connection replaced half an hour before the cut, the silence allowed
#: before a stall widened to an hour of simulated time (two real seconds: at 1,800x, Binance's 60 s
#: would be 33 real ms) and a 10-minute overlap.
TIMING = StreamTiming(
    ping_interval=180,
    rotate_after=LIFETIME - 1800,
    stall_grace=3600,
    overlap=600,
    first_retry=60,
    max_retry=600,
)
#: Simulated seconds between two funding updates of the last act (360 an hour).
FUNDING_EVERY = 10.0


def say(text: str) -> None:
    print(f"demo │ {text}", flush=True)


class Transcript:
    """Prints what the stream delivers and what happens to it, with the simulated time."""

    def __init__(self, clock: AcceleratedClock) -> None:
        self.clock = clock
        self.start = clock.now()
        self.lines: list[str] = []
        self.items: list[Any] = []

    def line(self, text: str) -> None:
        elapsed = int(self.clock.now() - self.start)
        stamped = f"+{elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d} {text}"
        self.lines.append(stamped)
        print(f"  events │ {stamped}", flush=True)

    def happening(self, event: SessionEvent | StreamEvent) -> None:
        if isinstance(event, StreamEvent) or event.kind.value in ("created", "key_lost", "replaced"):
            self.line(f"· {event.describe()}")

    def item(self, item: Any) -> None:
        self.items.append(item)
        if isinstance(item, StreamGap):
            self.line(f"GAP {item.describe()}")
        else:
            payload = item.to_dict()
            order = payload.get("o", {})
            detail = f" {order.get('s')} {order.get('X')}" if order else ""
            self.line(f"{type(item).__name__} E={payload.get('E')}{detail}")


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def run() -> dict[str, bool]:
    clock = AcceleratedClock(SPEED)
    out = Transcript(clock)
    with Simulator(clock=clock, connection_lifetime=LIFETIME) as sim:
        stream_url = sim.url.replace("http://", "ws://")
        uds = AsyncUserDataStream(API_KEY, sim.url, market="usdm", stream_url=stream_url)
        async with uds, uds.events(timing=TIMING, clock=clock, on_event=out.happening) as stream:

            async def take(count: int) -> None:
                async with asyncio.timeout(10):
                    for _ in range(count):
                        out.item(await anext(stream))

            def connected() -> bool:
                return sim.stream_connections("usdm") >= 1

            await _until(connected)
            say("the exchange sends an order: placed, partly filled, filled, with account updates")
            await take(len(sim.traffic("usdm")))

            say("the exchange drops the connection, and sends an order while nobody listens")
            sim.drop_streams("usdm")
            sim.traffic("usdm", symbol="ETHUSDT")  # lost to this client: the gap says where
            await take(1)  # the gap, once reconnected
            await _until(connected)
            await take(len(sim.traffic("usdm", symbol="BNBUSDT")))

            say("the exchange loses every listenKey")
            sim.exchange.forget_keys()
            await take(2)  # listenKeyExpired, then the gap once a new key is connected
            await _until(connected)
            connected_at = clock.now()
            await take(len(sim.traffic("usdm", symbol="SOLUSDT")))

            say(f"events keep coming until the connection passes its {LIFETIME / 3600:g}-hour limit")
            say(f"(Binance's is 24 hours: shortened here so that it passes in {LIFETIME / SPEED:g} s)")
            before = len(out.items)
            pushed = 0
            # Half an hour past the cut of the connection opened last: the rotation has had to come.
            while clock.now() - connected_at < LIFETIME + 1800:
                await clock.sleep(FUNDING_EVERY)  # paced: a busy loop would starve the keepalives
                pushed += 1
                sim.push(
                    "usdm",
                    {
                        "e": "ACCOUNT_UPDATE",
                        "E": 10**9 + pushed,
                        "T": pushed,
                        "a": {"m": "FUNDING_FEE", "B": [], "P": []},
                    },
                )
                item = await anext(stream)
                out.items.append(item)
                if isinstance(item, StreamGap) or not pushed % round(3600 / FUNDING_EVERY):
                    out.item(item) if isinstance(item, StreamGap) else out.line(
                        f"… {pushed} funding updates so far"
                    )
            rotation = out.items[before:]
    text = "\n".join(out.lines)
    gaps = [item.reason for item in out.items if isinstance(item, StreamGap)]
    times = [item.to_dict()["E"] for item in rotation if not isinstance(item, StreamGap)]
    return {
        "the first order arrived as typed events": "OrderTradeUpdate E=" in text,
        "the dropped connection was reported as a gap and reconnected": gaps[:1] == ["disconnected"],
        "the lost key was renewed, reconnected and reported as a gap": "listen_key_expired" in gaps,
        f"the {LIFETIME / 3600:g}-hour limit was beaten by a planned rotation": " rotated" in text,
        "the rotation lost nothing and duplicated nothing": times
        == [10**9 + n for n in range(1, pushed + 1)],
        "exactly two gaps, one for each unplanned loss": len(gaps) == 2,
        "no full listenKey was printed": re.search(r"[A-Za-z0-9]{60}", text) is None,
    }


def main() -> bool:
    say(f"the event stream, on a clock x{SPEED} shared by the simulator and the client")
    checks = asyncio.run(run())
    for name, ok in checks.items():
        say(f"{'ok  ' if ok else 'FAIL'} {name}")
    return all(checks.values())
