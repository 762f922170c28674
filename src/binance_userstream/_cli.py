"""The `binance-userstream` command: listen to the events, print the account (its mirror's snapshot,
and with --follow its every change), follow a fleet of accounts (`_cli_fleet`), create, keepalive
or close a listenKey, run a keepalive session, or run the simulator.

argparse (the standard library's) is enough for eight subcommands and keeps the install thin.
The API key is read from $BINANCE_API_KEY or a file (or stdin), never from an argument, which
every user of the machine could read in `ps`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import logging
import math
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, cast

import attrs

from binance_userstream._account_lines import (
    change_json,
    change_line,
    changes,
    reconciled_json,
    reconciled_lines,
    state_json,
    state_table,
)
from binance_userstream._client import AsyncUserDataStream, UserDataStream
from binance_userstream._clock import AcceleratedClock, Clock, SystemClock
from binance_userstream._keyfile import check_destination, write_secret
from binance_userstream._markets import DEFAULT_MARKET, MARKETS
from binance_userstream._policy import RetryPolicy
from binance_userstream._readable import line as readable_line
from binance_userstream._secrets import API_KEY_ENV, printable, read_secret, redact
from binance_userstream._session import (
    KEEPALIVE_INTERVAL,
    MAX_INTERVAL,
    MIN_INTERVAL,
    AsyncKeepaliveSession,
    EventKind,
    SessionEvent,
    check_interval,
)
from binance_userstream.account import AccountState, AsyncAccountMirror, Reconciled
from binance_userstream.errors import (
    AuthenticationError,
    BinanceAPIError,
    EndpointRetiredError,
    IPBannedError,
    ListenKeyNotFoundError,
    NetworkError,
    RateLimitedError,
    ServerError,
    UserStreamError,
)
from binance_userstream.fleet._accounts_file import AccountsFileError
from binance_userstream.stream._async import AsyncEventStream
from binance_userstream.stream._core import Item as StreamItem
from binance_userstream.stream._core import StreamEvent, StreamEventKind
from binance_userstream.stream._gap import StreamGap

if TYPE_CHECKING:
    from binance_userstream.simulator import Fault

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_RATE_LIMITED = 5
EXIT_RETIRED = 6
EXIT_UNAVAILABLE = 7
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, the shell's code for a process ended by Ctrl-C
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # 141, as if killed by SIGPIPE (`| head`)
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143

#: After Ctrl-C or SIGTERM, `run` gives closing the key (--close-on-exit) this long, then leaves.
CLOSE_GRACE = 1.0

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    success (for run: stopped by --for, or by Ctrl-C or SIGTERM once it had a key)
  {EXIT_ERROR}    any other error
  {EXIT_USAGE}    bad usage or input (nothing was sent)
  {EXIT_AUTH}    the API key was refused (-2014, -2015, 401)
  {EXIT_NOT_FOUND}    the listenKey does not exist (-1125)
  {EXIT_RATE_LIMITED}    rate limited (429) or IP banned (418)
  {EXIT_RETIRED}    the endpoint is retired (410; spot since 2026-02-20)
  {EXIT_UNAVAILABLE}    network failure or server error, after retries
  {EXIT_INTERRUPTED}  interrupted by Ctrl-C before it finished (for run: before it had a key)
  {EXIT_BROKEN_PIPE}  stdout was closed (a broken pipe, e.g. `| head`)
  {EXIT_TERMINATED}  terminated by SIGTERM before it finished (for run: before it had a key)
"""

PS_WARNING = "A key given as an argument is visible to every user of this machine (ps)"

EPILOG = f"""\
examples:
  export {API_KEY_ENV}=...                 # or --api-key-file PATH (- for stdin)
  binance-userstream simulator --port 8765 &
  binance-userstream listen --market usdm --base-url http://127.0.0.1:8765 --stream-url ws://127.0.0.1:8765
  binance-userstream listen --market spot --api-secret-file secret.txt    # on Binance: the WebSocket API
  binance-userstream account --market usdm --base-url http://127.0.0.1:8765 \\
      --stream-url ws://127.0.0.1:8765 --api-secret-file secret.txt
  binance-userstream account --market usdm --follow --json --api-secret-file secret.txt
  binance-userstream fleet --accounts accounts.toml --market spot    # many accounts (file mode 0600)
  binance-userstream fleet serve --accounts accounts.toml --nats nats://127.0.0.1:4222    # a worker
  binance-userstream tail --nats nats://127.0.0.1:4222 --account alice --follow    # the durable log
  binance-userstream create --market usdm --base-url http://127.0.0.1:8765 --key-file key.txt
  binance-userstream keepalive --market usdm --key-file key.txt --base-url http://127.0.0.1:8765
  binance-userstream close - --market usdm --base-url http://127.0.0.1:8765 < key.txt
  binance-userstream run --market usdm --base-url http://127.0.0.1:8765 --json --key-file key.txt
  binance-userstream run --market coinm --base-url testnet --close-on-exit

{PS_WARNING}: pass listenKeys as - (stdin) or in a file.

{EXIT_CODES}"""

_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

# argparse types. Their errors never repeat the value: it may be a secret pasted in the wrong place.


