"""The lease rules (`workers._leases`, no I/O): one worker's decisions on what it saw and when, and a
few workers together on a model bucket (`tests._lease_model`) for the rules that need several."""

from __future__ import annotations

from collections import Counter

import pytest

from binance_userstream.workers import LeaseCore, LeaseTiming, LeaseValue, Start, Stop
from binance_userstream.workers._leases import ACCOUNTS, WORKERS, Beat, Quit, Release, Write
from tests._lease_model import Cluster

TIMING = LeaseTiming(ttl=3.0)  # renewals every 1 s, stop 0.6 s before the TTL, offers wait 1.5 s


def synced_core(accounts: list[str], *, at: float = 0.0, worker: str = "w1") -> LeaseCore:
    core = LeaseCore(worker, accounts, TIMING)
    core.synced(at=at)
    return core


def writes(actions: list[object]) -> list[Write]:
    return [action for action in actions if isinstance(action, Write)]


def holding(accounts: list[str], *, worker: str = "w1") -> tuple[LeaseCore, float]:
    """A core that took every account at time 1.0 (revisions 1, 2, ...)."""
    core = synced_core(accounts, worker=worker)
    actions = core.tick(at=1.0)
    for revision, write in enumerate(writes(actions), start=1):
        core.written(write, revision, at=1.0)
    return core, 1.0


def test_lease_values_round_trip_and_an_unreadable_one_is_none() -> None:
    value = LeaseValue("w1", offer="w2")
    assert LeaseValue.decode(value.encode()) == value
    assert LeaseValue.decode(b"not json") is None
    assert LeaseValue.decode(b'{"owner": 3}') is None


def test_the_timing_refuses_a_margin_that_leaves_no_room_to_renew() -> None:
    with pytest.raises(ValueError, match="margin"):
        LeaseTiming(ttl=3.0, margin=2.5)


def test_a_worker_heartbeats_but_takes_nothing_until_its_first_heartbeat_could_be_seen() -> None:
    core = synced_core(["a", "b"])
    assert core.tick(at=0.0) == [Beat("w1")]
    assert core.tick(at=0.5) == []
    assert {(w.account, w.last, w.purpose) for w in writes(core.tick(at=1.0))} == {
        ("a", None, "take"),
        ("b", None, "take"),
    }


def test_a_worker_takes_nothing_before_the_watch_delivered_every_entry() -> None:
    core = LeaseCore("w1", ["a"], TIMING)
    assert writes(core.tick(at=5.0)) == []


def test_a_taken_account_starts_only_once_the_take_is_stored_and_with_a_gap() -> None:
    core = synced_core(["a"])
    (take,) = writes(core.tick(at=1.0))
    assert core.publishing == frozenset()
    assert core.written(take, 7, at=1.1) == [Start("a", after_failover=True)]
    assert core.held == {"a"}


def test_a_refused_take_does_not_start() -> None:
    core = synced_core(["a"])
    (take,) = writes(core.tick(at=1.0))
    assert core.refused(take, LeaseValue("w2"), 9, at=1.1) == []
    assert core.publishing == frozenset()


def test_a_lease_held_by_a_live_worker_is_not_taken() -> None:
    core = synced_core(["a"])
    core.observe(WORKERS + "w2", b"{}", 1, at=0.0)
    core.observe(ACCOUNTS + "a", LeaseValue("w2").encode(), 2, at=0.0)
    assert writes(core.tick(at=1.0)) == []


def test_renewals_are_compare_and_set_on_the_last_revision_seen() -> None:
    core, _ = holding(["a"])
    (renew,) = writes(core.tick(at=2.0))
    assert (renew.last, renew.value, renew.purpose) == (1, LeaseValue("w1"), "renew")


def test_every_due_renewal_is_asked_for_in_one_tick_so_the_driver_can_send_them_together() -> None:
    accounts = [f"a{i}" for i in range(1000)]
    core, _ = holding(accounts)
    assert len(writes(core.tick(at=2.0))) == 1000


def test_a_worker_whose_renewals_fail_stops_at_its_own_deadline() -> None:
    core, taken_at = holding(["a"])
    for now in (2.0, 3.0):
        for write in writes(core.tick(at=now)):
            core.failed(write, at=now + 0.1)
    deadline = taken_at + TIMING.ttl - TIMING.margin
    assert core.deadline("a") == deadline
    assert Stop("a", "lease deadline passed") not in core.tick(at=deadline - 0.01)
    assert Stop("a", "lease deadline passed") in core.tick(at=deadline)
    assert core.publishing == frozenset()


