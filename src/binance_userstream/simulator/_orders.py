"""An order step by step (placed, filled in part or whole, canceled): the events each step sends,
computed from the account's ledger, in the shapes of `Traffic`'s (Binance's documentation samples).

Spot and margin: placing a LIMIT order sends its executionReport NEW and the outboundAccountPosition
of the funds it locks (the quote for a BUY, the base for a SELL); a fill its TRADE and the
outboundAccountPosition it causes (locked funds spent, what was bought less spot's 0.1% commission);
a cancel CANCELED (its `C` the order's client id, `c` the cancel's) and the funds unlocked. USD-M,
COIN-M and Portfolio Margin's UM side: ORDER_TRADE_UPDATE NEW; a fill's TRADE and the ACCOUNT_UPDATE
of the commission and the position (COIN-M in contracts, margined in the coin); a cancel CANCELED.
Pure: `Steps` reads a ledger view and returns events; the simulator applies and pushes them.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from binance_userstream.simulator._ledger import LedgerOrder, LedgerView
from binance_userstream.simulator._traffic import (
    _ARITHMETIC,
    _COINM_SYMBOL,
    _NOT_ON_PORTFOLIO_ORDERS,
    COMMISSION,
    Traffic,
    _account_event,
    _amount,
    _options_balance_position,
    _OptionsOrder,
    _order_event,
    _position,
    _SpotReport,
    coinm_contract_size,
)

Events = list[dict[str, object]]
_STEP = Decimal("0.00000001")
#: Balances an account starts with on a market it has not traded on (Traffic's defaults).
STARTING = {"USDT": Decimal("10000.00000000"), "USDC": Decimal("10000.00000000")}
_FUTURES = ("usdm", "coinm", "portfolio")
_SPOT = ("spot", "margin")
STEP_MARKETS = (*_SPOT, *_FUTURES, "options")


def split_pair(symbol: str) -> tuple[str, str]:
    """A spot pair's base and quote assets (BTCUSDT: BTC, USDT)."""
    for quote in ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB"):
        if symbol.endswith(quote) and symbol != quote:
            return symbol.removesuffix(quote), quote
    raise ValueError(
        f"symbol must be a spot pair quoted in USDT, USDC, FDUSD, BTC, ETH or BNB, not {symbol!r}"
    )


def margin_asset(market: str, symbol: str) -> str:
    """The asset a derivatives symbol is margined in: its coin on COIN-M, else USDC or USDT."""
    if market == "coinm" or "_" in symbol:
        match = _COINM_SYMBOL.fullmatch(symbol)
        if match is None:
            raise ValueError(f"symbol must be a COIN-M symbol (such as 'BTCUSD_PERP'), not {symbol!r}")
        return match["base"]
    return "USDC" if symbol.endswith("USDC") else "USDT"


