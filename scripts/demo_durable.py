"""The fifth part of `make demo`: a deployment's durable log, through the death of a worker.

A nats-server with JetStream and the simulator run on loopback; two workers (`binance-userstream
fleet serve`, real processes) share 20 spot accounts by leases with a 3-second TTL. While orders
flow on the accounts, a durable pull consumer of nats-py (`js.pull_subscribe`, `fetch`, `ack`: the
way a platform reads the log) prints each message: its account, what it is, and which worker
published it. One worker is killed with SIGKILL; once its leases expire the other takes its
accounts, each starting with a gap (`failover`), and the consumer prints those gaps and the
failover time. Then the checks: every order and trade is in the log once for its account or inside
a gap of that account, the survivor publishes every account, no secret was printed or published.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import nats
from nats.js.errors import NotFoundError

from binance_userstream.simulator import Simulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, for tests/_nats.py
from tests._nats import NatsServer, write_accounts_file  # the suite's server starter and accounts file

ACCOUNTS = 20
#: How long a dead worker's leases outlive its last renewal (every TTL/3): about the failover time.
TTL = 3.0
#: Orders made a second while the workers run, each on the next account in turn (6 events each).
ORDERS_PER_SECOND = 4.0
STREAM, SUBJECTS, DURABLE = "BINANCE", "binance.spot.>", "demo-reader"
CLI = [sys.executable, "-m", "binance_userstream"]

#: Everything this part printed, for the check that no secret was among it.
printed: list[str] = []


def say(text: str) -> None:
    show("demo", text)


def show(who: str, text: str) -> None:
    line = f"{who:>8} │ {text}" if who != "demo" else f"demo │ {text}"
    printed.append(line)
    print(line, flush=True)


def account_id(n: int) -> str:
    return f"acct-{n:02d}"


def api_key(n: int) -> str:
    return f"DemoDurableKey{n:050d}"


def api_secret(n: int) -> str:
    return f"DemoDurableSecret{n:047d}"


def accounts_file(sim: Simulator, directory: Path) -> Path:
    """The workers' shared accounts file (mode 0600) and its key files, the keys known to `sim`."""
    for n in range(ACCOUNTS):
        sim.register_key(api_key(n), secret=api_secret(n))
    accounts = ((account_id(n), api_key(n), api_secret(n)) for n in range(ACCOUNTS))
    return write_accounts_file(directory, accounts)