def test_the_deadline_counts_from_when_the_renewal_was_sent_not_answered() -> None:
    core, _ = holding(["a"])
    (renew,) = writes(core.tick(at=2.0))
    core.written(renew, 2, at=2.5)
    assert core.deadline("a") == 2.0 + TIMING.ttl - TIMING.margin


def test_a_refused_renewal_stops_at_once() -> None:
    core, _ = holding(["a"])
    (renew,) = writes(core.tick(at=2.0))
    assert core.refused(renew, LeaseValue("w2"), 5, at=2.1) == [
        Stop("a", "lease compare-and-set refused: held by w2")
    ]


def test_a_renewal_whose_answer_was_lost_but_landed_keeps_the_lease() -> None:
    core, _ = holding(["a"])
    (renew,) = writes(core.tick(at=2.0))
    core.failed(renew, at=2.2)
    (again,) = writes(core.tick(at=2.3))
    assert core.refused(again, LeaseValue("w1"), 3, at=2.4) == []
    assert core.held == {"a"}
    assert core.deadline("a") == 2.0 + TIMING.ttl - TIMING.margin


def test_seeing_another_owner_on_the_watch_stops_at_once() -> None:
    core, _ = holding(["a"])
    assert core.observe(ACCOUNTS + "a", LeaseValue("w2").encode(), 4, at=1.5) == [
        Stop("a", "lease now held by w2")
    ]


def test_news_older_than_what_the_worker_knows_is_ignored() -> None:
    core, _ = holding(["a"])
    assert core.observe(ACCOUNTS + "a", LeaseValue("w2").encode(), 1, at=1.5) == []
    assert core.held == {"a"}


def test_a_dead_workers_accounts_are_taken_after_the_ttl_each_with_a_gap() -> None:
    cluster = Cluster(["a", "b", "c", "d"], TIMING)
    cluster.join("w1")
    cluster.join("w2")
    cluster.run_for(6.0)
    lost = {a for a, owner in cluster.holders().items() if owner == "w1"}
    cluster.kill("w1")
    died_at = cluster.now
    while not lost <= cluster.workers["w2"].core.publishing:
        cluster.run_for(TIMING.tick_every)
    assert cluster.now - died_at <= TIMING.ttl + 2 * TIMING.tick_every
    assert {c for c in cluster.workers["w2"].changes if c.account_id in lost}.issuperset(
        {Start(a, after_failover=True) for a in lost}
    )


def test_workers_that_start_together_split_the_accounts_fairly() -> None:
    cluster = Cluster([f"a{i}" for i in range(10)], TIMING)
    for worker in ("w1", "w2", "w3"):
        cluster.join(worker)
    cluster.run_for(3 * TIMING.ttl)
    assert sorted(Counter(cluster.holders().values()).values()) == [3, 3, 4]


def test_a_joining_worker_is_handed_its_share_without_a_gap() -> None:
    cluster = Cluster([f"a{i}" for i in range(10)], TIMING)
    cluster.join("w1")
    cluster.run_for(TIMING.ttl)
    cluster.join("w2")
    cluster.run_for(3 * TIMING.ttl)
    assert Counter(cluster.holders().values()) == {"w1": 5, "w2": 5}
    assert all(c == Start(c.account_id, after_failover=False) for c in cluster.workers["w2"].changes)


def test_a_planned_handover_is_make_before_break() -> None:
    cluster = Cluster(["a", "b"], TIMING)
    cluster.join("w1")
    cluster.run_for(TIMING.ttl)
    cluster.join("w2")
    cluster.run_for(2 * TIMING.ttl)
    (moved,) = cluster.workers["w2"].core.held
    log = [(worker, change) for worker, change in cluster.log if change.account_id == moved]
    assert log[-2:] == [
        ("w2", Start(moved, after_failover=False)),
        ("w1", Stop(moved, "lease now held by w2")),
    ]


def test_a_worker_holding_more_than_its_share_offers_the_excess_to_the_least_loaded() -> None:
    core, _ = holding(["a", "b", "c", "d"])
    core.observe(WORKERS + "w2", b"{}", 10, at=1.5)
    offers = [w for w in writes(core.tick(at=1.5)) if w.purpose == "offer"]
    assert [w.value for w in offers] == [LeaseValue("w1", offer="w2")] * 2


