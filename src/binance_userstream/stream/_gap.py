"""StreamGap: the marker a stream yields where events may be missing, so the application reconciles.

A gap stands in the stream exactly where the hole is: after the last event delivered before the
loss, before the first event after it. Planned rotations yield none: they lose nothing.
"""

from __future__ import annotations

from typing import Literal

from attrs import frozen

GapReason = Literal[
    "disconnected",
    "stalled",
    "listen_key_expired",
    "key_replaced",
    "subscription_ended",
    "overflow",
    "sink",
    "failover",
]
"""Why events may be missing: the connection was lost ("disconnected"), went quiet past the
market's ping rules ("stalled"), the key expired ("listen_key_expired"), the session replaced a
lost key ("key_replaced"), the WebSocket API ended the subscription with `eventStreamTerminated`
("subscription_ended": a listenToken expired, or someone unsubscribed it), or the consumer fell
behind and the bounded buffer dropped events ("overflow"), or a sink (the durable log) did not
acknowledge items in time or refused them ("sink": `binance_userstream.sink`), or a worker took
the account over from another that stopped without handing it over ("failover": `workers`)."""

_WHY = {
    "disconnected": "the connection was lost",
    "stalled": "the connection went quiet (no frame or ping within the market's ping rules)",
    "listen_key_expired": "the listenKey expired",
    "key_replaced": "the session replaced a lost listenKey",
    "subscription_ended": "the WebSocket API ended the subscription (eventStreamTerminated)",
    "overflow": "the consumer fell behind and the buffer was full",
    "sink": "the durable log did not acknowledge items (refused, timed out or unreachable)",
    "failover": "another worker published this account until it stopped without handing it over",
}


@frozen
class StreamGap:
    """Events may be missing here: reconcile (query open orders, balances, positions) before going on.

    `started_at` and `ended_at` are the stream clock's seconds (the client's `clock`, monotonic)
    when the loss began and when events flowed again; `last_event_time` is the `E` (milliseconds)
    of the last event delivered before the loss, None if there was none; `dropped` counts the
    events an overflow discarded, or the items a sink lost (0 for the other reasons, where nobody
    can count them).
    """

    reason: GapReason
    started_at: float
    ended_at: float
    last_event_time: int | None = None
    dropped: int = 0

    @property
    def duration(self) -> float:
        """Seconds between the loss and the recovery."""
        return self.ended_at - self.started_at

    def describe(self) -> str:
        """One line for people: why, how long, how many dropped, and from which event time on."""
        parts = [f"gap ({self.reason}): {_WHY[self.reason]} for {self.duration:.3g}s"]
        if self.reason == "overflow":
            parts.append(f"{self.dropped} events dropped")
        elif self.reason == "sink":
            parts.append(f"{self.dropped} items lost")
        after = "the start" if self.last_event_time is None else f"event time {self.last_event_time}"
        parts.append(f"events after {after} may be missing; reconcile")
        return "; ".join(parts)
