"""One client process of the fleet bench (scripts/bench_fleet.py), against a simulator in another.

    python scripts/bench_fleet_client.py accounts SIM_URL N [--idle 20]
    python scripts/bench_fleet_client.py flood SIM_URL fleet|stream N EVENTS PER_ROUND

`accounts`: an `AsyncFleet` of N spot accounts (keys and secrets from `key` and `secret` below,
which the simulator's keys file holds), the limits lifted; prints one JSON line: the seconds until
every account was subscribed, the connections, the CPU the process used over `--idle` seconds of
pings and nothing else (its own `time.process_time()`), and its RSS then and at its peak.

`flood`: N accounts in a fleet (or one `AsyncUserDataStream.events()`, N=1) say "ready" on stdout
once all are subscribed, then consume EVENTS events, saying "more" after each PER_ROUND of them
(the process that pushes them waits for it: the pushes' cost is not this process's), and print the
CPU they cost this process (`time.process_time()` from "ready" to the last event).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any, NoReturn

from binance_userstream import Account, AsyncFleet, AsyncUserDataStream, FleetLimits, StreamGap
from binance_userstream.stream._core import StreamEvent, StreamEventKind

#: The limits lifted for the bench: connections at once, and 3,000 weight a second (1,500
#: subscriptions), about what the simulator answers on a 2-core machine. Unpaced, 50,000 signed
#: subscriptions wait in the simulator longer than their recvWindow: -1021, and the accounts whose
#: second try is refused too end with a TimestampError.
LIFTED = FleetLimits(connections=1_000_000, request_weight=3_000, weight_window=1.0)


def key(n: int) -> str:
    return f"FleetBench{n:054d}"


def secret(n: int) -> str:
    return f"FleetBenchSecret{n:048d}"


def rss_mib(field: str = "VmRSS") -> float:
    """The process's resident set now (VmRSS), or its peak (VmHWM), in MiB. Not `ru_maxrss`,
    which a process started by fork and exec inherits from its parent on Linux."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mib() -> float:
    return rss_mib("VmHWM")


#: What the fleet reported, by kind and whether it concerned an account or a shared connection,
#: with the latest detail of each: printed to stderr when a run fails, to say why.
SEEN: dict[str, int] = {}
DETAILS: dict[str, str] = {}


def fleet_of(
    url: str,
    n: int,
    subscribed: set[str],
    done: asyncio.Event,
    *,
    keep_text: bool = False,
    models: bool = True,
    compression: str | None = "deflate",
) -> AsyncFleet:
    def seen(account_id: str | None, event: object) -> None:
        if not isinstance(event, StreamEvent):
            return
        what = f"{'account' if account_id else 'connection'} {event.kind.value}"
        SEEN[what] = SEEN.get(what, 0) + 1
        if event.detail:
            DETAILS[what] = event.detail
        if account_id is not None and event.kind is StreamEventKind.CONNECTED:
            subscribed.add(account_id)
            if len(subscribed) == n:
                done.set()

    accounts = [Account(id=f"a{i}", api_key=key(i), api_secret=secret(i)) for i in range(n)]
    return AsyncFleet(
        accounts,
        market="spot",
        base_url=url,
        stream_url=url.replace("http://", "ws://"),
        limits=LIFTED,
        on_event=seen,
        keep_text=keep_text,
        models=models,
        compression=compression,
    )


async def accounts(args: argparse.Namespace) -> dict[str, Any]:
    subscribed: set[str] = set()
    done = asyncio.Event()
    rss_before = rss_mib()
    started, start_cpu0 = time.perf_counter(), time.process_time()
    fleet = fleet_of(args.sim_url, args.n, subscribed, done)
    ended: dict[str, int] = {}

    async def consume() -> None:
        async for account_id, item in fleet:
            if isinstance(item, BaseException):
                ended[type(item).__name__] = ended.get(type(item).__name__, 0) + 1
                subscribed.add(account_id)  # it will not be: counted among the ended
                if len(subscribed) == args.n:
                    done.set()

    async with fleet:
        consumer = asyncio.create_task(consume())
        await asyncio.wait_for(done.wait(), args.timeout)
        subscribe_s = time.perf_counter() - started
        start_cpu = time.process_time() - start_cpu0
        connections = fleet.connections()
        rss_subscribed = rss_mib()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(args.idle)
        idle_share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        rss_idle = rss_mib()
        consumer.cancel()
    return {
        "accounts": args.n,
        "ended": ended,
        "subscribe_all_s": round(subscribe_s, 2),
        "start_cpu_s": round(start_cpu, 2),
        "connections": connections,
        "connections_per_1000": round(connections / (args.n / 1000), 2),
        "idle_s": args.idle,
        "idle_cpu_share": round(idle_share, 4),
        "rss_start_mib": round(rss_before, 1),
        "rss_subscribed_mib": round(rss_subscribed, 1),
        "rss_idle_mib": round(rss_idle, 1),
        "rss_peak_mib": round(peak_rss_mib(), 1),
    }


