"""`uds.account()`, async and sync, on a real stream (the simulator) and real REST (a scripted server).

The simulator streams the events (`sim.traffic`) and cuts the connections (`sim.drop_streams`); a
scripted server answers the REST reads the mirror makes (the exchange's time, the account, position
risk, open orders, user trades), route by route, so that each test says exactly what REST knows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from decimal import Decimal
from typing import Any

import pytest

from binance_userstream import (
    AsyncUserDataStream,
    AuthenticationError,
    Reconciled,
    RetryPolicy,
    SignerMissingError,
    StreamEventKind,
    StreamGap,
    UserDataStream,
)
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from tests._scripted import Reply, ScriptedServer
from tests._stream_helpers import FAST
from tests.conftest import API_KEY, FAST_RETRY

pytestmark = pytest.mark.anyio

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
ONCE = RetryPolicy(attempts=1, backoff_base=0.01, backoff_cap=0.02)


def slowest() -> float:
    """The stream's reconnection waits its longest (FAST: 0.05 s): events pushed right after a
    cut find no connection."""
    return 1.0


class Routes:
    """The scripted server's answers by path: each path's replies in turn, its last one repeated.
    (It stands in for the server's script: the server asks it for the reply of its latest request.)"""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.routes: dict[str, deque[Reply]] = {}
        self.key = ""
        """The stream's listenKey, made on the simulator."""

    def set(self, path: str, *replies: Reply) -> None:
        self.routes[path] = deque(replies)

    def __bool__(self) -> bool:
        return True

    def popleft(self) -> Reply:
        path = self.server.requests[-1].path
        replies = self.routes.get(path)
        if not replies:
            return Reply(status=404, body={"code": -1, "msg": f"no route for {path}"})
        return replies.popleft() if len(replies) > 1 else replies[0]

    def asked(self, path: str) -> int:
        return sum(seen.path == path for seen in self.server.requests)


def now_ms() -> int:
    return int(time.time() * 1000)


def usdm_account(wallet: str, when: int) -> dict[str, Any]:
    asset = {
        "asset": "USDT",
        "walletBalance": wallet,
        "unrealizedProfit": "0",
        "marginBalance": wallet,
        "maintMargin": "0",
        "initialMargin": "0",
        "positionInitialMargin": "0",
        "openOrderInitialMargin": "0",
        "crossWalletBalance": wallet,
        "crossUnPnl": "0",
        "availableBalance": wallet,
        "maxWithdrawAmount": wallet,
        "updateTime": when,
    }
    totals = dict.fromkeys(
        [
            "totalInitialMargin",
            "totalMaintMargin",
            "totalWalletBalance",
            "totalUnrealizedProfit",
            "totalMarginBalance",
            "totalPositionInitialMargin",
            "totalOpenOrderInitialMargin",
            "totalCrossWalletBalance",
            "totalCrossUnPnl",
            "availableBalance",
            "maxWithdrawAmount",
        ],
        "0",
    )
    return {**totals, "assets": [asset], "positions": []}


def position(amount: str, when: int) -> dict[str, Any]:
    return {
        "symbol": "BTCUSDT",
        "positionSide": "BOTH",
        "positionAmt": amount,
        "entryPrice": "43000.1",
        "breakEvenPrice": "0",
        "markPrice": "0",
        "unRealizedProfit": "0",
        "liquidationPrice": "0",
        "isolatedMargin": "0",
        "notional": "0",
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": "0",
        "maintMargin": "0",
        "positionInitialMargin": "0",
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": when,
    }


def user_trade(trade_id: int, order_id: int, when: int) -> dict[str, Any]:
    return {
        "buyer": True,
        "commission": "0.1",
        "commissionAsset": "USDT",
        "id": trade_id,
        "maker": False,
        "orderId": order_id,
        "price": "43000.1",
        "qty": "0.005",
        "quoteQty": "215",
        "realizedPnl": "0",
        "side": "BUY",
        "positionSide": "BOTH",
        "symbol": "BTCUSDT",
        "time": when,
    }


@pytest.fixture
def routes(server: ScriptedServer, sim: Simulator) -> Routes:
    """REST as the mirror first finds it: 10,000 USDT, no position, no open order, no trade; the
    stream's key (made on the simulator, which checks it) kept alive by the scripted server."""
    with UserDataStream(api_key=API_KEY, base_url=sim.url, market="usdm") as maker:
        key = maker.create()
    table = Routes(server)
    server._script = table  # type: ignore[assignment]
    before = now_ms() - 10_000
    table.set("/fapi/v1/listenKey", Reply(body={"listenKey": key}))
    table.set("/fapi/v1/time", Reply(body={"serverTime": before}))
    table.set("/fapi/v3/account", Reply(body=usdm_account("10000.00000000", before)))
    table.set("/fapi/v3/positionRisk", Reply(body=[]))
    table.set("/fapi/v1/openOrders", Reply(body=[]))
    table.set("/fapi/v1/userTrades", Reply(body=[]))
    table.key = key
    return table


def client(server: ScriptedServer, sim: Simulator, retry: RetryPolicy = FAST_RETRY) -> AsyncUserDataStream:
    return AsyncUserDataStream(
        api_key=API_KEY,
        api_secret=SECRET,
        base_url=server.url,
        stream_url=sim.stream_url,
        market="usdm",
        retry=retry,
    )


async def take(account: Any, n: int, timeout: float = 10.0) -> list[Any]:
    items: list[Any] = []
    async with asyncio.timeout(timeout):
        async for item in account:
            items.append(item)
            if len(items) == n:
                break
    return items


def trade_ids(items: list[Any]) -> list[int]:
    return [
        i.order.trade_id for i in items if getattr(getattr(i, "order", None), "execution_type", "") == "TRADE"
    ]


async def test_the_first_snapshot_is_the_state_and_events_apply_on_top(
    server: ScriptedServer, sim: Simulator, routes: Routes
) -> None:
    async with (
        client(server, sim) as uds,
        uds.account(listen_key=routes.key, timing=FAST, jitter=slowest) as account,
    ):
        first = account.state
        sim.traffic("usdm")
        items = await take(account, 5)
        state = account.state

    assert first.balances["USDT"].wallet == 10000
    assert first.positions == {}
    assert first.open_orders == {}
    assert [type(i).__name__ for i in items] == [
        "OrderTradeUpdate",
        "OrderTradeUpdate",
        "AccountUpdate",
        "OrderTradeUpdate",
        "AccountUpdate",
    ]
    last = items[-1].update_data
    assert state.positions[("BTCUSDT", "BOTH")].amount == Decimal(last.positions[0].position_amount)
    assert state.balances["USDT"].wallet == Decimal(last.balances[0].wallet_balance)
    assert state.open_orders == {}  # filled
    assert not state.stale


async def test_a_cut_gives_a_gap_then_a_reconciled_with_the_trades_the_stream_missed(
    server: ScriptedServer, sim: Simulator, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    notes: list[Any] = []
    caplog.set_level(logging.DEBUG)
    async with (
        client(server, sim) as uds,
        uds.account(listen_key=routes.key, timing=FAST, jitter=slowest, on_event=notes.append) as account,
    ):
        sim.traffic("usdm")
        streamed = await take(account, 5)
        first_ids = trade_ids(streamed)
        order_id = streamed[0].order.order_id
        sim.drop_streams("usdm")
        assert sim.traffic("usdm") == [0] * 5  # the ledger moved; nobody heard it
        later = now_ms()
        routes.set("/fapi/v3/account", Reply(body=usdm_account("9990.00000000", later)))
        routes.set("/fapi/v3/positionRisk", Reply(body=[position("0.020", later)]))
        routes.set(
            "/fapi/v1/userTrades",
            Reply(
                body=[
                    user_trade(first_ids[0], order_id, later - 5),
                    user_trade(first_ids[1], order_id, later - 4),
                    user_trade(first_ids[1] + 1, order_id + 1, later - 2),
                    user_trade(first_ids[1] + 2, order_id + 1, later - 1),
                ]
            ),
        )
        routes.set("/fapi/v1/time", Reply(body={"serverTime": later}))
        gap, reconciled = await take(account, 2)
        stale_while_healing = [n for n in notes if getattr(n, "kind", None) is StreamEventKind.RECONCILING]
        state = account.state

    assert isinstance(gap, StreamGap)
    assert isinstance(reconciled, Reconciled)
    assert reconciled.gap == gap
    assert [t.trade_id for t in reconciled.recovered_trades] == [first_ids[1] + 1, first_ids[1] + 2]
    assert [(c.kind, c.key) for c in reconciled.changes] == [
        ("balance", "USDT"),
        ("position", ("BTCUSDT", "BOTH")),
    ]
    assert str(state.positions[("BTCUSDT", "BOTH")].amount) == "0.020"
    assert not state.stale
    assert stale_while_healing
    assert StreamEventKind.RECONCILED in [getattr(n, "kind", None) for n in notes]
    for secret in (API_KEY, SECRET, routes.key):
        assert secret not in caplog.text


async def test_a_server_error_while_healing_is_retried_and_visible(
    server: ScriptedServer, sim: Simulator, routes: Routes, caplog: pytest.LogCaptureFixture
) -> None:
    notes: list[Any] = []
    async with (
        client(server, sim, ONCE) as uds,
        uds.account(listen_key=routes.key, timing=FAST, jitter=slowest, on_event=notes.append) as account,
    ):
        routes.set(
            "/fapi/v3/account",
            Reply(status=503, body={}),
            Reply(body=usdm_account("10000.00000000", now_ms())),
        )
        sim.drop_streams("usdm")
        with caplog.at_level(logging.WARNING, "binance_userstream.account"):
            gap, reconciled = await take(account, 2)

    assert isinstance(gap, StreamGap)
    assert isinstance(reconciled, Reconciled)
    retries = [n for n in notes if getattr(n, "kind", None) is StreamEventKind.RECONCILE_RETRY]
    assert len(retries) == 1
    assert "ServerError" in (retries[0].detail or "")
    assert "retrying" in caplog.text


async def test_a_refused_key_while_healing_ends_the_iteration_with_authentication_error(
    server: ScriptedServer, sim: Simulator, routes: Routes
) -> None:
    async with (
        client(server, sim, ONCE) as uds,
        uds.account(listen_key=routes.key, timing=FAST, jitter=slowest) as account,
    ):
        routes.set(
            "/fapi/v3/account",
            Reply(status=401, body={"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}),
        )
        sim.drop_streams("usdm")
        (gap,) = await take(account, 1)
        with pytest.raises(AuthenticationError):
            await take(account, 1)

    assert isinstance(gap, StreamGap)


def test_the_sync_account_heals_a_cut_as_the_async_one_does(
    server: ScriptedServer, sim: Simulator, routes: Routes
) -> None:
    uds = UserDataStream(
        api_key=API_KEY,
        api_secret=SECRET,
        base_url=server.url,
        stream_url=sim.stream_url,
        market="usdm",
        retry=FAST_RETRY,
    )
    with uds, uds.account(listen_key=routes.key, timing=FAST, jitter=slowest) as account:
        sim.traffic("usdm")
        items = [next(account) for _ in range(5)]
        sim.drop_streams("usdm")
        later = now_ms()
        routes.set("/fapi/v1/userTrades", Reply(body=[user_trade(999, 1, later)]))
        routes.set("/fapi/v1/time", Reply(body={"serverTime": later}))
        gap, reconciled = next(account), next(account)

    assert len(items) == 5
    assert isinstance(gap, StreamGap)
    assert isinstance(reconciled, Reconciled)
    assert [t.trade_id for t in reconciled.recovered_trades] == [999]


def test_portfolio_margin_pro_has_no_mirror_and_is_refused_before_anything_is_sent(
    server: ScriptedServer,
) -> None:
    with UserDataStream(api_key=API_KEY, base_url=server.url, market="portfolio_pro") as uds:
        with pytest.raises(ValueError, match=r"market 'portfolio_pro' has no account mirror: .* no orders"):
            uds.account()

    assert server.requests == []


@pytest.mark.parametrize("market", ["usdm", "margin"])
def test_an_account_without_a_secret_or_private_key_is_refused_before_anything_is_sent(
    server: ScriptedServer, market: str
) -> None:
    with UserDataStream(api_key=API_KEY, base_url=server.url, market=market) as uds:
        with pytest.raises(SignerMissingError, match="SIGNED on every market"):
            uds.account()

    assert server.requests == []


async def test_an_async_account_without_a_signer_is_refused_before_anything_is_sent(
    server: ScriptedServer,
) -> None:
    async with AsyncUserDataStream(api_key=API_KEY, base_url=server.url, market="usdm") as uds:
        with pytest.raises(SignerMissingError, match="SIGNED on every market"):
            uds.account()

    assert server.requests == []


async def until_buffered(account: Any, n: int, timeout: float = 10.0) -> None:
    """Until the account's stream holds `n` items (read from the connection, not yet handed out)."""
    async with asyncio.timeout(timeout):
        while len(account._stream._core) < n:
            await asyncio.sleep(0.01)


async def test_a_trade_streamed_after_the_reconnection_comes_after_the_reconciled_and_is_not_recovered(
    server: ScriptedServer, sim: Simulator, routes: Routes
) -> None:
    async with (
        client(server, sim) as uds,
        uds.account(listen_key=routes.key, timing=FAST, jitter=slowest) as account,
    ):
        sim.drop_streams("usdm")
        assert sim.traffic("usdm") == [0] * 5  # missed: order 1's trades
        (gap,) = await take(account, 1)  # the stream is back
        assert sim.traffic("usdm") == [1] * 5  # streamed: order 2's trades
        await until_buffered(account, 5)
        sent = [json.loads(d.text) for d in sim.deliveries[-5:]]
        ids = [e["o"]["t"] for e in sent if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
        later = now_ms()
        routes.set("/fapi/v1/time", Reply(body={"serverTime": later}))
        routes.set("/fapi/v3/positionRisk", Reply(body=[position("0.020", later)]))
        routes.set(
            "/fapi/v1/userTrades",
            Reply(
                body=[
                    user_trade(ids[0] - 2, 1, later - 4),
                    user_trade(ids[0] - 1, 1, later - 3),
                    *(user_trade(i, 2, later) for i in ids),
                ]
            ),
        )
        reconciled, *after = await take(account, 6)

    assert isinstance(gap, StreamGap)
    assert isinstance(reconciled, Reconciled)
    assert [t.trade_id for t in reconciled.recovered_trades] == [ids[0] - 2, ids[0] - 1]
    assert trade_ids(after) == ids


async def test_spot_heals_a_cut_from_its_rest_reads(server: ScriptedServer, sim: Simulator) -> None:
    table = Routes(server)
    server._script = table  # type: ignore[assignment]
    before = now_ms() - 10_000
    spot_account = {
        "makerCommission": 15,
        "takerCommission": 15,
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "updateTime": before,
        "accountType": "SPOT",
        "balances": [{"asset": "USDT", "free": "10000.00000000", "locked": "0.00000000"}],
        "permissions": ["SPOT"],
    }
    table.set("/api/v3/time", Reply(body={"serverTime": before}))
    table.set("/api/v3/account", Reply(body=spot_account))
    table.set("/api/v3/openOrders", Reply(body=[]))
    table.set("/api/v3/myTrades", Reply(body=[]))
    uds = AsyncUserDataStream(
        TEST_API_KEY,
        server.url,
        api_secret=TEST_API_SECRET,
        stream_url=sim.stream_url,
        market="spot",
        retry=FAST_RETRY,
    )
    async with uds, uds.account(timing=FAST, jitter=slowest) as account:
        sim.traffic("spot")
        await take(account, 6)
        filled = account.state
        sim.drop_streams("spot")
        assert sim.traffic("spot") == [0] * 6
        later = now_ms()
        table.set("/api/v3/time", Reply(body={"serverTime": later}))
        table.set(
            "/api/v3/account",
            Reply(
                body={
                    **spot_account,
                    "updateTime": later,
                    "balances": [{"asset": "USDT", "free": "9000.00000000", "locked": "0.00000000"}],
                }
            ),
        )
        gap, reconciled = await take(account, 2)

    assert filled.balances["BTC"].free > 0
    assert filled.open_orders == {}
    assert isinstance(gap, StreamGap)
    assert isinstance(reconciled, Reconciled)
    assert "BTCUSDT" in [
        seen.query["symbol"][0] for seen in server.requests if seen.path == "/api/v3/myTrades"
    ]
    assert str(account.state.balances["USDT"].free) == "9000.00000000"
    assert "BTC" not in account.state.balances
