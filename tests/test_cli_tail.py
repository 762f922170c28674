"""`binance-userstream tail`, run as a real process against a real nats-server: what the durable
log holds, one JSON line per message with its account, market and event type, filtered by account,
market or gaps; --follow waits for more until a signal; bad input is refused before anything is sent."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import subprocess
from typing import Any

import nats

from binance_userstream import JetStreamSink, StreamGap
from binance_userstream.stream._decode import decode
from tests._docs import section
from tests._nats import NatsServer, free_port
from tests.test_cli import CLI, spawn


def report(time_ms: int) -> tuple[object, str]:
    text = f'{{"e":"executionReport","E":{time_ms},"s":"ETHBTC","i":1,"x":"NEW","p":"0.10264410"}}'
    return decode(text), text


def publish(url: str, items: list[tuple[str, str, object, str | None]]) -> None:
    """(market, account, item, text) published through the sink, every one acknowledged."""

    async def main() -> None:
        sinks: dict[str, JetStreamSink] = {}
        try:
            for market, account, item, text in items:
                if market not in sinks:
                    sinks[market] = JetStreamSink(servers=url, market=market)
                    await sinks[market].start()
                await sinks[market].publish(account, item, text)
            for sink in sinks.values():
                await sink.flush()
                assert sink.take_lost() == []
        finally:
            for sink in sinks.values():
                await sink.close()

    asyncio.run(main())


def consuming(url: str, timeout: float = 15.0) -> None:
    """Return once the stream has a consumer (the tail process's): what it publishes next is "later"."""

    async def main() -> None:
        client = await nats.connect(url)
        try:
            async with asyncio.timeout(timeout):
                while (await client.jetstream().stream_info("BINANCE")).state.consumer_count < 1:
                    await asyncio.sleep(0.05)
        finally:
            await client.close()

    asyncio.run(main())


def tail(url: str, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run([*CLI, "tail", "--nats", url, *args], capture_output=True, text=True, timeout=30)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


GAP = StreamGap("disconnected", 1.0, 2.0, last_event_time=2)


def the_log(url: str) -> None:
    publish(
        url,
        [
            ("spot", "alice", *report(1)),
            ("spot", "bob", *report(2)),
            ("spot", "alice", GAP, None),
            ("usdm", "carol", *report(3)),
        ],
    )


def test_tail_prints_every_message_of_the_log_in_order_then_ends(nats_server: NatsServer) -> None:
    the_log(nats_server.url)
    code, lines, _ = tail(nats_server.url)
    assert code == 0
    assert [(line["seq"], line["account"], line["market"], line["event"]) for line in lines] == [
        (1, "alice", "spot", "executionReport"),
        (2, "bob", "spot", "executionReport"),
        (3, "alice", "spot", "_gap"),
        (4, "carol", "usdm", "executionReport"),
    ]
    assert lines[0]["data"] == json.loads(report(1)[1])
    assert lines[0]["time"] == 1
    assert lines[2]["data"]["reason"] == "disconnected"


def test_tail_filters_by_account_market_and_gaps(nats_server: NatsServer) -> None:
    the_log(nats_server.url)
    assert [line["seq"] for line in tail(nats_server.url, "--account", "alice")[1]] == [1, 3]
    assert [line["seq"] for line in tail(nats_server.url, "--market", "usdm")[1]] == [4]
    assert [line["seq"] for line in tail(nats_server.url, "--gaps")[1]] == [3]


def test_tail_of_an_account_with_nothing_in_the_log_prints_nothing_and_ends(nats_server: NatsServer) -> None:
    the_log(nats_server.url)
    assert tail(nats_server.url, "--account", "nobody")[:2] == (0, [])


def test_tail_follow_prints_what_is_published_later_until_sigterm(nats_server: NatsServer) -> None:
    the_log(nats_server.url)
    args = [*CLI, "tail", "--nats", nats_server.url, "--follow", "--account", "dave"]
    with spawn(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        consuming(nats_server.url)
        publish(nats_server.url, [("spot", "dave", *report(9))])
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    assert (line["account"], line["time"]) == ("dave", 9)


def test_an_account_id_no_subject_takes_is_refused_before_anything_is_sent() -> None:
    unreachable = f"nats://127.0.0.1:{free_port()}"
    code, lines, stderr = tail(unreachable, "--account", "alice.>")
    assert (code, lines) == (2, [])
    assert "account id 'alice.>'" in stderr
    assert "NATS" not in stderr


def test_an_unreachable_server_is_a_network_error() -> None:
    code, _, stderr = tail(f"nats://127.0.0.1:{free_port()}")
    assert code != 0
    assert "could not reach the NATS server" in stderr


def test_a_stream_that_does_not_exist_is_named(nats_server: NatsServer) -> None:
    code, _, stderr = tail(nats_server.url, "--stream", "ELSEWHERE")
    assert code != 0
    assert "no stream 'ELSEWHERE'" in stderr


def test_the_cli_guide_s_tail_example_runs(nats_server: NatsServer) -> None:
    the_log(nats_server.url)
    part = section("docs/guides/cli.md", "## The durable log: `tail`")
    command = next(line for line in part.splitlines() if line.startswith("binance-userstream tail "))
    args = shlex.split(command.replace("nats://127.0.0.1:4222", nats_server.url))[1:]
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["event"] for line in proc.stdout.splitlines()] == ["executionReport", "_gap"]
