"""The lease rules over nats-py's key-value API: a bucket, a watch, a tick, and writes sent together.

What nats-py 2.16 and nats-server 2.15 do, as read in nats.py's `nats/js/kv.py` and `client.py`
and checked by tests/test_worker_leases_nats.py:

- `js.create_key_value(bucket=, ttl=, history=1)` makes a stream with `max_age=ttl` and one message
  per subject: an entry not rewritten for `ttl` is removed by the server. Creating it again with
  the same settings is a no-op, so every worker makes it. Its `duplicate_window` becomes the TTL.
- An entry removed by `max_age` leaves nothing behind (unless the bucket has `limit_marker_ttl`,
  which this package does not set): the watch says nothing, `get` says "not found", and
  `create` (an update expecting last subject sequence 0) succeeds. So a worker judges expiry by
  when it last saw a lease's revision change, on its own clock, never by a watch event.
- `update(key, value, last=revision)` sends `Nats-Expected-Last-Subject-Sequence`: the
  compare-and-set. A mismatch raises `KeyWrongLastSequenceError` (server codes 10071/10164).
- `delete(key, last=revision)` writes a delete marker (`KV-Operation: DEL`) with the same
  expectation; the watch delivers it with `operation="DEL"`. `create` on a deleted key fails
  once, then nats-py reads the marker's revision and updates on it: a deleted lease is taken
  with `create` like an expired one.
- Per-message TTLs (`Nats-TTL`, server 2.11+) reach only `create(msg_ttl=)`; `update` has none,
  so a renewal could not keep one: the bucket's `max_age` is the lease's TTL.
- `watchall()` is an ordered push consumer, last value per key first, then a `None` marker once
  the initial values are delivered (this driver's `synced`). After missed heartbeats it resets
  itself at the next sequence.
- Revisions are stream sequences, growing across all keys: a larger one is newer news.

Bounded work: a worker renews each held lease (one key per account) every `renew_every`; the
writes due in one tick are sent together, up to `in_flight` at once over the one connection, not
one round trip after another (3,000 accounts on 3 workers: 1,000 writes every 3 1/3 s at TTL 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from binance_userstream.workers._leases import (
    ACCOUNTS,
    WORKERS,
    Beat,
    Change,
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

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.kv import KeyValue

log = logging.getLogger("binance_userstream.workers")

#: The bucket every worker of one deployment shares.
BUCKET = "binance_userstream_leases"
#: Server codes of a failed expected-last-subject-sequence (JSStreamWrongLastSequence*).
_WRONG_LAST = (10071, 10164)


class Leases:
    """One worker's leases, run against a NATS server: `async with Leases(nc, worker_id, accounts)
    as leases: async for change in leases: ...` yields `Start(account_id, after_failover)` and
    `Stop(account_id, why)`; publish an account between them. `await leases.leave(within=...)`
    (on SIGTERM) hands every lease over to the others, then the iteration ends. Leaving the
    `async with` without it stops renewing: the others take the accounts after the TTL, as after
    a crash. Each change is also logged at INFO (account ids only: no secret reaches the bucket).

    A planned handover completes (and the old owner stops) once this worker publishes the account:
    with `confirm_starts=True` when the application calls `started(account_id)` (a worker: its
    stream is live and the old owner has published what it received before, so nothing is missing
    between the two owners), else as soon as the `Start` is handed out."""

    def __init__(
        self,
        nc: Client,
        worker_id: str,
        accounts: Iterable[str],
        *,
        timing: LeaseTiming | None = None,
        bucket: str = BUCKET,
        in_flight: int = 512,
        confirm_starts: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = LeaseCore(worker_id, accounts, timing)
        self._confirm_starts = confirm_starts
        self.timing = self.core.timing
        self._nc = nc
        self._bucket = bucket
        self._clock = clock
        self._slots = asyncio.Semaphore(in_flight)
        self._changes: asyncio.Queue[Change | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._kv: KeyValue | None = None
        self._closed = False
        # nats.js.errors, imported on entry: nats-py is an optional extra.
        self._errors: Any = None

    @property
    def worker_id(self) -> str:
        return self.core.worker_id

    @property
    def publishing(self) -> frozenset[str]:
        """The accounts this worker may publish now."""
        return self.core.publishing

    async def __aenter__(self) -> Leases:
        try:
            import nats.js.errors
        except ImportError:
            raise ImportError("worker leases need nats-py: pip install binance-userstream[nats]") from None
        self._errors = nats.js.errors
        # Requests time out well before a lease could lapse: an answer that late counts as none.
        js = self._nc.jetstream(timeout=self.timing.renew_every)
        self._kv = await js.create_key_value(bucket=self._bucket, ttl=self.timing.ttl, history=1)
        watcher = await self._kv.watchall()
        self._spawn(self._watch(watcher))
        self._spawn(self._run())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the watch, the ticks and the writes in flight (leases are left to expire)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._changes.put_nowait(None)

    def __aiter__(self) -> Leases:
        return self

    async def __anext__(self) -> Change:
        change = await self._changes.get()
        if change is None:
            self._changes.put_nowait(None)
            raise StopAsyncIteration
        return change

    def started(self, account_id: str) -> None:
        """The application publishes `account_id` now (with `confirm_starts=True`): a planned handover
        to this worker may complete."""
        self._dispatch(self.core.started(account_id, at=self._clock()))

    async def leave(self, within: float) -> None:
        """Hand every lease over to the other workers, make-before-break; after `within` seconds stop
        what is left (releasing each lease never offered; an offered one expires after the TTL, as
        its taker may publish it). Returns when nothing is held or published."""
        now = self._clock()
        self._dispatch(self.core.leave(at=now, deadline=now + within))
        while not self.core.done and not self._closed:
            self._wake.set()
            await asyncio.sleep(self.timing.tick_every / 4)
        self._changes.put_nowait(None)

    # ---- the loops

    async def _run(self) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.timing.tick_every)
                self._wake.clear()
                self._dispatch(self.core.tick(at=self._clock()))
                # A tick costs a pass over every account: at most four a period, however busy the watch.
                await asyncio.sleep(self.timing.tick_every / 4)
        except Exception:
            # Without ticks no deadline would stop anything: stop everything now, and end.
            log.exception("lease rules failed: stopping every account")
            for account in sorted(self.core.publishing):
                self._changes.put_nowait(Stop(account, "lease rules failed"))
            self._changes.put_nowait(None)
            raise

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        try:
            async for entry in watcher:
                now = self._clock()
                if entry is None:
                    self.core.synced(at=now)
                elif entry.revision is not None:
                    deleted = entry.operation in ("DEL", "PURGE")
                    value = None if deleted else (entry.value or b"")
                    self._dispatch(self.core.observe(entry.key, value, entry.revision, at=now))
                    if self.core.changed:
                        self.core.changed = False
                        self._wake.set()
        finally:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await watcher.stop()  # type: ignore[no-untyped-call]

    # ---- actions

    def _dispatch(self, actions: list[LeaseAction]) -> None:
        for action in actions:
            if isinstance(action, Start | Stop):
                if isinstance(action, Start):
                    log.info("lease: start %s (after failover: %s)", action.account_id, action.after_failover)
                else:
                    log.info("lease: stop %s (%s)", action.account_id, action.why)
                self._changes.put_nowait(action)
                if isinstance(action, Start) and not action.after_failover and not self._confirm_starts:
                    self._dispatch(self.core.started(action.account_id, at=self._clock()))
            elif isinstance(action, Beat | Quit):
                self._spawn(self._heartbeat(action))
            else:
                self._spawn(self._write(action))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeat(self, action: Beat | Quit) -> None:
        assert self._kv is not None
        try:
            async with self._slots:
                if isinstance(action, Beat):
                    await self._kv.put(WORKERS + action.worker, b"{}")
                else:
                    await self._kv.delete(WORKERS + action.worker)
        except Exception as error:  # a heartbeat lost is a heartbeat late
            log.debug("lease heartbeat failed: %s", type(error).__name__)

    async def _write(self, action: Write | Release) -> None:
        assert self._kv is not None
        key = ACCOUNTS + action.account
        errors = self._errors
        try:
            async with self._slots:
                try:
                    if isinstance(action, Release):
                        await self._kv.delete(key, last=action.last)
                        # nats-py's delete does not say the marker's revision (the watch brings it):
                        # one past the lease's is newer than it, and no newer than the marker.
                        revision = action.last + 1
                    elif action.last is None:
                        revision = await self._kv.create(key, action.value.encode())
                    else:
                        revision = await self._kv.update(key, action.value.encode(), last=action.last)
                except (errors.KeyWrongLastSequenceError, errors.KeyNotFoundError):
                    # KeyNotFoundError: create found an entry, which expired before it could read it.
                    refused = True
                except errors.APIError as error:
                    if getattr(error, "err_code", None) not in _WRONG_LAST:
                        raise
                    refused = True
                else:
                    refused = False
                if refused:
                    current, at_revision = await self._current(key)
                    self._dispatch(self.core.refused(action, current, at_revision, at=self._clock()))
                    return
        except Exception as error:  # no answer, or one this driver cannot read: it may have landed
            log.warning(
                "lease %s of %s got no answer: %s",
                action.__class__.__name__.lower(),
                action.account,
                type(error).__name__,
            )
            self._dispatch(self.core.failed(action, at=self._clock()))
            return
        self._dispatch(self.core.written(action, revision, at=self._clock()))

    async def _current(self, key: str) -> tuple[LeaseValue | None, int | None]:
        """What the bucket holds for `key` now (None, None: no live entry)."""
        assert self._kv is not None
        try:
            entry = await self._kv.get(key)
        except self._errors.KeyNotFoundError:
            return None, None
        if entry.value is None or entry.revision is None:
            return None, None
        return LeaseValue.decode(entry.value), entry.revision
