"""What an item becomes in the durable log: its subject, its headers, its payload and its message id.

No I/O: `Envelope.of` turns one account's item into the bytes and strings a sink publishes, or
refuses it (ValueError) before anything is sent.

Subjects are `<prefix>.<market>.<account id>.<event wire name>` (the event's `e`), with `_gap`,
`_reconciled` and `_error` for what the library adds in-band, `_owner` for a worker's claim of the
account (`JetStreamSink.claim`) and `_unknown` for an event with no `e`: one account's items share
a subject prefix, so a consumer filters on one account (`binance.spot.acct-1.>`), one market
(`binance.spot.>`) or only gaps (`binance.*.*._gap`).

The message id (`Nats-Msg-Id`) is a 128-bit BLAKE2b digest of the market, the account id and the
payload: the same event received on two connections (a rotation's make-before-break overlap) or by
two workers (a failover) has the same id, and JetStream stores it once if both arrive within the
stream's duplicate window. Limits: an event published again after the window is stored twice (the
window must cover a rotation's overlap and a lease's failover); the id is only as stable as the
text: a frame's envelope is taken off first (`unwrapped`: a combined stream's names a listenKey,
the WebSocket API's `subscriptionId` differs between connections), but two connections that
formatted one event differently would give two ids; and an event re-serialized from its model
(`text=None`) gets another id than the same event's raw text. A gap's, a Reconciled's and an
error's payload is their own JSON (a gap's times are the publishing process's clock), so the same
one published twice has one id while two gaps with any field different have two; two items with
identical content for one account (an error repeated word for word) are taken for one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

import attrs

from binance_userstream._secrets import server_text
from binance_userstream.account._state import Reconciled
from binance_userstream.stream._decode import millis, unwrap
from binance_userstream.stream._gap import _WHY, StreamGap
from binance_userstream.stream._raw import RawEvent

#: The default first token of every subject.
DEFAULT_PREFIX = "binance"

#: One subject token the sink writes: a market, an account id or an event's wire name. NATS
#: forbids only whitespace, `.`, `*` and `>`, but a consumer's filter is easier to write when every
#: token is plain: letters, digits, `_` and `-`, as account ids already are (`fleet.Account`).
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A subject prefix: one or more plain tokens separated by dots.
PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64})*")

#: The subject's last token for what the library itself publishes, and for an event with no `e`.
GAP, RECONCILED, ERROR, UNKNOWN = "_gap", "_reconciled", "_error", "_unknown"
#: The subject's last token of an account's owner messages: which worker publishes it from there
#: on (`JetStreamSink.claim`); every later message of the account is refused unless it names it.
OWNER = "_owner"
#: The headers every message carries (besides `Nats-Msg-Id`); the event time only when known.
ACCOUNT_HEADER = "Binance-Account"
MARKET_HEADER = "Binance-Market"
EVENT_HEADER = "Binance-Event"
EVENT_TIME_HEADER = "Binance-Event-Time"
#: The worker that published the message (`workers`), when the sink is told.
WORKER_HEADER = "Binance-Worker"
MSG_ID_HEADER = "Nats-Msg-Id"
#: JetStream's optimistic concurrency headers: a message is stored only if the last message on
#: the second header's subject (the account's owner message) has the first header's sequence.
EXPECTED_SEQUENCE_HEADER = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_SUBJECT_HEADER = "Nats-Expected-Last-Subject-Sequence-Subject"


def check_token(value: object, what: str) -> str:
    """`value` if it can stand as one subject token, else ValueError (TypeError for a non-str)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not TOKEN.fullmatch(value):
        raise ValueError(
            f"{what} {value[:70]!r} is not 1 to 64 letters, digits, '_' or '-' (a subject token)"
        )
    return value


def check_prefix(value: str) -> str:
    """`value` if it is a subject prefix of plain tokens (`binance`, `prod.binance`), else ValueError."""
    if not isinstance(value, str) or not PREFIX.fullmatch(value):
        raise ValueError(
            f"subject prefix {str(value)[:70]!r} is not dot-separated letters, digits, '_' or '-'"
        )
    return value


def _plain(value: Any) -> Any:
    """A Reconciled's parts as JSON values: attrs classes as objects (without `raw`, the model they
    were read from), mappings as lists of their values (each value names its own key), decimals
    as strings (exact, as Binance sends them), tuples as lists."""
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value)) if f.name != "raw"}
    if isinstance(value, Mapping):
        return [_plain(v) for v in value.values()]
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def gap_json(gap: StreamGap) -> dict[str, Any]:
    """A StreamGap as a JSON object: its fields, why in words, and the line `describe()` gives."""
    return {
        "reason": gap.reason,
        "why": _WHY[gap.reason],
        "started_at": gap.started_at,
        "ended_at": gap.ended_at,
        "last_event_time": gap.last_event_time,
        "dropped": gap.dropped,
        "description": gap.describe(),
    }