def duration(text: str) -> float:
    """`90`, `90s`, `30m`, `4h`, `1.5d` in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError("not a duration (e.g. 90s, 30m, 4h)")
    return float(match["n"]) * _UNITS[match["unit"]]


def interval(text: str) -> float:
    """A duration that keeps a key alive (see check_interval)."""
    try:
        return check_interval(duration(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def _integer(text: str, low: int, high: int | None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise argparse.ArgumentTypeError(f"must be a whole number {bounds}")
    return value


def port(text: str) -> int:
    return _integer(text, 0, 65535)


def weight_limit(text: str) -> int:
    return _integer(text, 1, None)


def _pairs(text: str) -> tuple[str, ...]:
    pairs = tuple(pair.strip() for pair in text.split(",") if pair.strip())
    if not pairs:
        raise argparse.ArgumentTypeError("give one or more pairs, comma-separated: BTCUSDT,ETHBTC")
    return pairs


FAULT_HELP = (
    "5XX, 429:RETRY_AFTER, 418:RETRY_AFTER, 410, drop, lose-keys, delay:SECONDS"
    " (each replaces one answer, in order)"
)


def fault(text: str) -> Fault:
    """A simulator fault (`Fault.parse` refuses seconds that are not finite or are negative)."""
    from binance_userstream.simulator import Fault

    try:
        return Fault.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown fault, or its seconds not a finite number >= 0: use {FAULT_HELP}"
        ) from None


class _Parser(argparse.ArgumentParser):
    """argparse, minus the ways a secret typed by mistake could reach the screen or a file: no
    abbreviations, and no error that repeats what was typed."""

    json_errors = False  # `run --json`: a usage error is also a JSON line on stdout
    command: str | None = None  # the subcommand named on the command line, if any
    flags: dict[str, list[str]] = {}  # noqa: RUF012 (each subcommand's long options, set by _parser)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # `--api-key SECRET` must not be taken for an abbreviation of `--api-key-file SECRET`.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """One line that says what is wrong, and one that says where help is, as GNU tools do: not
        the whole usage, nine lines for `listen`, in which the mistake is hard to find."""
        if message.startswith("unrecognized arguments"):
            meant = _close_flags(message.removeprefix("unrecognized arguments:").split())
            hint = f"; did you mean {' or '.join(meant)}?" if meant else ""
            message = f"unrecognized arguments (not repeated here: they may hold a secret){hint}"
        message = _INVALID_CHOICE.sub(r"invalid choice (not repeated here); choose from \g<choices>", message)
        message = _INVALID_VALUE.sub(r"invalid \g<type> value (not repeated here)", message)
        if _Parser.json_errors:
            _print_json_error("UsageError", message, EXIT_USAGE)
        prog = self.prog if " " in self.prog or _Parser.command is None else f"{self.prog} {_Parser.command}"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nTry '{prog} --help' for more information.\n")


def _close_flags(typed: list[str]) -> list[str]:
    """The flags of this command close to the unknown options typed (never the typed text itself)."""
    flags = _Parser.flags.get(_Parser.command or "", ())
    meant: list[str] = []
    for word in typed:
        if word.startswith("--"):
            meant += [
                f for f in difflib.get_close_matches(word.split("=", 1)[0], flags, n=1) if f not in meant
            ]
    return meant


_INVALID_CHOICE = re.compile(r"invalid choice: .* \(choose from (?P<choices>[^()]*)\)$", re.DOTALL)
_INVALID_VALUE = re.compile(r"invalid (?P<type>\S+) value: .*$", re.DOTALL)


def _print_json_error(kind: str, detail: str, code: int) -> None:
    with contextlib.suppress(OSError):
        print(json.dumps({"event": "error", "error": kind, "detail": detail, "exit": code}), flush=True)


def _parser() -> argparse.ArgumentParser:
    client = _Parser(add_help=False)
    group = client.add_argument_group("connection")
    group.add_argument(
        "--market",
        choices=list(MARKETS),
        default=DEFAULT_MARKET,
        help=f"the market (default: {DEFAULT_MARKET}, whose listenKey was retired on 2026-02-20; `listen` "
        "subscribes spot and margin on the WebSocket API)",
    )
    group.add_argument(
        "--base-url",
        default=None,
        help="a URL, or a host name of the market ("
        + "; ".join(f"{m.name}: {', '.join(m.hosts)}" for m in MARKETS.values())
        + "); default: the market's production host. Plain http only to loopback.",
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
        description="Print a Binance account's user data events (listen), many accounts' (fleet), or its"
        " balances, positions and open orders (account), start, keep alive and close listenKeys, or run"
        " a local simulator.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
        "--key-file",
        metavar="PATH",
        help="write the listenKey to this file: atomically, readable by you only (a symlink is refused)",
    )

    for name, text in (("keepalive", "extend a listenKey by 60 minutes"), ("close", "close a listenKey")):
        sub = commands.add_parser(name, parents=[client], help=text, epilog=EXIT_CODES, formatter_class=fmt)
        key = sub.add_mutually_exclusive_group(required=True)
        key.add_argument(
            "key",
            metavar="KEY",
            nargs="?",
            help=f"the listenKey, or - to read it from stdin. {PS_WARNING}: prefer - or --key-file",
        )
        key.add_argument("--key-file", metavar="PATH", help="read the listenKey from this file")

    listen = commands.add_parser(
        "listen",
        parents=[client],
        help="print the account's user-data events (and any gap) until Ctrl-C or SIGTERM",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    _stream_options(
        listen, "signing (spot: the WebSocket API's signed subscription; margin needs the API key alone)"
    )
    listen.add_argument("--json", action="store_true", help="print one JSON object per line (errors too)")
    listen.add_argument(
        "--events",
        type=_event_names,
        metavar="NAMES",
        help="print only these event types (wire names, comma-separated, e.g. ORDER_TRADE_UPDATE);"
        " gaps are always printed",
    )
    listen.add_argument(
        "--for", dest="run_for", type=duration, metavar="DURATION", help="stop after this long"
    )
    account = commands.add_parser(
        "account",
        parents=[client],
        help="print the account's balances, positions and open orders (--follow: and every change)",
        description="Take a snapshot of the account from REST (its reads are SIGNED on every market) "
        "and print it; with --follow, keep it current from the event stream, healed from REST after "
        "every gap, and print each change and each reconciliation until Ctrl-C or SIGTERM.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    _stream_options(account, "signing (required on every market: the account's REST reads are SIGNED)")
    account.add_argument(
        "--json",
        action="store_true",
        help="the snapshot as one JSON document; with --follow, one JSON object per line (errors too)",
    )
    account.add_argument(
        "--follow",
        action="store_true",
        help="after the snapshot, print each change, gap and reconciliation until Ctrl-C or SIGTERM",
    )
    account.add_argument(
        "--for", dest="run_for", type=duration, metavar="DURATION", help="stop after this long"
    )
    from binance_userstream import _cli_fleet  # it builds on this module's helpers

    fleet = commands.add_parser(
        "fleet",
        help="print many accounts' events as JSON lines tagged with each account's id",
        description="Subscribe every account of an accounts file, packed on few shared connections "
        "within Binance's per-IP limits, and print each event, gap and account's end as a JSON line "
        "tagged with its account's id, until Ctrl-C, SIGTERM or --for.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    _cli_fleet.add_options(fleet, _event_names)
    from binance_userstream import _cli_serve

    serve = fleet.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND").add_parser(
        "serve",
        help="be one worker of a deployment: publish a share of the accounts' events to NATS JetStream",
        description="Hold a fair share of the accounts file's accounts by leases in NATS (shared with "
        "every other worker given the same file and NATS), publish their events and gaps to JetStream, "
        "take over a dead worker's accounts after the lease TTL, and hand this worker's over on SIGTERM "
        "or Ctrl-C. Prints each lease change and a status line. Needs the [nats] extra.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    _cli_serve.add_options(serve)
    from binance_userstream import _cli_tail

    tail = commands.add_parser(
        "tail",
        help="print what the durable log (NATS JetStream) holds, as JSON lines",
        description="Read the JetStream stream a fleet's workers publish to and print each message "
        "(an event as Binance sent it, or a gap) as a JSON line with its account, market and event "
        "type; with --follow, wait for more until Ctrl-C or SIGTERM. Needs the [nats] extra.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    _cli_tail.add_options(tail)
    tail.add_argument("-v", "--verbose", action="count", default=0, help="-v: this package's log; -vv: all")
    run = commands.add_parser(
        "run",
        parents=[client],
        help="keep a listenKey alive until Ctrl-C or SIGTERM, printing status lines",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    adopt = run.add_mutually_exclusive_group()
    adopt.add_argument(
        "--listen-key",
        metavar="KEY",
        help=f"adopt this key (- for stdin) instead of creating one. {PS_WARNING}: prefer -",
    )
    adopt.add_argument("--listen-key-file", metavar="PATH", help="adopt the key in this file")
    run.add_argument(
        "--key-file",
        metavar="PATH",
        help="keep the current listenKey in this file, rewritten atomically (mode 0600) whenever the key is"
        " created or replaced, so another process can follow the session (a symlink is refused)",
    )
    run.add_argument(
        "--interval",
        type=interval,
        default=KEEPALIVE_INTERVAL,
        help=f"between keepalives, {MIN_INTERVAL:g}s to {MAX_INTERVAL / 60:g}m (default: 30m)",
    )
    run.add_argument(
        "--close-on-exit",
        action="store_true",
        help=f"close the key on exit (it is shared per account); after a signal, within {CLOSE_GRACE:g} s",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object per line (errors too)")
    run.add_argument("--for", dest="run_for", type=duration, metavar="DURATION", help="stop after this long")
    run.add_argument(
        "--speed", type=positive, default=1.0, help="run the clock this many times faster (simulator)"
    )

    sim = commands.add_parser(
        "simulator", help="run a local Binance simulator", formatter_class=fmt, epilog="faults: " + FAULT_HELP
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sim.add_argument("--port", type=port, default=8765, help="port (default: 8765; 0 picks a free one)")
    sim.add_argument(
        "--retired",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="spot's listenKeys answer 410 (HTML), as on Binance since 2026-02-20 (default); "
        "--no-retired serves their old lifecycle, for programs written before",
    )
    isolated = sim.add_mutually_exclusive_group()
    isolated.add_argument(
        "--isolated-symbols",
        type=_pairs,
        metavar="PAIRS",
        help="the pairs with an isolated margin account, comma-separated; any other is refused -11001 "
        "(default: a few common pairs, printed at start)",
    )
    sim.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="serve WebSocket upgrades from web pages of this origin (https://app.example; '*': any), "
        "besides this machine's",
    )
    isolated.add_argument(
        "--any-isolated-symbol",
        action="store_true",
        help="mint a listenToken for any isolated margin pair (Binance refuses pairs without an account)",
    )
    sim.add_argument("--speed", type=positive, default=1.0, help="run the clock this many times faster")
    sim.add_argument(
        "--api-keys-file",
        metavar="PATH",
        help="accept only these API keys, one per line, any other -2015; a line 'KEY SECRET' also "
        "verifies that key's signatures with its HMAC secret (test keys: many accounts at once)",
    )
    sim.add_argument(
        "--weight-limit",
        type=weight_limit,
        default=None,
        help="request weight per minute per IP, for every market (default: each market's documented limit)",
    )
    sim.add_argument(
        "--connection-limit",
        type=weight_limit,
        default=None,
        help="new WebSocket connections per 5 minutes per IP, past which upgrades are refused 429 "
        "(default: Binance's 300)",
    )
    sim.add_argument(
        "--ws-weight-limit",
        type=weight_limit,
        default=None,
        help="WebSocket API request weight per minute per IP (default: Binance's 6000)",
    )
    events_list = sim.add_mutually_exclusive_group()
    events_list.add_argument(
        "--lenient-events",
        action="store_true",
        help="give every event to a USD-M stream opened without an events= list (production, and the "
        "default, give it none)",
    )
    events_list.add_argument(  # the switch of old command lines, whose behaviour is now the default
        "--strict-events",
        dest="lenient_events",
        action="store_false",
        help="give no event to a USD-M stream opened without an events= list: the default",
    )
    sim.add_argument(
        "--fault",
        type=fault,
        action="append",
        default=[],
        metavar="SPEC",
        help="answer one request with a fault",
    )
    sim.add_argument(
        "-v", "--verbose", action="count", default=0, help="log each request to stderr (redacted)"
    )
    _Parser.flags = {
        name: [flag for flag in sub._option_string_actions if flag.startswith("--")]
        for name, sub in commands.choices.items()
    }
    return parser


def _stream_options(command: argparse.ArgumentParser, signing_title: str) -> None:
    """The options `listen` and `account` share: the stream's URL, the signer and the isolated pair."""
    command.add_argument(
        "--stream-url",
        default=None,
        help="a ws(s) URL, or a stream host name of the market; default: its production stream host",
    )
    signing = command.add_argument_group(signing_title)
    secret = signing.add_mutually_exclusive_group()
    secret.add_argument(
        "--api-secret-file",
        metavar="PATH",
        help="read the HMAC secret from this file (- for stdin) instead of $BINANCE_API_SECRET",
    )
    secret.add_argument(
        "--private-key-file",
        metavar="PATH",
        help="sign with this Ed25519 or RSA private key (PEM) instead of $BINANCE_PRIVATE_KEY_FILE",
    )
    signing.add_argument(
        "--private-key-passphrase-file",
        metavar="PATH",
        help="read the private key's passphrase from this file instead of $BINANCE_PRIVATE_KEY_PASSPHRASE",
    )
    signing.add_argument(
        "--symbol",
        metavar="PAIR",
        help="--market margin: the isolated margin account of this pair (default: cross margin)",
    )


