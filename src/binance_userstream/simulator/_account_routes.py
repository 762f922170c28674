"""The signed REST reads of an account (account, balances, positions, open orders, trades), answered
from the ledger (`_ledger`), so that a snapshot says what the events said.

Each route is data: the market whose host counts its weight, its weight (and the weight when a
parameter is sent: Binance's `x-weight` in spec/userdatastream.yaml, taken from each operation's
page), the ledger book it reads, and how it answers. Answers have the shapes of the spec's response
schemas; the amounts the simulator does not model (margin, unrealized profit, mark price, ...) are
"0", its mark price the entry price. Parameters are read as Binance reads them: a missing mandatory
one is -1102, a malformed number -1100, an out-of-range `limit` -1130, `fromId` with a time range
-1128 (the futures' pages forbid it; spot's list of supported combinations omits it).

Trade lists (myTrades, userTrades) are oldest first: from `fromId` (inclusive), else within
`startTime`..`endTime`, else the most recent `limit` (default 500, at most 1000; Options' 100).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from attrs import frozen

from binance_userstream.simulator._ledger import Ledger, LedgerOrder, LedgerPosition, LedgerTrade, LedgerView
from binance_userstream.simulator._traffic import coinm_contract_size


class BadParameter(Exception):
    """A request Binance refuses for its parameters: its code and message."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


@frozen
class Request:
    """What a route reads: the account, its parameters (decoded), the ledger and the server time."""

    account: str
    params: Mapping[str, str]
    ledger: Ledger
    now_ms: int

    def book(self, market: str, symbol: str | None = None) -> LedgerView:
        return self.ledger.view(self.account, market, symbol)


@frozen
class AccountRoute:
    """One read: the market whose host counts it, its weight (`weight_with`: the weight when that
    parameter is sent), and its answer."""

    market: str
    weight: int
    answer: Callable[[Request], object]
    weight_with: tuple[tuple[str, int], ...] = ()

    def cost(self, params: Mapping[str, str]) -> int:
        for name, weight in self.weight_with:
            if params.get(name):
                return weight
        return self.weight


#: Options' userTrades answer a record `id` beside the `tradeId` the stream's `t` is: the simulator's
#: are the trade's id plus this.
OPTIONS_RECORD_IDS = 4_000_000_000
_INT = re.compile(r"[0-9]{1,20}")
_SYMBOL = re.compile(r"[A-Z0-9_.\-]{1,40}")


