"""Many streams in one process: N accounts' `AsyncUserDataStream.events()` against a simulator.

    python scripts/bench_many_streams.py SIM_URL N [--interval 20] [--hold 45] [--pushes 5] [--per-push 20]

Each account has its own API key and client (one shared connection pool); each stream creates
its key, keeps it alive every `--interval` seconds (its own keepalive session) and reads its
connection. Prints one JSON line: the time until all N were connected, the CPU the process used
while they sat idle, the keepalives each got within `--hold` seconds, the events per second
delivered across all of them (`--pushes` pushes of `--per-push` ORDER_TRADE_UPDATE events to every
account through `POST /_simulator/events`), the simulator's CPU share meanwhile (from /proc, when
`--sim-pid` is given), and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from typing import Any

import httpx
from binance_userstream_client.models import OrderTradeUpdate

from binance_userstream import AsyncUserDataStream
from binance_userstream._session import EventKind, SessionEvent
from binance_userstream.simulator._http import CONTROL_HEADER
from binance_userstream.stream._core import StreamEvent, StreamEventKind


def proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process `pid` (0 when unknown)."""
    if pid is None:
        return 0.0
    with contextlib.suppress(OSError):
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def order_event(seq: int) -> dict[str, Any]:
    now = time.time_ns()
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now // 1_000_000,
        "T": now,
        "o": {"s": "BTCUSDT", "c": f"bench-{seq}", "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.001",
              "p": "43000.10", "ap": "0", "sp": "0", "x": "NEW", "X": "NEW", "i": seq, "l": "0", "z": "0",
              "L": "0", "T": now // 1_000_000, "t": 0, "b": "43.0001", "a": "0", "m": False, "R": False,
              "wt": "CONTRACT_PRICE", "ot": "LIMIT", "ps": "BOTH", "cp": False, "rp": "0",
              "V": "EXPIRE_TAKER", "pm": "NONE", "gtd": 0, "er": "0"},
    }  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.streams
    ws_url = args.sim_url.replace("http://", "ws://")
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16)
    )
    connected: set[int] = set()
    kept_alive = [0] * n
    received = [0] * n
    all_connected = asyncio.Event()
    target = 0
    delivered = asyncio.Event()
    total = 0

    def on_event(i: int) -> Any:
        def seen(event: SessionEvent | StreamEvent) -> None:
            if isinstance(event, StreamEvent) and event.kind is StreamEventKind.CONNECTED:
                connected.add(i)
                if len(connected) == n:
                    all_connected.set()
            elif isinstance(event, SessionEvent) and event.kind is EventKind.KEPT_ALIVE:
                kept_alive[i] += 1

        return seen

    async def consume(i: int, stream: Any) -> None:
        nonlocal total
        async for item in stream:
            if isinstance(item, OrderTradeUpdate):
                received[i] += 1
                total += 1
                if total >= target > 0:
                    delivered.set()

    started = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        tasks = []
        for i in range(n):
            uds = await stack.enter_async_context(
                AsyncUserDataStream(
                    f"Account{i:05d}" + "k" * 52, args.sim_url, market="usdm", stream_url=ws_url,
                    transport=transport,
                )
            )  # fmt: skip
            stream = uds.events(interval=args.interval, on_event=on_event(i))
            tasks.append((uds, stream))
        # Enter the streams concurrently (each creates its key, then connects), bounded.
        bound = asyncio.Semaphore(32)

        async def enter(stream: Any) -> None:
            async with bound:
                await stack.enter_async_context(stream)

        await asyncio.gather(*(enter(stream) for _, stream in tasks))
        consumers = [asyncio.create_task(consume(i, stream)) for i, (_, stream) in enumerate(tasks)]
        await asyncio.wait_for(all_connected.wait(), 120)
        connect_s = time.perf_counter() - started
        rss_connected = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        idle_cpu0, idle_wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(args.idle)
        idle_share = (time.process_time() - idle_cpu0) / (time.perf_counter() - idle_wall0)

        rates = []
        sim_shares = []
        async with httpx.AsyncClient(
            base_url=args.sim_url, timeout=60, headers={CONTROL_HEADER: "1"}
        ) as control:
            seq = 0
            for _ in range(args.pushes):
                events = [order_event(seq + k + 1) for k in range(args.per_push)]
                seq += args.per_push
                target = total + n * args.per_push
                delivered.clear()
                sim0, t0, cpu0 = proc_cpu(args.sim_pid), time.perf_counter(), time.process_time()
                answer = await control.post("/_simulator/events", json={"market": "usdm", "events": events})
                answer.raise_for_status()
                await asyncio.wait_for(delivered.wait(), 120)
                wall = time.perf_counter() - t0
                rates.append(n * args.per_push / wall)
                sim_shares.append((proc_cpu(args.sim_pid) - sim0) / wall)
                client_cpu = (time.process_time() - cpu0) / (n * args.per_push)
                await asyncio.sleep(0.2)

        remaining = args.hold - (time.perf_counter() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        held_s = time.perf_counter() - started
        for task in consumers:
            task.cancel()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rates.sort()
    return {
        "streams": n,
        "connect_all_s": round(connect_s, 2),
        "idle_cpu_share": round(idle_share, 4),
        "events_delivered": sum(received),
        "events_per_s_median": round(rates[len(rates) // 2]),
        "events_per_s_min": round(rates[0]),
        "events_per_s_max": round(rates[-1]),
        "client_cpu_us_per_event_last": round(client_cpu * 1e6, 1),
        "simulator_cpu_share_median": round(sorted(sim_shares)[len(sim_shares) // 2], 3),
        "keepalive_interval_s": args.interval,
        "held_s": round(held_s, 1),
        "keepalives_min": min(kept_alive),
        "keepalives_max": max(kept_alive),
        "keepalives_expected": int(held_s // args.interval),
        "rss_connected_mib": round(rss_connected, 1),
        "rss_peak_mib": round(rss_peak, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sim_url")
    parser.add_argument("streams", type=int)
    parser.add_argument("--interval", type=float, default=20.0)
    parser.add_argument("--hold", type=float, default=45.0)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--per-push", type=int, default=20)
    parser.add_argument("--sim-pid", type=int)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
