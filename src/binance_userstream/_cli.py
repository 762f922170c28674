"""The `binance-userstream` command: create, keepalive, close, run a session, or run the simulator.

argparse (the standard library's) is enough for five subcommands and keeps the install thin.
The API key is read from $BINANCE_API_KEY or a file (or stdin), never from an argument, which
every user of the machine could read in `ps`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from binance_userstream._client import UserDataStream
from binance_userstream._clock import AcceleratedClock, Clock, SystemClock
from binance_userstream._hosts import HOSTS
from binance_userstream._policy import RetryPolicy
from binance_userstream._secrets import API_KEY_ENV, read_secret, redact
from binance_userstream._session import KEEPALIVE_INTERVAL, EventKind, SessionEvent
from binance_userstream.errors import (
    AuthenticationError,
    EndpointRetiredError,
    IPBannedError,
    ListenKeyNotFoundError,
    NetworkError,
    RateLimitedError,
    ServerError,
    UserStreamError,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_RATE_LIMITED = 5
EXIT_RETIRED = 6
EXIT_UNAVAILABLE = 7
EXIT_INTERRUPTED = 130

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    success (for run: stopped by Ctrl-C, SIGTERM or --for)
  {EXIT_ERROR}    any other error
  {EXIT_USAGE}    bad usage or input (nothing was sent)
  {EXIT_AUTH}    the API key was refused (-2014, -2015, 401)
  {EXIT_NOT_FOUND}    the listenKey does not exist (-1125)
  {EXIT_RATE_LIMITED}    rate limited (429) or IP banned (418)
  {EXIT_RETIRED}    the endpoint is retired (410; spot since 2026-02-20)
  {EXIT_UNAVAILABLE}    network failure or server error, after retries
"""

EPILOG = f"""\
examples:
  export {API_KEY_ENV}=...                 # or --api-key-file PATH (- for stdin)
  binance-userstream simulator --port 8765 &
  binance-userstream create --base-url http://127.0.0.1:8765 --print-key
  binance-userstream keepalive - --base-url http://127.0.0.1:8765 < key.txt
  binance-userstream run --base-url http://127.0.0.1:8765 --json
  binance-userstream run --base-url testnet --close-on-exit

{EXIT_CODES}"""