def error_json(error: BaseException) -> dict[str, Any]:
    """An account's fatal error as a JSON object: its class and its message, scrubbed of anything
    shaped like a credential (a listenKey in a URL, a 60-character key) and bounded in length."""
    return {"error": type(error).__name__, "message": server_text(str(error))}


#: A frame's envelope around the event object, as Binance writes them: a combined stream's
#: `{"stream":"<listenKey>","data":{...}}` and the WebSocket API's `{"subscriptionId":N,"event":{...}}`
#: or `{"event":{...}}`. Group 1 is the event object's text, byte for byte.
_ENVELOPE = re.compile(
    r'\{\s*(?:"stream"\s*:\s*"[^"\\]*"\s*,\s*"data"|"subscriptionId"\s*:\s*\d+\s*,\s*"event"|"event")'
    r"\s*:\s*(\{.*\})\s*\}\s*",
    re.DOTALL,
)


def unwrapped(text: str) -> str:
    """The event object's JSON inside a frame: the frame itself when it is the bare event (the
    derivatives' raw streams), else what its envelope wraps, so that no listenKey (a combined
    stream's name) reaches the log and the same event has the same payload, and so the same msg
    id, on every connection (a `subscriptionId` differs between them). An envelope written
    otherwise than Binance writes it (its keys in another order) is parsed and its event
    re-serialized: safe, no longer byte for byte."""
    if text.startswith('{"e":'):
        return text
    match = _ENVELOPE.fullmatch(text)
    if match is not None:
        return match.group(1)
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if not isinstance(payload, dict) or "e" in payload:
        return text
    inner = unwrap(payload)
    return text if inner is payload else _dumps(inner)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


#: BLAKE2b as message ids use it, before any data: copied for each id (cheaper than making one).
_ID_HASH = hashlib.blake2b(digest_size=16, person=b"binance-sink")


def msg_id(market: str, account_id: str, payload: bytes) -> str:
    """The `Nats-Msg-Id` of an account's payload: 32 hex digits of BLAKE2b over market, account, payload."""
    return _identity(payload, _id_suffix(market, account_id))


def _id_suffix(market: str, account_id: str) -> bytes:
    """What a message id hashes after the payload: the market and the account."""
    return b"\x00" + market.encode() + b"\x00" + account_id.encode()


def _identity(payload: bytes, suffix: bytes) -> str:
    digest = _ID_HASH.copy()
    digest.update(payload)
    digest.update(suffix)
    return digest.hexdigest()


class Envelope(NamedTuple):
    """One item as it is published: `subject`, `payload` (UTF-8 JSON), `headers` (with the message
    id), and the event time (`E`, milliseconds) when it has one."""

    subject: str
    payload: bytes
    headers: dict[str, str]
    event_time: int | None

    @classmethod
    def of(
        cls, account_id: str, item: object, text: str | None, *, market: str, prefix: str = DEFAULT_PREFIX
    ) -> Envelope:
        """`item` of `account_id` as a sink publishes it on `market` (see `Addresses.envelope`)."""
        return Addresses(market, prefix).envelope(account_id, item, text)


#: Tokens an `Addresses` remembers having checked, at most (a fleet's accounts, Binance's event names).
_REMEMBERED = 100_000


