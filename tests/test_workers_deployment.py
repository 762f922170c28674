"""A deployment, as issue 21 asks for it: `binance-userstream fleet serve` in three worker processes
sharing 3,000 spot accounts of the simulator through a real nats-server; events flow all along; one
worker is killed with SIGKILL and, once the others have taken its accounts, a new one joins and
takes its share by make-before-break handovers. In the log: every event the simulator sent is there
exactly once and in order for its account, or its account has a gap covering it, each gap followed
by the account's Reconciled; after the handovers
settle, each account is published by one worker; the failover time is reported."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from binance_userstream.simulator import Simulator
from tests._nats import NatsServer, check_account_log, read_log, write_accounts_file
from tests.test_cli import CLI

ACCOUNTS = int(os.environ.get("DEPLOY_ACCOUNTS", "3000"))
TTL = 10.0
#: Events pushed per round, to that many accounts in turn, every ROUND seconds: ~1,000 events a second.
PER_ROUND, ROUND = 50, 0.05


def key(n: int) -> str:
    return f"DeployKey{n:055d}"


def secret(n: int) -> str:
    return f"DeploySecret{n:052d}"


def accounts_file(sim: Simulator, directory: Path) -> Path:
    for n in range(ACCOUNTS):
        sim.register_key(key(n), secret=secret(n))
    return write_accounts_file(directory, ((f"a{n}", key(n), secret(n)) for n in range(ACCOUNTS)))


class WorkerProcess:
    """One `fleet serve` process and what it printed: its lease changes and its latest status."""

    def __init__(self, name: str, sim: Simulator, nats_url: str, accounts: Path) -> None:
        self.name = name
        args = [
            *CLI,
            "fleet",
            "serve",
            "--accounts",
            str(accounts),
            "--market",
            "spot",
            "--nats",
            nats_url,
            "--worker-id",
            name,
            "--lease-ttl",
            f"{TTL:g}s",
            "--status-every",
            "0.5s",
            "--json",
            "--base-url",
            sim.url,
            "--stream-url",
            sim.url.replace("http", "ws"),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.held: set[str] = set()
        self.changes: dict[str, list[tuple[float, str, str | None]]] = defaultdict(list)  # per account
        self.stops: Counter[str] = Counter()  # why each Stop came
        self.status: dict[str, Any] = {}
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for thread in self._readers:
            thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = json.loads(line)
            if "lease" in item:
                self.changes[item["account"]].append(
                    (round(time.time() % 1000, 2), item["lease"], item.get("why"))
                )
            if item.get("lease") == "start":
                self.held.add(item["account"])
            elif item.get("lease") == "stop":
                self.held.discard(item["account"])
                self.stops[item["why"]] += 1
            elif "status" in item:
                self.status = item["status"]

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    @property
    def accounts(self) -> int:
        return int(self.status.get("accounts", 0))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for thread in self._readers:
            thread.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def workers() -> Iterator[dict[str, WorkerProcess]]:
    started: dict[str, WorkerProcess] = {}
    yield started
    for worker in started.values():
        worker.stop()


def wait_for(condition: Any, timeout: float, what: Any) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what() if callable(what) else what}")
        time.sleep(0.1)


class Flow:
    """Events to the accounts in turn, from a thread: the ledger of what was sent to whom, when."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.sent: dict[str, list[int]] = defaultdict(list)
        self._next = 0
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        number = 0
        while self._running:
            batch: dict[str, list[dict[str, Any]]] = {}
            for _ in range(PER_ROUND):
                n = self._next % ACCOUNTS
                self._next += 1
                number += 1
                event = {"e": "balanceUpdate", "E": number, "a": "BTC", "d": "0.10000000", "T": number}
                batch[key(n)] = [event]
                self.sent[f"a{n}"].append(number)
            self.sim.push_accounts("spot", batch)
            time.sleep(ROUND)

    def stop(self) -> None:
        self._running = False
        self._thread.join()


