"""`JetStreamSink`: accounts' items into a NATS JetStream stream, pipelined, each acknowledged or lost.

Publishing is pipelined: each message goes out with a reply subject of the sink's own
(`<inbox>.<n>`), and JetStream's acknowledgement (a PubAck, or an error) comes back there while
the next messages are already on their way, so a publish costs no network round trip. nats-py's
`publish_async` does the same but gives each message a future that never times out and leaks its
pending slot when the send itself fails, so the sink keeps its own table of what is in flight,
oldest first: at most `max_pending` entries (a `publish` beyond waits: back-pressure, never
unbounded memory), each acknowledged, refused, or after `ack_timeout` seconds lost.

Where the stream allows it (nats-server 2.14+, `allow_batched`, set on the streams the sink
creates), the items go in JetStream's fast-ingest batches (`_batch`): one acknowledgement for up to
250 messages instead of one each, which is most of what a publish cost the client; a refused item
(a claim's condition, a stream limit) is still reported one by one, and the batch goes on. A batch
is ended when nothing was published for `LINGER` seconds, so a burst's last items are acknowledged
within milliseconds; a batch that lives through a reconnect is abandoned, its unacknowledged items
lost (with a gap), since the answers that would have refused some of them may be gone with the
connection; while NATS is unreachable an item is lost at once rather than queued. `batched=False`,
a stream without `allow_batched` or a server without batches: one acknowledgement per message.

A lost item is never sent again. A retry would land after the account's later events that were
acknowledged meanwhile, and a consumer would read the account's history out of order without
knowing; instead the loss is reported (`take_lost`), and the pump publishes a gap for that account
(`StreamGap(reason="sink")`), in-band, after which the consumer reconciles. "Lost" means "not known
to be in the log": when the server stored a message and only its acknowledgement went missing (the
connection dropped in between), the item is in the log and a gap follows it anyway.

A worker that takes an account over claims it (`claim`): an owner message on the account's `_owner`
subject, written with compare-and-set, and from then on each of the account's messages is sent on
condition that this owner message is still the account's last (JetStream's
`Nats-Expected-Last-Subject-Sequence`). A worker claimed over is refused by the server itself, even
its messages that a partition held back and delivered late: they cannot land behind the new owner's
events. Such a refusal is a `Lost` marked `fenced` (no gap owed: the new owner's log starts with
its own), and `on_fenced` hears of the account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from binance_userstream.errors import UserStreamError
from binance_userstream.sink._batch import (
    BATCH_DISABLED,
    BATCH_UNKNOWN,
    FLOW,
    LINGER,
    OUTSTANDING,
    Batch,
    answer,
    parse_reply,
    refusal,
)
from binance_userstream.sink._protocol import Lost, Sink
from binance_userstream.sink._subjects import (
    DEFAULT_PREFIX,
    EXPECTED_SEQUENCE_HEADER,
    EXPECTED_SUBJECT_HEADER,
    Addresses,
    check_token,
)
from binance_userstream.sink._wire import Wire, wire

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger("binance_userstream.sink")

#: The stream's default name.
DEFAULT_STREAM = "BINANCE"
#: JetStream's de-duplication window by default: a rotation's make-before-break overlap lasts
#: seconds and a lease failover a lease's TTL plus a connect (tens of seconds), both well inside
#: two minutes (JetStream's own default). The server keeps every id of the window in memory: about
#: 100 bytes per message, 6 million messages at 50,000/s.
DUPLICATE_WINDOW = 120.0
#: Items in flight (sent, not yet acknowledged) at most, by default: enough to keep a loopback or
#: LAN link busy at tens of thousands of messages a second, a few MB of memory at most.
MAX_PENDING = 10_000
#: Seconds an item may wait for its acknowledgement before it is lost, by default.
ACK_TIMEOUT = 5.0

#: JetStream's error code for a message whose expected last subject sequence does not hold.
WRONG_LAST_SEQUENCE = 10071
#: Compare-and-set rounds a claim tries before it gives up (each lost to another claim meanwhile).
CLAIM_ATTEMPTS = 5
#: Batches ended and not yet answered that the sink keeps track of, at most (each answer settles
#: the last messages of one): past it, the oldest one's unacknowledged items are lost.
ENDED_KEPT = 64

_WRONG_LAST = re.compile(r"wrong last sequence: (\d+)")

_MISSING_EXTRA = "the JetStream sink needs nats-py: pip install binance-userstream[nats]"

#: A record of an item in flight: account id, item, loop time sent, the account's previous event time.
_Record = tuple[str, object, float, int | None]


class _Fence:
    """The owner message an account's items are sent on condition of: its sequence (0: the account
    has none yet; None: a newer owner's claim was found, so nothing is sent), its subject, and the
    lease revision this sink claimed with (None: following another publisher's claim, `follow`)."""

    __slots__ = ("lines", "revision", "sequence", "subject")

    def __init__(self, sequence: int | None, subject: str, revision: int | None) -> None:
        self.sequence = None if sequence is None else str(sequence)
        self.subject, self.revision = subject, revision
        # The header lines that make each message conditional on the owner message (`_wire`).
        self.lines = f"{EXPECTED_SEQUENCE_HEADER}: {sequence}\r\n{EXPECTED_SUBJECT_HEADER}: {subject}\r\n"


def _import_nats() -> Any:
    try:
        import nats
    except ImportError:  # pragma: no cover (the extra is installed where tests run)
        raise ImportError(_MISSING_EXTRA) from None
    return nats


class JetStreamSink:
    """Accounts' items of one market into a JetStream stream: `async with JetStreamSink(servers=url,
    market="spot") as sink: await sink.publish(account_id, item, text)`.

    `client` is a connected nats-py client to publish on (left open on close); else the sink
    connects to `servers` (`connect_options`: more of `nats.connect`'s arguments, such as
    `user_credentials` or `tls`), tries until a server answers, and reconnects for as long as it
    lives. The stream `stream` (subjects
    `<prefix>.>`, file storage, `duplicate_window` seconds) is created unless it exists
    (`ensure_stream=False`: never). `max_pending` bounds the items in flight, `ack_timeout` how long
    one waits for its acknowledgement; `clock` stamps losses (`Lost.at`). With `record_latency`,
    `latencies` keeps the last 100,000 publish-to-acknowledgement delays, in seconds. `worker` names
    the publisher in each message's `Binance-Worker` header (a worker's id: `workers`); `on_fenced`
    is called with an account's id when the log refuses its items because another publisher
    claimed it (see `claim`).

    `batched`: publish in fast-ingest batches when the stream and server allow them (the sink sets
    it to False when they do not).

    Counters: `published`, `delivered` (acknowledged; `duplicates` of them JetStream had already,
    counted only when each message is acknowledged alone: a batch's acknowledgements do not say),
    `lost` (`fenced` of them refused as another publisher's); `pending` is what is in flight now.
    After `flush`, every item published and not returned by `take_lost` was acknowledged. The
    losses wait in the sink until `take_lost` takes them (`pump` does, as they come): a sink used
    without it must take them too.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        market: str,
        stream: str = DEFAULT_STREAM,
        prefix: str = DEFAULT_PREFIX,
        duplicate_window: float = DUPLICATE_WINDOW,
        max_pending: int = MAX_PENDING,
        ack_timeout: float = ACK_TIMEOUT,
        ensure_stream: bool = True,
        clock: Callable[[], float] = time.monotonic,
        record_latency: bool = False,
        connect_options: Mapping[str, Any] | None = None,
        worker: str | None = None,
        on_fenced: Callable[[str], object] | None = None,
        batched: bool = True,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending}")
        if not ack_timeout > 0:
            raise ValueError(f"ack_timeout must be positive, not {ack_timeout}")
        self._addresses = Addresses(market, prefix, worker)
        self.market, self.prefix = market, prefix
        self.stream = check_token(stream, "stream name")
        self.duplicate_window = duplicate_window
        self.max_pending = max_pending
        self.ack_timeout = ack_timeout
        self._servers = servers
        self._connect_options = dict(connect_options or {})
        self._client = client
        self._owned = client is None
        self._ensure = ensure_stream
        self._clock = clock
        self.latencies: deque[float] | None = deque(maxlen=100_000) if record_latency else None
        self.published = self.delivered = self.duplicates = self.lost = self.fenced = 0
        self._on_fenced = on_fenced
        self.batched = batched
        self._batch: Batch | None = None  # the batch the next item joins (None: the next starts one)
        self._batches: dict[str, Batch] = {}  # batches with answers to come, oldest first
        self._linger: asyncio.TimerHandle | None = None
        self._ending: set[asyncio.Future[None]] = set()  # batch ends and lone resends being sent
        self._end_subject = f"{prefix}.{market}._batch"
        self._fences: dict[str, _Fence] = {}
        self._refused: set[str] = set()  # accounts on_fenced heard of since their last claim
        self._recovering: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[int, _Record] = {}
        self._next = 0
        self._last_time: dict[str, int | None] = {}
        self._losses: list[Lost] = []
        self._inbox = ""
        self._sub: Subscription | None = None
        self._wire: Wire | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()
        self._settled = asyncio.Event()  # set whenever items are acknowledged or lost: flush waits on it
        self._work = asyncio.Event()
        self._lost_event = asyncio.Event()
        self._room.set()

    def __repr__(self) -> str:  # the servers' URLs may carry a user and password: never shown
        return f"JetStreamSink(market={self.market!r}, stream={self.stream!r}, pending={len(self._pending)})"

    @property
    def pending(self) -> int:
        """Items sent and neither acknowledged nor lost yet."""
        return len(self._pending)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect (unless given a client), make sure the stream exists, listen for acknowledgements."""
        if self._sub is not None:
            raise UserStreamError("the JetStream sink is started already")
        nats = _import_nats()
        self._loop = asyncio.get_running_loop()
        if self._client is None:
            options: dict[str, Any] = {
                "name": "binance-userstream sink",
                "max_reconnect_attempts": -1,
                "error_cb": self._on_error,
                "skip_subject_validation": True,  # every token was checked (`Addresses`): not twice
            }
            self._client = await nats.connect(self._servers, **{**options, **self._connect_options})
        client = self._client
        try:
            if self._ensure:
                await self._ensure_stream(client)
            self._inbox = client.new_inbox()
            self._wire = wire(client)
            self._sub = await client.subscribe(f"{self._inbox}.>", cb=self._on_ack)
        except BaseException:
            if self._owned:
                await client.close()
                self._client = None
            raise
        self._reaper = asyncio.create_task(self._reap(), name="jetstream sink: ack timeouts")

    async def _ensure_stream(self, client: Client) -> None:
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError

        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            storage=StorageType.FILE,
            duplicate_window=self.duplicate_window,
            allow_batched=self.batched or None,
        )
        try:
            await client.jetstream().add_stream(config)
        except BadRequestError as error:
            if error.err_code == 10065:  # "subjects overlap with an existing stream"
                raise UserStreamError(
                    f"another stream than {self.stream!r} takes subjects {self.prefix}.>: pass its name "
                    "as stream=, or another prefix="
                ) from None
            if error.err_code != 10058:  # not "stream name already in use with a different configuration"
                raise
            log.info("stream %s exists with another configuration: it is used as it is", self.stream)

    @staticmethod
    async def _on_error(error: Exception) -> None:
        log.warning("NATS connection: %s", type(error).__name__)

    async def publish(self, account_id: str, item: object, text: str | None) -> None:
        """Send one item of `account_id` (see `Sink.publish`); waits while `max_pending` are in flight.

        ValueError, before anything is sent, for an id or wire name that is no subject token;
        UserStreamError when the sink is closed or was never started.
        """
        message = self._addresses.message(account_id, item, text)
        taken = self._slot(account_id, item, message)
        while taken is False:  # wait for room: in flight, and in the batch (its start answered, its flow)
            self._room.clear()
            await self._room.wait()
            taken = self._slot(account_id, item, message)
        if isinstance(taken, bool):  # fenced, or lost: reported
            return
        n, subject, reply, payload, lines = taken
        wire = self._wire
        assert wire is not None  # `_slot` refuses a sink that is not running
        try:
            await wire.send(subject, reply, payload, lines)
        except Exception as error:  # not sent (buffer full while reconnecting, connection closed...)
            record = self._pending.pop(n, None)
            if record is not None:
                self._lose(record, f"not sent: {type(error).__name__}")

    def publish_nowait(self, account_id: str, item: object, text: str | None) -> bool:
        """Publish one item as `publish` does if that needs no waiting (room in flight and in the
        batch, the connection ready to take the message): True when done; False when nothing was
        done (then `publish` it). `pump` calls it first: an item with room costs no coroutine.

        ValueError as `publish` raises it."""
        wire = self._wire
        if wire is None:
            return False
        message = self._addresses.message(account_id, item, text)
        if not wire.ready(len(message[1])):
            return False
        taken = self._slot(account_id, item, message)
        if taken is False:
            return False
        if not isinstance(taken, bool):
            wire.queue(taken[1], taken[2], taken[3], taken[4])
        return True

    def _slot(
        self, account_id: str, item: object, message: tuple[str, bytes, str, int | None]
    ) -> tuple[int, str, str, bytes, str] | bool:
        """Take item `message`'s place in flight if there is room: its number, subject, reply subject,
        payload and header lines, to send now; True when it is not to be sent (fenced, or lost
        because NATS is unreachable: reported already); False, changing nothing, when there is no
        room."""
        subject, payload, lines, when = message
        fence = self._fences.get(account_id)
        if fence is not None:
            if fence.sequence is None:  # a newer owner claimed the account: refused here, not sent
                self.published += 1
                self.fenced += 1
                self._lose((account_id, item, 0.0, None), "fenced: a newer owner claimed it", fenced=True)
                return True
            lines += fence.lines
        client, loop = self._client, self._loop
        if client is None or loop is None or self._wire is None or self._sub is None or client.is_closed:
            raise UserStreamError("the JetStream sink is not running (start it, or use `async with`)")
        if self.batched and not client.is_connected:  # a batch cannot live through a reconnect
            self.published += 1
            self._lose(
                (account_id, item, 0.0, self._last_time.get(account_id)), "not sent: NATS is unreachable"
            )
            if when is not None:
                self._last_time[account_id] = when
            return True
        pending = self._pending
        batch = self._batch
        while True:
            batch = self._batch
            if batch is not None:
                if batch.reconnects != client.stats["reconnects"]:
                    self._abandon(
                        batch, "no acknowledgement: the connection to NATS dropped during its batch"
                    )
                    continue
                if not batch.open and batch.number(1) not in pending:
                    self._abandon(batch, "its batch's first message was not answered")
                    continue
            if len(pending) < self.max_pending and (batch is None or (batch.open and not batch.full)):
                break
            return False
        n = self._next
        self._next = n + 1
        last = self._last_time
        before = last.get(account_id)
        if when is not None:
            last[account_id] = when
        self.published += 1
        if not pending:
            self._work.set()
        pending[n] = (account_id, item, loop.time(), before)
        if self.batched:
            if batch is None:
                flow = min(FLOW, max(1, self.max_pending // OUTSTANDING))  # acknowledged within max_pending
                batch = Batch(self._inbox, secrets.token_hex(8), n, client.stats["reconnects"], flow)
                batch.first = (subject, payload, lines)
                self._batch = self._batches[batch.id] = batch
            reply = batch.reply()
            if self._linger is None:
                self._linger = loop.call_later(LINGER, self._lingered, n)
        else:
            reply = f"{self._inbox}.{n}"
        return n, subject, reply, payload, lines

    def _send_soon(
        self, subject: str, reply: str, payload: bytes, lines: str, failed: Callable[[str], object]
    ) -> None:
        """Send a message the sink owes outside a publish (a batch's end, a lone resend): queued at
        once when the connection takes it, else sent by a task that `close` ends; `failed` hears
        why, when it was not sent."""
        wire = self._wire
        if wire is None:
            failed("not sent: the sink closed")
            return
        if wire.ready(len(payload)):
            wire.queue(subject, reply, payload, lines)
            return

        async def later() -> None:
            try:
                await wire.send(subject, reply, payload, lines)
            except Exception as error:
                failed(f"not sent: {type(error).__name__}")

        task = asyncio.ensure_future(later())
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    def _lingered(self, seen: int) -> None:
        """Nothing published for `LINGER` seconds since item `seen`: end the batch, so that its last
        items are acknowledged (the server acknowledges a batch's items a flow at a time), and so
        that it does not idle into the server's abandoning it."""
        self._linger = None
        batch = self._batch
        if batch is None or self._loop is None:
            return
        if self._next - 1 != seen or not batch.open:  # still publishing, or not answered yet
            self._linger = self._loop.call_later(LINGER, self._lingered, self._next - 1)
        else:  # ended even when all is acknowledged: the server abandons a batch idle for 10 s
            self._end(batch)

    def _end(self, batch: Batch) -> None:
        """End `batch` with a message the server does not store and answers with a PubAck that
        settles the batch's last items; the next item starts a new batch."""
        if self._batch is batch:
            self._batch = None
        reply = batch.end_reply()
        while len(self._batches) > ENDED_KEPT:  # answers that never came: what they would settle is lost
            self._abandon(next(iter(self._batches.values())), "its batch's end was not answered")
        self._send_soon(
            self._end_subject, reply, b"", "", lambda why: self._abandon(batch, f"its batch's end {why}")
        )

    def _abandon(self, batch: Batch, reason: str) -> None:
        """Give up on `batch`: whatever of it is unacknowledged is lost (not known to be in the log)."""
        if self._batch is batch:
            self._batch = None
        self._batches.pop(batch.id, None)
        pending = self._pending
        for n in batch.numbers(1, batch.sent):
            record = pending.pop(n, None)
            if record is not None:
                self._lose(record, reason)
        self._after_settle()

    def _on_batch_answer(self, batch: Batch, seq: int, msg: Msg) -> None:
        """What one of the server's answers to `batch` settles (see `_batch`)."""
        client = self._client
        if client is None or batch.reconnects != client.stats["reconnects"]:
            self._abandon(batch, "no acknowledgement: the connection to NATS dropped during its batch")
            return
        pending = self._pending
        if msg.headers and msg.headers.get("Status"):  # no stream listens (503): that message refused
            record = pending.pop(batch.number(seq), None)
            if record is not None:
                self._lose(record, _problem(msg.headers, msg.data) or "refused")
            return
        said = answer(msg.data)
        kind = said.kind
        if kind == "ack":
            batch.open, batch.first, batch.flow = True, None, said.flow
            self._settle(batch, said.seq)
        elif kind == "err":
            record = pending.pop(batch.number(said.seq), None) if 0 < said.seq <= batch.sent else None
            if record is not None:
                self._refuse(record, said.problem)
        elif kind == "gap":
            for n in batch.numbers(said.first, said.seq - 1):
                record = pending.pop(n, None)
                if record is not None:
                    self._lose(record, "never reached the stream (a gap in its batch)")
        elif kind == "done":
            self._settle(batch, said.seq)
            self._abandon(batch, "not in its batch as the server ended it")
        elif kind == "stored" and seq == 1:  # a server without fast batches stored the first alone
            log.info("nats-server has no fast-ingest batches (2.14+): one acknowledgement per message")
            self.batched = False
            self._settle(batch, 1)
            self._abandon(batch, "sent in a batch to a server without batches")
        elif kind == "error" and said.code == BATCH_DISABLED and seq == 1 and batch.first is not None:
            log.info(
                "stream %s does not allow batched publishing (allow_batched): one acknowledgement "
                "per message",
                self.stream,
            )
            self.batched = False
            self._batches.pop(batch.id, None)
            if self._batch is batch:
                self._batch = None
            self._resend_alone(batch.base, batch.first)
        elif kind == "error" and said.code == BATCH_UNKNOWN:
            self._abandon(batch, f"{said.problem} (its batch ended, or idled 10 s)")
        else:
            record = pending.pop(batch.number(seq), None)
            if record is not None:
                self._lose(record, said.problem or "refused: an answer the sink does not know")
        self._after_settle()

    def _settle(self, batch: Batch, upto: int) -> None:
        """Every item of `batch` up to its message `upto` not settled otherwise is in the log."""
        pending, latencies = self._pending, self.latencies
        now = self._loop.time() if self._loop is not None else 0.0
        delivered = 0
        for n in batch.numbers(batch.acked + 1, upto):
            record = pending.pop(n, None)
            if record is not None:
                delivered += 1
                if latencies is not None:
                    latencies.append(now - record[2])
        self.delivered += delivered
        if upto > batch.acked:
            batch.acked = upto

    def _resend_alone(self, n: int, message: tuple[str, bytes, str]) -> None:
        """Send item `n` again on its own (the stream refused it as a batch's first, storing nothing)."""
        if n not in self._pending:
            return
        subject, payload, lines = message

        def failed(why: str) -> None:
            record = self._pending.pop(n, None)
            if record is not None:
                self._lose(record, why)

        self._send_soon(subject, f"{self._inbox}.{n}", payload, lines, failed)

    async def _on_ack(self, msg: Msg) -> None:
        rest = msg.subject[len(self._inbox) + 1 :]
        if "." in rest:  # a batch's answer
            reply = parse_reply(rest)
            if reply is not None:
                batch = self._batches.get(reply[0])
                if batch is not None:  # else an ended batch's late answers: settled already
                    self._on_batch_answer(batch, reply[1], msg)
            return
        try:
            n = int(rest)
        except ValueError:
            return
        record = self._pending.pop(n, None)
        if record is None:  # already lost to the timeout
            return
        data = msg.data
        problem = _problem(msg.headers, data)
        if problem is None:
            self.delivered += 1
            if b'"duplicate"' in data:
                self.duplicates += 1
            if self.latencies is not None and self._loop is not None:
                self.latencies.append(self._loop.time() - record[2])
        else:
            self._refuse(record, problem)
        self._after_settle()

    def _refuse(self, record: _Record, problem: str) -> None:
        """The server refused an item (alone or in a batch): fenced when its claim's condition failed,
        else lost."""
        if problem.startswith("refused: wrong last sequence"):
            self._refused_by_fence(record, problem)
        else:
            self._lose(record, problem)

    def _refused_by_fence(self, record: _Record, problem: str) -> None:
        """The server refused an item sent on condition of the account's owner message."""
        account_id = record[0]
        fence = self._fences.get(account_id)
        match = _WRONG_LAST.search(problem)
        last = match.group(1) if match else None
        if fence is None or last == fence.sequence:
            self._lose(record, problem)  # sent before this sink's own newer claim: an ordinary loss
        elif last == "0":
            # The account's owner message is gone (the stream's limits removed it): not another
            # owner's doing. The item is lost (a gap follows); the claim is written again.
            self._lose(record, f"{problem} (the account's owner message is gone: claimed again)")
            if account_id not in self._recovering:
                task = asyncio.ensure_future(self._claim_again(account_id, fence))
                self._recovering[account_id] = task
        else:
            self.fenced += 1
            self._lose(record, f"fenced: another publisher claimed the account ({problem})", fenced=True)
            if account_id not in self._refused:
                self._refused.add(account_id)
                log.info("account %s: the log refuses this publisher's items: it was claimed", account_id)
                if self._on_fenced is not None:
                    self._on_fenced(account_id)

    async def _claim_again(self, account_id: str, fence: _Fence) -> None:
        try:
            if fence.revision is None:
                await self.follow(account_id)
            else:
                await self.claim(account_id, fence.revision)
        except Exception as error:  # the next refusal tries again
            log.warning("account %s: claiming again failed: %s", account_id, type(error).__name__)
        finally:
            self._recovering.pop(account_id, None)

    async def claim(self, account_id: str, revision: int) -> bool:
        """Make this sink `account_id`'s one publisher in the log from now on, by lease `revision`.

        Writes an owner message (this worker, `revision`) on the account's `_owner` subject if the
        last one there is still the one it read (compare-and-set), then sends each of the account's
        items on condition that it stays the last: the server refuses the items of any publisher
        that claimed before, whatever delayed them. Returns False, writing nothing, when the last
        owner message has a newer revision than `revision` (this publisher's lease is out of date):
        the account's items are then refused here, as fenced, until it is claimed or followed again.
        Call it before publishing the account's first item: items already in flight were sent on
        the previous condition. UserStreamError when other claims win `CLAIM_ATTEMPTS` times.
        """
        from nats.js.errors import BadRequestError

        js = self._jetstream()
        subject = self._addresses.owner_subject(account_id)
        payload = json.dumps({"worker": self._addresses.worker, "revision": revision}).encode()
        headers = self._addresses.owner_headers(account_id)
        for _ in range(CLAIM_ATTEMPTS):
            sequence, last_revision = await self._last_owner(js, subject)
            if last_revision is not None and last_revision > revision:
                log.info("account %s: a newer lease claimed it already; not claimed", account_id)
                self._fences[account_id] = _Fence(None, subject, revision)
                return False
            try:
                ack = await js.publish(
                    subject,
                    payload,
                    timeout=self.ack_timeout,
                    stream=self.stream,
                    headers={**headers, EXPECTED_SEQUENCE_HEADER: str(sequence)},
                )
            except BadRequestError as error:
                if error.err_code == WRONG_LAST_SEQUENCE:
                    continue  # claimed by another meanwhile: read again
                raise
            self._fences[account_id] = _Fence(ack.seq, subject, revision)
            self._refused.discard(account_id)
            return True
        raise UserStreamError(f"account {account_id!r}: {CLAIM_ATTEMPTS} claims lost to others in a row")

    async def follow(self, account_id: str) -> None:
        """Send `account_id`'s items on condition of its current owner message, without claiming
        it: a planned handover's new publisher, while the old one still publishes (both under the
        old claim, their common events stored once by message id), until it claims."""
        subject = self._addresses.owner_subject(account_id)
        sequence, _ = await self._last_owner(self._jetstream(), subject)
        self._fences[account_id] = _Fence(sequence, subject, None)
        self._refused.discard(account_id)

    def _jetstream(self) -> Any:
        if self._client is None or self._sub is None:
            raise UserStreamError("the JetStream sink is not running (start it, or use `async with`)")
        return self._client.jetstream()

    async def _last_owner(self, js: Any, subject: str) -> tuple[int, int | None]:
        """The sequence of the last owner message on `subject` (0: none) and its lease revision."""
        from nats.js.errors import NotFoundError

        try:
            message = await js.get_last_msg(self.stream, subject)
        except NotFoundError:
            return 0, None
        try:
            revision = json.loads(message.data or b"null").get("revision")
        except (ValueError, AttributeError):
            revision = None
        return int(message.seq or 0), revision if isinstance(revision, int) else None

    def _after_settle(self) -> None:
        if len(self._pending) < self.max_pending:
            self._room.set()
        self._settled.set()

    def _lose(self, record: _Record, reason: str, *, fenced: bool = False) -> None:
        account_id, item, _, before = record
        self.lost += 1
        self._losses.append(Lost(account_id, item, reason, before, self._clock(), fenced))
        self._lost_event.set()
        self._after_settle()

    async def _reap(self) -> None:
        """Lose what waited `ack_timeout` for its acknowledgement, oldest first."""
        loop = asyncio.get_running_loop()
        pending = self._pending
        while True:
            if not pending:
                self._work.clear()
                await self._work.wait()
                continue
            n, record = next(iter(pending.items()))
            delay = record[2] + self.ack_timeout - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            del pending[n]
            self._lose(record, f"no acknowledgement within {self.ack_timeout:g} s")
            for batch in list(self._batches.values()):  # its batch is stuck: the rest of it is lost too
                if batch.base <= n < batch.base + batch.sent:
                    self._abandon(batch, f"no acknowledgement within {self.ack_timeout:g} s for its batch")

    async def flush(self) -> None:
        """Return when everything published so far is acknowledged or lost (at most `ack_timeout` after
        the last publish, as the reaper loses whatever is late); what other tasks publish meanwhile
        is not waited for."""
        pending, until = self._pending, self._next
        batch = self._batch
        if batch is not None and batch.open and batch.unacknowledged:
            self._end(batch)  # its last items are acknowledged when it ends
        while pending and next(iter(pending)) < until:  # the oldest in flight (numbers only grow)
            self._settled.clear()
            await self._settled.wait()

    def take_lost(self) -> list[Lost]:
        losses, self._losses = self._losses, []
        self._lost_event.clear()
        return losses

    async def wait_lost(self) -> None:
        while not self._losses:
            self._lost_event.clear()
            await self._lost_event.wait()

    async def close(self) -> None:
        """Flush, stop listening, and close the connection if the sink opened it."""
        try:
            if self._reaper is not None and self._client is not None and not self._client.is_closed:
                await self.flush()
        finally:
            for task in list(self._recovering.values()):
                task.cancel()
            sends = list(
                self._ending
            )  # a batch's end or a lone resend not sent by now: its items are lost below
            for send in sends:
                send.cancel()
            await asyncio.gather(*sends, return_exceptions=True)
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            if self._reaper is not None:
                self._reaper.cancel()
                await asyncio.gather(self._reaper, return_exceptions=True)
                self._reaper = None
            for n in list(self._pending):
                self._lose(self._pending.pop(n), "the sink closed before its acknowledgement")
            sub, self._sub = self._sub, None
            client = self._client
            if client is not None and not client.is_closed:
                try:
                    if sub is not None:
                        await sub.unsubscribe()
                    if self._owned:
                        await client.close()
                except Exception as error:  # a connection already lost (nats-py drains what it can)
                    log.info("closing the NATS connection: %s", type(error).__name__)
            if self._owned:
                self._client = None


def _problem(headers: dict[str, str] | None, data: bytes) -> str | None:
    """Why an answer is no acknowledgement, or None for a PubAck."""
    if headers and headers.get("Status"):  # 503: no stream listens on the subject
        status = headers.get("Status")
        return f"refused: status {status} {headers.get('Description', '')}".rstrip()
    if not data:
        return "refused: an empty answer"
    if b'"error"' in data:
        try:
            answer = json.loads(data)
        except ValueError:
            return "refused: an answer that is not JSON"
        error = answer.get("error") if isinstance(answer, dict) else None
        if error is not None:
            return refusal(error)[1]
    return None


if TYPE_CHECKING:
    _IS_A_SINK: type[Sink] = JetStreamSink  # mypy checks that the class keeps the protocol
