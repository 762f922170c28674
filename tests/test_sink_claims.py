"""Claims in the log (`JetStreamSink.claim`): once a worker claims an account, the server refuses
the items of whoever published it before, however late they arrive, against a real nats-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from binance_userstream.errors import UserStreamError
from binance_userstream.sink import JetStreamSink, pump
from binance_userstream.stream._decode import decode
from tests._nats import NatsServer, read_log


def balance(time: int) -> tuple[object, str]:
    """A spot balanceUpdate with event time `time`: (its model, its text)."""
    text = f'{{"e":"balanceUpdate","E":{time},"a":"BTC","d":"1.0","T":{time}}}'
    return decode(text), text


def sink(nats_server: NatsServer, worker: str, **options: Any) -> JetStreamSink:
    return JetStreamSink(servers=nats_server.url, market="spot", worker=worker, **options)


async def stored(nats_server: NatsServer) -> list[tuple[str, str, Any]]:
    """The log: (event type, worker, payload) of each message, owner messages included."""
    return [
        (m.headers["Binance-Event"], m.headers.get("Binance-Worker"), json.loads(m.data))
        for m in await read_log(nats_server.url, owners=True)
    ]


def test_a_claim_writes_the_accounts_owner_message_first(nats_server: NatsServer) -> None:
    async def main() -> None:
        async with sink(nats_server, "w1") as one:
            assert await one.claim("acct-1", 7)
            await one.publish("acct-1", *balance(1))
            await one.flush()
            assert (one.delivered, one.lost) == (1, 0)
        assert await stored(nats_server) == [
            ("_owner", "w1", {"worker": "w1", "revision": 7}),
            ("balanceUpdate", "w1", json.loads(balance(1)[1])),
        ]

    asyncio.run(main())


def test_after_another_claim_the_log_refuses_the_previous_publishers_items_as_fenced(
    nats_server: NatsServer,
) -> None:
    heard: list[str] = []

    async def main() -> None:
        async with sink(nats_server, "w1", on_fenced=heard.append) as old, sink(nats_server, "w2") as new:
            assert await old.claim("acct-1", 3)
            assert await new.claim("acct-1", 9)
            for n in (1, 2):
                await old.publish("acct-1", *balance(n))
            await old.flush()
            losses = old.take_lost()
            assert [loss.fenced for loss in losses] == [True, True]
            assert old.fenced == 2
        assert heard == ["acct-1"]  # once, not once per item
        assert [kind for kind, _, _ in await stored(nats_server)] == ["_owner", "_owner"]

    asyncio.run(main())


def test_a_claim_behind_a_newer_revision_writes_nothing_and_publishes_nothing(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        async with sink(nats_server, "w1") as stale, sink(nats_server, "w2") as new:
            assert await new.claim("acct-1", 9)
            assert not await stale.claim("acct-1", 3)
            await stale.publish("acct-1", *balance(1))  # refused here: it is not sent
            assert [loss.fenced for loss in stale.take_lost()] == [True]
        assert [worker for _, worker, _ in await stored(nats_server)] == ["w2"]

    asyncio.run(main())


def test_racing_claims_leave_the_newer_revision_the_owner(nats_server: NatsServer) -> None:
    async def main() -> None:
        async with sink(nats_server, "w1") as older, sink(nats_server, "w2") as newer:
            for n in range(10):
                account = f"acct-{n}"
                results = await asyncio.gather(older.claim(account, 3), newer.claim(account, 9))
                assert results[1]
                for publisher in (older, newer):
                    await publisher.publish(account, *balance(n + 1))
                    await publisher.flush()
                assert newer.take_lost() == []
                assert [loss.fenced for loss in older.take_lost()] == [True]

    asyncio.run(main())


def test_a_follower_publishes_under_the_owners_claim_until_a_newer_claim(nats_server: NatsServer) -> None:
    async def main() -> None:
        async with sink(nats_server, "w1") as owner, sink(nats_server, "w2") as follower:
            assert await owner.claim("acct-1", 3)
            await follower.follow("acct-1")
            await follower.publish("acct-1", *balance(1))
            await follower.flush()
            assert follower.take_lost() == []
            assert await follower.claim("acct-1", 4)
            await owner.publish("acct-1", *balance(2))
            await owner.flush()
            assert [loss.fenced for loss in owner.take_lost()] == [True]

    asyncio.run(main())


def test_the_pump_owes_no_gap_for_items_refused_as_another_publishers(nats_server: NatsServer) -> None:
    async def main() -> None:
        async with sink(nats_server, "w1") as old, sink(nats_server, "w2") as new:
            assert await old.claim("acct-1", 3)
            assert await new.claim("acct-1", 9)

            async def items() -> AsyncIterator[tuple[str, object, str | None]]:
                for n in (1, 2):
                    model, text = balance(n)
                    yield "acct-1", model, text

            result = await pump(items(), old)
            assert (result.published, result.gaps, result.unreported) == (2, 0, [])
        assert "_gap" not in [kind for kind, _, _ in await stored(nats_server)]

    asyncio.run(main())


def test_an_owner_message_the_streams_limits_removed_is_claimed_again_and_what_was_refused_is_lost(
    nats_server: NatsServer,
) -> None:
    async def main() -> None:
        async with sink(nats_server, "w1") as owner:
            assert await owner.claim("acct-1", 3)
            js = owner._jetstream()
            await js.purge_stream("BINANCE", subject="binance.spot.acct-1._owner")  # as max_age would
            await owner.publish("acct-1", *balance(1))
            await owner.flush()
            [loss] = owner.take_lost()
            assert not loss.fenced  # this publisher's own loss: a gap is owed
            assert "owner message is gone" in loss.reason
            for _ in range(100):
                if not owner._recovering:
                    break
                await asyncio.sleep(0.01)
            await owner.publish("acct-1", *balance(2))
            await owner.flush()
            assert owner.take_lost() == []
        assert [(kind, payload.get("E")) for kind, _, payload in await stored(nats_server)] == [
            ("_owner", None),
            ("balanceUpdate", 2),
        ]

    asyncio.run(main())


def test_items_of_an_account_never_claimed_carry_no_condition(nats_server: NatsServer) -> None:
    async def main() -> None:
        async with sink(nats_server, "w1") as plain:
            await plain.publish("acct-1", *balance(1))
            await plain.flush()
        [message] = await read_log(nats_server.url, owners=True)
        assert "Nats-Expected-Last-Subject-Sequence" not in (message.headers or {})

    asyncio.run(main())


def test_claims_need_a_started_sink() -> None:
    unstarted = JetStreamSink(market="spot")
    with pytest.raises(UserStreamError, match="not running"):
        asyncio.run(unstarted.claim("acct-1", 1))