_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """`90`, `90s`, `30m`, `4h`, `1.5d` in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 4h)")
    return float(match["n"]) * _UNITS[match["unit"]]


def positive(text: str) -> float:
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, minus two ways a secret typed by mistake could reach the screen or a file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # `--api-key SECRET` must not be taken for an abbreviation of `--api-key-file SECRET`.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            message = "unrecognized arguments (not repeated here: they may hold a secret); see --help"
        super().error(message)


def _parser() -> argparse.ArgumentParser:
    client = _Parser(add_help=False)
    group = client.add_argument_group("connection")
    group.add_argument(
        "--base-url",
        default="production",
        help=f"a URL, or one of: {', '.join(HOSTS)} (default: production). Plain http only to loopback.",
    )
    group.add_argument(
        "--api-key-file",
        metavar="PATH",
        help=f"read the API key from this file (- for stdin) instead of ${API_KEY_ENV}",
    )
    group.add_argument("--timeout", type=positive, default=10.0, help="seconds per request (default: 10)")
    group.add_argument("--no-retry", action="store_true", help="one attempt per request, no retries")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: log each attempt and retry to stderr; -vv: the HTTP libraries' logs too (all redacted)",
    )

    parser = _Parser(
        prog="binance-userstream",
        description="Start, keep alive and close Binance user data streams (listenKeys).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    create = commands.add_parser(
        "create",
        parents=[client],
        help="start a stream and get its listenKey",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    out = create.add_mutually_exclusive_group()
    out.add_argument(
        "--print-key", action="store_true", help="print the whole listenKey to stdout (a credential)"
    )
    out.add_argument(
        "--key-file", metavar="PATH", help="write the listenKey to this file, readable by you only"
    )

    for name, text in (("keepalive", "extend a listenKey by 60 minutes"), ("close", "close a listenKey")):
        sub = commands.add_parser(name, parents=[client], help=text, epilog=EXIT_CODES, formatter_class=fmt)
        sub.add_argument("key", metavar="KEY", help="the listenKey, or - to read it from stdin")

    run = commands.add_parser(
        "run",
        parents=[client],
        help="keep a listenKey alive until Ctrl-C or SIGTERM, printing status lines",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    run.add_argument(
        "--listen-key", metavar="KEY", help="adopt this key (- for stdin) instead of creating one"
    )
    run.add_argument(
        "--interval", type=duration, default=KEEPALIVE_INTERVAL, help="between keepalives (default: 30m)"
    )
    run.add_argument(
        "--close-on-exit", action="store_true", help="close the key on exit (it is shared per account)"
    )
    run.add_argument("--json", action="store_true", help="print one JSON object per line")
    run.add_argument("--for", dest="run_for", type=duration, metavar="DURATION", help="stop after this long")
    run.add_argument(
        "--speed", type=positive, default=1.0, help="run the clock this many times faster (simulator)"
    )

    sim = commands.add_parser(
        "simulator", help="run a local Binance simulator", formatter_class=fmt, epilog="faults: " + FAULT_HELP
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)")
    sim.add_argument(
        "--retired", action="store_true", help="answer like production since 2026-02-20 (410, HTML)"
    )
    sim.add_argument("--speed", type=positive, default=1.0, help="run the clock this many times faster")
    sim.add_argument(
        "--api-keys-file", metavar="PATH", help="accept only these API keys (one per line): -2015"
    )
    sim.add_argument(
        "--weight-limit", type=int, default=6000, help="request weight per minute (default: 6000)"
    )
    sim.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="answer a request with a fault"
    )
    sim.add_argument(
        "-v", "--verbose", action="count", default=0, help="log each request to stderr (redacted)"
    )
    return parser


FAULT_HELP = (
    "5XX, 429:RETRY_AFTER, 418:RETRY_AFTER, 410, drop, lose-keys, delay:SECONDS"
    " (each replaces one answer, in order)"
)


def _client(args: argparse.Namespace) -> UserDataStream:
    api_key = read_secret(args.api_key_file, "API key") if args.api_key_file else None
    retry = RetryPolicy.off() if args.no_retry else RetryPolicy()
    return UserDataStream(api_key, args.base_url, timeout=args.timeout, retry=retry)


def _exit_code(error: BaseException) -> int:
    codes: list[tuple[type[BaseException], int]] = [
        (AuthenticationError, EXIT_AUTH),
        (ListenKeyNotFoundError, EXIT_NOT_FOUND),
        (RateLimitedError, EXIT_RATE_LIMITED),
        (IPBannedError, EXIT_RATE_LIMITED),
        (EndpointRetiredError, EXIT_RETIRED),
        (NetworkError, EXIT_UNAVAILABLE),
        (ServerError, EXIT_UNAVAILABLE),
        (ValueError, EXIT_USAGE),
        (TypeError, EXIT_USAGE),
        (OSError, EXIT_USAGE),
    ]
    return next((code for cls, code in codes if isinstance(error, cls)), EXIT_ERROR)


def _create(args: argparse.Namespace) -> int:
    with _client(args) as uds:
        key = uds.create()
    if args.print_key:
        print(key)
    elif args.key_file:
        fd = os.open(args.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        print(f"created listenKey {redact(key)}, written to {args.key_file}")
    else:
        print(f"created listenKey {redact(key)} (use --print-key or --key-file to get it whole)")
    return EXIT_OK


def _key_argument(value: str) -> str:
    return read_secret("-", "listenKey") if value == "-" else value


def _on_key(args: argparse.Namespace) -> int:
    """`keepalive KEY` and `close KEY`: the same call shape, a different operation."""
    key = _key_argument(args.key)
    with _client(args) as uds:
        if args.command == "keepalive":
            uds.keepalive(key)
            print(f"kept alive listenKey {redact(key)} for 60 more minutes")
        else:
            uds.close(key)
            print(f"closed listenKey {redact(key)}")
    return EXIT_OK


def _clock_line(seconds: float) -> str:
    whole = int(seconds)
    return f"+{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _run(args: argparse.Namespace) -> int:
    clock: Clock = AcceleratedClock(args.speed) if args.speed != 1 else SystemClock()
    stop = threading.Event()
    start: list[float] = []  # the first event's time: status lines count from the key's creation
    failure: list[UserStreamError] = []

    def on_event(event: SessionEvent) -> None:
        if not start:
            start.append(event.at)
        elapsed = event.at - start[0]
        if args.json:
            line = json.dumps({**event.to_json(), "at": round(elapsed, 3), "wall": time.time()})
        else:
            line = f"{_clock_line(elapsed)} {event.describe()}"
        print(line, flush=True)
        if event.kind is EventKind.FAILED:
            assert event.error is not None
            failure.append(event.error)
            stop.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    listen_key = _key_argument(args.listen_key) if args.listen_key else None
    with (
        _client(args) as uds,
        uds.session(
            listen_key=listen_key,
            interval=args.interval,
            close_on_exit=args.close_on_exit,
            on_event=on_event,
            clock=clock,
        ),
    ):
        if args.run_for is None:
            stop.wait()
        else:
            clock.wait(args.run_for, stop)
    return _exit_code(failure[0]) if failure else EXIT_OK


def _simulator(args: argparse.Namespace) -> int:
    from binance_userstream.simulator import Fault, Simulator

    keys = None
    if args.api_keys_file:
        keys = [line.strip() for line in Path(args.api_keys_file).read_text().splitlines() if line.strip()]
    faults = [Fault.parse(spec) for spec in args.fault]
    clock = AcceleratedClock(args.speed) if args.speed != 1 else SystemClock()
    sim = Simulator(
        args.host, args.port, clock=clock, api_keys=keys, retired=args.retired, weight_limit=args.weight_limit
    )
    sim.inject(*faults)
    mode = " (retired: every answer is 410)" if args.retired else ""
    print(f"simulator listening on {sim.url}{mode}", flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(EXIT_OK))
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
    return EXIT_OK


def _configure_logging(verbosity: int) -> None:
    """-v: this package's attempt and retry lines (session events are printed anyway); -vv: all."""
    if verbosity >= 2:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    elif verbosity == 1:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("  %(name)s: %(message)s"))
        handler.addFilter(lambda record: not record.name.startswith("binance_userstream.session"))
        logger = logging.getLogger("binance_userstream")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


COMMANDS = {"create": _create, "keepalive": _on_key, "close": _on_key, "run": _run, "simulator": _simulator}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserStreamError, ValueError, TypeError, OSError) as error:
        print(f"binance-userstream: error: {error}", file=sys.stderr)
        return _exit_code(error)


if __name__ == "__main__":
    sys.exit(main())
