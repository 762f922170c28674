"""One client shared by many callers: every call gets its own answer, no cross-talk of keys or errors.

Two accounts share the simulator; each caller checks that it got the key of its own account, or
the error its own request earned (-1125 for a key that does not exist).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from binance_userstream import AsyncUserDataStream, BackoffGate, ListenKeyNotFoundError, UserDataStream
from binance_userstream.simulator import Simulator
from tests.conftest import API_KEY

OTHER_KEY = "Other" + "0" * 59
MISSING = "m" * 60


def outcome(call: Any, *args: Any) -> str:
    try:
        result = call(*args)
    except ListenKeyNotFoundError as error:
        return f"-1125:{error.code}"
    return "ok" if result is None else str(result)


def test_one_sync_client_shared_by_32_threads() -> None:
    with Simulator(weight_limit=10**9, retired=False) as sim:
        gate = BackoffGate()
        with (
            UserDataStream(API_KEY, sim.url, gate=gate) as mine,
            UserDataStream(OTHER_KEY, sim.url, gate=gate) as theirs,
        ):
            my_key, their_key = mine.create(), theirs.create()

            def worker(n: int) -> list[tuple[str, str]]:
                seen = []
                for i in range(25):
                    kind = (n + i) % 3
                    if kind == 0:
                        seen.append(("create", outcome(mine.create)))
                    elif kind == 1:
                        seen.append(("keepalive", outcome(mine.keepalive, my_key)))
                    else:
                        seen.append(("missing", outcome(mine.keepalive, MISSING)))
                return seen

            with ThreadPoolExecutor(32) as pool:
                results = [r for rs in pool.map(worker, range(32)) for r in rs]
    assert len(results) == 32 * 25
    expected = {"create": my_key, "keepalive": "ok", "missing": "-1125:-1125"}
    assert all(got == expected[what] for what, got in results)
    assert their_key != my_key


def test_one_async_client_under_500_concurrent_calls() -> None:
    async def main() -> tuple[str, list[tuple[str, str]]]:
        gate = BackoffGate()
        async with AsyncUserDataStream(API_KEY, sim.url, gate=gate) as uds:
            my_key = await uds.create()

            async def call(i: int) -> tuple[str, str]:
                kind = i % 3
                try:
                    if kind == 0:
                        return "create", await uds.create()
                    if kind == 1:
                        await uds.keepalive(my_key)
                        return "keepalive", "ok"
                    await uds.keepalive(MISSING)
                    return "missing", "ok"
                except ListenKeyNotFoundError as error:
                    return ("create", "keepalive", "missing")[kind], f"-1125:{error.code}"

            return my_key, list(await asyncio.gather(*(call(i) for i in range(500))))

    with Simulator(weight_limit=10**9, retired=False) as sim:
        my_key, results = asyncio.run(main())
    assert len(results) == 500
    expected = {"create": my_key, "keepalive": "ok", "missing": "-1125:-1125"}
    assert all(got == expected[what] for what, got in results), [r for r in results if r[1] != expected[r[0]]]
