"""A planned handover that loses nothing: the old owner marks where its copy of an account ends.

No I/O: the messages two workers exchange (`Ask`, `Marked`, on `subject`) and the old owner's
countdowns (`Marks`), tested without sockets (tests/test_worker_handover.py). The worker sends and
receives them on NATS.

The taker of an account handed over receives the account's events from the moment its stream is
live; what reached the old owner before then may still be on its way through the old owner's fleet
(milliseconds, or seconds on a machine short of CPU). So the taker holds the account's items and
asks the old owner (`Ask`). The old owner answers (`Marked`) once every item of the account its
fleet had buffered when the ask came is published, on the same connection to NATS as those items:
the server has them before it forwards the answer, so whatever the taker publishes after the answer
lands after them in the log. Only then does the taker publish what it held (the events both have
carry the same message id and are stored once) and take the lease; the old owner stops publishing
the moment it sees the lease moved: every event it had that the taker lacks is in the log already.

With no answer (the old owner died, lags past the offer's timeout, or predates this protocol) the
taker never takes the lease: the offer lapses and the old owner keeps the account, or the account
fails over, with a gap, once the old owner's lease expires. Nothing is published out of order, and
nothing is dropped without a gap.

A gap the old owner published and has not yet followed with its Reconciled travels in the answer:
the taker heals it (it will hold the account's key and lease from then on).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar, get_args

from attrs import define, frozen

from binance_userstream.stream._gap import GapReason, StreamGap

_REASONS: frozenset[str] = frozenset(get_args(GapReason))

Token = TypeVar("Token", bound=Hashable)


def subject(bucket: str, worker: str) -> str:
    """The subject a worker hears handover messages on: per lease bucket (one deployment) and worker.
    Outside any stream's subjects (it starts with `_handover`): nothing of it is stored."""
    return f"_handover.{bucket}.{worker}"


@frozen
class Ask:
    """`taker` asks the owner of `account` to mark the end of what it received before now; `nonce`
    tells this ask's answer from an earlier one's."""

    account: str
    taker: str
    nonce: int

    def encode(self) -> bytes:
        return json.dumps({"ask": self.account, "taker": self.taker, "nonce": self.nonce}).encode()


@frozen
class Marked:
    """The old owner's answer to ask `nonce` of `account`: what it had received of the account then is
    published. `gap`: a gap of the account it published and has not healed (the taker heals it)."""

    account: str
    nonce: int
    gap: StreamGap | None = None

    def encode(self) -> bytes:
        gap = self.gap
        owed = (
            None
            if gap is None
            else {
                "reason": gap.reason,
                "last_event_time": gap.last_event_time,
                "dropped": gap.dropped,
                "duration": gap.duration,
            }
        )
        return json.dumps({"marked": self.account, "nonce": self.nonce, "gap": owed}).encode()


def decode(data: bytes, *, at: float) -> Ask | Marked | None:
    """The handover message in `data`, None when it is none. An owed gap's times become `at` less its
    duration: another process's monotonic clock means nothing here."""
    try:
        raw = json.loads(data)
        nonce = raw["nonce"]
        if not isinstance(raw, dict) or type(nonce) is not int:
            return None
        if isinstance(raw.get("ask"), str) and isinstance(raw.get("taker"), str):
            return Ask(raw["ask"], raw["taker"], nonce)
        if isinstance(raw.get("marked"), str):
            return Marked(raw["marked"], nonce, _gap(raw.get("gap"), at))
    except (ValueError, TypeError, KeyError):
        return None
    return None


def _gap(value: object, at: float) -> StreamGap | None:
    if not isinstance(value, dict) or value.get("reason") not in _REASONS:
        return None
    last, dropped, duration = value.get("last_event_time"), value.get("dropped"), value.get("duration")
    return StreamGap(
        value["reason"],
        at - (duration if isinstance(duration, int | float) and 0 <= duration < 1e9 else 0.0),
        at,
        last_event_time=last if type(last) is int else None,
        dropped=dropped if type(dropped) is int and dropped >= 0 else 0,
    )


@define
class _Waiting(Generic[Token]):
    left: int  # the account's items still to be taken before the ask is answered
    token: Token


class Marks(Generic[Token]):
    """The old owner's side: the asks it was given, each waiting for the account's items that were
    buffered when it came to be taken out of the fleet (`took`, one call per item of an account in
    `waiting`). `ripe` holds the asks to answer now: the worker answers each once the item it
    took last has been handed to the sink, so the answer follows it on the connection."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[_Waiting[Token]]] = {}
        self.ripe: deque[Token] = deque()

    def ask(self, account: str, buffered: int, token: Token) -> None:
        """An ask for `account`, whose fleet holds `buffered` of its items now (0: ripe at once); the
        same ask again (a taker repeats it until answered) while it waits changes nothing."""
        waiting = self.waiting.setdefault(account, [])
        if any(entry.token == token for entry in waiting):
            pass  # asked again while waiting: answered once
        elif buffered <= 0:
            self.ripe.append(token)
        else:
            waiting.append(_Waiting(buffered, token))
        if not waiting:
            del self.waiting[account]

    def took(self, account: str) -> None:
        """One more of `account`'s items was taken from the fleet (it goes to the sink next)."""
        waiting = self.waiting[account]
        for entry in waiting:
            entry.left -= 1
        while waiting and waiting[0].left <= 0:  # asked in order: the counts never decrease along it
            self.ripe.append(waiting.pop(0).token)
        if not waiting:
            del self.waiting[account]

    def forget(self, account: str) -> None:
        """`account` is no longer published here: its asks go unanswered (the taker will not take it)."""
        self.waiting.pop(account, None)