def _version() -> str:
    try:
        return metadata.version("binance-userstream")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _options(args: argparse.Namespace) -> dict[str, Any]:
    api_key = read_secret(args.api_key_file, "API key") if args.api_key_file else None
    retry = RetryPolicy.off() if args.no_retry else RetryPolicy()
    return {
        "api_key": api_key,
        "base_url": args.base_url,
        "market": args.market,
        "timeout": args.timeout,
        "retry": retry,
    }


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
    if args.key_file:
        check_destination(args.key_file)  # before a key is created that could not be saved
    with UserDataStream(**_options(args)) as uds:
        key = uds.create()
    if args.print_key:
        print(key)
    elif args.key_file:
        try:
            write_secret(args.key_file, key)
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or error
            message = f"created listenKey {redact(key)} but could not write it: {reason}"
            raise UserStreamError(message) from None
        print(f"created listenKey {redact(key)}, written to {args.key_file}")
    else:
        print(f"created listenKey {redact(key)} (use --print-key or --key-file to get it whole)")
    return EXIT_OK


def _listen_key(value: str | None, path: str | None) -> str | None:
    """The listenKey from an argument (`-`: stdin) or a file, or None if neither was given."""
    if path is not None:
        return read_secret(path, "listenKey")
    if value == "-":
        return read_secret("-", "listenKey")
    return value


