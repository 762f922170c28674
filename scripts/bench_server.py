"""The benchmark's server: canned Binance answers from uvicorn (httptools parser), in its own process.

It does no bookkeeping (the simulator does that, at a cost): the benchmark measures clients, so the
server must be fast and the same for all of them. `python scripts/bench_server.py PORT`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

LISTEN_KEY = b"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"
CREATED = b'{"listenKey":"' + LISTEN_KEY + b'"}'
HEADERS = [(b"content-type", b"application/json"), (b"x-mbx-used-weight-1m", b"2")]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    assert scope["type"] == "http"
    more = True
    while more:  # drain the request body
        more = (await receive()).get("more_body", False)
    # POST creates; USD-M's PUT answers with the key it extended (spot's and COIN-M's with {}).
    fapi_put = scope["method"] == "PUT" and scope["path"].startswith("/fapi/")
    body = CREATED if scope["method"] == "POST" or fapi_put else b"{}"
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        http="httptools",
        loop="asyncio",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=2048,
    )