async def flood(args: argparse.Namespace) -> dict[str, Any]:
    """Once subscribed, say "ready"; then consume `args.events` events, saying "more" after each
    `args.per_round` of them (bench_fleet.py, in another process, pushes the next round then: the
    simulator cuts a connection more than 10,000 frames behind); the CPU they cost this process,
    from "ready" to the last event."""
    received = 0
    gaps = 0
    finished = asyncio.Event()
    per_round = args.per_round

    def count(item: object) -> None:
        nonlocal received, gaps
        if isinstance(item, StreamGap | BaseException):
            gaps += 1
            return
        received += 1
        if received % per_round == 0:
            if received >= args.events:
                finished.set()
            else:
                print("more", flush=True)

    async def measure(consumer: Any) -> tuple[float, float]:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        print("ready", flush=True)
        task = asyncio.create_task(consumer)
        await asyncio.wait_for(finished.wait(), args.timeout)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        task.cancel()
        return cpu, wall

    if args.kind == "fleet":
        subscribed: set[str] = set()
        done = asyncio.Event()

        async def consume_fleet(fleet: AsyncFleet) -> None:
            async for _, item in fleet:
                count(item)

        async with fleet_of(args.sim_url, args.n, subscribed, done) as fleet:
            await asyncio.wait_for(done.wait(), args.timeout)
            cpu, wall = await measure(consume_fleet(fleet))
    else:
        connected = asyncio.Event()

        def seen(event: object) -> None:
            if isinstance(event, StreamEvent) and event.kind is StreamEventKind.CONNECTED:
                connected.set()

        async def consume_stream(stream: Any) -> None:
            async for item in stream:
                count(item)

        url = args.sim_url
        async with (
            AsyncUserDataStream(
                key(0), url, market="spot", stream_url=url.replace("http://", "ws://"), api_secret=secret(0)
            ) as uds,
            uds.events(on_event=seen) as stream,
        ):
            await asyncio.wait_for(connected.wait(), args.timeout)
            cpu, wall = await measure(consume_stream(stream))
    return {"kind": args.kind, "accounts": args.n, **rates(received, gaps, cpu, wall)}


def rates(received: int, gaps: int, cpu: float, wall: float) -> dict[str, Any]:
    """A flood's figures: `received` events and `gaps` in `cpu` seconds of this process and `wall` seconds."""
    return {
        "events": received,
        "gaps": gaps,
        "cpu_s": round(cpu, 4),
        "wall_s": round(wall, 4),
        "events_per_cpu_s": round(received / cpu),
        "cpu_us_per_event": round(cpu / received * 1e6, 2),
        "events_per_s": round(received / wall),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    one = modes.add_parser("accounts")
    one.add_argument("sim_url")
    one.add_argument("n", type=int)
    one.add_argument("--idle", type=float, default=20.0)
    one.add_argument("--timeout", type=float, default=300.0)
    two = modes.add_parser("flood")
    two.add_argument("sim_url")
    two.add_argument("kind", choices=["fleet", "stream"])
    two.add_argument("n", type=int)
    two.add_argument("events", type=int)
    two.add_argument("per_round", type=int)
    two.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    run = accounts if args.mode == "accounts" else flood
    print_and_exit(run(args))


def print_and_exit(run: Coroutine[Any, Any, dict[str, Any]]) -> NoReturn:
    """Print what `run` returns as one JSON line and exit at once (no need to wait for 50,000
    accounts' teardown); on a timeout, say what the fleet reported and exit 1."""
    try:
        print(json.dumps(asyncio.run(run)), flush=True)
    except TimeoutError:
        print(f"timed out; the fleet reported {SEEN}, latest details {DETAILS}", file=sys.stderr)
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
