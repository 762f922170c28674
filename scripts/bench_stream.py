"""`make bench`, the stream half: event throughput, latency and many streams, side by side.

Every contender runs in a process of its own (scripts/bench_stream_client.py) against one
WebSocket server in another (scripts/bench_stream_server.py; the listenKey REST answers come from
scripts/bench_server.py), in rounds whose order rotates; medians with min and max over the rounds,
ratios of medians, all from this one run. Per round and contender: a flood (as fast as the server
can send: events/s and the client's CPU per event) and a paced run at --rate events/s (one-way
latency p50/p99); both check every event's sequence number and time the first event. Then many
streams: N accounts' streams in one process against the simulator, itself in another process.

    python scripts/bench_stream.py [--rounds 5] [--flood-seconds 2.5] [--paced-seconds 3]
                                   [--rate 2000] [--streams 1000] [--out bench-stream-results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
CONTENDERS = [
    "raw_websockets",
    "raw_msgspec",
    "facade_async",
    "facade_async_stdlib",
    "facade_sync",
    "python_binance",
    "binance_sdk",
]
LABELS = {
    "raw_websockets": "raw websockets + json, dicts (the floor)",
    "raw_msgspec": "raw websockets + msgspec, dicts",
    "facade_async": "this project, AsyncUserDataStream.events()",
    "facade_async_stdlib": "  the same, msgspec hidden (stdlib json)",
    "facade_sync": "this project, UserDataStream.events()",
    "python_binance": "python-binance 1.0.37 futures_user_socket",
    "binance_sdk": "Binance USD-M SDK 18.0.1 user_data",
}
TARGETS = [  # (name, contender, metric, other, comparison, bound)
    ("throughput vs python-binance", "facade_async", "events_per_s", "python_binance", ">=", 3.0),
    ("throughput vs Binance SDK", "facade_async", "events_per_s", "binance_sdk", ">=", 5.0),
    ("CPU per event vs the floor", "facade_async", "cpu_us_per_event", "raw_websockets", "<=", 1.5),
    ("p99 latency vs the floor", "facade_async", "latency_p99_us", "raw_websockets", "<=", 1.3),
]
# The same four for the stream where msgspec is missing (the standard library parses),
# and its overhead over the floor with msgspec: reported, not targets.
REPORTED = [
    (f"{name} (stdlib json)", "facade_async_stdlib", metric, other, comparison, bound)
    for name, _, metric, other, comparison, bound in TARGETS
]
REPORTED.append(
    ("CPU per event vs websockets + msgspec", "facade_async", "cpu_us_per_event", "raw_msgspec", "<=", 1.5)
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], probe: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, *args])
    for _ in range(200):
        try:
            httpx.get(probe, timeout=0.5)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"bench: {args[0]} did not start")


def run_script(script: str, args: list[str], what: str, timeout: float) -> dict[str, Any]:
    """Run one of the bench's scripts in a process of its own: the JSON object its last line prints."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=timeout
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"bench: {what} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class Servers:
    """The REST server and one stream server (an implementation, a batch size)."""

    def __init__(self, impl: str = "aiohttp", batch: int = 64) -> None:
        rest_port, ws_port = free_port(), free_port()
        self.rest = f"http://127.0.0.1:{rest_port}"
        self.http = f"http://127.0.0.1:{ws_port}"
        self.ws = f"ws://127.0.0.1:{ws_port}"
        self.procs = [
            start([str(SCRIPTS / "bench_server.py"), str(rest_port)], self.rest),
            start(
                [
                    str(SCRIPTS / "bench_stream_server.py"),
                    str(ws_port),
                    "--impl",
                    impl,
                    "--batch",
                    str(batch),
                ],
                self.http + "/_bench/stats",
            ),
        ]

    def run(self, contender: str, count: int, rate: float) -> dict[str, Any]:
        """One client process: the server's plan set, the client run, both sides' figures."""
        httpx.get(f"{self.http}/_bench/plan", params={"count": count, "rate": rate}).raise_for_status()
        result = run_script(
            "bench_stream_client.py", [contender, self.ws, self.rest, str(count)], contender, timeout=300
        )
        result["server"] = httpx.get(f"{self.http}/_bench/stats").json()
        return result

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}


def server_check(events: int) -> dict[str, Any]:
    """Each server implementation, frame by frame (its own send) and batched, under the floor client:
    its CPU per event and the share of the flood it sat idle, waiting on the client."""
    out: dict[str, Any] = {}
    for impl in ("websockets", "aiohttp"):
        for batch in (1, 64):
            servers = Servers(impl, batch)
            try:
                runs = [servers.run("raw_websockets", events, 0) for _ in range(3)]
            finally:
                servers.close()
            out[f"{impl}/batch{batch}"] = {
                "server_cpu_us_per_event": summary([r["server"]["cpu_us_per_event"] for r in runs]),
                "server_idle_share": summary([r["server"]["idle_share"] for r in runs]),
                "client_events_per_s": summary([r["events_per_s"] for r in runs]),
            }
    return out