def test_a_worker_has_at_most_max_offers_handovers_under_way_and_offers_more_as_they_complete() -> None:
    accounts = [f"a{n}" for n in range(10)]
    core = LeaseCore("w1", accounts, TIMING, max_offers=3)
    core.synced(at=0.0)
    for revision, write in enumerate(writes(core.tick(at=1.0)), start=1):
        core.written(write, revision, at=1.0)
    core.observe(WORKERS + "w2", b"{}", 100, at=1.5)
    offers = [w for w in writes(core.tick(at=1.5)) if w.purpose == "offer"]
    assert len(offers) == 3
    assert [w for w in writes(core.tick(at=1.6)) if w.purpose == "offer"] == []  # three under way
    first = offers[0]
    core.written(first, 200, at=1.7)
    core.observe(ACCOUNTS + first.account, LeaseValue("w2").encode(), 201, at=1.8)  # w2 took it
    assert len([w for w in writes(core.tick(at=1.9)) if w.purpose == "offer"]) == 1


def test_a_leaving_worker_has_at_most_max_offers_handovers_under_way() -> None:
    core = LeaseCore("w1", [f"a{n}" for n in range(10)], TIMING, max_offers=4)
    core.synced(at=0.0)
    for revision, write in enumerate(writes(core.tick(at=1.0)), start=1):
        core.written(write, revision, at=1.0)
    core.observe(WORKERS + "w2", b"{}", 100, at=1.2)
    assert len([w for w in writes(core.leave(at=1.2, deadline=30.0)) if w.value.offer == "w2"]) == 4


def test_an_offer_not_taken_up_is_withdrawn_after_the_offer_timeout() -> None:
    core, _ = holding(["a", "b"])
    core.observe(WORKERS + "w2", b"{}", 10, at=1.5)
    (offer,) = writes(core.tick(at=1.5))
    core.written(offer, 11, at=1.5)
    core.observe(WORKERS + "w2", b"{}", 12, at=2.8)
    (withdraw,) = [w for w in writes(core.tick(at=1.5 + TIMING.offer_timeout)) if w.account == offer.account]
    assert (withdraw.account, withdraw.value, withdraw.last) == (offer.account, LeaseValue("w1"), 11)


def offered_to_w2() -> LeaseCore:
    """Worker w2, which sees w1 offer it account "a"."""
    core = synced_core(["a"], worker="w2")
    core.observe(WORKERS + "w1", b"{}", 1, at=0.0)
    core.observe(ACCOUNTS + "a", LeaseValue("w1", offer="w2").encode(), 2, at=0.5)
    return core


def test_an_offered_lease_is_started_but_not_accepted_until_the_application_publishes_it() -> None:
    core = offered_to_w2()
    assert Start("a", after_failover=False) in core.tick(at=1.0)
    assert writes(core.tick(at=1.3)) == []
    (accept,) = writes(core.started("a", at=1.4))
    assert (accept.value, accept.last, accept.purpose) == (LeaseValue("w2"), 2, "accept")


def test_a_taker_stops_when_the_offer_is_withdrawn() -> None:
    core = offered_to_w2()
    core.tick(at=1.0)
    (accept,) = writes(core.started("a", at=1.0))
    core.failed(accept, at=1.1)
    assert core.observe(ACCOUNTS + "a", LeaseValue("w1").encode(), 3, at=1.2) == [
        Stop("a", "offer withdrawn")
    ]


def test_a_taker_whose_accept_is_not_confirmed_stops_before_the_offer_could_expire() -> None:
    core = offered_to_w2()
    core.tick(at=1.0)
    for write in writes(core.started("a", at=1.0)):
        core.failed(write, at=1.1)
    assert core.deadline("a") == 0.5 + TIMING.ttl - TIMING.margin
    assert Stop("a", "handover not confirmed in time") in core.tick(at=0.5 + TIMING.ttl - TIMING.margin)


def test_leaving_offers_every_lease_to_the_others_and_stops_its_heartbeat() -> None:
    core, _ = holding(["a", "b"])
    core.observe(WORKERS + "w2", b"{}", 10, at=1.2)
    core.observe(WORKERS + "w3", b"{}", 11, at=1.2)
    actions = core.leave(at=1.2, deadline=5.0)
    assert Quit("w1") in actions
    assert sorted(w.value.offer or "" for w in writes(actions)) == ["w2", "w3"]


def test_a_leaving_worker_with_no_one_to_hand_over_to_stops_and_releases_at_once() -> None:
    core, _ = holding(["a"])
    actions = core.leave(at=1.2, deadline=5.0)
    assert actions == [Quit("w1"), Stop("a", "leaving"), Release("a", 1)]
    core.written(Release("a", 1), 2, at=1.3)
    assert core.done


