"""`binance-userstream tail`: what the durable log holds, as JSON lines.

It reads a JetStream stream the sink writes (`sink`) with an ephemeral pull consumer that
acknowledges nothing (reading changes nothing for other consumers), filtered by subject:
`<prefix>.<market>.<account>.<event>`, each part `*` unless `--market`, `--account` or `--gaps`
narrows it. Each message is one line: `{"seq": 12, "account": "alice", "market": "spot",
"event": "executionReport", "time": 1700000000000, "data": {...}}`, `data` being the payload as
published (the event as Binance sent it, or a gap's JSON). Without `--follow` it ends once it has
printed what the log held when it started; with it, it waits for more until Ctrl-C or SIGTERM.
Only account ids and events are in the log (never a secret), so nothing here needs redacting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from typing import Any

from binance_userstream._cli import EXIT_BROKEN_PIPE, Stopping, _quiet_stdout
from binance_userstream._markets import MARKETS
from binance_userstream.errors import NetworkError, UserStreamError
from binance_userstream.sink._jetstream import DEFAULT_STREAM, _import_nats
from binance_userstream.sink._subjects import (
    ACCOUNT_HEADER,
    DEFAULT_PREFIX,
    EVENT_HEADER,
    EVENT_TIME_HEADER,
    GAP,
    MARKET_HEADER,
    check_prefix,
    check_token,
)

#: Messages one fetch asks for; how long a fetch waits for the first of them, in seconds.
BATCH, WAIT = 512, 1.0
#: The first connect: attempts, each within this many seconds, a second apart.
CONNECT_ATTEMPTS, CONNECT_TIMEOUT = 3, 2.0

log = logging.getLogger("binance_userstream.tail")


def _say(line: str) -> None:
    with contextlib.suppress(OSError):
        print(f"binance-userstream: {line}", file=sys.stderr, flush=True)


def add_options(tail: argparse.ArgumentParser) -> None:
    tail.add_argument(
        "--nats",
        default="nats://127.0.0.1:4222",
        metavar="URL",
        help="the NATS server (default: nats://127.0.0.1:4222)",
    )
    tail.add_argument(
        "--stream", default=DEFAULT_STREAM, help=f"the JetStream stream (default: {DEFAULT_STREAM})"
    )
    tail.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"the subjects' first token(s) (default: {DEFAULT_PREFIX})"
    )
    tail.add_argument("--market", choices=list(MARKETS), help="only this market's accounts")
    tail.add_argument("--account", metavar="ID", help="only this account")
    tail.add_argument("--gaps", action="store_true", help="only the gaps")
    tail.add_argument("--new", action="store_true", help="only what is published from now on")
    tail.add_argument("--follow", action="store_true", help="wait for more until Ctrl-C or SIGTERM")


def subject_of(args: argparse.Namespace) -> str:
    """The consumer's filter subject; ValueError (before anything is sent) for a part no subject takes."""
    prefix = check_prefix(args.prefix)
    market = args.market or "*"
    account = "*" if args.account is None else check_token(args.account, "account id")
    return f"{prefix}.{market}.{account}.{GAP if args.gaps else '>'}"


def line_of(msg: Any) -> dict[str, Any]:
    """One message as printed: its place in the stream, whose it is, and its payload."""
    headers = msg.headers or {}
    data: object
    try:
        data = json.loads(msg.data)
    except (ValueError, UnicodeDecodeError):
        data = msg.data.decode("utf-8", "replace")
    time = headers.get(EVENT_TIME_HEADER)
    return {
        "seq": msg.metadata.sequence.stream,
        "account": headers.get(ACCOUNT_HEADER),
        "market": headers.get(MARKET_HEADER),
        "event": headers.get(EVENT_HEADER),
        "time": int(time) if time is not None and time.isdigit() else None,
        "data": data,
    }


def run(args: argparse.Namespace) -> int:
    subject = subject_of(args)
    return asyncio.run(_tail(args, subject))


async def _tail(args: argparse.Namespace, subject: str) -> int:
    nats = _import_nats()
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    stopping = Stopping()
    stop = stopping.asked

    async def on_error(error: Exception) -> None:  # nats-py prints a traceback for each by default
        log.debug("NATS: %s", error)

    async def on_disconnected() -> None:
        if not stop.is_set():
            _say("lost the NATS server; reconnecting")

    async def on_reconnected() -> None:
        _say("reconnected to the NATS server")

    try:
        client = await nats.connect(
            args.nats,
            connect_timeout=CONNECT_TIMEOUT,
            max_reconnect_attempts=CONNECT_ATTEMPTS,  # the first connect's too: fail in seconds
            reconnect_time_wait=1.0,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    except (OSError, nats.errors.NoServersError) as error:
        raise NetworkError(f"could not reach the NATS server at {args.nats}: {error}") from None
    if args.follow:
        client.options["max_reconnect_attempts"] = -1  # connected once: --follow outlasts any outage
    try:
        js = client.jetstream()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.NEW if args.new else DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
        )
        try:
            consumer = await js.pull_subscribe(subject, stream=args.stream, config=config)
        except NotFoundError:
            raise UserStreamError(f"the NATS server has no stream {args.stream!r}") from None
        pending = (await consumer.consumer_info()).num_pending
        while not stop.is_set() and (args.follow or pending):
            fetch = asyncio.ensure_future(consumer.fetch(BATCH, timeout=WAIT))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fetch
                break
            try:
                messages = fetch.result()
            except TimeoutError:  # nats-py 2.16 raises its own TimeoutError, or asyncio's bare one
                continue
            for msg in messages:
                try:
                    print(json.dumps(line_of(msg), separators=(",", ":")), flush=True)
                except BrokenPipeError:
                    _quiet_stdout()
                    return EXIT_BROKEN_PIPE
                pending = msg.metadata.num_pending
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return stopping.exit_code()