def _on_key(args: argparse.Namespace) -> int:
    """`keepalive KEY` and `close KEY`: the same call shape, a different operation."""
    key = _listen_key(args.key, args.key_file)
    assert key is not None  # argparse requires one of KEY and --key-file
    with UserDataStream(**_options(args)) as uds:
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


class _StdoutClosed(Exception):
    """Whoever read stdout has gone (`| head`)."""


class Stopping:
    """SIGINT and SIGTERM on the running loop, noted: `asked` is set at the first, and `exit_code()`
    is how a command asked to stop ends (128 + the first signal's number; EXIT_OK if none came)."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.asked = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._note, signum)

    def _note(self, signum: int) -> None:
        self.signals.append(signum)
        self.asked.set()

    def exit_code(self) -> int:
        return 128 + self.signals[0] if self.signals else EXIT_OK


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit cannot fail on a broken pipe again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class _Phased:
    """A command whose step in flight (`phase`: a request, a wait, entering a mirror) a signal can cut."""

    phase: asyncio.Future[Any] | None = None

    async def _phase(self, awaitable: Awaitable[Any]) -> tuple[bool, Any]:
        """Run one step as a task `_cut` can cancel: (False, None) if it was cut."""
        self.phase = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait({self.phase})
        finally:
            phase, self.phase = self.phase, None
        if phase.cancelled():
            return False, None
        return True, phase.result()

    def _cut(self) -> None:
        if self.phase is not None:
            self.phase.cancel()


class _Runner(_Phased):
    """`run`: a session on the asyncio client, so that Ctrl-C and SIGTERM can cancel whatever is in
    flight (a request to a hanging server, a 429 wait, a retry wait) at once.

    A signal before the session has its key abandons the start (exit 130 or 143, no key kept); once
    it has one, the session is left (exit 0) and --close-on-exit gets CLOSE_GRACE seconds. A second
    signal, or the grace running out, cuts whatever is still in flight.
    """

    def __init__(self, args: argparse.Namespace, listen_key: str | None) -> None:
        self.args = args
        self.listen_key = listen_key
        self.clock: Clock = AcceleratedClock(args.speed) if args.speed != 1 else SystemClock()
        self.start: float | None = None  # the first event's time: lines count from the key's creation
        self.stdout_closed = False
        self.signals: list[int] = []
        self.started = False

    def on_event(self, event: SessionEvent) -> None:
        if self.args.key_file and event.kind in _NEW_KEY and event.listen_key:
            # Before the line is printed, and (for `replaced`) before the session uses the key.
            write_secret(self.args.key_file, event.listen_key)
        if self.start is None:
            self.start = event.at
        elapsed = event.at - self.start
        if self.args.json:
            line = json.dumps({**event.to_json(), "at": round(elapsed, 3), "wall": time.time()})
        else:
            line = f"{_clock_line(elapsed)} {event.describe()}"
        if self.stdout_closed:
            return
        try:
            print(line, flush=True)
        except BrokenPipeError:
            self.stdout_closed = True
            _quiet_stdout()
            self.stop.set()

    def on_signal(self, signum: int) -> None:
        first = not self.signals
        self.signals.append(signum)
        self.stop.set()
        if not self.started or not first:
            self._cut()
        else:
            asyncio.get_running_loop().call_later(CLOSE_GRACE, self._cut)

    async def _until_stopped(self, session: AsyncKeepaliveSession) -> None:
        """Until a signal, --for, or the session failing (which raises its error)."""
        waits = [asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(session.wait())]
        if self.args.run_for is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep(self.args.run_for)))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        for waiter in done:
            waiter.result()

    async def main(self) -> int:
        self.stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.on_signal, signum)
        args = self.args
        async with AsyncUserDataStream(**_options(args)) as uds:
            session = uds.session(
                listen_key=self.listen_key,
                interval=args.interval,
                close_on_exit=args.close_on_exit,
                on_event=self.on_event,
                clock=self.clock,
            )
            entered, _ = await self._phase(session.__aenter__())
            if not entered:
                how = "interrupted" if self.signals[0] == signal.SIGINT else "terminated"
                message = f"{how} before the session had a key"
                print(f"binance-userstream: {message}", file=sys.stderr)
                if args.json:
                    _print_json_error(how.capitalize(), message, 128 + self.signals[0])
                return 128 + self.signals[0]
            self.started = True
            failure: UserStreamError | None = None
            if not self.stop.is_set():
                try:
                    await self._until_stopped(session)
                except UserStreamError as error:
                    failure = error
            left, _ = await self._phase(session.__aexit__(None, None, None))
            if not left:
                print(
                    f"binance-userstream: stopped before the key could be closed (within {CLOSE_GRACE:g} s);"
                    " it expires 60 minutes after its last keepalive",
                    file=sys.stderr,
                )
        if failure is not None:
            raise failure  # a one-line error (and a JSON one with --json) after the FAILED event
        return EXIT_BROKEN_PIPE if self.stdout_closed else EXIT_OK


#: The events after which `run --key-file` rewrites the file.
_NEW_KEY = frozenset({EventKind.CREATED, EventKind.ADOPTED, EventKind.REPLACED})


def _run(args: argparse.Namespace) -> int:
    listen_key = _listen_key(args.listen_key, args.listen_key_file)
    if args.key_file:
        check_destination(args.key_file)  # before a key is created that could not be saved
    return asyncio.run(_Runner(args, listen_key).main())


def _simulator(args: argparse.Namespace) -> int:
    from binance_userstream.simulator import ISOLATED_SYMBOLS, TEST_API_KEY, TEST_API_SECRET, Simulator

    keys = None
    secrets: dict[str, str] = {}
    if args.api_keys_file:
        keys = []
        for line in Path(args.api_keys_file).read_text().splitlines():
            key, _, secret = line.strip().partition(" ")
            if key:
                keys.append(key)
            if secret.strip():
                secrets[key] = secret.strip()
    clock = AcceleratedClock(args.speed) if args.speed != 1 else SystemClock()
    sim = Simulator(
        args.host,
        args.port,
        clock=clock,
        api_keys=keys,
        retired=args.retired,
        weight_limit=args.weight_limit,
        connection_limit=args.connection_limit,
        ws_weight_limit=args.ws_weight_limit,
        strict_events=not args.lenient_events,
        isolated_symbols=None if args.any_isolated_symbol else (args.isolated_symbols or ISOLATED_SYMBOLS),
        allowed_origins=None if "*" in args.allow_origin else args.allow_origin,
    )
    for key, secret in secrets.items():
        sim.register_key(key, secret=secret)
    sim.inject(*args.fault)
    where = sim.url
    if sim.all_interfaces:  # 0.0.0.0 is no address to connect to: say so, and give one that is
        host, port = sim.address
        where = f"all interfaces ({host} port {port}); from this machine: {sim.url}"
    print(f"simulator listening on {where}", flush=True)
    print(f"WebSocket API (spot and margin events): {sim.ws_api_url}", flush=True)
    print(
        f"test account: API key {TEST_API_KEY}, HMAC secret {TEST_API_SECRET}"
        " (Binance's documented example pair: published, not a secret)",
        flush=True,
    )
    spot = "410 as on Binance since 2026-02-20" if args.retired else "served as before 2026-02-20"
    pairs = "any pair" if args.any_isolated_symbol else ",".join(args.isolated_symbols or ISOLATED_SYMBOLS)
    print(f"spot listenKeys: {spot}; isolated margin accounts: {pairs}", flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(EXIT_OK))
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
    return EXIT_OK


_NOT_AT_V = ("binance_userstream.session", "binance_userstream.stream.websockets")


def _configure_logging(verbosity: int) -> None:
    """-v: this package's attempt and retry lines (session events are printed anyway); -vv: all."""
    if verbosity >= 2:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    elif verbosity == 1:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("  %(name)s: %(message)s"))
        # Not the session's lines (printed anyway) nor websockets' handshakes and frames (-vv's).
        handler.addFilter(lambda record: not record.name.startswith(_NOT_AT_V))
        logger = logging.getLogger("binance_userstream")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