class Addresses:
    """The envelopes of one market's items under one prefix, remembering the account ids and wire
    names it has checked (a publish is then a few dictionary lookups, not regular expressions)."""

    def __init__(self, market: str, prefix: str = DEFAULT_PREFIX, worker: str | None = None) -> None:
        """`worker`: a name every message carries in `Binance-Worker` (None: no such header)."""
        self.market = check_token(market, "market")
        self.prefix = check_prefix(prefix)
        self.worker = None if worker is None else check_token(worker, "worker id")
        # Per account: its subjects' beginning, what its message ids hash after the payload, and the
        # header lines every one of its messages repeats (checked and written once).
        self._accounts: dict[str, tuple[str, bytes, str]] = {}
        self._worker_line = "" if self.worker is None else f"{WORKER_HEADER}: {self.worker}\r\n"
        self._names: set[str] = {GAP, RECONCILED, ERROR, UNKNOWN, OWNER}

    def _account(self, account_id: str) -> tuple[str, bytes, str]:
        known = self._accounts.get(account_id)
        if known is None:
            base = f"{self.prefix}.{self.market}.{check_token(account_id, 'account id')}."
            lines = f"{ACCOUNT_HEADER}: {account_id}\r\n{MARKET_HEADER}: {self.market}\r\n"
            known = (base, _id_suffix(self.market, account_id), lines)
            if len(self._accounts) < _REMEMBERED:
                self._accounts[account_id] = known
        return known

    def owner_subject(self, account_id: str) -> str:
        """The subject of `account_id`'s owner messages."""
        return self._account(account_id)[0] + OWNER

    def owner_headers(self, account_id: str) -> dict[str, str]:
        """The headers of `account_id`'s owner message, as every message of the account has them."""
        headers = {ACCOUNT_HEADER: account_id, MARKET_HEADER: self.market, EVENT_HEADER: OWNER}
        if self.worker is not None:
            headers[WORKER_HEADER] = self.worker
        return headers

    def _name(self, wire: str) -> str:
        if wire not in self._names:
            check_token(wire, "event wire name")
            if len(self._names) < _REMEMBERED:
                self._names.add(wire)
        return wire

    def envelope(self, account_id: str, item: object, text: str | None) -> Envelope:
        """`item` of `account_id` as published. `text` is the event's JSON as Binance sent it
        (published byte for byte); None for a StreamGap, a Reconciled or an error, which are
        serialized here, and for an event whose text the caller does not have (its model's
        `to_dict()` is serialized instead, with the message id limit the module explains).
        ValueError, before anything is sent, when the account id or the event's wire name is no
        subject token."""
        _, (subject, payload, kind, when, identity) = self._parts(account_id, item, text)
        headers = {MSG_ID_HEADER: identity, ACCOUNT_HEADER: account_id, MARKET_HEADER: self.market}
        headers[EVENT_HEADER] = kind
        if when is not None:
            headers[EVENT_TIME_HEADER] = str(when)
        if self.worker is not None:
            headers[WORKER_HEADER] = self.worker
        return Envelope(subject, payload, headers, when)

    def message(self, account_id: str, item: object, text: str | None) -> tuple[str, bytes, str, int | None]:
        """What `envelope` gives, the headers written as the lines of a header block (`Name:
        value\r\n`, in the same order): what the sink sends, without a dictionary per message."""
        known = self._accounts.get(account_id)
        kind = item.event_type if type(item) is RawEvent else None
        if known is not None and kind in self._names and text is not None and text.startswith('{"e":'):
            # A worker's event (a RawEvent, its text the bare event, its account and name known):
            # what `_parts` does, without its lookups; the same bytes (tests/test_sink_subjects).
            base, suffix, fixed = known
            when = item.event_time  # type: ignore[attr-defined]  # a RawEvent's: checked when read
            payload = text.encode()
            identity, subject = _identity(payload, suffix), base + kind
        else:
            fixed, (subject, payload, kind, when, identity) = self._parts(account_id, item, text)
        timed = "" if when is None else f"{EVENT_TIME_HEADER}: {when}\r\n"
        lines = f"{MSG_ID_HEADER}: {identity}\r\n{fixed}{EVENT_HEADER}: {kind}\r\n{timed}{self._worker_line}"
        return subject, payload, lines, when

    def _parts(
        self, account_id: str, item: object, text: str | None
    ) -> tuple[str, tuple[str, bytes, str, int | None, str]]:
        """The account's fixed header lines, and the subject, payload, event name, event time and
        message id of `item` of `account_id`."""
        base, suffix, fixed = self._account(account_id)
        wire = getattr(item, "event_type", None)
        if type(wire) is str:  # an event (a model or a RawEvent): the common case first
            kind, when = self._name(wire), millis(getattr(item, "event_time", None))
            body: Callable[[], Any] | None = getattr(item, "to_dict", None)
        else:
            kind, when, body = _special(item)
        text = _dumps(body() if body is not None else None) if text is None else unwrapped(text)
        payload = text.encode()
        return fixed, (base + kind, payload, kind, when, _identity(payload, suffix))


def _special(item: object) -> tuple[str, int | None, Callable[[], Any] | None]:
    """The subject's last token, the time and the JSON maker of an item that is no event with an `e`."""
    if isinstance(item, StreamGap):
        return GAP, item.last_event_time, lambda: gap_json(item)
    if isinstance(item, Reconciled):
        return RECONCILED, item.state.as_of, lambda: _plain(item)
    if isinstance(item, BaseException):
        return ERROR, None, lambda: error_json(item)
    return UNKNOWN, millis(getattr(item, "event_time", None)), getattr(item, "to_dict", None)