def contenders(servers: Servers, args: argparse.Namespace) -> dict[str, Any]:
    paced = int(args.rate * args.paced_seconds)
    counts = {}
    for name in CONTENDERS:  # warm-up and calibration: a flood of a few seconds for each
        rate = servers.run(name, 20_000, 0)["events_per_s"]
        counts[name] = max(5000, min(400_000, int(rate * args.flood_seconds)))
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {n: {"flood": [], "paced": []} for n in CONTENDERS}
    for r in range(args.rounds):
        order = CONTENDERS[r % len(CONTENDERS) :] + CONTENDERS[: r % len(CONTENDERS)]
        for name in order:
            runs[name]["flood"].append(servers.run(name, counts[name], 0))
            runs[name]["paced"].append(servers.run(name, paced, args.rate))
        print(f"  round {r + 1}/{args.rounds} done", flush=True)
    table: dict[str, Any] = {}
    for name in CONTENDERS:
        flood, pace = runs[name]["flood"], runs[name]["paced"]
        everything = flood + pace
        table[name] = {
            "flood_events": counts[name],
            "events_per_s": summary([r["events_per_s"] for r in flood]),
            "cpu_us_per_event": summary([r["cpu_us_per_event"] for r in flood]),
            "latency_p50_us": summary([r["latency_p50_us"] for r in pace]),
            "latency_p99_us": summary([r["latency_p99_us"] for r in pace]),
            "first_event_ms": summary([r["first_event_ms"] for r in everything]),
            "missing": sum(r["missing"] for r in everything),
            "duplicates": sum(r["duplicates"] for r in everything),
            "out_of_order": sum(r["out_of_order"] for r in everything),
            "events_checked": sum(r["events"] for r in everything),
            "server_idle_share_in_flood": summary([r["server"]["idle_share"] for r in flood]),
            "server_in_send_share_in_flood": summary(
                [round(r["server"]["in_send_s"] / r["server"]["wall_s"], 3) for r in flood]
            ),
        }
    return table


def many_streams(args: argparse.Namespace) -> list[dict[str, Any]]:
    """N streams in one process against the simulator in another; for each N of the sweep."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "binance_userstream",
            "simulator",
            "--port",
            str(port),
            "--weight-limit",
            "10000000",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/fapi/v1/ping", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        results = []
        for n in args.streams:
            results.append(
                run_script(
                    "bench_many_streams.py",
                    [url, str(n), "--sim-pid", str(sim.pid)],
                    f"many streams ({n})",
                    timeout=600,
                )
            )
            print(f"  {n} streams done", flush=True)
        return results
    finally:
        sim.terminate()
        sim.wait()


def ratios(table: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for rows, is_target in ((TARGETS, True), (REPORTED, False)):
        for name, contender, metric, other, comparison, bound in rows:
            value = table[contender][metric]["median"] / table[other][metric]["median"]
            met = value >= bound if comparison == ">=" else value <= bound
            out.append(
                {
                    "target": f"{name} {comparison} {bound}",
                    "ratio": round(value, 2),
                    "met": met,
                    "is_target": is_target,
                }
            )
    return out


def report(results: dict[str, Any]) -> None:
    table = results["contenders"]
    print(f"stream, {results['settings']['rounds']} rounds interleaved: median (min-max)")
    header = (
        f"  {'contender':<46}{'events/s':>24}{'CPU us/event':>22}{'p50 us':>20}{'p99 us':>22}{'1st ms':>18}"
    )
    print(header + "  missing/dup/ooo")

    def cell(row: dict[str, float], digits: int = 0) -> str:
        fmt = f"{{:.{digits}f}}"
        return f"{fmt.format(row['median'])} ({fmt.format(row['min'])}-{fmt.format(row['max'])})"

    for name, row in table.items():
        print(
            f"  {LABELS[name]:<46}{cell(row['events_per_s']):>24}{cell(row['cpu_us_per_event'], 1):>22}"
            f"{cell(row['latency_p50_us']):>20}{cell(row['latency_p99_us']):>22}{cell(row['first_event_ms']):>18}"
            f"  {row['missing']}/{row['duplicates']}/{row['out_of_order']} of {row['events_checked']}"
        )
    for row in results["targets"]:
        if row["is_target"]:
            print(f"  target {row['target']}: {row['ratio']} {'met' if row['met'] else 'MISSED'}")
        else:
            print(f"  (compare) {row['target']}: {row['ratio']} {'within' if row['met'] else 'outside'}")
    idle = [row["server_idle_share_in_flood"]["median"] for row in table.values()]
    print(f"  server idle during floods (waiting on the client): medians {min(idle):.0%}-{max(idle):.0%}")
    for name, row in results.get("server_check", {}).items():
        print(
            f"  server {name}: {row['server_cpu_us_per_event']['median']} us/event, "
            f"idle {row['server_idle_share']['median']:.0%}, "
            f"floor client {row['client_events_per_s']['median']:.0f}/s"
        )
    for row in results.get("many_streams", []):
        print(
            f"  {row['streams']} streams: all connected in {row['connect_all_s']} s, idle CPU "
            f"{row['idle_cpu_share']:.1%} of a core, {row['events_per_s_median']} events/s across them "
            f"({row['events_per_s_min']}-{row['events_per_s_max']}; "
            f"simulator CPU {row['simulator_cpu_share_median']:.0%}), "
            f"keepalives {row['keepalives_min']}-{row['keepalives_max']} each "
            f"(expected {row['keepalives_expected']}), "
            f"peak RSS {row['rss_peak_mib']} MiB"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flood-seconds", type=float, default=2.5)
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--streams", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--skip-server-check", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-stream-results.json")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    if not args.skip_server_check:
        print("stream server check (websockets vs aiohttp, frame by frame vs batched)", flush=True)
        results["server_check"] = server_check(50_000)
    print("stream contenders", flush=True)
    servers = Servers()
    try:
        results["contenders"] = contenders(servers, args)
    finally:
        servers.close()
    results["targets"] = ratios(results["contenders"])
    if args.streams:
        print("many streams", flush=True)
        results["many_streams"] = many_streams(args)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