def _event_names(text: str) -> frozenset[str]:
    """The wire names of --events, each one some market's stream sends (markets type them apart)."""
    known = {name for market in MARKETS.values() for name in market.stream_events}
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    if not names or names - known:
        raise argparse.ArgumentTypeError(f"use event wire names from: {', '.join(sorted(known))}")
    return names


def _wanted(item: StreamItem, names: frozenset[str] | None) -> bool:
    """Gaps always; an event when no --events was given, or when it names the event's type."""
    return names is None or isinstance(item, StreamGap) or item.to_dict().get("e") in names


def _listen_line(item: StreamItem, as_json: bool) -> str:
    """One output line for a delivered item: the event's own fields, or the gap."""
    if as_json:
        return json.dumps(listen_json(item))
    if isinstance(item, StreamGap):
        return f"GAP {item.describe()}"
    return readable_line(cast(attrs.AttrsInstance, item))


def listen_json(item: StreamItem) -> dict[str, Any]:
    """What `listen --json` prints of an item: the event as Binance sent it (a listenKey it names
    cut to a prefix), or the gap's fields."""
    if isinstance(item, StreamGap):
        return {
            "event": "gap",
            "reason": item.reason,
            "seconds": round(item.duration, 3),
            "last_event_time": item.last_event_time,
            "dropped": item.dropped,
        }
    payload = item.to_dict()
    if "listenKey" in payload:  # listenKeyExpired names the key: a credential, never printed whole
        payload["listenKey"] = redact(str(payload["listenKey"]))
    return payload