def test_leaving_hands_everything_over_then_is_done() -> None:
    cluster = Cluster(["a", "b", "c"], TIMING)
    cluster.join("w1")
    cluster.join("w2")
    cluster.run_for(2 * TIMING.ttl)
    handed = cluster.workers["w1"].core.held
    cluster.leave("w1", within=2 * TIMING.ttl)
    cluster.run_for(TIMING.ttl)
    assert "w1" not in cluster.workers
    assert cluster.workers["w2"].core.publishing == {"a", "b", "c"}
    assert {c for c in cluster.workers["w2"].changes if c.account_id in handed} >= {
        Start(a, after_failover=False) for a in handed
    }


def test_a_partitioned_worker_stops_before_its_leases_expire_and_does_not_resume_after_it_heals() -> None:
    cluster = Cluster(["a", "b"], TIMING)
    cluster.join("w1")
    cluster.join("w2")
    cluster.run_for(2 * TIMING.ttl)
    held = cluster.workers["w1"].core.held
    cluster.workers["w1"].partitioned = True
    cut_at = cluster.now
    while cluster.workers["w1"].core.publishing:
        cluster.run_for(TIMING.tick_every)
        assert all(cluster.bucket.lease(a) is not None for a in held)
    assert cluster.now - cut_at < TIMING.ttl
    cluster.run_for(TIMING.ttl)
    cluster.heal("w1")
    cluster.tick("w1")
    assert cluster.workers["w1"].core.publishing == frozenset()
    assert cluster.workers["w2"].core.publishing == {"a", "b"}


def test_takes_still_unanswered_count_toward_the_share() -> None:
    core = synced_core([f"a{i}" for i in range(4)])
    core.observe(WORKERS + "w2", b"{}", 1, at=0.5)
    assert len(writes(core.tick(at=1.0))) == 2
    assert writes(core.tick(at=1.3)) == []


def test_a_worker_offers_nothing_while_some_account_is_free_for_the_taking() -> None:
    core, _ = holding(["a", "b", "c", "d"])
    core.observe(WORKERS + "w2", b"{}", 10, at=1.5)
    core.observe(ACCOUNTS + "a", None, 11, at=1.5)  # deleted: free
    assert [w for w in writes(core.tick(at=1.5)) if w.purpose == "offer"] == []


def test_a_leaving_worker_past_its_deadline_leaves_an_offered_lease_to_expire_instead_of_releasing_it() -> (
    None
):
    # Its taker may already publish it, unconfirmed: a release would let a third worker in at once.
    core, _ = holding(["a"])
    core.observe(WORKERS + "w2", b"{}", 10, at=1.2)
    (offer,) = writes(core.leave(at=1.2, deadline=2.0))
    core.written(offer, 11, at=1.3)
    actions = core.tick(at=2.0)
    assert Stop("a", "leaving") in actions
    assert not any(isinstance(action, Release) for action in actions)


def test_an_offer_moves_to_a_third_worker_only_once_the_first_could_no_longer_publish_it() -> None:
    core, _ = holding(["a"])
    core.observe(WORKERS + "w2", b"{}", 10, at=1.2)
    (offer,) = writes(core.leave(at=1.2, deadline=20.0))
    core.written(offer, 11, at=1.3)
    core.observe(WORKERS + "w3", b"{}", 12, at=2.0)  # w3 holds nothing: it would be the choice
    (again,) = writes(core.tick(at=2.8))  # the offer timed out, w2 has not taken it up
    assert again.value.offer == "w2"
    core.written(again, 13, at=2.8)
    core.observe(WORKERS + "w3", b"{}", 14, at=4.0)
    (kept,) = writes(core.tick(at=4.3))  # w2's heartbeat is gone, but it may still publish "a"
    assert kept.value == LeaseValue("w1")
    core.written(kept, 15, at=4.3)
    core.observe(WORKERS + "w3", b"{}", 16, at=5.5)
    (moved,) = writes(core.tick(at=2.8 + TIMING.ttl))
    assert moved.value.offer == "w3"


def test_a_worker_id_that_cannot_be_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match="a key in the bucket"):
        LeaseCore("host.1", ["a"], TIMING)


def test_a_lease_handed_over_is_not_handed_on_while_its_old_owner_may_still_publish_it() -> None:
    # The old owner may not have seen the handover (a partition): it stops by a TTL after it.
    core = offered_to_w2()
    core.tick(at=1.0)
    (accept,) = writes(core.started("a", at=1.0))
    core.written(accept, 3, at=1.1)
    core.observe(WORKERS + "w3", b"{}", 4, at=1.2)
    assert core.leave(at=1.2, deadline=1.3) == [Quit("w2")]
    assert not any(isinstance(a, Release) for a in core.tick(at=1.3))
