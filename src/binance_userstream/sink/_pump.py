"""`pump`: accounts' items from a fleet into a sink, with a gap in the log for every item the sink lost.

The sink reports what it could not get acknowledged (`Sink.take_lost`); the pump turns an account's
losses into one `StreamGap(reason="sink")` on that account's subject, as soon as they are reported
(while the fleet is quiet too), so that whoever reads the log knows where to reconcile. A gap that
is itself lost is owed again, merged with whatever that account loses meanwhile, until one is
acknowledged; an account's fatal error that is lost is published again after its gap (it is the
account's last item: nothing can land after it out of order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, Callable

from attrs import define, field

from binance_userstream.sink._protocol import Lost, Sink
from binance_userstream.sink._subjects import check_token
from binance_userstream.stream._gap import StreamGap

log = logging.getLogger("binance_userstream.sink")

#: Rounds of "flush, publish the gaps owed" at the end before the pump gives up on a log that
#: loses everything (each round waits at most the sink's acknowledgement timeout).
FINAL_ROUNDS = 3


@define
class PumpResult:
    """What a pump did: items `published` (the fleet's, not counting the gaps it added), `gaps`
    published for losses, and `unreported`: accounts whose owed gap could not be published before
    the end (the log itself was unreachable): their last events may be missing without a gap."""

    published: int = 0
    gaps: int = 0
    unreported: list[str] = field(factory=list)


class _Owed:
    """The gap (and the lost fatal error) an account owes the log."""

    def __init__(self) -> None:
        self.gaps: dict[str, StreamGap] = {}
        self.errors: dict[str, object] = {}

    def add(self, loss: Lost) -> None:
        item, account = loss.item, loss.account_id
        if isinstance(item, BaseException):
            self.errors[account] = item
        dropped = item.dropped if isinstance(item, StreamGap) and item.reason == "sink" else 1
        after = item.last_event_time if isinstance(item, StreamGap) else loss.after_event_time
        owed = self.gaps.get(account)
        if owed is None:
            self.gaps[account] = StreamGap("sink", loss.at, loss.at, last_event_time=after, dropped=dropped)
        else:
            times = [t for t in (owed.last_event_time, after) if t is not None]
            self.gaps[account] = StreamGap(
                "sink",
                min(owed.started_at, loss.at),
                max(owed.ended_at, loss.at),
                last_event_time=min(times) if times else None,
                dropped=owed.dropped + dropped,
            )

    def take(self) -> list[tuple[str, object]]:
        """The gaps owed, each followed by the account's lost error if any; owed no longer."""
        items: list[tuple[str, object]] = []
        for account, gap in self.gaps.items():
            items.append((account, gap))
            if account in self.errors:
                items.append((account, self.errors.pop(account)))
        self.gaps = {}
        return items


async def pump(
    items: AsyncIterable[tuple[str, object, str | None]],
    sink: Sink,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_gap: Callable[[str, StreamGap], object] | None = None,
) -> PumpResult:
    """Publish each `(account id, item, text)` of `items` to `sink` until `items` ends, and a gap for
    every account whose items the sink lost; then flush. `text` is the event's JSON as Binance sent
    it, or None (the sink serializes the item: see `Envelope.of` for what that does to msg ids).

    An item the sink refuses to address (ValueError: a wire name that is no subject token) counts
    as lost for its account (`clock` stamps that loss, as the sink's clock stamps its own).
    `on_gap` hears each gap the pump publishes for an account's losses (`(account id, gap)`), once
    it is sent: a worker follows it with the account's `Reconciled`.
    Returns a `PumpResult`; the sink stays open (the caller closes it). A sink with a
    `publish_nowait(account_id, item, text) -> bool` (JetStreamSink) is offered each item that way
    first, and published to with `publish` when it says False.
    """
    result = PumpResult()
    owed = _Owed()
    lock = asyncio.Lock()  # the gaps' publisher and the main loop take turns with one account's items

    async def settle() -> int:
        """Publish the gaps owed for the losses reported so far; how many items that published."""
        losses = sink.take_lost()
        fenced = [loss for loss in losses if loss.fenced]
        if fenced:  # another publisher claimed these accounts: its log has the gap, not ours
            log.info(
                "the log refused %d items of %d accounts another publisher claimed",
                len(fenced),
                len({loss.account_id for loss in fenced}),
            )
            losses = [loss for loss in losses if not loss.fenced]
        if losses:  # one line per report, not per item: an outage loses thousands
            accounts = len({loss.account_id for loss in losses})
            log.warning(
                "the sink lost %d items of %d accounts (%s): gaps follow",
                len(losses),
                accounts,
                losses[0].reason,
            )
        for loss in losses:
            owed.add(loss)
        sent = 0
        for account, item in owed.take():
            await sink.publish(account, item, None)
            sent += 1
            if isinstance(item, StreamGap):
                result.gaps += 1
                if on_gap is not None:
                    on_gap(account, item)
        return sent

    async def watch() -> None:
        while True:
            await sink.wait_lost()
            async with lock:
                await settle()

    watcher = asyncio.create_task(watch(), name="sink pump: gaps for losses")
    # A sink that can take an item without waiting (JetStreamSink) is offered each one so first:
    # no coroutine, no lock, while the gaps' publisher is not at work.
    nowait: Callable[[str, object, str | None], bool] | None = getattr(sink, "publish_nowait", None)
    try:
        async for account_id, item, text in items:
            if nowait is not None and not lock.locked():
                try:
                    if nowait(account_id, item, text):
                        result.published += 1
                        continue
                except ValueError:
                    pass  # said again by `publish` below, where it is handled
            async with lock:
                try:
                    await sink.publish(account_id, item, text)
                except ValueError as error:
                    check_token(account_id, "account id")  # an id that is no token is the caller's error
                    log.warning("account %s: an item cannot be published: %s", account_id, error)
                    owed.add(Lost(account_id, item, f"not addressable: {error}", None, clock()))
                    await settle()
                    continue
                result.published += 1
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    for _ in range(FINAL_ROUNDS):
        await sink.flush()
        if not await settle():
            break
    else:  # the gaps of the last round: whatever of them is lost stays owed
        await sink.flush()
        for loss in sink.take_lost():
            if not loss.fenced:
                owed.add(loss)
    result.unreported = sorted(owed.gaps)
    if result.unreported:
        log.error(
            "the log lost the gaps of %d accounts: it was unreachable to the end", len(result.unreported)
        )
    return result