#: `listen` says on stderr the first failure of a run of them, then every this many.
FAILURES_SHOWN_EVERY = 10

#: What fails and is tried again: a connection attempt, a listenToken mint, a keepalive.
_FAILING: frozenset[StreamEventKind | EventKind] = frozenset(
    {StreamEventKind.RECONNECTING, StreamEventKind.TOKEN_RENEW_FAILED, EventKind.KEEPALIVE_FAILED}
)
#: What ends a run of failures.
_RECOVERED: frozenset[StreamEventKind | EventKind] = frozenset(
    {StreamEventKind.CONNECTED, StreamEventKind.TOKEN_RENEWED, EventKind.KEPT_ALIVE}
)


class _Failures:
    """Which of the stream's happenings `listen` says on stderr, so that retrying is never silent:
    the first failure of a run, every FAILURES_SHOWN_EVERY-th after it, and the recovery that ends
    it (all of them are in the log with -v)."""

    def __init__(
        self,
        every: int = FAILURES_SHOWN_EVERY,
        *,
        failing: frozenset[StreamEventKind | EventKind] = _FAILING,
        recovered: frozenset[StreamEventKind | EventKind] = _RECOVERED,
    ) -> None:
        self.every = every
        self.failing = failing
        self.recovered = recovered
        self.in_a_row = 0
        self.last: str | None = None  # the latest failure, as said
        self.connected = False

    def line(self, event: SessionEvent | StreamEvent) -> str | None:
        """The line to say for `event`, or None."""
        if event.kind is StreamEventKind.CONNECTED:
            self.connected = True
        if event.kind in self.failing:
            self.in_a_row += 1
            self.last = event.describe()
            if self.in_a_row == 1 or self.in_a_row % self.every == 0:
                return f"{self.last} (failure {self.in_a_row} in a row; retrying, said every {self.every})"
        elif event.kind in self.recovered and self.in_a_row:
            failures, self.in_a_row = self.in_a_row, 0
            return f"{event.describe()} after {failures} failure{'s' if failures > 1 else ''}"
        return None