class Steps:
    """The events of each step, from `traffic`'s ids and clock and the account's ledger."""

    def __init__(self, traffic: Traffic) -> None:
        self._traffic = traffic

    def place(
        self, market: str, view: LedgerView, now_ms: int, symbol: str, side: str, quantity: str, price: str
    ) -> tuple[int, Events]:
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, not {side!r}")
        qty, px = _amount("quantity", quantity), _amount("price", price)
        if market == "coinm" or (market == "portfolio" and "_" in symbol):
            margin_asset(market, symbol)
            if qty != qty.to_integral_value():
                raise ValueError(f"quantity must be a whole number of contracts on COIN-M, not {quantity!r}")
        if market in _SPOT:
            base, quote = split_pair(symbol)
        order_id, time = self._traffic.next_step(now_ms, trade=False)
        client = f"sim-{order_id}"
        if market == "options":
            return order_id, [
                _OptionsOrder(symbol, side, qty, px, order_id, "USDT").event(time, "NEW", "NEW", None)
            ]
        if market in _FUTURES:
            event = _order_event(time, symbol, side, qty, px, order_id, client, "NEW", "NEW", Decimal(0))
            return order_id, [_portfolio(event) if market == "portfolio" else event]
        with localcontext(_ARITHMETIC):
            pay, get = (quote, base) if side == "BUY" else (base, quote)
            cost = (qty * px).quantize(_STEP) if side == "BUY" else qty
            free, locked = _free_locked(view, pay)
            if cost > free:
                raise ValueError(f"the account has {free} {pay} free, less than the {cost} this order locks")
            report = _SpotReport(symbol, side, qty, px, order_id, client, time)
            return order_id, [
                report.event(time, "NEW", "NEW", Decimal(0), Decimal(0), None),
                _position(time + 1, {pay: (free - cost, locked + cost), get: _free_locked(view, get)}),
            ]

    def fill(
        self, market: str, view: LedgerView, now_ms: int, order: LedgerOrder, quantity: str | None
    ) -> tuple[int, Events]:
        rest = order.quantity - order.executed_quantity
        fill = rest if quantity is None else _amount("quantity", quantity)
        if fill > rest:
            raise ValueError(f"the order has {rest} left to fill, not {fill}")
        trade_id, time = self._traffic.next_step(now_ms, trade=True)
        filled = order.executed_quantity + fill
        status = "FILLED" if filled == order.quantity else "PARTIALLY_FILLED"
        px, side, symbol = order.price, order.side, order.symbol
        with localcontext(_ARITHMETIC):
            if market == "options":
                return trade_id, self._options_fill(view, time, order, fill, trade_id)
            if market in _FUTURES:
                asset = margin_asset(market, symbol)
                size = Decimal(coinm_contract_size(symbol)) if "_" in symbol else None
                notional = fill * px if size is None else fill * size / px
                commission = (notional * COMMISSION).quantize(_STEP)
                balance = view.balances.get(asset)
                wallet = balance.wallet if balance is not None and balance.wallet is not None else None
                if market == "portfolio" and balance is not None:
                    wallet = balance.um_wallet
                if wallet is None:
                    wallet = STARTING.get(asset, Decimal("1.00000000"))
                wallet -= commission
                held = view.positions.get((symbol, "BOTH"))
                position = (held.amount if held else Decimal(0)) + (fill if side == "BUY" else -fill)
                trade = _order_event(
                    time,
                    symbol,
                    side,
                    order.quantity,
                    px,
                    order.order_id,
                    order.client_order_id,
                    "TRADE",
                    status,
                    filled,
                )
                details = trade["o"]
                assert isinstance(details, dict)
                details.update(l=str(fill), L=str(px), n=str(commission), t=trade_id, ap=str(px), N=asset)
                account = _account_event(time + 1, asset, wallet, symbol, position, px)
                if market == "portfolio":
                    return trade_id, [_portfolio(trade), _portfolio(account)]
                return trade_id, [trade, account]
            base, quote = split_pair(symbol)
            pay, get = (quote, base) if side == "BUY" else (base, quote)
            spent = (fill * px).quantize(_STEP) if side == "BUY" else fill
            received = fill if side == "BUY" else (fill * px).quantize(_STEP)
            commission = (received * COMMISSION * 2).quantize(_STEP)  # spot's 0.1% taker fee
            free, locked = _free_locked(view, pay)
            got, got_locked = _free_locked(view, get)
            report = _report(order)
            event = report.event(time + 1, "TRADE", status, filled, fill, (commission, get, trade_id))
            return trade_id, [
                event,
                _position(
                    time + 2, {pay: (free, locked - spent), get: (got + received - commission, got_locked)}
                ),
            ]

    @staticmethod
    def _options_fill(
        view: LedgerView, time: int, order: LedgerOrder, fill: Decimal, trade_id: int
    ) -> Events:
        """An Options fill: its TRADE, and the BALANCE_POSITION_UPDATE of the premium paid (BUY) or
        received (SELL), less the commission, and of the position."""
        sign = 1 if order.side == "BUY" else -1
        premium = fill * order.price
        commission = (premium * COMMISSION).quantize(_STEP)
        balance = view.balances.get("USDT")
        wallet = balance.wallet if balance is not None and balance.wallet is not None else STARTING["USDT"]
        wallet += -sign * premium - commission
        held = view.positions.get((order.symbol, "BOTH"))
        position = (held.amount if held else Decimal(0)) + sign * fill
        options = _options_order(order)
        return [
            options.event(time, "TRADE", None, (fill, commission, trade_id)),
            _options_balance_position(time + 1, "USDT", wallet, order.symbol, position, order.price),
        ]

    def cancel(self, market: str, view: LedgerView, now_ms: int, order: LedgerOrder) -> Events:
        _, time = self._traffic.next_step(now_ms, trade=False)
        if market == "options":
            return [_options_order(order).event(time, "CANCELED", "CANCELED", None)]
        if market in _FUTURES:
            event = _order_event(
                time,
                order.symbol,
                order.side,
                order.quantity,
                order.price,
                order.order_id,
                order.client_order_id,
                "CANCELED",
                "CANCELED",
                order.executed_quantity,
            )
            return [_portfolio(event) if market == "portfolio" else event]
        with localcontext(_ARITHMETIC):
            base, quote = split_pair(order.symbol)
            rest = order.quantity - order.executed_quantity
            pay = quote if order.side == "BUY" else base
            unlocked = (rest * order.price).quantize(_STEP) if order.side == "BUY" else rest
            free, locked = _free_locked(view, pay)
            report = _report(order)
            event = report.event(time + 1, "CANCELED", "CANCELED", order.executed_quantity, Decimal(0), None)
            event.update(c=f"sim-cancel-{order.order_id}", C=order.client_order_id)
            return [event, _position(time + 2, {pay: (free + unlocked, locked - unlocked)})]


def _options_order(order: LedgerOrder) -> _OptionsOrder:
    options = _OptionsOrder(order.symbol, order.side, order.quantity, order.price, order.order_id, "USDT")
    options.filled = order.executed_quantity
    return options


def _report(order: LedgerOrder) -> _SpotReport:
    report = _SpotReport(
        order.symbol,
        order.side,
        order.quantity,
        order.price,
        order.order_id,
        order.client_order_id,
        order.time + 1,
    )
    report.quote = order.cumulative_quote
    return report


def _free_locked(view: LedgerView, asset: str) -> tuple[Decimal, Decimal]:
    balance = view.balances.get(asset)
    if balance is None or balance.free is None:
        return STARTING.get(asset, Decimal(0)), Decimal(0)
    return balance.free, balance.locked or Decimal(0)


def _portfolio(event: dict[str, object]) -> dict[str, object]:
    """A USD-M (or COIN-M) event as Portfolio Margin sends it: its business unit and account alias,
    without the fields its orders and positions do not carry."""
    event["fs"], event["i"] = ("CM" if _is_cm(event) else "UM"), ""
    if event["e"] == "ORDER_TRADE_UPDATE":
        details = event["o"]
        assert isinstance(details, dict)
        for absent in _NOT_ON_PORTFOLIO_ORDERS:
            details.pop(absent, None)
    else:
        update = event["a"]
        assert isinstance(update, dict)
        for position in update["P"]:
            position.pop("mt", None), position.pop("iw", None)
    return event


def _is_cm(event: dict[str, object]) -> bool:
    details = event.get("o") or event.get("a")
    assert isinstance(details, dict)
    symbol = details.get("s") or details["P"][0]["s"]
    return "_" in str(symbol)
