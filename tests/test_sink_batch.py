"""Fast-ingest batches: what each of the server's answers settles (no I/O), and the sink's batches
against a real nats-server: one acknowledgement for many items, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StreamConfig

from binance_userstream.sink import JetStreamSink
from binance_userstream.sink._batch import BATCH_DISABLED, OUTSTANDING, Answer, Batch, answer, parse_reply
from binance_userstream.sink._jetstream import ENDED_KEPT
from tests._nats import NatsServer, read_log
from tests.test_sink_jetstream import report


def test_a_batchs_first_message_starts_it_and_the_next_ones_append_to_it() -> None:
    batch = Batch("_INBOX.x", "b1", base=7, reconnects=0, flow=100)
    assert [batch.reply(), batch.reply()] == ["_INBOX.x.b1.100.ok.1.0.$FI", "_INBOX.x.b1.100.ok.2.1.$FI"]
    assert batch.end_reply() == "_INBOX.x.b1.100.ok.3.3.$FI"  # not stored, answered with the count


def test_a_batchs_messages_are_numbered_on_from_the_sinks_count() -> None:
    batch = Batch("_INBOX.x", "b1", base=7, reconnects=0)
    for _ in range(5):
        batch.reply()
    assert batch.number(1) == 7
    assert list(batch.numbers(2, 4)) == [8, 9, 10]
    assert list(batch.numbers(0, 99)) == [7, 8, 9, 10, 11]  # never past what was sent


def test_a_batch_is_full_at_its_granted_flow_times_the_acknowledgements_outstanding() -> None:
    batch = Batch("_INBOX.x", "b1", base=0, reconnects=0)
    batch.flow = 2
    for _ in range(2 * OUTSTANDING - 1):
        batch.reply()
    assert not batch.full
    batch.reply()
    assert batch.full
    batch.acked = 2
    assert not batch.full


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b'{"type":"ack","seq":30,"msgs":250}', Answer("ack", 30, flow=250)),
        (
            b'{"type":"err","seq":7,"error":{"code":400,"err_code":10071,'
            b'"description":"wrong last sequence: 3"}}',
            Answer("err", 7, code=10071, problem="refused: wrong last sequence: 3"),
        ),
        (b'{"type":"gap","last_seq":10,"seq":15}', Answer("gap", 15, first=10)),
        (b'{"stream":"BINANCE","seq":41,"batch":"b1","count":39}', Answer("done", 39)),
        (b'{"stream":"BINANCE","seq":41}', Answer("stored")),
        (
            b'{"error":{"code":400,"err_code":10205,"description":"batch publish is disabled"},"seq":0}',
            Answer("error", code=BATCH_DISABLED, problem="refused: batch publish is disabled"),
        ),
        (b"not json", Answer("error", problem="refused: an answer that is not JSON")),
    ],
)
def test_each_answer_of_the_server_says_what_it_settles(data: bytes, said: Answer) -> None:
    assert answer(data) == said


def test_only_a_batchs_reply_subjects_are_taken_for_one() -> None:
    assert parse_reply("b1.250.ok.42.1.$FI") == ("b1", 42)
    assert parse_reply("42") is None
    assert parse_reply("b1.250.ok.x.1.$FI") is None


def test_items_published_in_a_burst_are_acknowledged_without_a_flush(nats_server: NatsServer) -> None:
    async def main() -> None:
        async with JetStreamSink(servers=nats_server.url, market="spot") as sink:
            for time in range(1, 8):  # fewer than a flow: acknowledged when the batch ends, idle
                await sink.publish("acct-1", *report(time))
            for _ in range(500):
                if sink.delivered == 7:
                    break
                await asyncio.sleep(0.01)
            assert (sink.delivered, sink.lost, sink.pending, sink.batched) == (7, 0, 0, True)

    asyncio.run(main())
    assert [json.loads(m.data)["E"] for m in asyncio.run(read_log(nats_server.url))] == list(range(1, 8))


def test_a_stream_without_batches_gets_one_acknowledgement_per_item_and_loses_none(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        client: Client = await nats.connect(nats_server.url)
        try:
            await client.jetstream().add_stream(StreamConfig(name="BINANCE", subjects=["binance.>"]))
            async with JetStreamSink(client, market="spot", ensure_stream=False) as sink:
                for time in range(1, 51):
                    await sink.publish(f"acct-{time % 3}", *report(time))
                await sink.flush()
                assert (sink.delivered, sink.lost, sink.batched) == (50, 0, False)
        finally:
            await client.close()

    asyncio.run(main())
    assert [json.loads(m.data)["E"] for m in asyncio.run(read_log(nats_server.url))] == list(range(1, 51))


def test_a_claim_refusing_one_accounts_items_in_a_batch_costs_the_others_nothing(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        async with (
            JetStreamSink(servers=nats_server.url, market="spot", worker="old") as old,
            JetStreamSink(servers=nats_server.url, market="spot", worker="new") as new,
        ):
            assert await old.claim("acct-1", 1)
            assert await new.claim("acct-1", 2)  # acct-1 is new's from now on
            for time in range(1, 401):
                await old.publish(f"acct-{time % 2}", *report(time))
            await old.flush()
            lost = old.take_lost()
            assert {loss.account_id for loss in lost} == {"acct-1"}
            assert all(loss.fenced for loss in lost)
            assert len(lost) == 200
            assert old.delivered == 200

    asyncio.run(main())
    stored = [json.loads(m.data)["E"] for m in asyncio.run(read_log(nats_server.url))]
    assert stored == list(range(2, 401, 2))


def test_past_64_ended_batches_unanswered_the_oldest_ones_unacknowledged_items_are_lost_at_once(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        sink = JetStreamSink(servers=nats_server.url, market="spot", ack_timeout=60)
        await sink.start()
        try:
            send_soon = sink._send_soon

            def end_lost(subject: str, *rest: Any) -> None:  # a batch's end never answered
                if subject != sink._end_subject:
                    send_soon(subject, *rest)

            sink._send_soon = end_lost  # type: ignore[method-assign]
            for n in range(ENDED_KEPT + 2):  # a batch each (or two, if it ends between them)
                await sink.publish("acct-1", *report(2 * n + 1))
                await sink.publish("acct-1", *report(2 * n + 2))
                async with asyncio.timeout(5):
                    while sink._batch is not None:  # until it ends (idle), its end sent to nowhere
                        await asyncio.sleep(0.001)
            losses = sink.take_lost()
            lost = [loss.item.event_time for loss in losses]
            waiting = [record[1].event_time for record in sink._pending.values()]  # type: ignore[attr-defined]
            # Batches were given up, the oldest first (their items not acknowledged are lost: only
            # an end acknowledges a batch's last ones), so that 64 are left awaiting their end.
            assert len(sink._batches) == ENDED_KEPT
            assert lost
            assert max(lost) < min(waiting), (lost, waiting)
            assert {loss.reason for loss in losses} == {"its batch's end was not answered"}
            assert sink.delivered + sink.lost + sink.pending == sink.published
        finally:  # closed without a flush: no end will acknowledge the 64 batches' last items
            assert sink._client is not None
            await sink._client.close()
            await sink.close()

    asyncio.run(main())