class _Listener:
    """`listen`: the async event stream, ended by Ctrl-C, SIGTERM or --for within about a second."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.signals: list[int] = []
        self.failures = _Failures()

    def on_event(self, event: SessionEvent | StreamEvent) -> None:
        line = self.failures.line(event)
        if line is not None:
            with contextlib.suppress(OSError):
                print(f"binance-userstream: {line}", file=sys.stderr, flush=True)

    async def main(self) -> int:
        args = self.args
        options = {**_options(args), **_signing_options(args), "stream_url": args.stream_url}
        async with AsyncUserDataStream(**options) as uds, uds.events(on_event=self.on_event) as stream:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._on_signal, signum, stream)
            if args.run_for is not None:
                loop.call_later(args.run_for, stream.close)
            async for item in stream:
                if not _wanted(item, args.events):
                    continue
                line = _listen_line(item, args.json)
                try:
                    print(line, flush=True)
                except BrokenPipeError:
                    _quiet_stdout()
                    return EXIT_BROKEN_PIPE
        if self.signals:
            return 128 + self.signals[0]
        if not self.failures.connected and self.failures.last is not None:
            raise NetworkError(
                f"the stream never connected within --for; the last failure: {self.failures.last}"
            )
        return EXIT_OK

    def _on_signal(self, signum: int, stream: AsyncEventStream) -> None:
        self.signals.append(signum)
        stream.close()


class _Account(_Phased):
    """`account`: the account's mirror on the asyncio client, printed once (the snapshot) or, with
    --follow, change by change until Ctrl-C, SIGTERM or --for.

    Entering the mirror (the stream connected, then the snapshot taken) and following it each run
    as a task: a signal or --for during the entry cancels it at once (nothing to print: 130, 143,
    or for --for a NetworkError, 7); while following, they close the mirror as `listen` closes its
    stream, and cut it after CLOSE_GRACE if it is still busy (a heal retrying its reads).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.signals: list[int] = []
        self.timed_out = False
        self.failures = _Failures(failing=_FAILING | _HEALING, recovered=_RECOVERED | _HEALED)
        self.mirror: AsyncAccountMirror | None = None

    def on_event(self, event: SessionEvent | StreamEvent) -> None:
        line = self.failures.line(event)
        if line is not None:
            with contextlib.suppress(OSError):
                print(f"binance-userstream: {line}", file=sys.stderr, flush=True)

    def _stop(self) -> None:
        if self.mirror is None:
            self._cut()
            return
        self.mirror.close()
        asyncio.get_running_loop().call_later(CLOSE_GRACE, self._cut)

    def _on_signal(self, signum: int) -> None:
        self.signals.append(signum)
        self._stop()

    def _on_time_up(self) -> None:
        self.timed_out = True
        self._stop()

    async def main(self) -> int:
        args = self.args
        options = {**_options(args), **_signing_options(args), "stream_url": args.stream_url}
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        if args.run_for is not None:
            loop.call_later(args.run_for, self._on_time_up)
        async with AsyncUserDataStream(**options) as uds:
            account = uds.account(on_event=self.on_event)  # SignerMissingError before anything is sent
            entered, _ = await self._phase(account.__aenter__())
            if not entered:
                return self._not_entered()
            self.mirror = account
            if self.signals or self.timed_out:  # said while the entry was ending: nothing to follow
                account.close()
            try:
                done, code = (False, None) if self.signals else await self._phase(self._print(account))
            except BaseException as error:
                await account.__aexit__(type(error), error, error.__traceback__)
                raise
            await account.__aexit__(None, None, None)
        if self.signals:
            return 128 + self.signals[0]
        return cast(int, code) if done else EXIT_OK

    def _not_entered(self) -> int:
        """Cut before the snapshot was taken: by a signal (its exit code), or by --for (no account
        to print: a NetworkError that says the last failure, if any)."""
        if self.signals:
            return 128 + self.signals[0]
        last = f"; the last failure: {self.failures.last}" if self.failures.last else ""
        raise NetworkError(f"no snapshot of the account within --for{last}")

    async def _print(self, account: AsyncAccountMirror) -> int:
        """The snapshot; with --follow, each change, gap and Reconciled after it."""
        args, market = self.args, self.args.market
        state = account.state
        if not args.follow:
            if args.json:
                return self._say(json.dumps(state_json(state, market), indent=2))
            return self._say(*state_table(state, market, positions=_has_positions(market)))
        if args.json:
            code = self._say(json.dumps(state_json(state, market)))
        else:
            code = self._say(*state_table(state, market, positions=_has_positions(market)), "")
        if code != EXIT_OK:
            return code
        async for item in account:
            lines = self._follow_lines(item, state, account.state)
            state = account.state
            if lines and self._say(*lines) != EXIT_OK:
                return EXIT_BROKEN_PIPE
        return EXIT_OK

    def _follow_lines(self, item: object, before: AccountState, after: AccountState) -> list[str]:
        as_json = self.args.json
        if isinstance(item, Reconciled):
            return [json.dumps(reconciled_json(item))] if as_json else reconciled_lines(item)
        if isinstance(item, StreamGap):
            return [_listen_line(item, as_json)]
        found = changes(before, after)
        if as_json:
            return [json.dumps({"event": "change", "as_of": after.as_of, **change_json(c)}) for c in found]
        return [change_line(change, after.as_of) for change in found]

    def _say(self, *lines: str) -> int:
        try:
            print("\n".join(lines), flush=True)
        except BrokenPipeError:
            _quiet_stdout()
            return EXIT_BROKEN_PIPE
        return EXIT_OK


#: What fails while the mirror heals a gap, and what ends a run of those failures.
_HEALING: frozenset[StreamEventKind | EventKind] = frozenset({StreamEventKind.RECONCILE_RETRY})
_HEALED: frozenset[StreamEventKind | EventKind] = frozenset({StreamEventKind.RECONCILED})


