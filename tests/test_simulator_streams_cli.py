"""The `simulator` command serves the event streams on its one port; `--lenient-events` is the switch."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import API_KEY
from tests.test_cli import CLI

ORDER = {"e": "ORDER_TRADE_UPDATE", "E": 1}


@contextmanager
def simulator(*options: str) -> Iterator[str]:
    """The CLI's simulator on a free port; its URL."""
    with subprocess.Popen(
        [*CLI, "simulator", "--port", "0", *options], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            yield proc.stdout.readline().split()[-1]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0


def delivered_on_a_stream_without_events(url: str) -> list[int]:
    """Open `/private/ws?listenKey=` without `events`, push an order from outside; how many got it."""
    key = httpx.post(url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": API_KEY}).json()["listenKey"]

    async def main() -> list[int]:
        where = "ws" + url.removeprefix("http") + f"/private/ws?listenKey={key}"
        async with connect(where, logger=logging.getLogger("tests.client")):
            body = {"market": "usdm", "events": [ORDER]}
            answer = httpx.post(url + "/_simulator/events", json=body, headers={"X-Simulator-Control": "1"})
            return list(answer.json()["delivered"])

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("options", "delivered"), [((), [0]), (("--strict-events",), [0]), (("--lenient-events",), [1])]
)
def test_the_simulator_command_serves_streams_on_its_port(
    options: tuple[str, ...], delivered: list[int]
) -> None:
    with simulator(*options) as url:
        assert delivered_on_a_stream_without_events(url) == delivered
