"""Which worker publishes which account, without I/O: one worker's view of a lease bucket and its
decisions.

The bucket (a JetStream key-value bucket whose entries live `ttl` seconds unless rewritten) holds
one lease per account, `accounts.<id>` = `{"owner": worker, "offer": worker or null}`, and one
heartbeat per live worker, `workers.<id>`. Every write of a lease is a compare-and-set on the
revision this worker last saw (`Write.last`; None: "the key has no live entry"), so two workers
never both win the same lease. `LeaseCore` keeps what this worker saw (from the watch, and from its
own writes' answers) with the time it saw it on its own monotonic clock, and at each `tick` says
what to do, as actions: heartbeats (`Beat`), lease writes (`Write`: take, renew, offer, accept),
releases (`Release`), and for the application `Start(account_id, after_failover)` and
`Stop(account_id, why)`: publish that account's events, or stop now.

- Fair share: with W live workers and N accounts each worker aims at floor or ceil(N/W): it takes
  free accounts while it holds fewer than ceil(N/W), and offers one of its own to the least loaded
  live worker while it holds two more than that one (or more than ceil(N/W)).
- Failover: a lease not rewritten for `ttl` (by the time this worker saw its revision) is free;
  a taken account starts with `after_failover=True`: its events since its last owner stopped are
  not in the log, so the application publishes a gap first. A take is always marked so: the bucket
  cannot tell a first start from a takeover after every lease expired.
- Planned handover, make-before-break: the owner writes an offer naming the new owner; the new
  owner `Start`s, and once the application says it publishes (`started`), moves the lease to
  itself by compare-and-set; the old owner sees it moved
  (or its own next compare-and-set fails) and `Stop`s. Both publish for that moment; the log's
  message ids drop the duplicates. No gap. `leave` (SIGTERM) offers everything to the others,
  then past its deadline stops and releases what is left.
- Fencing: a worker publishes an account only while it holds the lease: it stops at its own
  deadline, the SEND time of its last confirmed write plus `ttl` less `margin` (the server keeps
  that entry at least `ttl` from when it was stored, which is later), so a partitioned worker stops
  before anyone else can take its lease; and it stops at once when it sees another owner. A
  worker stopped this way does not resume: it may take the account again later, with a gap, like
  anyone.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from typing import Literal

from attrs import define, field, frozen

#: The most handovers one worker has under way at once, by default. A handover completes only once
#: the taker's stream for that account is live, which takes it a subscription (paced by Binance's
#: limits) and its share of CPU: a thousand offered at once (a worker joining a deployment of
#: thousands of accounts) outlasted the offers' timeout, which withdrew them, and the accounts went
#: back and forth. Offered a hundred at a time, they move as fast as the taker takes them.
MAX_OFFERS = 100

#: Key prefixes in the bucket: one lease per account, one heartbeat per live worker.
ACCOUNTS = "accounts."
WORKERS = "workers."

#: A worker id or an account id: one token of a key (an account id is already one: fleet.Account).
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

Purpose = Literal["take", "renew", "offer", "accept"]


@frozen
class LeaseTiming:
    """How long a lease lives unless rewritten (`ttl`), how often a worker rewrites its leases and its
    heartbeat (`renew_every`), how long before its lease could expire it stops publishing
    (`margin`: covers clocks that run apart and an answer's delay), how long an offer waits for
    its taker (`offer_timeout`), how often the driver ticks (`tick_every`)."""

    ttl: float = 10.0
    renew_every: float = field()
    margin: float = field()
    offer_timeout: float = field()
    tick_every: float = field()

    @renew_every.default
    def _renew_every(self) -> float:
        return self.ttl / 3

    @margin.default
    def _margin(self) -> float:
        return self.ttl / 5

    @offer_timeout.default
    def _offer_timeout(self) -> float:
        return self.ttl / 2

    @tick_every.default
    def _tick_every(self) -> float:
        return self.ttl / 10

    def __attrs_post_init__(self) -> None:
        if not 0 < self.ttl < math.inf:
            raise ValueError("ttl must be a positive, finite number of seconds")
        if not 0 < self.margin < self.ttl - self.renew_every:
            raise ValueError("margin must be positive and leave room for one renewal before the deadline")


@frozen
class LeaseValue:
    """A lease as stored: its owner, and the worker it is offered to (a planned handover) or None."""

    owner: str
    offer: str | None = None

    def encode(self) -> bytes:
        return json.dumps({"owner": self.owner, "offer": self.offer}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> LeaseValue | None:
        """The lease in `data`, or None when it is not one (an entry this worker cannot read is free)."""
        try:
            raw = json.loads(data)
            owner, offer = raw["owner"], raw.get("offer")
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(owner, str) or not (offer is None or isinstance(offer, str)):
            return None
        return cls(owner, offer)


@frozen
class Beat:
    """Write this worker's heartbeat (`workers.<worker>`), unconditionally."""

    worker: str


@frozen
class Quit:
    """Delete this worker's heartbeat: it is leaving, the others stop counting it."""

    worker: str


@frozen
class Write:
    """Write `value` as account `account`'s lease if its revision is still `last` (None: if it has
    no live entry). Answer with `written`, `refused` (with what is there now) or `failed`."""

    account: str
    value: LeaseValue
    last: int | None
    purpose: Purpose


@frozen
class Release:
    """Delete account `account`'s lease if its revision is still `last` (this worker stopped it)."""

    account: str
    last: int


@frozen
class Start:
    """Publish account `account_id`'s events from now. `after_failover`: its previous owner may have
    stopped before now (publish a gap first); False on a planned handover (the old owner still
    publishes)."""

    account_id: str
    after_failover: bool


@frozen
class Stop:
    """Stop publishing account `account_id` now; `why` says it in a few words (for the log)."""

    account_id: str
    why: str


Change = Start | Stop
LeaseAction = Beat | Quit | Write | Release | Start | Stop


@define
class _Lease:
    # What the bucket holds, as this worker last saw it.
    owner: str | None = None
    offer: str | None = None
    revision: int | None = None
    newest: int = 0  # the latest revision seen, a deletion's included: older news is ignored
    seen_at: float = -math.inf
    free_since: float | None = None
    # This worker's own part.
    held: bool = False
    publishing: bool = False
    renewed_at: float = -math.inf
    accept_until: float = -math.inf
    ready: bool = False  # the application said it publishes (`started`): a handover may complete
    offered_at: float = -math.inf
    offered_to: str | None = None
    accepted_at: float = -math.inf  # when a handover to this worker was confirmed: its old owner may
    # publish until a TTL after it (its last write was stored before), so no third worker yet
    offer_written_at: float = -math.inf  # when a write naming `offered_to` was last stored (or may have been)
    pending: Write | Release | None = None
    pending_at: float = 0.0
    unknown_since: float | None = None


def _rank(worker: str, account: str) -> bytes:
    """Rendezvous order: workers starting together prefer different free accounts."""
    return hashlib.blake2b(f"{worker}\0{account}".encode(), digest_size=8).digest()


class LeaseCore:
    """One worker's lease rules (see the module docstring). Not thread-safe: one driver feeds it."""

    def __init__(
        self,
        worker_id: str,
        accounts: Iterable[str],
        timing: LeaseTiming | None = None,
        *,
        max_offers: int = MAX_OFFERS,
    ) -> None:
        """`max_offers`: the most handovers this worker has under way at once (see `MAX_OFFERS`)."""
        if max_offers < 1:
            raise ValueError(f"max_offers must be at least 1, not {max_offers}")
        self.max_offers = max_offers
        for name in (worker_id, *(accounts := list(accounts))):
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"{name[:70]!r} is not 1 to 64 letters, digits, '_' or '-' (a key in the bucket)"
                )
        self.worker_id = worker_id
        self.timing = timing or LeaseTiming()
        self._leases: dict[str, _Lease] = {account: _Lease() for account in accounts}
        self._workers: dict[str, float] = {}
        self._synced_at: float | None = None
        self._beat_at = -math.inf
        self._leaving_until: float | None = None
        self._quit_sent = False
        #: Set when a lease's owner or offer changed in this worker's view: a tick may have work to do
        #: sooner than its period (the driver clears it). A renewal by the same owner does not set it.
        self.changed = False

    # ---- what the application reads

    @property
    def publishing(self) -> frozenset[str]:
        """The accounts this worker publishes now (held, or being taken over by a planned handover)."""
        return frozenset(account for account, lease in self._leases.items() if lease.publishing)

    @property
    def held(self) -> frozenset[str]:
        return frozenset(account for account, lease in self._leases.items() if lease.held)

    @property
    def leaving(self) -> bool:
        return self._leaving_until is not None

    @property
    def done(self) -> bool:
        """Leaving, and nothing is held, published or waiting for an answer: the worker may exit."""
        return self.leaving and not any(
            lease.held or lease.publishing or lease.pending for lease in self._leases.values()
        )

    def is_ready(self, account: str) -> bool:
        """Whether the application said it publishes `account` (`started`) since its last Start."""
        return self._leases[account].ready

    def deadline(self, account: str) -> float:
        """When this worker stops publishing `account` unless a write of its lease is confirmed."""
        lease = self._leases[account]
        if lease.held:
            return lease.renewed_at + self.timing.ttl - self.timing.margin
        return lease.accept_until if lease.publishing else -math.inf

    def owner(self, account: str) -> str | None:
        """The owner of `account`'s lease as this worker last saw it (None: free): on a planned
        handover to this worker, the worker that offered it."""
        return self._leases[account].owner

    def revision(self, account: str) -> int | None:
        """The revision of `account`'s lease as this worker last saw it (None: no live entry): the
        newer of two owners' leases has the higher one, which is how their claims in the log are
        ordered (`JetStreamSink.claim`)."""
        return self._leases[account].revision

    def live_workers(self, *, at: float) -> frozenset[str]:
        """The workers whose heartbeat this worker saw within `ttl`, itself included unless leaving."""
        live = {worker for worker, seen in self._workers.items() if at - seen < self.timing.ttl}
        live.discard(self.worker_id)
        if not self.leaving:
            live.add(self.worker_id)
        return frozenset(live)

    # ---- what the driver reports

    def observe(self, key: str, value: bytes | None, revision: int, *, at: float) -> list[LeaseAction]:
        """The watch saw `key` at `revision` (`value` None: deleted or purged)."""
        if key.startswith(WORKERS):
            worker = key[len(WORKERS) :]
            if value is None:
                self._workers.pop(worker, None)
            else:
                self._workers[worker] = at
            return []
        if not key.startswith(ACCOUNTS):
            return []
        lease = self._leases.get(key[len(ACCOUNTS) :])
        if lease is None or revision <= lease.newest:
            return []
        lease.newest = revision
        parsed = None if value is None else LeaseValue.decode(value)
        # A deleted key has no live entry (a create takes it); one this worker cannot read keeps its revision.
        return self._saw(key[len(ACCOUNTS) :], lease, parsed, None if value is None else revision, at=at)

    def synced(self, *, at: float) -> None:
        """The watch delivered every entry there was: from now on, an account not seen is free."""
        if self._synced_at is None:
            self._synced_at = at
            for lease in self._leases.values():
                if lease.revision is None and lease.free_since is None:
                    lease.free_since = at

    def written(self, action: Write | Release, revision: int, *, at: float) -> list[LeaseAction]:
        """`action` was stored at `revision`."""
        lease = self._leases[action.account]
        if lease.pending != action:
            return []
        sent_at = lease.pending_at
        lease.pending, lease.unknown_since = None, None
        self._offer_stored(action, lease, at=at)
        out: list[LeaseAction] = []
        newer = revision > lease.newest
        lease.newest = max(lease.newest, revision)
        if isinstance(action, Release):
            if newer:
                self._view(lease, None, None, at=at)
            return out
        if newer:
            self._view(lease, action.value, revision, at=at)
        if lease.owner != self.worker_id:
            return out  # the watch already showed a later owner
        if sent_at + self.timing.ttl - self.timing.margin <= at:
            # Confirmed too late to be sure of it: let it lapse as if it had failed.
            return out + self._stop(action.account, lease, "lease write confirmed past its deadline")
        if action.purpose == "take" and not lease.publishing:
            lease.held, lease.renewed_at, lease.publishing = True, sent_at, True
            out.append(Start(action.account, after_failover=True))
        elif action.purpose == "accept" and lease.publishing:
            lease.held, lease.renewed_at, lease.accepted_at = True, sent_at, at
        elif lease.held:
            lease.renewed_at = sent_at
        return out

    def refused(
        self, action: Write | Release, current: LeaseValue | None, revision: int | None, *, at: float
    ) -> list[LeaseAction]:
        """`action`'s compare-and-set failed; the bucket holds `current` at `revision` (None: none)."""
        lease = self._leases[action.account]
        if lease.pending != action:
            return []
        lease.pending = None
        unknown, lease.unknown_since = lease.unknown_since, None
        if revision is None or revision > lease.newest:
            # None: no live entry (absent, or deleted: a create takes it).
            lease.newest = max(lease.newest, revision or 0)
            self._view(lease, current, None if current is None else revision, at=at)
        mine = current is not None and current.owner == self.worker_id
        if mine and unknown is not None and (lease.held or lease.publishing):
            # A write of ours whose answer was lost did land: the lease is ours since it was sent.
            if not lease.held:
                lease.accepted_at = at
            lease.held, lease.renewed_at = True, max(lease.renewed_at, unknown)
            return []
        if (
            isinstance(action, Write)
            and action.purpose == "accept"
            and current is not None
            and current.offer == self.worker_id
            and not mine
        ):
            return []  # the owner rewrote its offer meanwhile: accept again at the next tick
        if not lease.publishing:
            lease.held = False
            return []
        owner = "nobody" if current is None else current.owner
        return self._stop(action.account, lease, f"lease compare-and-set refused: held by {owner}")

    def failed(self, action: Write | Release, *, at: float) -> list[LeaseAction]:
        """`action` got no answer (no connection, timeout): it may or may not have been stored."""
        lease = self._leases[action.account]
        if lease.pending != action:
            return []
        lease.pending = None
        self._offer_stored(action, lease, at=at)
        if lease.unknown_since is None:
            lease.unknown_since = lease.pending_at
        return []

    def leave(self, *, at: float, deadline: float) -> list[LeaseAction]:
        """SIGTERM: hand every held lease over to the others until `deadline`, then release the rest."""
        if self._leaving_until is None:
            self._leaving_until = deadline
        return self.tick(at=at)

    # ---- the decisions

    def tick(self, *, at: float) -> list[LeaseAction]:
        """Everything due at `at`: the heartbeat, deadlines, renewals, takes, offers and accepts."""
        out: list[LeaseAction] = []
        timing = self.timing
        if self.leaving:
            if not self._quit_sent:
                self._quit_sent = True
                out.append(Quit(self.worker_id))
        elif at - self._beat_at >= timing.renew_every:
            self._beat_at = at
            self._workers[self.worker_id] = at
            out.append(Beat(self.worker_id))
        for account, lease in self._leases.items():
            if lease.publishing and at >= self.deadline(account):
                why = "lease deadline passed" if lease.held else "handover not confirmed in time"
                out += self._stop(account, lease, why)
            if lease.revision is not None and not lease.held and at - lease.seen_at >= timing.ttl:
                self._view(lease, None, None, at=at)  # expired on the server by now
        if self._synced_at is None:
            return out
        live = self.live_workers(at=at)
        counts = dict.fromkeys(live, 0)
        for lease in self._leases.values():
            target = lease.offer if lease.offer in counts and lease.offer != lease.owner else lease.owner
            if target in counts:
                counts[target] += 1
        share = -(-len(self._leases) // max(len(live), 1))
        holding = sum(
            1
            for lease in self._leases.values()
            if lease.held
            or lease.publishing
            or (isinstance(lease.pending, Write) and lease.pending.purpose == "take")
        )
        if self.leaving:
            out += self._hand_over(live, counts, at=at)
        else:
            out += self._renew_and_withdraw(live, at=at)
            holding, accepted = self._accept(live, share, holding, at=at)
            out += accepted
            out += self._take(share, holding, at=at)
            if all(lease.owner is not None for lease in self._leases.values()):
                # Free accounts go to whoever takes them first; balancing meanwhile only churns.
                out += self._offer(live, counts, share, at=at)
        return out

    def _renew_and_withdraw(self, live: frozenset[str], *, at: float) -> list[LeaseAction]:
        out: list[LeaseAction] = []
        for account, lease in self._leases.items():
            if not lease.held or lease.pending:
                continue
            offer = lease.offer if lease.offer != self.worker_id else None
            if offer is not None and (
                offer not in live or at - lease.offered_at >= self.timing.offer_timeout
            ):
                offer = None
            due = at - lease.renewed_at >= self.timing.renew_every
            if due or offer != lease.offer:
                out.append(self._write(account, lease, LeaseValue(self.worker_id, offer), "renew", at=at))
        return out

    def _accept(
        self, live: frozenset[str], share: int, holding: int, *, at: float
    ) -> tuple[int, list[LeaseAction]]:
        out: list[LeaseAction] = []
        for account, lease in self._leases.items():
            if lease.offer != self.worker_id or lease.owner in (None, self.worker_id) or lease.pending:
                continue
            if lease.held:
                continue
            if not lease.publishing:
                if holding >= share and lease.owner in live:
                    continue
                holding += 1
                lease.publishing, lease.ready = True, False
                out.append(Start(account, after_failover=False))
            # Published without the lease only while the offer's entry lives (by when it was seen).
            lease.accept_until = max(lease.accept_until, lease.seen_at + self.timing.ttl - self.timing.margin)
            if lease.ready:
                out.append(self._write(account, lease, LeaseValue(self.worker_id), "accept", at=at))
        return holding, out

    def started(self, account: str, *, at: float) -> list[LeaseAction]:
        """The application publishes `account` now (its stream is live): a planned handover to this
        worker may complete, and the old owner stop. Before this, the offer is not accepted."""
        lease = self._leases[account]
        if not lease.publishing or lease.held or lease.ready:
            return []
        lease.ready = True
        if lease.offer != self.worker_id or lease.owner in (None, self.worker_id) or lease.pending:
            return []
        return [self._write(account, lease, LeaseValue(self.worker_id), "accept", at=at)]

    def _take(self, share: int, holding: int, *, at: float) -> list[LeaseAction]:
        assert self._synced_at is not None
        if at - self._synced_at < self.timing.renew_every:
            return []  # one heartbeat first: workers starting together see each other before taking
        free = [
            account
            for account, lease in self._leases.items()
            if not (lease.held or lease.publishing or lease.pending) and lease.owner in (None, self.worker_id)
        ]
        free.sort(key=lambda account: _rank(self.worker_id, account))
        out: list[LeaseAction] = []
        for account in free:
            lease = self._leases[account]
            stale = lease.free_since is not None and at - lease.free_since >= 2 * self.timing.ttl
            if holding >= share and not stale:
                continue
            holding += 1
            out.append(self._write(account, lease, LeaseValue(self.worker_id), "take", at=at))
        return out

    def _offer(
        self, live: frozenset[str], counts: dict[str, int], share: int, *, at: float
    ) -> list[LeaseAction]:
        others = sorted(live - {self.worker_id})
        if not others:
            return []
        mine = counts[self.worker_id]
        under_way = sum(
            1
            for lease in self._leases.values()
            if lease.held
            and (
                lease.offer not in (None, self.worker_id)
                or (isinstance(lease.pending, Write) and lease.pending.purpose == "offer")
            )
        )
        candidates = sorted(
            (
                account
                for account, lease in self._leases.items()
                if lease.held and not lease.pending and lease.offer is None
            ),
            reverse=True,
        )
        out: list[LeaseAction] = []
        while under_way < self.max_offers:
            under_way += 1
            target = min(others, key=lambda worker: (counts[worker], worker))
            if not ((mine > share and counts[target] < share) or mine - counts[target] >= 2):
                return out
            account = next((a for a in candidates if self._may_offer(self._leases[a], target, at=at)), None)
            if account is None:
                return out
            candidates.remove(account)
            lease = self._leases[account]
            lease.offered_at = at
            out.append(self._write(account, lease, LeaseValue(self.worker_id, target), "offer", at=at))
            mine, counts[target] = mine - 1, counts[target] + 1
        return out

    def _hand_over(self, live: frozenset[str], counts: dict[str, int], *, at: float) -> list[LeaseAction]:
        assert self._leaving_until is not None
        out: list[LeaseAction] = []
        others = sorted(live)
        timeout = self.timing.offer_timeout
        under_way = sum(
            1
            for lease in self._leases.values()
            if lease.held and lease.offer in live and at - lease.offered_at < timeout
        )
        for account, lease in self._leases.items():
            if lease.publishing and not lease.held:
                out += self._stop(account, lease, "leaving")
            if not lease.held or lease.pending:
                continue
            if not others or at >= self._leaving_until:
                out += self._stop(account, lease, "leaving")
                # An offered lease is left to expire: its taker may publish until then, unconfirmed.
                calm = max(lease.offer_written_at, lease.accepted_at) + self.timing.ttl
                if lease.revision is not None and at >= calm:
                    lease.pending, lease.pending_at = Release(account, lease.revision), at
                    out.append(lease.pending)
                continue
            offer = lease.offer if lease.offer in live else None
            if offer is not None and at - lease.offered_at < self.timing.offer_timeout:
                if at - lease.renewed_at >= self.timing.renew_every:
                    out.append(self._write(account, lease, LeaseValue(self.worker_id, offer), "renew", at=at))
                continue
            targets = [w for w in others if self._may_offer(lease, w, at=at)]
            if not targets or under_way >= self.max_offers:
                if at - lease.renewed_at >= self.timing.renew_every or lease.offer is not None:
                    out.append(self._write(account, lease, LeaseValue(self.worker_id), "renew", at=at))
                continue
            target = min(targets, key=lambda worker: (counts[worker], worker))
            counts[target] += 1
            under_way += 1
            lease.offered_at = at
            out.append(self._write(account, lease, LeaseValue(self.worker_id, target), "offer", at=at))
        return out

    def _may_offer(self, lease: _Lease, target: str, *, at: float) -> bool:
        """Whether `lease` may be offered to `target`: a worker it was offered to before may publish it,
        unconfirmed, until a `ttl` after it last saw that offer (even when its heartbeat is no longer
        seen: that lags), and one that handed it over to this worker until a `ttl` after that; no
        third worker joins them."""
        if at < lease.accepted_at + self.timing.ttl:
            return False  # the worker that handed it over may publish it until then
        return lease.offered_to in (None, target) or at >= lease.offer_written_at + self.timing.ttl

    # ---- helpers

    def _write(self, account: str, lease: _Lease, value: LeaseValue, purpose: Purpose, *, at: float) -> Write:
        write = Write(account, value, lease.revision, purpose)
        lease.pending, lease.pending_at = write, at
        return write

    def _offer_stored(self, action: Write | Release, lease: _Lease, *, at: float) -> None:
        if isinstance(action, Write) and action.value.offer not in (None, self.worker_id):
            lease.offered_to, lease.offer_written_at = action.value.offer, at

    def _view(self, lease: _Lease, value: LeaseValue | None, revision: int | None, *, at: float) -> None:
        if (lease.owner, lease.offer) != ((None, None) if value is None else (value.owner, value.offer)):
            self.changed = True
        if value is None:
            if lease.owner is not None or lease.free_since is None:
                lease.free_since = at
            lease.owner, lease.offer = None, None
        else:
            lease.owner, lease.offer, lease.free_since = value.owner, value.offer, None
        if revision is not None:
            lease.revision, lease.seen_at = revision, at
        else:
            lease.revision = None

    def _saw(
        self, account: str, lease: _Lease, value: LeaseValue | None, revision: int | None, *, at: float
    ) -> list[LeaseAction]:
        self._view(lease, value, revision, at=at)
        out: list[LeaseAction] = []
        owner = None if value is None else value.owner
        if lease.held and owner != self.worker_id:
            lease.held = False
            out += self._stop(account, lease, f"lease now held by {owner or 'nobody'}")
        elif (
            lease.publishing and owner != self.worker_id and (value is None or value.offer != self.worker_id)
        ):
            out += self._stop(account, lease, "offer withdrawn")
        return out

    def _stop(self, account: str, lease: _Lease, why: str) -> list[LeaseAction]:
        lease.held, lease.ready = False, False
        if not lease.publishing:
            return []
        lease.publishing = False
        return [Stop(account, why)]