def _has_positions(market: str) -> bool:
    """Spot and margin hold balances and orders, no positions: their table leaves the section out."""
    return market not in ("spot", "margin")


def _account(args: argparse.Namespace) -> int:
    return asyncio.run(_Account(args).main())


def _signing_options(args: argparse.Namespace) -> dict[str, Any]:
    """The client's signing keywords from `listen`'s files (none given: the environment's)."""
    options: dict[str, Any] = {}
    if args.api_secret_file:
        options["api_secret"] = read_secret(args.api_secret_file, "API secret")
    if args.private_key_file:
        options["private_key"] = Path(args.private_key_file)
    if args.private_key_passphrase_file:
        passphrase = read_secret(args.private_key_passphrase_file, "passphrase", token=False)
        options["private_key_passphrase"] = passphrase
    if args.symbol:
        options["symbol"] = args.symbol
    return options


def _listen(args: argparse.Namespace) -> int:
    _check_events_of_market(args.events, args.market)
    return asyncio.run(_Listener(args).main())


def _check_events_of_market(names: frozenset[str] | None, market: str) -> None:
    """--events names only events the market's stream sends: another market's name would filter out
    everything but gaps, which looks like a quiet account (ValueError, before anything is sent)."""
    sent = MARKETS[market].stream_events
    others = sorted((names or frozenset()) - set(sent))
    if others:
        sends = ", ".join(sent)
        raise ValueError(
            f"--events {','.join(others)}: not sent by --market {market}, whose stream sends {sends}"
        )


def _fleet(args: argparse.Namespace) -> int:
    if args.fleet_command == "serve":
        from binance_userstream import _cli_serve

        return _cli_serve.run(args)
    if args.accounts is None:
        raise ValueError("fleet: --accounts is required")
    from binance_userstream import _cli_fleet

    return _cli_fleet.run(args)


def _tail(args: argparse.Namespace) -> int:
    from binance_userstream import _cli_tail

    return _cli_tail.run(args)


COMMANDS = {
    "create": _create,
    "keepalive": _on_key,
    "close": _on_key,
    "run": _run,
    "listen": _listen,
    "account": _account,
    "fleet": _fleet,
    "tail": _tail,
    "simulator": _simulator,
}


class _Terminated(BaseException):
    """SIGTERM, raised where the main thread is (outside `run`, which handles it itself)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _Parser.command = next((word for word in argv if word in COMMANDS), None)
    # fleet prints JSON only (its serve subcommand, with --json)
    _Parser.json_errors = "--json" in argv or (_Parser.command == "fleet" and "serve" not in argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = _parser().parse_args(argv)
        _configure_logging(args.verbose)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("binance-userstream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("binance-userstream: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except (UserStreamError, ValueError, TypeError, OSError) as error:
        code, message = _exit_code(error), error_message(error)
        print(f"binance-userstream: error: {message}", file=sys.stderr)
        if _Parser.json_errors:
            _print_json_error(type(error).__name__, message, code)
        return code


#: The library's errors name its Python arguments; the command's name its flags instead.
_FLAGS = {
    "api_key": "--api-key-file",
    "api_secret": "--api-secret-file",
    "private_key_passphrase": "--private-key-passphrase-file",
    "private_key": "--private-key-file",
    "symbol": "--symbol",
    "stream_url": "--stream-url",
    "base_url": "--base-url",
    "listen_key": "the listenKey",  # KEY, - or --key-file
}
_MARKET = re.compile(r'\bmarket="(\w+)"')
#: What a message quotes (repr's quotes: a path, a value) stands as it is: `'/keys/api_key.txt'`.
_QUOTED = re.compile(r"""('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")
_WORDING = (
    (re.compile(r"\bpass (?=(?:api_key|api_secret|private_key|private_key_passphrase)=)"), "use "),
    (re.compile(r" to the client\b"), ""),
    (re.compile(r"\bevents\(\) on\b"), "listen on"),
    (re.compile(r" \(pass PEM bytes, PEM text starting with -----BEGIN, or the path of a PEM file\)"), ""),
    (re.compile(r"\b(" + "|".join(_FLAGS) + r")\b=?"), lambda match: _FLAGS[match[1]]),
)


def error_message(error: BaseException) -> str:
    """What the command prints of `error`: the library's words in flags (`in_flags`), Binance's own
    `msg` as Binance wrote it ("Invalid symbol." stays, never "Invalid --symbol.")."""
    text = str(error)
    if isinstance(error, AccountsFileError):  # its fields are no flags: api_secret is not --api-secret-file
        return text
    if isinstance(error, BinanceAPIError):
        head, said, tail = text.partition(printable(error.msg))
        if said:
            return in_flags(head) + said + in_flags(tail)
    return in_flags(text)


def in_flags(message: str) -> str:
    """A library message as the command's user needs it: its flags where it names Python arguments
    (`pass api_secret=` is `use --api-secret-file`), outside what it quotes."""
    pieces = _QUOTED.split(_MARKET.sub(r"--market \1", message))
    for index in range(0, len(pieces), 2):  # the quoted pieces are the odd ones
        for pattern, replacement in _WORDING:
            pieces[index] = pattern.sub(replacement, pieces[index])
    return "".join(pieces)


if __name__ == "__main__":
    sys.exit(main())
