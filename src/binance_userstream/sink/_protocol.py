"""`Sink`, what a durable log offers the fleet, and `Lost`, the report of an item it did not keep."""

from __future__ import annotations

from typing import Protocol

from attrs import frozen


@frozen
class Lost:
    """One item a sink could not get acknowledged: it may be missing from the log (or, when only
    the acknowledgement was lost, be there), so the account's log needs a gap at this point.

    `reason` says why in words ("no acknowledgement within 5 s", "refused: maximum messages
    exceeded", "not sent: ..."); `after_event_time` is the `E` (milliseconds) of the account's
    last event published before this item, None if none had a time; `at` is the sink's clock
    (seconds, monotonic) when the loss was found. `fenced`: the log refused the item because
    another publisher claimed the account since (`JetStreamSink.claim`): the account is no longer
    this publisher's, and its new owner's log starts with its own gap, so no gap is owed here.
    """

    account_id: str
    item: object
    reason: str
    after_event_time: int | None
    at: float
    fenced: bool = False


class Sink(Protocol):
    """Where one account's items go to be kept, acknowledged: each item published is, in the end,
    either acknowledged by the log or reported lost (`take_lost`), never neither.

    `publish` hands an item over and returns without waiting for its acknowledgement (so a pump
    pipelines), but waits while the sink has its maximum of items in flight: that back-pressure is
    what makes the fleet's bounded buffer overflow into a gap when the log is slow, instead of
    memory growing. `text` is the event's JSON exactly as Binance sent it, or None for a
    StreamGap, a Reconciled or an account's error (the sink serializes those itself).
    """

    async def publish(self, account_id: str, item: object, text: str | None) -> None:
        """Hand over one item of `account_id`; ValueError, before anything is sent, if it cannot be
        addressed (an account id or wire name that is no subject token)."""
        ...

    async def flush(self) -> None:
        """Return when every item published so far is acknowledged or reported lost."""
        ...

    def take_lost(self) -> list[Lost]:
        """The losses found since the last call, in the order the items were published."""
        ...

    async def wait_lost(self) -> None:
        """Return as soon as `take_lost` has something to give."""
        ...

    async def close(self) -> None:
        """Flush, then let go of the log (what is still unacknowledged is reported lost)."""
        ...
