"""`binance-userstream fleet`: many accounts' events over few shared connections, as JSON lines.

The accounts come from a TOML file of ids and key-file paths (`load_accounts`: mode 0600, checked
before anything is sent). Each event is the line `listen --json` prints, tagged with its account:
`{"account": "alice", "e": "balanceUpdate", ...}`; a gap is `{"account": "alice", "event": "gap",
...}` and an account's ending error `{"account": "alice", "event": "ended", "error": ...}`. The
shared connections' happenings (opened, rotated, lost, held by a limit) and each account's
failures are said on stderr, as `listen` says its own. Signals, `--for` and exit codes are
`listen`'s; once every account has ended, the command ends with the first one's exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
from typing import Any

from binance_userstream._cli import (
    _FAILING,
    _RECOVERED,
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    _check_events_of_market,
    _exit_code,
    _Failures,
    _quiet_stdout,
    _wanted,
    duration,
    listen_json,
)
from binance_userstream._markets import MARKETS
from binance_userstream._policy import RetryPolicy
from binance_userstream._session import SessionEvent
from binance_userstream.errors import NetworkError
from binance_userstream.fleet import AsyncFleet, FleetItem, load_accounts
from binance_userstream.stream._core import StreamEvent, StreamEventKind

#: An account's happenings said on stderr besides its failures: each means events were at stake.
_ACCOUNT_SAID = frozenset(
    {
        StreamEventKind.KEY_EXPIRED,
        StreamEventKind.KEY_REFUSED,
        StreamEventKind.OVERFLOW,
        StreamEventKind.TERMINATED,
    }
)


#: A shared connection's happenings that cost each of its accounts its subscription.
_LOSSES = frozenset({StreamEventKind.DISCONNECTED, StreamEventKind.STALLED})


def _say(line: str | None) -> None:
    if line is not None:
        with contextlib.suppress(OSError):
            print(f"binance-userstream: {line}", file=sys.stderr, flush=True)


def add_options(fleet: argparse.ArgumentParser, event_names: Any) -> None:
    """`fleet`'s options (`event_names`: `listen --events`' argparse type)."""
    fleet.add_argument(
        "--accounts",
        metavar="PATH",
        help="the accounts file (TOML, mode 0600): an [[account]] table per account with its id, "
        "api_key_file, and api_secret_file or private_key_file (see the CLI guide)",
    )
    fleet.add_argument("--market", choices=list(MARKETS), default="spot", help="the market (default: spot)")
    fleet.add_argument("--base-url", default=None, help="a URL, or a host name of the market (as `listen`)")
    fleet.add_argument(
        "--stream-url", default=None, help="a ws(s) URL, or a stream host name of the market (as `listen`)"
    )
    fleet.add_argument(
        "--events",
        type=event_names,
        metavar="NAMES",
        help="print only these event types (wire names, comma-separated); gaps and ends always",
    )
    fleet.add_argument(
        "--for", dest="run_for", type=duration, metavar="DURATION", help="stop after this long"
    )
    fleet.add_argument("--no-retry", action="store_true", help="one attempt per REST request, no retries")
    fleet.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: this package's log; -vv: all (redacted)"
    )


def run(args: argparse.Namespace) -> int:
    _check_events_of_market(args.events, args.market)
    return asyncio.run(_FleetCommand(args).main())


def fleet_json(account_id: str, item: FleetItem) -> dict[str, Any]:
    """One output object: `listen --json`'s for an event or a gap, or the account's end, tagged."""
    if isinstance(item, BaseException):
        detail = _in_fields(str(item))
        return {"account": account_id, "event": "ended", "error": type(item).__name__, "detail": detail}
    return {"account": account_id, **listen_json(item)}


#: The library's errors name its Python arguments; an account's are the accounts file's fields.
_ARGUMENT = re.compile(r"\b(api_key|api_secret|private_key_passphrase|private_key)\b=?")


def _in_fields(message: str) -> str:
    return _ARGUMENT.sub(lambda match: f"{match[1]}_file", message)


class _FleetCommand:
    """The fleet on asyncio, ended by Ctrl-C, SIGTERM, --for, or every account having ended."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.signals: list[int] = []
        self.shared = _Failures()  # the shared connections' failures, said as `listen` says its own
        self.failing: dict[str, _Failures] = {}  # an account's own (its key, its token), when it has some
        self.ended: dict[str, BaseException] = {}
        self.held: list[tuple[str, SessionEvent | StreamEvent]] = []  # accounts' failures, this turn
        self.lost: set[str | None] = set()  # what the shared connections lost this turn said

    def on_event(self, account_id: str | None, event: SessionEvent | StreamEvent) -> None:
        if account_id is None:
            if event.kind in _LOSSES:
                self.lost.add(event.detail)
            line = self.shared.line(event)
            _say(line if line is not None or event.kind in _FAILING else event.describe())
        elif event.kind in _ACCOUNT_SAID:
            _say(f"account {account_id}: {event.describe()}")
        elif event.kind in _FAILING:
            # Held to the end of the loop's turn: a shared connection lost says so once, not once
            # more for each of its thousand accounts (their notes come first).
            if not self.held:
                asyncio.get_running_loop().call_soon(self._flush)
            self.held.append((account_id, event))
        else:
            _say(self._account_failure(account_id, event))

    def _flush(self) -> None:
        held, self.held = self.held, []
        lost, self.lost = self.lost, set()
        for account_id, event in held:
            if getattr(event, "detail", None) not in lost:
                _say(self._account_failure(account_id, event))

    def _account_failure(self, account_id: str, event: SessionEvent | StreamEvent) -> str | None:
        """An account's own failures (its listenKey, its token, its subscription), said as `listen`
        says them: the first of a run, every tenth, and the recovery."""
        failures = self.failing.get(account_id)
        if event.kind in _FAILING:
            failures = self.failing.setdefault(account_id, _Failures())
        elif failures is None or event.kind not in _RECOVERED:
            return None
        said = failures.line(event)
        if not failures.in_a_row:
            del self.failing[account_id]
        return None if said is None else f"account {account_id}: {said}"

    async def main(self) -> int:
        args = self.args
        accounts = load_accounts(args.accounts)  # refused before anything is sent
        fleet = AsyncFleet(
            accounts,
            market=args.market,
            base_url=args.base_url,
            stream_url=args.stream_url,
            retry=RetryPolicy.off() if args.no_retry else RetryPolicy(),
            on_event=self.on_event,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum, fleet)
        if args.run_for is not None:
            loop.call_later(args.run_for, fleet.close)
        async with fleet:
            async for account_id, item in fleet:
                if isinstance(item, BaseException):
                    self.ended.setdefault(account_id, item)
                    if len(self.ended) == len(accounts):
                        fleet.close()
                elif not _wanted(item, args.events):
                    continue
                try:
                    print(json.dumps(fleet_json(account_id, item)), flush=True)
                except BrokenPipeError:
                    _quiet_stdout()
                    return EXIT_BROKEN_PIPE
        return self._exit(len(accounts))

    def _exit(self, accounts: int) -> int:
        if self.signals:
            return 128 + self.signals[0]
        if self.ended and len(self.ended) == accounts:
            account_id, first = next(iter(self.ended.items()))
            message = f"every account ended; the first, {account_id}: {_in_fields(str(first))}"
            with contextlib.suppress(OSError):
                print(f"binance-userstream: error: {message}", file=sys.stderr, flush=True)
            return _exit_code(first)
        if not self.shared.connected and self.shared.last is not None:
            raise NetworkError(f"no connection opened within --for; the last failure: {self.shared.last}")
        return EXIT_OK

    def _on_signal(self, signum: int, fleet: AsyncFleet) -> None:
        self.signals.append(signum)
        fleet.close()
