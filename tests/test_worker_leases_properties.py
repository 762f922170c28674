"""Properties of the lease rules over generated runs: several workers' LeaseCores on a model bucket
(compare-and-set, entries expiring `ttl` after they were stored) and one fake clock, through joins,
deaths, SIGTERMs, partitions and heals.

- Never two workers publish one account, but the two of a planned handover for a moment.
- A worker publishes an account only while the bucket holds a live lease naming it (owner, or
  the worker it is offered to, or the other side of its handover): a partitioned worker stops
  before its lease can expire on the server, so no one else may have taken it.
- After settling (no faults for 3 TTLs) every account is held by exactly one live worker, which
  publishes it, alone, and shares are fair (each holds floor or ceil of N/W).
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from binance_userstream.workers import LeaseTiming
from tests._lease_model import Cluster

TIMING = LeaseTiming(ttl=3.0)
NAMES = [f"w{i}" for i in range(8)]


class LeaseMachine(RuleBasedStateMachine):
    @initialize(
        accounts=st.integers(min_value=1, max_value=12),
        workers=st.integers(min_value=1, max_value=3),
        at_once=st.booleans(),
    )
    def start(self, accounts: int, workers: int, at_once: bool) -> None:
        # at_once: each application says it publishes an account as soon as told to; else later, or never.
        self.cluster = Cluster([f"acct-{i}" for i in range(accounts)], TIMING, confirm_starts=at_once)
        self.unused = list(NAMES)
        self.late = 0
        for _ in range(workers):
            self.cluster.join(self.unused.pop(0))

    def running(self) -> list[str]:
        return sorted(self.cluster.workers)

    @rule(steps=st.integers(min_value=1, max_value=12))
    def time_passes(self, steps: int) -> None:
        for _ in range(steps):
            self.cluster.advance(TIMING.tick_every)
            self.cluster.tick_all()
            self.check_publishers()

    @precondition(lambda self: self.unused)
    @rule()
    def join(self) -> None:
        self.cluster.join(self.unused.pop(0))

    @precondition(lambda self: self.cluster.workers)
    @rule(data=st.data())
    def die(self, data: st.DataObject) -> None:
        self.cluster.kill(data.draw(st.sampled_from(self.running())))

    @precondition(lambda self: self.cluster.workers)
    @rule(data=st.data(), within=st.floats(min_value=0.0, max_value=2 * TIMING.ttl))
    def sigterm(self, data: st.DataObject, within: float) -> None:
        self.cluster.leave(data.draw(st.sampled_from(self.running())), within)

    @precondition(lambda self: self.cluster.workers)
    @rule(data=st.data())
    def partition(self, data: st.DataObject) -> None:
        self.cluster.workers[data.draw(st.sampled_from(self.running()))].partitioned = True

    @precondition(lambda self: any(w.partitioned for w in self.cluster.workers.values()))
    @rule(data=st.data())
    def heal(self, data: st.DataObject) -> None:
        cut = sorted(w for w, worker in self.cluster.workers.items() if worker.partitioned)
        self.cluster.heal(data.draw(st.sampled_from(cut)))

    @precondition(lambda self: self.unconfirmed())
    @rule(data=st.data())
    def application_publishes(self, data: st.DataObject) -> None:
        self.confirm(*data.draw(st.sampled_from(self.unconfirmed())))

    def unconfirmed(self) -> list[tuple[str, str]]:
        """(worker, account) pairs told to Start by a planned handover, not confirmed yet."""
        return sorted(
            (w, a)
            for w, worker in self.cluster.workers.items()
            for a in worker.core.publishing - worker.core.held
            if not worker.core.is_ready(a)
        )

    def confirm(self, worker_id: str, account: str) -> None:
        worker = self.cluster.workers[worker_id]
        self.cluster.run_actions(worker, worker.core.started(account, at=self.cluster.now))

    @rule()
    def settle(self) -> None:
        """No faults for 3 TTLs: one live worker holds and alone publishes each account, shares fair."""
        cluster = self.cluster
        for worker_id in self.running():
            if cluster.workers[worker_id].partitioned:
                cluster.heal(worker_id)
        if not any(not w.core.leaving for w in cluster.workers.values()):
            self.late += 1
            cluster.join(self.unused.pop(0) if self.unused else f"w-late-{self.late}")
        for _ in range(round(3 * TIMING.ttl / TIMING.tick_every)):
            cluster.advance(TIMING.tick_every)
            cluster.tick_all()
            for worker_id, account in self.unconfirmed():
                self.confirm(worker_id, account)
            self.check_publishers()
        holders = cluster.holders()
        live = set(cluster.workers)
        assert set(holders) == set(cluster.accounts), "an account is held by nobody"
        assert set(holders.values()) <= live, "an account is held by a dead worker"
        for account, owner in holders.items():
            assert cluster.publishers(account) == {owner}, (account, owner, cluster.publishers(account))
        counts = Counter({w: 0 for w in live}) + Counter(holders.values())
        counts.update({w: 0 for w in live})
        assert max(counts.values()) - min(counts.values()) <= 1, counts

    @invariant()
    def check_publishers(self) -> None:
        cluster = self.cluster
        for account in cluster.accounts:
            publishers = cluster.publishers(account)
            if len(publishers) > 1:
                pairs = {frozenset(h[1:]) for h in cluster.handovers if h[0] == account}
                assert frozenset(publishers) in pairs, (account, publishers, cluster.handovers)
            lease = cluster.bucket.lease(account)
            for worker_id in publishers:
                assert lease is not None, f"{worker_id} publishes {account} with no live lease"
                allowed = {lease.owner, lease.offer} | {
                    w for h in cluster.handovers if h[0] == account and lease.owner in h[1:] for w in h[1:]
                }
                assert worker_id in allowed, (account, worker_id, lease)


TestLeases = LeaseMachine.TestCase
TestLeases.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
