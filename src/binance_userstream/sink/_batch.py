"""JetStream's fast-ingest batches (nats-server 2.14+, a stream with `allow_batched`): one
acknowledgement for many messages, and what each of the server's answers settles. No I/O.

A batch is a run of messages that each carry a reply subject naming the batch, its message number
and an operation (`<inbox>.<id>.<flow>.ok.<n>.<op>.$FI`, JetStream's ADR-50). The server answers
the first message with the flow it grants (acknowledge every `msgs` messages), then sends one
`{"type":"ack","seq":n}` every `msgs` messages: every message of the batch up to `n` is in the log,
except those it reported otherwise first, each as soon as it found it: `{"type":"err","seq":n}` (a
message refused: a claim's condition that no longer holds, a stream limit) and `{"type":"gap"}`
(messages that never reached the stream). Both travel in order before the acknowledgement that
covers them, on the same connection; a connection that drops can lose them, so a batch that lives
through a reconnect is abandoned and whatever of it was not acknowledged is lost (with a gap: never
silently). The last messages of a burst, fewer than `msgs`, are acknowledged by ending the batch:
an end-of-batch message (not stored) answered by a PubAck with the batch's `count`.

The gap mode is `ok`: a refused message does not end the batch, so a claim's refusal of one
account's messages costs the others nothing.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

#: The flow the sink asks for (an acknowledgement every FLOW messages at most); the server grants
#: less at first and doubles it per acknowledgement (nats-server 2.15 grants at most 250).
FLOW = 500
#: Acknowledgements a batch may wait for at once: its messages in flight are at most the flow
#: granted times this (the server slows a publisher down by granting a smaller flow).
OUTSTANDING = 4
#: Seconds with nothing published after which a batch is ended, so that its last messages (fewer
#: than a flow) are acknowledged: the latency a burst's tail pays.
LINGER = 0.002
#: JetStream's error codes: batches not allowed on the stream, a batch the server does not know
#: (ended, or abandoned after 10 s without a message).
BATCH_DISABLED = 10205
BATCH_UNKNOWN = 10208


class Answer(NamedTuple):
    """One of the server's answers to a batch: `kind` is "ack" (every message up to `seq` is
    settled; `flow` granted from now on), "err" (message `seq` refused: `problem`), "gap" (messages
    `first` to `seq` - 1 never reached the stream), "done" (the batch ended, its first `seq`
    messages settled) or "error" (the batch or message refused as a whole: `code`, `problem`)."""

    kind: str
    seq: int = 0
    flow: int = 0
    first: int = 0
    code: int = 0
    problem: str = ""


def refusal(error: Any) -> tuple[int, str]:
    """A JetStream error (`{"code", "err_code", "description"}`, or anything else) as its error
    code (0 if none) and why in words (`refused: <description>`, at most 200 characters of it)."""
    if isinstance(error, dict):
        code = error.get("err_code")
        return (code if type(code) is int else 0), f"refused: {str(error.get('description'))[:200]}"
    return 0, f"refused: {str(error)[:200]}"


def answer(data: bytes) -> Answer:
    """What the server's answer `data` to a batch message says (see `Answer`)."""
    try:
        value = json.loads(data)
    except ValueError:
        return Answer("error", problem="refused: an answer that is not JSON")
    if not isinstance(value, dict):
        return Answer("error", problem="refused: an answer that is not a JSON object")
    kind = value.get("type")
    seq = value.get("seq")
    seq = seq if type(seq) is int else 0
    if kind == "ack":
        flow = value.get("msgs")
        return Answer("ack", seq, flow=flow if type(flow) is int and flow > 0 else 1)
    if kind == "err":
        code, problem = refusal(value.get("error"))
        return Answer("err", seq, code=code, problem=problem)
    if kind == "gap":
        first = value.get("last_seq")
        return Answer("gap", seq, first=first if type(first) is int else 1)
    if "error" in value:
        code, problem = refusal(value["error"])
        return Answer("error", code=code, problem=problem)
    count = value.get("count")
    if "batch" in value and type(count) is int:
        return Answer("done", count)
    return Answer("stored")  # a plain PubAck: a server without fast batches stored the message alone


class Batch:
    """One batch's numbering: the reply subject of each of its messages, and the sink's number of
    each (`base` + message number - 1: a batch's messages are consecutive in the sink's count)."""

    __slots__ = ("acked", "base", "first", "flow", "head", "id", "open", "reconnects", "sent")

    def __init__(self, inbox: str, batch_id: str, base: int, reconnects: int, flow: int = FLOW) -> None:
        self.id = batch_id
        self.base = base
        self.head = f"{inbox}.{batch_id}.{flow}.ok."
        self.sent = 0  # messages sent
        self.acked = 0  # every message up to this one is settled
        self.flow = 1  # acknowledged every `flow` messages: what the server granted
        self.open = False  # the server answered the first message
        self.reconnects = reconnects  # the connection's reconnect count when the batch began
        self.first: tuple[str, bytes, str] | None = None  # the first message (`_wire`), until answered

    def reply(self) -> str:
        """The reply subject of the next message (the first one starts the batch)."""
        n = self.sent = self.sent + 1
        return f"{self.head}{n}.1.$FI" if n > 1 else f"{self.head}1.0.$FI"

    def end_reply(self) -> str:
        """The reply subject of an end-of-batch message: not stored, answered with a PubAck."""
        return f"{self.head}{self.sent + 1}.3.$FI"

    @property
    def full(self) -> bool:
        """As many messages in flight as the flow granted allows."""
        return self.sent - self.acked >= self.flow * OUTSTANDING

    @property
    def unacknowledged(self) -> bool:
        return self.sent > self.acked

    def number(self, seq: int) -> int:
        """The sink's number of the batch's message `seq`."""
        return self.base + seq - 1

    def numbers(self, first: int, last: int) -> range:
        """The sink's numbers of messages `first` to `last` of the batch (within what was sent)."""
        return range(self.base + max(first, 1) - 1, self.base + min(last, self.sent))


def parse_reply(rest: str) -> tuple[str, int] | None:
    """The batch id and message number in a reply subject past the sink's inbox
    (`<id>.<flow>.ok.<n>.<op>.$FI`), or None when it is no batch's."""
    parts = rest.split(".")
    if len(parts) != 6 or parts[5] != "$FI" or not parts[3].isdigit():
        return None
    return parts[0], int(parts[3])
