"""A model lease bucket and a few workers' LeaseCores on one fake clock, for the lease rules' tests.

`ModelBucket` is what JetStream's key-value bucket promises the rules: compare-and-set on the
revision (a stream sequence, growing across keys), `create` when there is no live entry (a deleted
key included), entries gone `ttl` after they were stored (max_age), with no news of that on the
watch. `Cluster` runs workers against it: their writes are answered at once, the watch tells every
connected worker of each change, a partitioned worker's requests fail and it hears nothing until it
heals (then it sees every live entry again, as the watch's ordered consumer does after a reset).
"""

from __future__ import annotations

from collections import deque

from attrs import define, field

from binance_userstream.workers._leases import (
    ACCOUNTS,
    WORKERS,
    Beat,
    LeaseAction,
    LeaseCore,
    LeaseTiming,
    LeaseValue,
    Quit,
    Release,
    Start,
    Stop,
    Write,
)


@define
class Entry:
    value: bytes | None  # None: a delete marker
    revision: int
    stored_at: float


class Conflict(Exception):
    """The compare-and-set did not match."""


@define
class ModelBucket:
    ttl: float
    entries: dict[str, Entry] = field(factory=dict)
    sequence: int = 0

    def expire(self, now: float) -> None:
        for key in [key for key, entry in self.entries.items() if entry.stored_at + self.ttl <= now]:
            del self.entries[key]

    def live(self, key: str) -> Entry | None:
        entry = self.entries.get(key)
        return None if entry is None or entry.value is None else entry

    def _store(self, key: str, value: bytes | None, now: float) -> Entry:
        self.sequence += 1
        self.entries[key] = entry = Entry(value, self.sequence, now)
        return entry

    def put(self, key: str, value: bytes | None, now: float) -> Entry:
        return self._store(key, value, now)

    def write(self, key: str, value: bytes | None, last: int | None, now: float) -> Entry:
        """create (last None: no live entry) or update/delete on revision `last`."""
        current = self.entries.get(key)
        if last is None:
            if self.live(key) is not None:
                raise Conflict
        elif current is None or current.revision != last:
            raise Conflict
        return self._store(key, value, now)

    def lease(self, account: str) -> LeaseValue | None:
        entry = self.live(ACCOUNTS + account)
        return None if entry is None or entry.value is None else LeaseValue.decode(entry.value)


@define(eq=False)
class Worker:
    core: LeaseCore
    partitioned: bool = False
    changes: list[Start | Stop] = field(factory=list)


class Cluster:
    """Workers and a bucket on one clock; `handovers` holds (account, old owner, new owner) while
    both may publish."""

    def __init__(
        self, accounts: list[str], timing: LeaseTiming, *, now: float = 1000.0, confirm_starts: bool = True
    ) -> None:
        #: Whether each worker's application says at once that it publishes what it was told to start.
        self.confirm_starts = confirm_starts
        self.accounts = accounts
        self.timing = timing
        self.now = now
        self.bucket = ModelBucket(timing.ttl)
        self.workers: dict[str, Worker] = {}
        self.handovers: set[tuple[str, str, str]] = set()
        self.log: list[tuple[str, Start | Stop]] = []  # every worker's changes, in order

    # ---- the world

    def join(self, worker_id: str) -> Worker:
        worker = self.workers[worker_id] = Worker(LeaseCore(worker_id, self.accounts, self.timing))
        for key, entry in sorted(self.bucket.entries.items(), key=lambda item: item[1].revision):
            self._run(worker, worker.core.observe(key, entry.value, entry.revision, at=self.now))
        worker.core.synced(at=self.now)
        return worker

    def kill(self, worker_id: str) -> None:
        """The process ends: it publishes nothing from now (a handover it was part of stays on record: the
        other side may still publish under it until its own deadline)."""
        self.workers.pop(worker_id)

    def heal(self, worker_id: str) -> None:
        worker = self.workers[worker_id]
        worker.partitioned = False
        self.bucket.expire(self.now)
        for key, entry in sorted(self.bucket.entries.items(), key=lambda item: item[1].revision):
            self._run(worker, worker.core.observe(key, entry.value, entry.revision, at=self.now))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.bucket.expire(self.now)

    def tick(self, worker_id: str) -> None:
        worker = self.workers[worker_id]
        self._run(worker, worker.core.tick(at=self.now))
        if worker.core.done:
            self.kill(worker_id)

    def tick_all(self) -> None:
        for worker_id in sorted(self.workers):
            if worker_id in self.workers:
                self.tick(worker_id)

    def run_for(self, seconds: float) -> None:
        """Tick every worker each `tick_every` for `seconds`."""
        end = self.now + seconds
        while self.now < end:
            self.advance(self.timing.tick_every)
            self.tick_all()

    def leave(self, worker_id: str, within: float) -> None:
        worker = self.workers[worker_id]
        self._run(worker, worker.core.leave(at=self.now, deadline=self.now + within))

    # ---- who publishes what

    def publishers(self, account: str) -> set[str]:
        return {w for w, worker in self.workers.items() if account in worker.core.publishing}

    def holders(self) -> dict[str, str]:
        """Each account's owner in the bucket now."""
        return {a: lease.owner for a in self.accounts if (lease := self.bucket.lease(a)) is not None}

    # ---- the driver's part

    def run_actions(self, worker: Worker, actions: list[LeaseAction]) -> None:
        """Carry out `actions` of `worker` (and what their answers lead to)."""
        self._run(worker, actions)

    def _run(self, worker: Worker, actions: list[LeaseAction]) -> None:
        queue = deque(actions)
        core = worker.core
        while queue:
            action = queue.popleft()
            if isinstance(action, Start | Stop):
                worker.changes.append(action)
                self.log.append((core.worker_id, action))
                account, me = action.account_id, core.worker_id
                if isinstance(action, Start) and not action.after_failover:
                    lease = self.bucket.lease(account)
                    if lease is not None:
                        self.handovers.add((account, lease.owner, me))
                    if self.confirm_starts:
                        queue.extend(core.started(account, at=self.now))
                elif isinstance(action, Start):
                    # A take begins anew: no handover of this worker's covers it.
                    self.handovers = {h for h in self.handovers if not (h[0] == account and me in h[1:])}
                else:
                    # A handover lasts while its taker publishes: the old owner stopping ends no part of it.
                    self.handovers = {h for h in self.handovers if not (h[0] == account and h[2] == me)}
                continue
            if worker.partitioned:
                if isinstance(action, Write | Release):
                    queue.extend(core.failed(action, at=self.now))
                continue
            if isinstance(action, Beat):
                self._publish(
                    WORKERS + action.worker, self.bucket.put(WORKERS + action.worker, b"{}", self.now)
                )
            elif isinstance(action, Quit):
                self._publish(
                    WORKERS + action.worker, self.bucket.put(WORKERS + action.worker, None, self.now)
                )
            else:
                key = ACCOUNTS + action.account
                value = action.value.encode() if isinstance(action, Write) else None
                try:
                    entry = self.bucket.write(key, value, action.last, self.now)
                except Conflict:
                    live = self.bucket.live(key)
                    current = None if live is None or live.value is None else LeaseValue.decode(live.value)
                    queue.extend(
                        core.refused(action, current, None if live is None else live.revision, at=self.now)
                    )
                    continue
                queue.extend(core.written(action, entry.revision, at=self.now))
                self._publish(key, entry)

    def _publish(self, key: str, entry: Entry) -> None:
        for worker in list(self.workers.values()):
            if not worker.partitioned:
                self._run(worker, worker.core.observe(key, entry.value, entry.revision, at=self.now))
