"""`binance-userstream fleet serve`: one worker of a deployment, publishing its share of the accounts
to NATS JetStream (`workers.Worker`).

Run it on any number of machines with the same accounts file (mode 0600, checked before anything is
sent) and the same NATS: each worker holds a fair share of the accounts by leases, takes over a dead
worker's after the lease TTL, and on SIGTERM hands its own over to the others before it exits
(make-before-break; `--leave-within` bounds it). It prints a line per lease change and a status line
every `--status-every` seconds (`--json`: JSON objects); the events themselves go to JetStream
(`binance-userstream tail` reads them). Secrets never enter NATS: only account ids and events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

import attrs

from binance_userstream._cli import Stopping, duration
from binance_userstream._markets import MARKETS
from binance_userstream.fleet import load_accounts
from binance_userstream.sink._jetstream import DEFAULT_STREAM
from binance_userstream.sink._subjects import DEFAULT_PREFIX
from binance_userstream.workers._collector import tune_collector
from binance_userstream.workers._leases import Change, LeaseTiming, Start
from binance_userstream.workers._worker import Worker, WorkerStatus


def add_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--accounts", required=True, metavar="PATH", help="the accounts file (TOML, mode 0600), as `fleet`'s"
    )
    serve.add_argument("--market", choices=list(MARKETS), default="spot", help="the market (default: spot)")
    serve.add_argument(
        "--nats",
        default="nats://127.0.0.1:4222",
        metavar="URL",
        help="the NATS server or cluster, comma-separated (default: nats://127.0.0.1:4222)",
    )
    serve.add_argument(
        "--worker-id", metavar="ID", help="this worker's name in the lease bucket (default: host-pid)"
    )
    serve.add_argument(
        "--stream", default=DEFAULT_STREAM, help=f"the JetStream stream (default: {DEFAULT_STREAM})"
    )
    serve.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help=f"the subjects' first token(s) (default: {DEFAULT_PREFIX})"
    )
    serve.add_argument(
        "--lease-ttl",
        type=duration,
        default=LeaseTiming().ttl,
        metavar="DURATION",
        help="how long a lease outlives its worker's last renewal: the failover time (default: 10s)",
    )
    serve.add_argument(
        "--leave-within",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="on SIGTERM or Ctrl-C, how long to hand the accounts over before stopping (default: 30s)",
    )
    serve.add_argument(
        "--status-every",
        type=duration,
        default=10.0,
        metavar="DURATION",
        help="print a status line this often (default: 10s)",
    )
    serve.add_argument(
        "--compression",
        choices=["none", "deflate"],
        default="none",
        help="ask Binance for deflated frames (less to download, more CPU an event) or not (default: none)",
    )
    serve.add_argument("--json", action="store_true", help="print JSON objects, one per line")
    serve.add_argument("--base-url", default=None, help="a URL, or a host name of the market (as `listen`)")
    serve.add_argument(
        "--stream-url", default=None, help="a ws(s) URL, or a stream host name of the market (as `listen`)"
    )
    serve.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: this package's log; -vv: all (redacted)"
    )


def run(args: argparse.Namespace) -> int:
    accounts = load_accounts(args.accounts)  # refused before anything is sent: mode, fields, key files
    tune_collector()  # this process runs one worker and nothing else
    worker = Worker(
        accounts,
        market=args.market,
        nats=args.nats.split(","),
        worker_id=args.worker_id,
        stream=args.stream,
        prefix=args.prefix,
        lease_timing=LeaseTiming(ttl=args.lease_ttl),
        on_change=lambda change: _print(args.json, change_line(change)),
        base_url=args.base_url,
        stream_url=args.stream_url,
        compression=None if args.compression == "none" else args.compression,
    )
    return asyncio.run(_serve(worker, args))


def change_line(change: Change) -> dict[str, Any]:
    if isinstance(change, Start):
        return {"lease": "start", "account": change.account_id, "after_failover": change.after_failover}
    return {"lease": "stop", "account": change.account_id, "why": change.why}


def status_line(status: WorkerStatus) -> dict[str, Any]:
    return {"status": attrs.asdict(status)}


def _print(as_json: bool, line: dict[str, Any]) -> None:
    if as_json:
        text = json.dumps(line, separators=(",", ":"))
    elif "lease" in line:
        then = " after a failover" if line.get("after_failover") else ""
        text = f"lease {line['lease']} {line['account']}{then}" + (
            f": {line['why']}" if "why" in line else ""
        )
    else:
        status = line["status"]
        text = (
            f"worker {status['worker']}: {status['accounts']} accounts, {status['connections']} connections, "
            f"{status['per_second']:g} events/s acknowledged ({status['published']} in all), publish latency "
            f"p50 {status['latency_p50_ms']} ms p99 {status['latency_p99_ms']} ms, {status['gaps']} gaps, "
            f"{status['lost']} lost, {status['fenced']} fenced, {status['lease_changes']} lease changes, "
            f"{status['reconciled']} reconciled, {status['healing']} healing"
        )
    with contextlib.suppress(BrokenPipeError):
        print(text, flush=True)


async def _serve(worker: Worker, args: argparse.Namespace) -> int:
    stopping = Stopping()
    async with worker:
        stopped = asyncio.ensure_future(worker.wait())
        asked = asyncio.ensure_future(stopping.asked.wait())
        while not stopped.done():
            await asyncio.wait(
                {stopped, asked}, timeout=args.status_every, return_when=asyncio.FIRST_COMPLETED
            )
            if asked.done():
                print(
                    f"binance-userstream: handing the accounts over (within {args.leave_within:g}s)",
                    file=sys.stderr,
                )
                await worker.leave(args.leave_within)
                break
            _print(args.json, status_line(worker.status()))
        asked.cancel()
        _print(args.json, status_line(worker.status()))
    return stopping.exit_code()