@pytest.mark.skipif(
    sys.platform != "linux", reason="SIGKILL of a worker process, as on the servers it runs on"
)
def test_three_workers_a_kill_and_a_join_publish_every_event_once_or_inside_its_accounts_gap(
    nats_server: NatsServer,
    workers: dict[str, WorkerProcess],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One IP for every worker here: the simulator's per-IP weight limits (WebSocket API and REST: the
    # snapshots after gaps) are lifted (on Binance each
    # machine of a deployment is an IP of its own).
    with Simulator(ws_weight_limit=10**9, weight_limit=10**9) as sim:
        accounts = accounts_file(sim, tmp_path)
        for name in ("w1", "w2", "w3"):
            workers[name] = WorkerProcess(name, sim, nats_server.url, accounts)
        wait_for(lambda: sum(w.accounts for w in workers.values()) == ACCOUNTS, 120, "3,000 accounts held")
        wait_for(lambda: sim.subscriptions() == ACCOUNTS, 60, "3,000 accounts subscribed")
        flow = Flow(sim)
        time.sleep(2.0)  # real processes: events flow for a while before the kill

        dead = workers["w1"]
        theirs = set(dead.held)
        killed_at = time.time()
        os.kill(dead.proc.pid, signal.SIGKILL)
        dead.proc.wait()
        survivors = [workers["w2"], workers["w3"]]
        wait_for(
            lambda: sum(w.accounts for w in survivors) == ACCOUNTS,
            3 * TTL + 30,
            "the dead worker's accounts taken",
        )
        wait_for(lambda: sim.subscriptions() == ACCOUNTS, 60, "every account subscribed again")

        workers["w4"] = WorkerProcess("w4", sim, nats_server.url, accounts)
        live = [workers["w2"], workers["w3"], workers["w4"]]
        wait_for(lambda: workers["w4"].accounts >= ACCOUNTS // 3 - 1, 60, "the new worker's share")
        wait_for(
            lambda: sum(w.accounts for w in live) == ACCOUNTS,
            30,
            lambda: f"the handovers settled: {[(w.name, w.status, w.stops, w.stderr[-3:]) for w in live]}",
        )
        settled_at = time.time()
        time.sleep(2.0)
        flow.stop()
        wait_for(
            lambda: all(w.status.get("healing") == 0 for w in live),
            60,
            lambda: f"every gap's Reconciled published: {[(w.name, w.status) for w in live]}",
        )

        async def the_log() -> list[Any]:
            """The log once it has stopped growing for 3 s (the events in flight are in)."""
            client = await nats.connect(nats_server.url)
            try:
                count, since = -1, time.monotonic()
                async with asyncio.timeout(90):
                    while time.monotonic() - since < 3.0:
                        now = (await client.jetstream().stream_info("BINANCE")).state.messages
                        if now != count:
                            count, since = now, time.monotonic()
                        await asyncio.sleep(0.2)
            finally:
                await client.close()
            return await read_log(nats_server.url)

        messages = asyncio.run(the_log())

    logged: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    publishers: dict[str, set[str]] = defaultdict(set)
    first_after_kill: dict[str, float] = {}
    for msg in messages:
        account = msg.headers["Binance-Account"]
        logged[account].append((msg.headers["Binance-Event"], json.loads(msg.data)))
        stamp = msg.metadata.timestamp.timestamp()
        if stamp > settled_at + 1.0:
            publishers[account].add(msg.headers["Binance-Worker"])
        if account in theirs and stamp > killed_at and account not in first_after_kill:
            first_after_kill[account] = stamp - killed_at
    for n in range(ACCOUNTS):
        account = f"a{n}"
        history = [  # what the log says of this account, for the failure message: who, when, what
            (
                m.headers["Binance-Event"],
                m.headers["Binance-Worker"],
                round(m.metadata.timestamp.timestamp() % 1000, 2),
                json.loads(m.data).get("E"),
            )
            for m in messages
            if m.headers["Binance-Account"] == account
        ]
        changes = {w.name: w.changes.get(account) for w in workers.values()}
        check_account_log(
            account,
            flow.sent[account],
            logged[account],
            (killed_at % 1000, changes, history[:20]),
            reconciled=True,
        )
    assert {account for account, names in publishers.items() if len(names) > 1} == set()
    for account in theirs:  # taken after the failover: a gap of that reason before its next events
        kinds = [(kind, p.get("reason")) for kind, p in logged[account]]
        assert ("_gap", "failover") in kinds[1:], account
    failover = sorted(first_after_kill.values())
    assert len(failover) == len(theirs)
    assert failover[-1] < TTL + 10.0  # the TTL, then a take, a gap, a connect
    with capsys.disabled():
        median, sent = failover[len(failover) // 2], sum(len(v) for v in flow.sent.values())
        print(
            f"\n  failover (kill to the new owner's first message), {len(theirs)} accounts: first "
            f"{failover[0]:.2f} s, median {median:.2f} s, last {failover[-1]:.2f} s (lease TTL {TTL:g} s); "
            f"{sent} events sent, {len(messages)} messages in the log"
        )
