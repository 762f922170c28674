"""One client process of the durable log's bench (scripts/bench_durable.py), against a simulator and
a nats-server in processes of their own.

    python scripts/bench_durable_client.py SIM_URL KIND N EVENTS PER_ROUND [--nats URL --stream NAME]

A spot fleet of N accounts (keys and secrets of bench_fleet_client.py) says "ready" on stdout once
every account is subscribed, then takes EVENTS items as a worker does (`take`, `wait_ready`),
saying "more" after each PER_ROUND of them (the process that pushes them waits for it). KIND:

- `none`: the fleet with models (`keep_text=True`), its items dropped; `sink`: the same fleet's
  items through `pump` into a `JetStreamSink` on stream NAME (subjects `<name lowercased>.>`), the
  run ending when the last one is acknowledged. Both ask for deflated frames, the fleet's default.
- `raw`: the fleet as a worker makes it (`models=False`, `compression=workers.COMPRESSION`, in a
  process whose garbage collector is set as `fleet serve` sets it: `workers.tune_collector`), its
  items dropped; `claimed`: what a worker runs, that fleet into the sink, each account claimed
  first (each message sent on condition of its claim); `claimed-deflate`: the same with deflated
  frames, to show what inflating costs.
- `worker`: a `Worker` itself (`run_worker`): the same data path, and its leases.

Prints one JSON line: the CPU this process used from "ready" to the end (`time.process_time()`),
and for the sink its publish-to-acknowledgement latencies' p50 and p99 and what it lost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from bench_fleet_client import LIFTED, fleet_of, key, print_and_exit, rates, secret

from binance_userstream import Account, AsyncFleet, StreamGap
from binance_userstream.simulator._http import CONTROL_HEADER
from binance_userstream.sink import JetStreamSink, pump
from binance_userstream.workers import tune_collector
from binance_userstream.workers._worker import COMPRESSION, Worker


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0 to 1) of `values`, nearest rank; 0.0 for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def claim_all(sink: JetStreamSink, accounts: list[str]) -> float:
    """Claim every account as a worker's takeover does (64 at a time); the seconds it took."""
    slots = asyncio.Semaphore(64)
    revision = time.time_ns()  # newer than any earlier run's claims of the same accounts

    async def one(account: str) -> None:
        async with slots:
            if not await sink.claim(account, revision):
                raise RuntimeError(f"{account}: not claimed")

    started = time.perf_counter()
    await asyncio.gather(*(one(account) for account in accounts))
    return time.perf_counter() - started


async def subscriptions(sim_url: str) -> int:
    """The WebSocket API subscriptions the simulator holds now."""
    async with httpx.AsyncClient(headers={CONTROL_HEADER: "1"}) as http:
        state = (await http.get(f"{sim_url}/_simulator/state")).json()
    return int(state["ws_api_subscriptions"])