class Worker:
    """One `fleet serve` process: the accounts it holds (from its lease lines) and all it printed."""

    def __init__(self, name: str, sim: Simulator, nats_url: str, accounts: Path) -> None:
        self.name = name
        self.held: set[str] = set()
        self.output: list[str] = []
        self.loud = False  # print each lease change (after the start, whose handovers are many)
        command = [
            *CLI, "fleet", "serve", "--accounts", str(accounts), "--market", "spot", "--nats", nats_url,
            "--worker-id", name, "--lease-ttl", f"{TTL:g}s", "--leave-within", "1s", "--status-every", "1s",
            "--json", "--base-url", sim.url, "--stream-url", sim.url.replace("http", "ws"),
        ]  # fmt: skip
        show(name, "$ binance-userstream " + " ".join(command[3:]).replace(str(accounts.parent), "…"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: Any, lines_are_json: bool) -> None:
        for line in pipe:
            self.output.append(line)
            if not lines_are_json:
                show(self.name, line.rstrip("\n"))
                continue
            item = json.loads(line)
            if item.get("lease") == "start":
                self.held.add(item["account"])
            elif item.get("lease") == "stop":
                self.held.discard(item["account"])
            if self.loud and "lease" in item:
                then = " after a failover" if item.get("after_failover") else ""
                why = f": {item['why']}" if "why" in item else ""
                show(self.name, f"lease {item['lease']} {item['account']}{then}{why}")

    def end(self, how: signal.Signals) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(how)
        try:
            code = self.proc.wait(timeout=10)  # SIGTERM: it hands its leases over, within 1 s
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        return code


class Reader:
    """A durable pull consumer of the log, as a platform would run one: fetch a batch, handle each
    message, acknowledge it. It prints one line per message and keeps them for the checks."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.last_at = time.monotonic()
        self.info: Any = None

    async def run(self, url: str, done: asyncio.Event) -> None:
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            while True:  # the workers' sink creates the stream
                try:
                    await js.stream_info(STREAM)
                    break
                except NotFoundError:
                    await asyncio.sleep(0.1)
            # Durable: the server remembers what this reader acknowledged, across its restarts.
            sub = await js.pull_subscribe(SUBJECTS, durable=DURABLE, stream=STREAM)
            while True:
                try:
                    batch = await sub.fetch(100, timeout=0.5)
                except TimeoutError:  # nats.errors.TimeoutError, or asyncio's: nats-py 2.16 raises both
                    if done.is_set():
                        break
                    continue
                for msg in batch:
                    self.handle(msg)
                    await msg.ack()
            await client.flush()
            self.info = await sub.consumer_info()
        finally:
            await client.close()

    def handle(self, msg: Any) -> None:
        self.messages.append(msg)
        self.last_at = time.monotonic()
        headers = msg.headers or {}
        account, kind = headers.get("Binance-Account", "?"), headers.get("Binance-Event", "?")
        try:
            data = json.loads(msg.data)
        except ValueError:
            data = {}
        if kind == "_gap":
            what = f"GAP ({data.get('reason')})"
        elif kind == "_reconciled":
            what = "reconciled"
        elif kind == "executionReport":
            what = f"executionReport {data.get('x')}"
        else:
            what = kind.lstrip("_")
        show("log", f"{account} {what:<28} by {headers.get('Binance-Worker', '?')}")


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


async def drive(
    sim: Simulator, accounts: Iterable[int], running: Callable[[], bool], per_second: float
) -> None:
    """An order on each of `accounts` in turn (placed, then filled in two trades: six events)."""
    for n in accounts:
        if not running():
            return
        await asyncio.to_thread(sim.traffic, "spot", api_key(n))
        await asyncio.sleep(1 / per_second)


async def run(store: Path) -> dict[str, bool]:
    with NatsServer(store / "jetstream") as server, Simulator() as sim:
        say(f"nats-server with JetStream on {server.url}, the simulator on {sim.url}")
        accounts = accounts_file(sim, store)
        say(f"{ACCOUNTS} spot accounts in one accounts file (mode 0600), shared by two workers")
        workers = {name: Worker(name, sim, server.url, accounts) for name in ("w1", "w2")}
        dead, survivor = workers["w1"], workers["w2"]
        try:
            await until(
                lambda: (
                    [len(w.held) for w in workers.values()] == [ACCOUNTS // 2] * 2
                    and sim.subscriptions() == ACCOUNTS
                ),
                60,
                "the workers sharing the accounts",
            )
            say(f"w1 and w2 hold {ACCOUNTS // 2} accounts each; a durable consumer reads the log")
            say("each account's first message is a gap: the lease bucket cannot tell a first start")
            say("from a takeover, so every take is marked 'failover'")
            for worker in workers.values():
                worker.loud = True
            reader, done = Reader(), asyncio.Event()
            reading = asyncio.create_task(reader.run(server.url, done))
            flowing = True
            flow = asyncio.create_task(
                drive(sim, itertools.cycle(range(ACCOUNTS)), lambda: flowing, ORDERS_PER_SECOND)
            )
            await asyncio.sleep(2.5)

            theirs = set(dead.held)
            say(f"kill -9 w1 (it held {len(theirs)} accounts); its leases expire {TTL:g} s later")
            killed_at = time.time()
            dead.end(signal.SIGKILL)
            await until(
                lambda: len(survivor.held) == ACCOUNTS and sim.subscriptions() == ACCOUNTS,
                TTL + 30,
                "the survivor taking the dead worker's accounts",
            )
            say(f"w2 holds all {ACCOUNTS} accounts: an order on each, all published by w2")
            flowing = False
            await flow
            await drive(sim, range(ACCOUNTS), lambda: True, 2 * ORDERS_PER_SECOND)
            await until(lambda: time.monotonic() - reader.last_at > 1.0, 30, "the log settling")
            done.set()
            await reading
        finally:
            for worker in workers.values():
                worker.loud = False  # its 20 lease stops, "leaving"
                worker.end(signal.SIGTERM)
        say("w2 handed its leases back and stopped (SIGTERM); the simulator and nats-server stop")
        made = {n: sim.ledger("spot", api_key(n)) for n in range(ACCOUNTS)}
        return checks(reader, made, theirs, killed_at, workers)


def checks(
    reader: Reader, made: dict[int, Any], theirs: set[str], killed_at: float, workers: dict[str, Worker]
) -> dict[str, bool]:
    by_account: dict[str, list[tuple[str, dict[str, Any], str, float]]] = defaultdict(list)
    for msg in reader.messages:
        headers = msg.headers or {}
        by_account[headers.get("Binance-Account", "?")].append(
            (
                headers.get("Binance-Event", "?"),
                json.loads(msg.data),
                headers.get("Binance-Worker", "?"),
                msg.metadata.timestamp.timestamp(),
            )
        )
    complete, orders, trades, in_gaps = True, 0, 0, 0
    for n, ledger in made.items():
        # What the demo made on the account, by the simulator's ledger: each order's executionReport
        # NEW and each trade's executionReport TRADE, with their transaction times.
        expected = {("NEW", order.order_id, -1): order.time for order in ledger.orders.values()}
        expected |= {("TRADE", trade.order_id, trade.trade_id): trade.time for trade in ledger.trades}
        orders, trades = orders + len(ledger.orders), trades + len(ledger.trades)
        logged = by_account[account_id(n)]
        reports = [(i, (p["x"], p["i"], p["t"]), p["T"]) for i, (kind, p, _, _) in enumerate(logged)
                   if kind == "executionReport"]  # fmt: skip
        found = [key for _, key, _ in reports]
        complete &= len(found) == len(set(found)) and set(found) <= set(expected)
        for key, when in expected.items():
            if key in found:
                continue
            before = [i for i, _, t in reports if t < when]
            after = [i for i, _, t in reports if t > when]
            window = logged[(before[-1] + 1 if before else 0) : (after[0] if after else len(logged))]
            inside = any(kind == "_gap" for kind, *_ in window)
            complete &= inside
            in_gaps += inside
    say(f"{orders} orders and {trades} trades made; {len(reader.messages)} messages in the log, "
        f"{in_gaps} executionReports missing inside their account's gap")  # fmt: skip

    firsts, failover_gaps, survivor_only = [], 0, True
    for account, logged in by_account.items():
        survivors = [i for i, (_, _, who, at) in enumerate(logged) if who == "w2" and at > killed_at]
        if account in theirs and survivors:
            firsts.append(logged[survivors[0]][3] - killed_at)
            failover_gaps += any(
                kind == "_gap" and p.get("reason") == "failover" and who == "w2" and at > killed_at
                for kind, p, who, at in logged
            )
        survivor_only &= bool(survivors) and all(who == "w2" for _, _, who, _ in logged[survivors[0] :])
    if firsts:
        median = statistics.median(firsts)
        say(
            f"failover: w2's first message of each of w1's {len(theirs)} accounts came {min(firsts):.2f} "
            f"to {max(firsts):.2f} s after the kill (median {median:.2f} s; lease TTL {TTL:g} s)"
        )
    secrets = [f(n) for n in range(ACCOUNTS) for f in (api_key, api_secret)]
    published = "\n".join(
        msg.data.decode("utf-8", "replace") + json.dumps(dict(msg.headers or {})) for msg in reader.messages
    )
    everything = "\n".join(printed) + "".join(line for w in workers.values() for line in w.output) + published
    info = reader.info
    return {
        "every order and trade made is in the log once for its account, or inside its gap": complete,
        f"each of w1's {len(theirs)} accounts starts again with a failover gap from w2": bool(theirs)
        and failover_gaps == len(theirs) == len(firsts),
        "after the failover every account is published by w2 alone": survivor_only
        and len(by_account) == ACCOUNTS,
        "the durable consumer read and acknowledged every message": info is not None
        and info.num_pending == 0
        and info.num_ack_pending == 0
        and info.delivered.stream_seq == len(reader.messages),
        "no API key or secret of the accounts file was printed or published to NATS": not any(
            secret in everything for secret in secrets
        ),
    }


def main() -> bool:
    say("the durable log: two workers publish 20 accounts into NATS JetStream; one is killed")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="demo-durable-") as store:
        try:
            results = asyncio.run(run(Path(store)))
        except Exception as error:  # the other parts' checks and the exit code still come
            results = {f"the durable log's part ran to its end ({type(error).__name__}: {error})": False}
    for name, ok in results.items():
        say(f"{'ok  ' if ok else 'FAIL'} {name}")
    say(f"the durable log's part took {time.monotonic() - started:.1f} s of real time")
    return all(results.values())


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