def _integer(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    if not _INT.fullmatch(text):
        raise BadParameter(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        )
    return int(text)


def _symbol(params: Mapping[str, str], name: str = "symbol", *, required: bool = False) -> str | None:
    text = params.get(name)
    if not text:
        if required:
            raise BadParameter(
                -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
            )
        return None
    if not _SYMBOL.fullmatch(text):
        raise BadParameter(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[A-Z0-9-_.]{{1,20}}$'."
        )
    return text


def _boolean(params: Mapping[str, str], name: str) -> bool:
    text = params.get(name, "")
    if text.lower() not in ("", "true", "false"):
        raise BadParameter(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is 'TRUE, FALSE'."
        )
    return text.lower() == "true"


def _trades(
    request: Request, trades: Sequence[LedgerTrade], *, default: int = 500, most: int = 1000
) -> list[LedgerTrade]:
    """`trades` as Binance pages them, oldest first (see the module's docstring)."""
    params = request.params
    order_id = _integer(params, "orderId")
    start, end = _integer(params, "startTime"), _integer(params, "endTime")
    from_id, limit = _integer(params, "fromId"), _integer(params, "limit")
    if limit is None:
        limit = default
    elif not 1 <= limit <= most:
        raise BadParameter(-1130, "Data sent for parameter 'limit' is not valid.")
    if from_id is not None and (start is not None or end is not None):
        raise BadParameter(-1128, "Combination of optional parameters invalid.")
    chosen = sorted(trades, key=lambda t: (t.time, t.trade_id))
    if order_id is not None:
        chosen = [t for t in chosen if t.order_id == order_id]
    if from_id is not None:
        return sorted((t for t in chosen if t.trade_id >= from_id), key=lambda t: t.trade_id)[:limit]
    if start is not None or end is not None:
        low, high = start or 0, end if end is not None else 2**63
        return [t for t in chosen if low <= t.time <= high][:limit]
    return chosen[-limit:]


def _of_symbol(view: LedgerView, symbol: str | None) -> list[LedgerTrade]:
    return [t for t in view.trades if symbol is None or t.symbol == symbol]


def _open(
    view: LedgerView, symbol: str | None, keep: Callable[[LedgerOrder], bool] = lambda o: True
) -> list[LedgerOrder]:
    return sorted(
        (o for o in view.open_orders.values() if symbol in (None, o.symbol) and keep(o)),
        key=lambda o: (o.symbol, o.order_id),
    )


def _s(value: Decimal | int | None) -> str:
    return "0" if value is None else f"{value:f}"


def _f8(value: Decimal | int | None) -> str:
    return f"{value or 0:.8f}"


# -- spot and margin ------------------------------------------------------------------------------


def _spot_order(order: LedgerOrder, *, margin: bool = False, isolated: bool = False) -> dict[str, object]:
    answer: dict[str, object] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "clientOrderId": order.client_order_id,
        "price": _f8(order.price),
        "origQty": _f8(order.quantity),
        "executedQty": _f8(order.executed_quantity),
        "cummulativeQuoteQty": _f8(order.cumulative_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": True,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if margin:
        answer["isIsolated"] = isolated
    else:
        answer.update(orderListId=-1, origQuoteOrderQty="0.00000000", workingTime=order.time)
    return answer


def _spot_trade(trade: LedgerTrade, *, margin: bool = False, isolated: bool = False) -> dict[str, object]:
    answer: dict[str, object] = {
        "symbol": trade.symbol,
        "id": trade.trade_id,
        "orderId": trade.order_id,
        "price": _f8(trade.price),
        "qty": _f8(trade.quantity),
        "commission": _f8(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": trade.time,
        "isBuyer": trade.side == "BUY",
        "isMaker": trade.maker,
        "isBestMatch": True,
    }
    if margin:
        answer["isIsolated"] = isolated
    else:
        answer.update(orderListId=-1, quoteQty=_f8(trade.price * trade.quantity))
    return answer


def _spot_account(request: Request) -> object:
    omit = _boolean(request.params, "omitZeroBalances")
    view = request.book("spot")
    balances = [
        {"asset": b.asset, "free": _f8(b.free), "locked": _f8(b.locked)}
        for b in sorted(view.balances.values(), key=lambda b: b.asset)
        if not (omit and not b.free and not b.locked)
    ]
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": "0.00100000",
            "taker": "0.00100000",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": max((b.update_time for b in view.balances.values()), default=0),
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
    }


def _spot_open_orders(request: Request) -> object:
    return [_spot_order(o) for o in _open(request.book("spot"), _symbol(request.params))]


def _spot_my_trades(request: Request) -> object:
    symbol = _symbol(request.params, required=True)
    return [_spot_trade(t) for t in _trades(request, _of_symbol(request.book("spot"), symbol))]


def _margin_account(request: Request) -> object:
    view = request.book("margin")
    assets = [
        {
            "asset": b.asset,
            "borrowed": "0",
            "free": _s(b.free),
            "interest": "0",
            "locked": _s(b.locked),
            "netAsset": _s((b.free or 0) + (b.locked or 0)),
        }
        for b in sorted(view.balances.values(), key=lambda b: b.asset)
    ]
    return {
        "created": True,
        "borrowEnabled": True,
        "marginLevel": "999",
        "collateralMarginLevel": "999",
        "totalAssetOfBtc": "0",
        "totalLiabilityOfBtc": "0",
        "totalNetAssetOfBtc": "0",
        "TotalCollateralValueInUSDT": "0",
        "totalOpenOrderLossInUSDT": "0",
        "tradeEnabled": True,
        "transferInEnabled": True,
        "transferOutEnabled": True,
        "accountType": "MARGIN_1",
        "userAssets": assets,
    }


def _isolated_asset(asset: str, view: LedgerView) -> dict[str, object]:
    balance = view.balances.get(asset)
    free, locked = (balance.free, balance.locked) if balance else (None, None)
    return {
        "asset": asset,
        "borrowEnabled": True,
        "borrowed": "0",
        "free": _s(free),
        "interest": "0",
        "locked": _s(locked),
        "netAsset": _s((free or 0) + (locked or 0)),
        "netAssetOfBtc": "0",
        "repayEnabled": True,
        "totalAsset": _s((free or 0) + (locked or 0)),
    }


def _margin_isolated_account(request: Request) -> object:
    from binance_userstream.simulator._metadata import SPOT_PAIRS

    pairs = {symbol: (base, quote) for symbol, base, quote, _, _ in SPOT_PAIRS}
    wanted = request.params.get("symbols")
    if wanted:
        symbols = wanted.split(",")
        if len(symbols) > 5:
            raise BadParameter(-1130, "Data sent for parameter 'symbols' is not valid.")
        for symbol in symbols:
            if not _SYMBOL.fullmatch(symbol):
                raise BadParameter(-1100, "Illegal characters found in parameter 'symbols'.")
    else:
        symbols = sorted(request.ledger.isolated_symbols(request.account))
    assets = []
    for symbol in symbols:
        base, quote = pairs.get(symbol, _split(symbol))
        view = request.book("margin", symbol)
        assets.append(
            {
                "baseAsset": _isolated_asset(base, view),
                "quoteAsset": _isolated_asset(quote, view),
                "symbol": symbol,
                "isolatedCreated": True,
                "enabled": True,
                "marginLevel": "999",
                "marginLevelStatus": "EXCESSIVE",
                "marginRatio": "10",
                "indexPrice": "0",
                "liquidatePrice": "0",
                "liquidateRate": "0",
                "tradeEnabled": True,
            }
        )
    return {"assets": assets, "totalAssetOfBtc": "0", "totalLiabilityOfBtc": "0", "totalNetAssetOfBtc": "0"}


def _split(symbol: str) -> tuple[str, str]:
    for quote in ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB"):
        if symbol.endswith(quote) and symbol != quote:
            return symbol.removesuffix(quote), quote
    return symbol, "USDT"


def _margin_book(request: Request) -> tuple[LedgerView, bool, str | None]:
    isolated = _boolean(request.params, "isIsolated")
    symbol = _symbol(request.params, required=isolated)
    return request.book("margin", symbol if isolated else None), isolated, symbol


def _margin_open_orders(request: Request) -> object:
    view, isolated, symbol = _margin_book(request)
    return [_spot_order(o, margin=True, isolated=isolated) for o in _open(view, symbol)]


def _margin_my_trades(request: Request) -> object:
    symbol = _symbol(request.params, required=True)
    view, isolated, _ = _margin_book(request)
    return [
        _spot_trade(t, margin=True, isolated=isolated) for t in _trades(request, _of_symbol(view, symbol))
    ]


# -- USD-M and COIN-M -----------------------------------------------------------------------------


def _futures_asset(
    balance_asset: str, wallet: Decimal | None, cross: Decimal | None, time: int, *, usdm: bool
) -> dict[str, object]:
    answer: dict[str, object] = {
        "asset": balance_asset,
        "walletBalance": _s(wallet),
        "unrealizedProfit": "0",
        "marginBalance": _s(wallet),
        "maintMargin": "0",
        "initialMargin": "0",
        "positionInitialMargin": "0",
        "openOrderInitialMargin": "0",
        "crossWalletBalance": _s(cross),
        "crossUnPnl": "0",
        "availableBalance": _s(wallet),
        "maxWithdrawAmount": _s(wallet),
        "updateTime": time,
    }
    if usdm:
        answer["marginAvailable"] = True
    return answer


def _usdm_account(request: Request) -> object:
    view = request.book("usdm")
    assets = [
        _futures_asset(b.asset, b.wallet, b.cross_wallet, b.update_time, usdm=True)
        for b in sorted(view.balances.values(), key=lambda b: b.asset)
    ]
    positions = [
        {
            "symbol": p.symbol,
            "positionSide": p.side,
            "positionAmt": _s(p.amount),
            "unrealizedProfit": "0",
            "isolatedMargin": "0",
            "notional": _s(p.amount * p.entry_price),
            "isolatedWallet": "0",
            "initialMargin": "0",
            "maintMargin": "0",
            "updateTime": p.update_time,
        }
        for p in _positions(view, None)
    ]
    total = sum((b.wallet or Decimal(0) for b in view.balances.values() if b.asset == "USDT"), Decimal(0))
    totals = {
        name: "0"
        for name in (
            "totalInitialMargin",
            "totalMaintMargin",
            "totalUnrealizedProfit",
            "totalPositionInitialMargin",
            "totalOpenOrderInitialMargin",
            "totalCrossUnPnl",
        )
    }
    for name in (
        "totalWalletBalance",
        "totalMarginBalance",
        "totalCrossWalletBalance",
        "availableBalance",
        "maxWithdrawAmount",
    ):
        totals[name] = str(total)
    return {**totals, "assets": assets, "positions": positions}


def _positions(
    view: LedgerView, symbol: str | None, keep: Callable[[LedgerPosition], bool] = lambda p: True
) -> list[LedgerPosition]:
    return sorted(
        (p for p in view.positions.values() if symbol in (None, p.symbol) and keep(p)),
        key=lambda p: (p.symbol, p.side),
    )


def _usdm_position(p: LedgerPosition, *, portfolio: bool = False) -> dict[str, object]:
    common: dict[str, object] = {
        "symbol": p.symbol,
        "positionAmt": _s(p.amount),
        "entryPrice": _s(p.entry_price),
        "markPrice": _s(p.entry_price),
        "unRealizedProfit": "0",
        "liquidationPrice": "0",
        "positionSide": p.side,
        "notional": _s(p.amount * p.entry_price),
        "updateTime": p.update_time,
    }
    if portfolio:
        return {**common, "leverage": "20", "maxNotionalValue": "1000000"}
    return {
        **common,
        "breakEvenPrice": _s(p.entry_price),
        "isolatedMargin": "0",
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": "0",
        "maintMargin": "0",
        "positionInitialMargin": "0",
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
    }


def _coinm_position(p: LedgerPosition, *, portfolio: bool = False) -> dict[str, object]:
    value = p.amount * coinm_contract_size(p.symbol) / p.entry_price if p.entry_price else Decimal(0)
    common: dict[str, object] = {
        "symbol": p.symbol,
        "positionAmt": _s(p.amount),
        "entryPrice": _s(p.entry_price),
        "markPrice": _s(p.entry_price),
        "unRealizedProfit": "0",
        "liquidationPrice": "0",
        "leverage": "20",
        "maxQty": "1000",
        "positionSide": p.side,
        "notionalValue": _s(value),
        "updateTime": p.update_time,
    }
    if portfolio:
        return common
    return {
        **common,
        "breakEvenPrice": _s(p.entry_price),
        "marginType": "cross",
        "isolatedMargin": "0",
        "isAutoAddMargin": "false",
        "isolatedWallet": "0",
    }


def _usdm_position_risk(request: Request) -> object:
    symbol = _symbol(request.params)
    return [_usdm_position(p) for p in _positions(request.book("usdm"), symbol)]


def _futures_order(order: LedgerOrder, *, coin: bool, portfolio: bool = False) -> dict[str, object]:
    average = order.cumulative_quote / order.executed_quantity if order.executed_quantity else Decimal(0)
    answer: dict[str, object] = {
        "avgPrice": _s(average),
        "clientOrderId": order.client_order_id,
        "executedQty": _s(order.executed_quantity),
        "orderId": order.order_id,
        "origQty": _s(order.quantity),
        "origType": order.type,
        "price": _s(order.price),
        "reduceOnly": False,
        "side": order.side,
        "positionSide": order.position_side or "BOTH",
        "status": order.status,
        "symbol": order.symbol,
        "time": order.time,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "updateTime": order.update_time,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_TAKER",
    }
    if coin:
        size = coinm_contract_size(order.symbol)
        answer["cumBase"] = _s(order.executed_quantity * size / average if average else Decimal(0))
        answer["pair"] = order.symbol.partition("_")[0]
    else:
        answer["cumQuote"] = _s(order.cumulative_quote)
        answer["goodTillDate"] = 0
    if not portfolio:
        answer.update(stopPrice="0", closePosition=False, workingType="CONTRACT_PRICE", priceProtect=False)
    return answer


def _futures_trade(trade: LedgerTrade, *, coin: bool, portfolio: bool = False) -> dict[str, object]:
    answer: dict[str, object] = {
        "symbol": trade.symbol,
        "id": trade.trade_id,
        "orderId": trade.order_id,
        "side": trade.side,
        "price": _s(trade.price),
        "qty": _s(trade.quantity),
        "realizedPnl": _s(trade.realized_pnl),
        "commission": _s(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": trade.time,
        "positionSide": "BOTH",
        "buyer": trade.side == "BUY",
        "maker": trade.maker,
    }
    if coin:
        size = coinm_contract_size(trade.symbol)
        answer.update(
            pair=trade.symbol.partition("_")[0],
            marginAsset=trade.commission_asset,
            baseQty=_s(trade.quantity * size / trade.price),
        )
    else:
        answer["quoteQty"] = _s(trade.price * trade.quantity)
        if not portfolio:
            answer.update(marginAsset=trade.commission_asset)
    return answer


def _usdm_open_orders(request: Request) -> object:
    return [_futures_order(o, coin=False) for o in _open(request.book("usdm"), _symbol(request.params))]


def _usdm_user_trades(request: Request) -> object:
    symbol = _symbol(request.params, required=True)
    return [_futures_trade(t, coin=False) for t in _trades(request, _of_symbol(request.book("usdm"), symbol))]


def _coinm_account(request: Request) -> object:
    view = request.book("coinm")
    assets = [
        _futures_asset(b.asset, b.wallet, b.cross_wallet, b.update_time, usdm=False)
        for b in sorted(view.balances.values(), key=lambda b: b.asset)
    ]
    positions = [
        {
            "symbol": p.symbol,
            "positionAmt": _s(p.amount),
            "initialMargin": "0",
            "maintMargin": "0",
            "unrealizedProfit": "0",
            "positionInitialMargin": "0",
            "openOrderInitialMargin": "0",
            "leverage": "20",
            "isolated": False,
            "positionSide": p.side,
            "entryPrice": _s(p.entry_price),
            "breakEvenPrice": _s(p.entry_price),
            "maxQty": "1000",
            "updateTime": p.update_time,
        }
        for p in _positions(view, None)
    ]
    return {
        "assets": assets,
        "positions": positions,
        "canDeposit": True,
        "canTrade": True,
        "canWithdraw": True,
        "feeTier": 0,
        "updateTime": view.update_time,
    }


def _pair_filter(request: Request) -> Callable[[str], bool]:
    """COIN-M's `pair` (BTCUSD) and `marginAsset` (BTC) filters, on a symbol."""
    pair = _symbol(request.params, "pair")
    margin_asset = _symbol(request.params, "marginAsset")
    return lambda symbol: (
        (pair is None or symbol.partition("_")[0] == pair)
        and (margin_asset is None or symbol.startswith(margin_asset))
    )


def _coinm_position_risk(request: Request, book: str = "coinm", *, portfolio: bool = False) -> object:
    keep = _pair_filter(request)
    view = request.book(book)
    return [
        _coinm_position(p, portfolio=portfolio)
        for p in _positions(view, None, lambda p: keep(p.symbol) and "_" in p.symbol)
    ]


def _coinm_open_orders(request: Request, book: str = "coinm", *, portfolio: bool = False) -> object:
    keep = _pair_filter(request)
    view = request.book(book)
    orders = _open(view, _symbol(request.params), lambda o: keep(o.symbol) and "_" in o.symbol)
    return [_futures_order(o, coin=True, portfolio=portfolio) for o in orders]


def _coinm_user_trades(request: Request, book: str = "coinm", *, portfolio: bool = False) -> object:
    symbol, pair = _symbol(request.params), _symbol(request.params, "pair")
    if symbol is None and pair is None:
        raise BadParameter(
            -1102, "Mandatory parameter 'symbol' or 'pair' was not sent, was empty/null, or malformed."
        )
    if symbol is not None and pair is not None:
        raise BadParameter(-1128, "Combination of optional parameters invalid.")
    keep = _pair_filter(request)
    trades = [t for t in _of_symbol(request.book(book), symbol) if keep(t.symbol) and "_" in t.symbol]
    return [
        _futures_trade(t, coin=True, portfolio=portfolio)
        for t in _trades(request, trades, default=50, most=1000)
    ]


# -- Portfolio Margin -----------------------------------------------------------------------------


def _portfolio_balance(request: Request) -> object:
    view = request.book("portfolio")
    answers = []
    for b in sorted(view.balances.values(), key=lambda b: b.asset):
        free, locked = b.free or Decimal(0), b.locked or Decimal(0)
        um, cm = b.um_wallet or Decimal(0), b.cm_wallet or Decimal(0)
        answers.append(
            {
                "asset": b.asset,
                "totalWalletBalance": _s(free + locked + um + cm),
                "crossMarginAsset": _s(free + locked),
                "crossMarginBorrowed": "0",
                "crossMarginFree": _s(free),
                "crossMarginInterest": "0",
                "crossMarginLocked": _s(locked),
                "umWalletBalance": _s(um),
                "umUnrealizedPNL": "0",
                "cmWalletBalance": _s(cm),
                "cmUnrealizedPNL": "0",
                "updateTime": b.update_time,
                "negativeBalance": "0",
            }
        )
    return answers


def _portfolio_um_position_risk(request: Request) -> object:
    symbol = _symbol(request.params)
    positions = _positions(request.book("portfolio"), symbol, lambda p: "_" not in p.symbol)
    return [_usdm_position(p, portfolio=True) for p in positions]


def _portfolio_um_open_orders(request: Request) -> object:
    orders = _open(request.book("portfolio"), _symbol(request.params), lambda o: "_" not in o.symbol)
    return [_futures_order(o, coin=False, portfolio=True) for o in orders]


def _portfolio_um_user_trades(request: Request) -> object:
    symbol = _symbol(request.params, required=True)
    trades = _trades(request, _of_symbol(request.book("portfolio"), symbol))
    return [_futures_trade(t, coin=False, portfolio=True) for t in trades]


# -- Options --------------------------------------------------------------------------------------


def _options_account(request: Request) -> object:
    view = request.book("options")
    assets = [
        {
            "asset": b.asset,
            "marginBalance": _s(b.wallet),
            "equity": _s(b.wallet),
            "available": _s(b.wallet),
            "initialMargin": "0",
            "maintMargin": "0",
            "unrealizedPNL": "0",
            "adjustedEquity": _s(b.wallet),
        }
        for b in sorted(view.balances.values(), key=lambda b: b.asset)
    ]
    return {
        "asset": assets,
        "greek": [],
        "time": request.now_ms,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "reduceOnly": False,
    }


def _options_positions(request: Request) -> object:
    symbol = _symbol(request.params)
    answers = []
    for p in _positions(request.book("options"), symbol):
        parts = p.symbol.split("-")
        strike = parts[2] if len(parts) == 4 else "0"
        answers.append(
            {
                "entryPrice": _s(p.entry_price),
                "symbol": p.symbol,
                "side": "LONG" if p.amount > 0 else "SHORT",
                "quantity": _s(p.amount),
                "reducibleQty": _s(abs(p.amount)),
                "markValue": _s(p.amount * p.entry_price),
                "ror": "0",
                "unrealizedPNL": "0",
                "markPrice": _s(p.entry_price),
                "strikePrice": strike,
                "positionCost": _s(p.amount * p.entry_price),
                "expiryDate": 0,
                "optionSide": "CALL" if p.symbol.endswith("-C") else "PUT",
                "quoteAsset": "USDT",
                "time": p.update_time,
            }
        )
    return answers


def _options_open_orders(request: Request) -> object:
    order_id = _integer(request.params, "orderId")
    orders = _open(request.book("options"), _symbol(request.params), lambda o: order_id in (None, o.order_id))
    return [
        {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "price": _s(o.price),
            "quantity": _s(o.quantity),
            "executedQty": _s(o.executed_quantity),
            "fee": "0",
            "side": o.side,
            "type": o.type,
            "timeInForce": o.time_in_force,
            "reduceOnly": False,
            "postOnly": False,
            "createTime": o.time,
            "updateTime": o.update_time,
            "status": "ACCEPTED" if o.status == "NEW" else o.status,  # REST's name for the stream's NEW
            "avgPrice": _s(o.cumulative_quote / o.executed_quantity if o.executed_quantity else Decimal(0)),
            "source": "API",
            "clientOrderId": o.client_order_id,
            "optionSide": "CALL" if o.symbol.endswith("-C") else "PUT",
            "quoteAsset": "USDT",
            "mmp": False,
        }
        for o in orders
    ]


def _options_user_trades(request: Request) -> object:
    symbol = _symbol(request.params)
    trades = _trades(request, _of_symbol(request.book("options"), symbol), default=100, most=1000)
    return [
        {
            "id": OPTIONS_RECORD_IDS + t.trade_id,  # the record's id, another number than the trade's
            "tradeId": t.trade_id,
            "orderId": t.order_id,
            "symbol": t.symbol,
            "price": _s(t.price),
            "quantity": _s(t.quantity),
            "fee": _s(t.commission),
            "realizedProfit": "0",
            "side": t.side,
            "type": "LIMIT",
            "liquidity": "MAKER" if t.maker else "TAKER",
            "quoteAsset": t.commission_asset,
            "time": t.time,
            "optionSide": "CALL" if t.symbol.endswith("-C") else "PUT",
        }
        for t in trades
    ]


#: Every account read, by path; weights from the spec's `x-weight` (Binance's pages).
ROUTES: Mapping[str, AccountRoute] = {
    "/api/v3/account": AccountRoute("spot", 20, _spot_account),
    "/api/v3/openOrders": AccountRoute("spot", 80, _spot_open_orders, (("symbol", 6),)),
    "/api/v3/myTrades": AccountRoute("spot", 20, _spot_my_trades, (("orderId", 5),)),
    "/sapi/v1/margin/account": AccountRoute("spot", 10, _margin_account),
    "/sapi/v1/margin/isolated/account": AccountRoute("spot", 10, _margin_isolated_account),
    "/sapi/v1/margin/openOrders": AccountRoute("spot", 10, _margin_open_orders),
    "/sapi/v1/margin/myTrades": AccountRoute("spot", 10, _margin_my_trades),
    "/fapi/v3/account": AccountRoute("usdm", 5, _usdm_account),
    "/fapi/v3/positionRisk": AccountRoute("usdm", 5, _usdm_position_risk),
    "/fapi/v1/openOrders": AccountRoute("usdm", 40, _usdm_open_orders, (("symbol", 1),)),
    "/fapi/v1/userTrades": AccountRoute("usdm", 5, _usdm_user_trades),
    "/dapi/v1/account": AccountRoute("coinm", 5, _coinm_account),
    "/dapi/v1/positionRisk": AccountRoute("coinm", 1, _coinm_position_risk),
    "/dapi/v1/openOrders": AccountRoute("coinm", 40, _coinm_open_orders, (("symbol", 1),)),
    "/dapi/v1/userTrades": AccountRoute("coinm", 40, _coinm_user_trades, (("symbol", 20),)),
    "/papi/v1/balance": AccountRoute("portfolio", 20, _portfolio_balance),
    "/papi/v1/um/positionRisk": AccountRoute("portfolio", 5, _portfolio_um_position_risk),
    "/papi/v1/cm/positionRisk": AccountRoute(
        "portfolio", 1, lambda r: _coinm_position_risk(r, "portfolio", portfolio=True)
    ),
    "/papi/v1/um/openOrders": AccountRoute("portfolio", 40, _portfolio_um_open_orders, (("symbol", 1),)),
    "/papi/v1/cm/openOrders": AccountRoute(
        "portfolio", 40, lambda r: _coinm_open_orders(r, "portfolio", portfolio=True), (("symbol", 1),)
    ),
    "/papi/v1/um/userTrades": AccountRoute("portfolio", 5, _portfolio_um_user_trades),
    "/papi/v1/cm/userTrades": AccountRoute(
        "portfolio", 40, lambda r: _coinm_user_trades(r, "portfolio", portfolio=True), (("symbol", 20),)
    ),
    "/eapi/v1/marginAccount": AccountRoute("options", 3, _options_account),
    "/eapi/v1/position": AccountRoute("options", 5, _options_positions),
    "/eapi/v1/openOrders": AccountRoute("options", 40, _options_open_orders, (("symbol", 1),)),
    "/eapi/v1/userTrades": AccountRoute("options", 5, _options_user_trades),
}
