"""The durable log's tests run against a real nats-server the suite starts itself."""

from __future__ import annotations

import asyncio

import nats

from tests._nats import NatsServer


def test_the_suite_starts_a_nats_server_with_jetstream_on_loopback(nats_server: NatsServer) -> None:
    async def roundtrip() -> int:
        client = await nats.connect(nats_server.url)
        try:
            js = client.jetstream()
            await js.add_stream(name="probe", subjects=["probe.>"])
            ack = await js.publish("probe.one", b"{}")
            return ack.seq
        finally:
            await client.close()

    assert asyncio.run(roundtrip()) == 1


def test_what_jetstream_acknowledged_survives_a_restart_of_the_server(nats_server: NatsServer) -> None:
    async def publish() -> None:
        client = await nats.connect(nats_server.url)
        js = client.jetstream()
        await js.add_stream(name="probe", subjects=["probe.>"])
        await js.publish("probe.one", b"kept")
        await client.close()

    async def read() -> bytes:
        client = await nats.connect(nats_server.url)
        msg = await client.jetstream().get_last_msg("probe", "probe.one")
        await client.close()
        return msg.data or b""

    asyncio.run(publish())
    nats_server.restart()
    assert asyncio.run(read()) == b"kept"