async def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """`worker`: a `Worker` itself, as `fleet serve` runs it (its leases in a bucket of this run's,
    no Reconciled after its takeover gaps: a heal's REST calls are no part of the steady state),
    ready once it holds and has subscribed every account; then its events until `args.events`
    of them are acknowledged (`WorkerStatus.published`), saying "more" after each round."""
    tune_collector()
    accounts = [Account(id=f"a{i}", api_key=key(i), api_secret=secret(i)) for i in range(args.n)]
    worker = Worker(
        accounts,
        market="spot",
        nats=args.nats,
        worker_id="bench",
        stream=args.stream,
        prefix=args.stream.lower(),
        bucket=f"{args.stream}-leases",
        heal_concurrency=0,
        base_url=args.sim_url,
        stream_url=args.sim_url.replace("http://", "ws://"),
        limits=LIFTED,
    )
    async with worker:
        async with asyncio.timeout(args.timeout):
            while worker.status().accounts < args.n or await subscriptions(args.sim_url) < args.n:
                await asyncio.sleep(0.05)
            before = worker.status()
            while True:  # the takeover gaps acknowledged: nothing but events from here
                await asyncio.sleep(0.05)
                now = worker.status()
                if now.published == before.published:
                    break
                before = now
        sink = worker._sink  # its count read directly: `status()` computes percentiles each time
        assert sink is not None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        print("ready", flush=True)
        said = 0
        async with asyncio.timeout(args.timeout):
            while (received := sink.delivered - before.published) < args.events:
                rounds = received // args.per_round
                if rounds > said:
                    print("more", flush=True)
                    said = rounds
                await asyncio.sleep(0.005)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        status = worker.status()
    result = {
        "kind": args.kind,
        "accounts": args.n,
        "delivered": received,
        "duplicates": 0,  # a batch's acknowledgements do not say (JetStreamSink.duplicates)
        "lost": status.lost - before.lost,
        "sink_gaps": status.gaps - before.gaps,
        "p50_ms": status.latency_p50_ms,
        "p99_ms": status.latency_p99_ms,
        "claim_s": None,
    }
    return result | rates(received, status.gaps - before.gaps, cpu, wall)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.kind == "worker":
        return await run_worker(args)
    received = gaps = 0
    claims: list[float] = []

    async def items(fleet: AsyncFleet) -> AsyncIterator[tuple[str, object, str | None]]:
        """The fleet's items until `args.events` events came, saying "more" after each round: taken
        when ready and waited for when not, in one generator, as a worker's are (`Worker._items`)."""
        nonlocal received, gaps
        while received < args.events:
            taken = fleet.take()
            if taken is None:
                if fleet.ended:
                    return
                await fleet.wait_ready()
                continue
            if isinstance(taken[1], StreamGap | BaseException):
                gaps += 1
            else:
                received += 1
                if received % args.per_round == 0 and received < args.events:
                    print("more", flush=True)
            yield taken

    subscribed: set[str] = set()
    done = asyncio.Event()
    result: dict[str, Any] = {"kind": args.kind, "accounts": args.n}
    workers_way = args.kind in ("raw", "claimed")  # a worker's fleet: no models, its compression
    if args.kind != "none" and args.kind != "sink":
        tune_collector()  # as `fleet serve` runs a worker's process
    async with fleet_of(
        args.sim_url,
        args.n,
        subscribed,
        done,
        keep_text=True,
        models=not workers_way and args.kind != "claimed-deflate",
        compression=COMPRESSION if workers_way else "deflate",
    ) as fleet:
        await asyncio.wait_for(done.wait(), args.timeout)
        if args.kind in ("sink", "claimed", "claimed-deflate"):
            async with JetStreamSink(
                servers=args.nats, market="spot", stream=args.stream, prefix=args.stream.lower(),
                record_latency=True, worker="bench",
            ) as sink:  # fmt: skip
                if args.kind != "sink":  # as a worker's: every message on condition of its claim
                    claims.append(await claim_all(sink, sorted(subscribed)))
                cpu0, wall0 = time.process_time(), time.perf_counter()
                print("ready", flush=True)
                pumped = await asyncio.wait_for(pump(items(fleet), sink), args.timeout)
                await sink.flush()
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                latencies = list(sink.latencies or [])
                result |= {
                    "delivered": sink.delivered,
                    "duplicates": sink.duplicates,
                    "lost": sink.lost,
                    "sink_gaps": pumped.gaps,
                    "p50_ms": round(percentile(latencies, 0.5) * 1e3, 3),
                    "p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
                    "claim_s": round(claims[0], 3) if claims else None,
                }
        else:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            print("ready", flush=True)

            async def drop() -> None:
                async for _ in items(fleet):
                    pass

            await asyncio.wait_for(drop(), args.timeout)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return result | rates(received, gaps, cpu, wall)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sim_url")
    parser.add_argument("kind", choices=["sink", "claimed", "claimed-deflate", "worker", "none", "raw"])
    parser.add_argument("n", type=int)
    parser.add_argument("events", type=int)
    parser.add_argument("per_round", type=int)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="BENCH")
    parser.add_argument("--timeout", type=float, default=300.0)
    print_and_exit(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
