"""`make bench`, the fleet part: many spot accounts on few connections, against the simulator.

The simulator runs in a process of its own (`binance-userstream simulator`, its keys file holding
every account's key and HMAC secret, the weight limit lifted) and each client in another
(scripts/bench_fleet_client.py), so that the figures are the client's alone:

- accounts per process: for each N of `--accounts`, a fleet of N accounts with the fleet's limits
  lifted: seconds until every account is subscribed, connections (per 1,000 accounts), the CPU the
  process uses over `--idle` seconds of pings and nothing else, its RSS; beside it, how long the
  same start takes under the fleet's default limits (`FleetLimits()`: 250 connections per 5
  minutes, 4,800 weight a minute, below Binance's 300 and 6,000) and under Binance's own, computed
  by the fleet's pacing rules (`Pool`) on a virtual clock;
- events per core: a fleet of `--flood-accounts` accounts, every pushed event going to each of
  them, beside one `AsyncUserDataStream.events()`, the same number of events each, in `--rounds`
  rounds whose order alternates: events per CPU second of the client, medians, and their ratio.

    python scripts/bench_fleet.py [--accounts 1000 10000 50000] [--idle 20] [--rounds 5]
                                  [--flood-accounts 1000] [--flood-events 100000]
                                  [--out bench-fleet-results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from binance_userstream import FleetLimits
from binance_userstream.fleet._pool import Member, Open, Pool, Subscribe
from binance_userstream.simulator._http import CONTROL_HEADER
from binance_userstream.simulator._traffic import Traffic

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))
from bench_fleet_client import key, secret  # noqa: E402

#: Binance's own per-IP limits (the fleet's defaults stay below them).
BINANCE = FleetLimits(connections=300, request_weight=6_000)
#: Events delivered per round of the flood (the simulator cuts a connection 10,000 frames behind),
#: and events per push request (it takes 64 KiB a request).
PER_ROUND = 5_000
PER_REQUEST = 100
TARGET_RATIO = 0.8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid`."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def start_seconds(accounts: int, limits: FleetLimits, capacity: int = 1000) -> float:
    """Seconds from the start until all `accounts` are subscribed, under `limits`, by the fleet's
    own pacing (`Pool`) on a virtual clock, every connection opening and every subscription
    answered at once: what the limits alone cost a start."""
    inf = float("inf")
    pool = Pool(
        capacity=capacity,
        combined=False,
        limits=limits,
        stall_after=inf,
        rotate_after=inf,
        rotate_spread=0.0,
        random=lambda: 0.0,
    )
    at, pending, last = 0.0, [], 0.0
    for n in range(accounts):
        pending += pool.place(Member(n + 1, f"a{n}", ""), at)
    confirmed = 0
    while confirmed < accounts:
        while pending:
            action = pending.pop()
            if isinstance(action, Open):
                pending += pool.opened(action.conn, at)
            elif isinstance(action, Subscribe):
                for member in action.members:
                    pending += pool.confirmed(member.sub, str(member.sub), at)[1]
                    confirmed += 1
                    last = at
        if confirmed < accounts:
            at = pool.next_deadline()
            if at == inf:
                raise RuntimeError("the pool stopped before every account was subscribed")
            pending += pool.tick(at)
    return last


class Simulator:
    """The simulator in its own process, holding the keys and secrets of `accounts` accounts."""

    def __init__(self, accounts: int, workdir: Path) -> None:
        keys = workdir / "keys.txt"
        keys.write_text("".join(f"{key(n)} {secret(n)}\n" for n in range(accounts)))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "binance_userstream", "simulator", "--port", str(port),
             "--api-keys-file", str(keys), "--weight-limit", "1000000000",
             "--connection-limit", "1000000", "--ws-weight-limit", "1000000000"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.control = httpx.Client(base_url=self.url, headers={CONTROL_HEADER: "1"}, timeout=120)
        for _ in range(400):
            with contextlib.suppress(httpx.TransportError):
                self.control.get("/_simulator/state")
                return
            time.sleep(0.05)
        self.close()
        raise SystemExit("bench: the simulator did not start")

    def subscriptions(self) -> int:
        return int(self.control.get("/_simulator/state").json()["ws_api_subscriptions"])

    def quiet(self, timeout: float = 120.0) -> None:
        """Wait until no subscription is left from the last client."""
        deadline = time.monotonic() + timeout
        while self.subscriptions() and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        self.control.close()
        self.proc.terminate()
        self.proc.wait()


def client(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / "bench_fleet_client.py"), *args],
        stdout=subprocess.PIPE,
        text=True,
    )


def result_of(proc: subprocess.Popen[str], what: str, timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"bench: {what} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def accounts_per_process(sim: Simulator, sizes: list[int], idle: float) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        sim.quiet()
        proc = client(["accounts", sim.url, str(n), "--idle", str(idle)])
        row = result_of(proc, f"{n} accounts", timeout=600)
        row["start_s_fleet_default_limits"] = round(start_seconds(n, FleetLimits()), 1)
        row["start_s_binance_limits"] = round(start_seconds(n, BINANCE), 1)
        rows.append(row)
        print(f"  {n} accounts done", flush=True)
    return rows


def flood_rounds(kind: str, accounts: int, events: int) -> list[list[bytes]]:
    """The pushes, round by round, that bring `events` events in all: `PER_ROUND` a round, to a
    fleet of `accounts` (each event pushed goes to every account) or to one stream; JSON bodies of
    at most `PER_REQUEST` events (the simulator takes 64 KiB a request), made before the clock starts."""
    template = Traffic().spot_order(int(time.time() * 1000))[0]
    per_round = PER_ROUND // accounts if kind == "fleet" else PER_ROUND
    seq = 0
    rounds = []
    for _ in range(events // PER_ROUND):
        bodies = []
        for start in range(0, per_round, PER_REQUEST):
            batch = []
            for _ in range(min(PER_REQUEST, per_round - start)):
                seq += 1
                batch.append(template | {"E": int(template["E"]) + seq, "i": seq})  # type: ignore[call-overload]
            bodies.append(json.dumps({"market": "spot", "events": batch}).encode())
        rounds.append(bodies)
    return rounds


def flood_once(sim: Simulator, kind: str, accounts: int, events: int) -> dict[str, Any]:
    """One flood client: `events` events to a fleet of `accounts` accounts or to one stream, pushed
    by this process a round at a time as the client asks for more."""
    rounds = flood_rounds(kind, accounts, events)
    total = len(rounds) * PER_ROUND
    sim.quiet()
    n = accounts if kind == "fleet" else 1
    proc = client(["flood", sim.url, kind, str(n), str(total), str(PER_ROUND)])
    assert proc.stdout is not None
    headers = {"Content-Type": "application/json"}
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"bench: the {kind} flood client did not get ready")
        sim0, wall0 = proc_cpu(sim.proc.pid), time.perf_counter()
        for r, bodies in enumerate(rounds):
            for body in bodies:
                sim.control.post("/_simulator/events", content=body, headers=headers).raise_for_status()
            if r + 1 < len(rounds) and proc.stdout.readline().strip() != "more":
                raise SystemExit(f"bench: the {kind} flood client stopped")
        result = result_of(proc, f"the {kind} flood", timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    result["simulator_cpu_share"] = round((proc_cpu(sim.proc.pid) - sim0) / (time.perf_counter() - wall0), 3)
    return result


def flood(sim: Simulator, rounds: int, accounts: int, events: int) -> dict[str, Any]:
    kinds = [("fleet", accounts), ("stream", 1)]
    flood_once(
        sim, "fleet", accounts, max(PER_ROUND, events // 5)
    )  # warm-up (page cache, the simulator's first sends)
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind, _ in kinds}
    for r in range(rounds):
        for kind, _ in kinds if r % 2 == 0 else kinds[::-1]:
            runs[kind].append(flood_once(sim, kind, accounts, events))
        print(f"  flood round {r + 1}/{rounds} done", flush=True)

    def summary(kind: str, field: str) -> dict[str, float]:
        values = [run[field] for run in runs[kind]]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    table = {
        kind: {
            "accounts": n,
            "events_per_run": runs[kind][0]["events"],
            "events_per_cpu_s": summary(kind, "events_per_cpu_s"),
            "cpu_us_per_event": summary(kind, "cpu_us_per_event"),
            "simulator_cpu_share": summary(kind, "simulator_cpu_share"),
            "gaps": sum(run["gaps"] for run in runs[kind]),
        }
        for kind, n in kinds
    }
    ratio = table["fleet"]["events_per_cpu_s"]["median"] / table["stream"]["events_per_cpu_s"]["median"]
    return {"table": table, "fleet_over_stream": round(ratio, 3), "met": ratio >= TARGET_RATIO}


def machine_and_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The start of a bench's results: the machine it ran on and its settings."""
    return {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "os": platform.platform()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def report(results: dict[str, Any]) -> None:
    print("fleet, accounts per process (spot, one process; limits lifted; the simulator in its own)")
    print(
        f"  {'accounts':>9}{'subscribed in':>15}{'at default limits':>19}{'at Binance limits':>19}"
        f"{'conns/1k':>10}{'idle CPU':>10}{'RSS MiB':>9}"
    )
    for row in results["accounts"]:
        print(
            f"  {row['accounts']:>9}{row['subscribe_all_s']:>13} s{row['start_s_fleet_default_limits']:>17} s"
            f"{row['start_s_binance_limits']:>17} s{row['connections_per_1000']:>10}"
            f"{row['idle_cpu_share']:>10.2%}{row['rss_idle_mib']:>9}"
        )
    for row in results["accounts"]:
        if row["accounts"] == 10_000:
            idle_ok, rss_ok = row["idle_cpu_share"] < 0.05, row["rss_peak_mib"] < 1024
            print(f"  target 10,000 accounts under 5 % of a core idle: {'met' if idle_ok else 'MISSED'}")
            print(f"  target 10,000 accounts under 1 GiB RSS: {'met' if rss_ok else 'MISSED'}")
    per_1000 = max(row["connections_per_1000"] for row in results["accounts"])
    met = "met" if per_1000 <= 1 else "MISSED"
    print(f"  target 1 connection per 1,000 spot accounts: {per_1000} ({met})")
    if "flood" in results:
        flood = results["flood"]
        rounds = results["settings"]["rounds"]
        print(f"fleet, events per CPU second of the client, {rounds} rounds alternated: median (min-max)")
        for kind, row in flood["table"].items():
            rate, cost = row["events_per_cpu_s"], row["cpu_us_per_event"]
            label = f"fleet of {row['accounts']} accounts" if kind == "fleet" else "one events() stream"
            print(
                f"  {label:<26}{rate['median']:>9.0f} ({rate['min']:.0f}-{rate['max']:.0f})"
                f"{cost['median']:>8.2f} us/event  simulator {row['simulator_cpu_share']['median']:.0%}"
                f"  gaps {row['gaps']}"
            )
        met = "met" if flood["met"] else "MISSED"
        ratio = flood["fleet_over_stream"]
        print(f"  target fleet >= {TARGET_RATIO} x one stream's events per core: {ratio} {met}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, nargs="*", default=[1000, 10_000, 50_000])
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flood-accounts", type=int, default=1000)
    parser.add_argument("--flood-events", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-fleet-results.json")
    args = parser.parse_args(argv)
    results = machine_and_settings(args)
    largest = max([*args.accounts, args.flood_accounts])
    with tempfile.TemporaryDirectory() as workdir:
        sim = Simulator(largest, Path(workdir))
        try:
            if args.rounds:
                print("fleet: events per core, beside one stream", flush=True)
                results["flood"] = flood(sim, args.rounds, args.flood_accounts, args.flood_events)
            print("fleet: accounts per process", flush=True)
            results["accounts"] = accounts_per_process(sim, args.accounts, args.idle)
        finally:
            sim.close()
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
