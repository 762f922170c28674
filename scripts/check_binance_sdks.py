"""Binance's own SDKs against the simulator, unchanged but for their base URLs.

- binance-sdk-spot 13.3.0: on the WebSocket API, `userDataStream.subscribe.signature`, the pushed
  events through the subscription's `on("message")`, then `userDataStream.unsubscribe`, which it
  sends with `subscriptionId` as a string ("0": binance-common turns every int param into a str);
- binance-sdk-derivatives-trading-usds-futures 18.1.0: REST `POST /fapi/v1/listenKey`, then
  `user_data(listenKey)`, a JSON `SUBSCRIBE` on `/private/stream` (it also opens `/public/stream` and
  `/market/stream`);
- binance-sdk-derivatives-trading-coin-futures 14.1.0: REST `POST /dapi/v1/listenKey`, then
  `user_data(listenKey)`, a JSON `SUBSCRIBE` on the combined stream `/stream`.

Each must receive the events the simulator pushes (an order's traffic), typed by the SDK's models.
The key pair is the test account's documented one. Not part of `make test` (the SDKs live in the
bench's venv): run it with

    make .venv-bench/.installed && .venv-bench/bin/python scripts/check_binance_sdks.py
"""

import asyncio
from typing import Any

from binance_common.configuration import (
    ConfigurationRestAPI,
    ConfigurationWebSocketAPI,
    ConfigurationWebSocketStreams,
)
from binance_sdk_derivatives_trading_coin_futures.derivatives_trading_coin_futures import (
    DerivativesTradingCoinFutures,
)
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures,
)
from binance_sdk_spot.spot import Spot

from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator

WAIT = 5.0


def kind(message: Any) -> str:
    """The model the SDK typed a message as (a oneOf model's actual instance)."""
    return type(getattr(message, "actual_instance", message)).__name__


async def subscribed(sim: Simulator, market: str) -> None:
    """Wait until the SDK's `SUBSCRIBE`, which it sends half a second after connecting without
    waiting for the answer, has reached the simulator (a push before it would reach nobody)."""
    async with asyncio.timeout(WAIT):
        while sim.listeners(market) == 0:
            await asyncio.sleep(0.05)


async def received(queue: "asyncio.Queue[Any]", count: int) -> list[str]:
    return [kind(await asyncio.wait_for(queue.get(), WAIT)) for _ in range(count)]


async def spot(sim: Simulator) -> list[str]:
    config = ConfigurationWebSocketAPI(
        api_key=TEST_API_KEY, api_secret=TEST_API_SECRET, stream_url=sim.ws_api_url
    )
    connection = await Spot(config_ws_api=config).websocket_api.create_connection()
    try:
        subscribed = await connection.user_data_stream_subscribe_signature()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        subscribed.stream.on("message", queue.put_nowait)
        events = await received(queue, len(sim.traffic("spot", TEST_API_KEY)))
        subscription = subscribed.response.data().result.subscription_id
        answer = await connection.user_data_stream_unsubscribe(subscription_id=subscription)
        assert answer.data().status == 200, answer.data()
        assert sim.subscriptions() == 0, "the unsubscribe did not end the subscription"
    finally:
        await connection.close_connection()
    return events


async def derivatives(sim: Simulator, market: str, sdk: Any) -> list[str]:
    key = (await asyncio.to_thread(sdk.rest_api.start_user_data_stream)).data().listen_key
    connection = await sdk.websocket_streams.create_connection()
    try:
        stream = await connection.user_data(key)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stream.on("message", queue.put_nowait)
        await subscribed(sim, market)
        return await received(queue, len(sim.traffic(market, TEST_API_KEY)))
    finally:
        await connection.close_connection()


async def main(sim: Simulator) -> None:
    rest = ConfigurationRestAPI(api_key=TEST_API_KEY, api_secret=TEST_API_SECRET, base_path=sim.url)
    streams_url = sim.stream_url
    usdm = DerivativesTradingUsdsFutures(
        config_rest_api=rest, config_ws_streams=ConfigurationWebSocketStreams(stream_url=streams_url)
    )
    coinm = DerivativesTradingCoinFutures(
        config_rest_api=ConfigurationRestAPI(
            api_key=TEST_API_KEY, api_secret=TEST_API_SECRET, base_path=sim.url
        ),
        config_ws_streams=ConfigurationWebSocketStreams(stream_url=streams_url),
    )
    results = {
        "spot": await spot(sim),
        "usdm": await derivatives(sim, "usdm", usdm),
        "coinm": await derivatives(sim, "coinm", coinm),
    }
    for market, events in results.items():
        print(f"{market}:", events)
    assert results["spot"] == ["ExecutionReport", "OutboundAccountPosition"] * 3, results["spot"]
    for market in ("usdm", "coinm"):
        assert results[market].count("OrderTradeUpdate") == 3, results[market]


if __name__ == "__main__":
    with Simulator() as sim:
        asyncio.run(main(sim))
    print("Binance's spot 13.3.0, USD-M 18.1.0 and COIN-M 14.1.0 SDKs: OK")
