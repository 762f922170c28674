"""`make bench`: per-call keepalive cost side by side, many keys at once, and import time; then
the event stream's benchmark (scripts/bench_stream.py: throughput, latency, many streams); then what
healing one gap of the account mirror costs (scripts/bench_account.py: weight and wall time for 1,
10 and 100 active symbols, on USD-M and spot, against the simulator); then the fleet
(scripts/bench_fleet.py: 1,000 to 50,000 spot accounts in one process, and a fleet's events per
core beside one stream's, against the simulator in its own process); then the durable log
(scripts/bench_durable.py: a fleet of 1,000 spot accounts into NATS JetStream through `pump`,
acknowledged, beside the same fleet without a sink, and the publish-to-acknowledgement latency).

All contenders talk to one fast loopback server in its own process (scripts/bench_server.py) and
are measured interleaved in one run, in rounds whose order rotates, so that a noisy machine slows
them alike; medians are reported with min and max over the rounds, and ratios are of medians.

    python scripts/bench.py [--rounds 25] [--calls 200] [--keys 1000] [--out bench-results.json]
                            [--account-runs 5] [--only rest|stream|account|fleet|sink]
                            [-- bench_stream.py's options]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from binance.client import Client as PythonBinanceClient
from binance_userstream_client import AuthenticatedClient
from binance_userstream_client.api.spot import keepalive_spot_listen_key as keepalive
from binance_userstream_client.models import ListenKeyForm

from binance_userstream import AsyncUserDataStream, BackoffGate, UserDataStream

ROOT = Path(__file__).resolve().parent.parent
LISTEN_KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
API_KEY = "BenchApiKey" + "0" * 53
PATH = "/api/v3/userDataStream"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench_server.py"), str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.post(url + PATH, timeout=0.2)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("bench: the server did not start")


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_us": round(statistics.median(samples), 1),
        "min_us": round(min(samples), 1),
        "max_us": round(max(samples), 1),
    }


def per_call(url: str, rounds: int, calls: int) -> dict[str, dict[str, float]]:
    """Microseconds per keepalive for each contender, `calls` a round, `rounds` rounds, interleaved."""
    raw = httpx.Client(base_url=url, headers={"X-MBX-APIKEY": API_KEY})
    generated = AuthenticatedClient(base_url=url, token=API_KEY, prefix="", auth_header_name="X-MBX-APIKEY")
    facade = UserDataStream(API_KEY, url, gate=BackoffGate()).__enter__()  # clients are used inside `with`
    peer = PythonBinanceClient(API_KEY, "unused-secret", ping=False)
    peer.API_URL = url + "/api"  # python-binance builds API_URL/v3/userDataStream

    loop = asyncio.new_event_loop()
    raw_async = httpx.AsyncClient(base_url=url, headers={"X-MBX-APIKEY": API_KEY})
    facade_async = loop.run_until_complete(AsyncUserDataStream(API_KEY, url, gate=BackoffGate()).__aenter__())

    def raw_httpx() -> None:
        response = raw.put(PATH, data={"listenKey": LISTEN_KEY})
        response.raise_for_status()
        response.json()

    def generated_client() -> None:
        keepalive.sync_detailed(client=generated, body=ListenKeyForm(listen_key=LISTEN_KEY))

    def in_loop(call: Callable[[], Any]) -> Callable[[int], None]:
        async def batch(n: int) -> None:
            for _ in range(n):
                await call()

        return lambda n: loop.run_until_complete(batch(n))

    async def raw_httpx_async_call() -> None:
        response = await raw_async.put(PATH, data={"listenKey": LISTEN_KEY})
        response.raise_for_status()
        response.json()

    def repeat(call: Callable[[], Any]) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                call()

        return run

    contenders: dict[str, Callable[[int], None]] = {
        "raw_httpx": repeat(raw_httpx),
        "generated_client": repeat(generated_client),
        "facade_sync": repeat(lambda: facade.keepalive(LISTEN_KEY)),
        "facade_async": in_loop(lambda: facade_async.keepalive(LISTEN_KEY)),
        "raw_httpx_async": in_loop(raw_httpx_async_call),
        "python_binance": repeat(lambda: peer.stream_keepalive(LISTEN_KEY)),
    }
    names = list(contenders)
    for name in names:  # warm up: connections, caches
        contenders[name](calls // 4)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            started = time.perf_counter()
            contenders[name](calls)
            samples[name].append((time.perf_counter() - started) / calls * 1e6)
    loop.run_until_complete(raw_async.aclose())
    loop.run_until_complete(facade_async.shutdown())
    loop.close()
    return {name: summary(values) for name, values in samples.items()}


def many_keys(url: str, keys: int, concurrency: int) -> dict[str, Any]:
    """Keep `keys` listenKeys (one API key, one client each) alive: async bounded vs sequential sync.

    All clients share one connection pool (the `transport` option). Concurrency is swept: on this
    two-core machine the client is CPU-bound, and httpx's async pool slows down sharply with many
    connections (encode/httpx#3215), so the best bound is small.
    """
    api_keys = [f"Account{i:05d}" + "x" * 52 for i in range(keys)]
    gate = BackoffGate()

    shared = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=8))
    sync_clients = [UserDataStream(k, url, gate=gate, transport=shared).__enter__() for k in api_keys]
    started = time.perf_counter()
    for uds in sync_clients:
        uds.keepalive(LISTEN_KEY)
    sync_rate = keys / (time.perf_counter() - started)

    async def run_async(concurrency: int, measure_memory: bool = False) -> tuple[float, float]:
        tracing = measure_memory and not tracemalloc.is_tracing()
        if tracing:  # from before the clients exist: their cost is part of keeping many keys
            tracemalloc.start()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        transport = httpx.AsyncHTTPTransport(limits=limits)
        clients = [
            await AsyncUserDataStream(k, url, gate=gate, transport=transport).__aenter__() for k in api_keys
        ]
        bound = asyncio.Semaphore(concurrency)

        async def one(uds: AsyncUserDataStream) -> None:
            async with bound:
                await uds.keepalive(LISTEN_KEY)

        await asyncio.gather(*(one(uds) for uds in clients[:concurrency]))  # open the connections
        started = time.perf_counter()
        await asyncio.gather(*(one(uds) for uds in clients))
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if tracing else 0
        if tracing:
            tracemalloc.stop()
        await transport.aclose()
        return keys / elapsed, peak

    sweep = {}
    for bound in sorted({1, 4, 16, concurrency}):
        sweep[bound] = round(asyncio.run(run_async(bound))[0])
    best = max(sweep, key=lambda bound: sweep[bound])
    _, peak = asyncio.run(
        run_async(best, measure_memory=True)
    )  # memory in a pass of its own: tracemalloc slows things
    return {
        "keys": keys,
        "sync_sequential_per_s": round(sync_rate),
        "async_per_s_by_concurrency": sweep,
        "best_concurrency": best,
        "async_best_over_sync": round(sweep[best] / sync_rate, 2),
        "async_peak_traced_mib": round(peak / 2**20, 2),
    }


def import_ms(module: str, runs: int) -> dict[str, float]:
    """Cumulative import time of `module` by `python -X importtime`, in a fresh interpreter each run.

    Read off the line of its top-level package, which holds everything the import pulled in.
    """
    top = module.partition(".")[0]
    times = []
    for _ in range(runs + 1):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in proc.stderr.splitlines():
            found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
            if found and found[2] == top:
                times.append(int(found[1]) / 1000)
    samples = times[1:]  # the first run compiles bytecode
    return {"median_ms": round(statistics.median(samples), 1), "min_ms": min(samples), "max_ms": max(samples)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results.json")
    parser.add_argument("--account-runs", type=int, default=5, help="runs of each account heal (median)")
    parser.add_argument(
        "--only", choices=["rest", "stream", "account", "fleet", "sink"], help="run one part (default: all)"
    )
    args, stream_args = parser.parse_known_args()
    sys.path.insert(0, str(ROOT / "scripts"))
    code = 0
    if args.only in (None, "rest"):
        rest(args)
    if args.only in (None, "stream"):
        import bench_stream

        code = bench_stream.main([a for a in stream_args if a != "--"])
    if args.only in (None, "account"):
        code = account(args) or code
    if args.only in (None, "fleet"):
        import bench_fleet

        code = bench_fleet.main(["--out", str(args.out.with_name("bench-fleet-results.json"))]) or code
    if args.only in (None, "sink"):
        import bench_durable

        code = bench_durable.main(["--out", str(args.out.with_name("bench-durable-results.json"))]) or code
    return code


def account(args: argparse.Namespace) -> int:
    """The account part: one gap's heal, by active symbols, on USD-M and spot (bench_account.py)."""
    import bench_account

    table = bench_account.run(args.account_runs)
    bound = bench_account.budget_bound()
    out = args.out.with_name("bench-account-results.json")
    results = {"runs": args.account_runs, "heal_one_gap": table, "budget_bound": bound}
    out.write_text(json.dumps(results, indent=2) + "\n")
    ok = bench_account.report(table, args.account_runs)
    ok = bench_account.report_bound(bound) and ok
    print(f"wrote {out}")
    return 0 if ok else 1


def rest(args: argparse.Namespace) -> None:
    """The REST half: keepalive per call, many keys, import time."""

    server, url = start_server()
    try:
        calls = per_call(url, args.rounds, args.calls)
        keys = many_keys(url, args.keys, args.concurrency)
    finally:
        server.terminate()
        server.wait()
    imports = {
        "binance_userstream": import_ms("binance_userstream", 7),
        "binance.client": import_ms("binance.client", 7),
    }

    def ratio(a: str, b: str) -> float:
        return round(calls[a]["median_us"] / calls[b]["median_us"], 3)

    ratios = {
        "facade_sync/raw_httpx": ratio("facade_sync", "raw_httpx"),
        "facade_sync/python_binance": ratio("facade_sync", "python_binance"),
        "facade_async/raw_httpx_async": ratio("facade_async", "raw_httpx_async"),
        "generated_client/raw_httpx": ratio("generated_client", "raw_httpx"),
    }
    targets = {
        "facade_sync/raw_httpx <= 1.10": ratios["facade_sync/raw_httpx"] <= 1.10,
        "facade_sync/python_binance <= 0.70": ratios["facade_sync/python_binance"] <= 0.70,
    }
    results = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "settings": vars(args) | {"out": str(args.out)},
        "per_call_keepalive": calls,
        "ratios_of_medians": ratios,
        "targets_met": targets,
        "many_keys": keys,
        "import_time": imports,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"per-call keepalive, {args.rounds} rounds x {args.calls} calls, interleaved (microseconds)")
    print(f"  {'contender':<18}{'median':>9}{'min':>9}{'max':>9}")
    for name, row in calls.items():
        print(f"  {name:<18}{row['median_us']:>9}{row['min_us']:>9}{row['max_us']:>9}")
    print("ratios of medians")
    for name, value in ratios.items():
        print(f"  {name:<30}{value:>7}")
    for name, ok in targets.items():
        print(f"  target {name}: {'met' if ok else 'MISSED'}")
    sweep = ", ".join(f"{bound}: {rate}/s" for bound, rate in keys["async_per_s_by_concurrency"].items())
    print(f"many keys ({keys['keys']} API keys, one client each, one shared pool), keepalives per second")
    print(f"  sync sequential: {keys['sync_sequential_per_s']}/s")
    print(f"  async by concurrency bound: {sweep}")
    print(
        f"  best async / sync: x{keys['async_best_over_sync']}; "
        f"async peak traced memory {keys['async_peak_traced_mib']} MiB"
    )
    for module, row in imports.items():
        print(f"import {module}: median {row['median_ms']} ms (min {row['min_ms']}, max {row['max_ms']})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
