"""Realistic event traffic for demos and tests: one order's life, as its account sees it.

USD-M (and the other derivatives, `order`):

An order is placed (ORDER_TRADE_UPDATE NEW), partly filled (PARTIALLY_FILLED / TRADE, then the
ACCOUNT_UPDATE the fill causes), then filled (FILLED / TRADE, and its ACCOUNT_UPDATE). Payloads
have the shapes of Binance's documentation samples
(https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Order-Update,
.../Event-Balance-and-Position-Update); decimals are strings, event times `E` and ids only grow.

COIN-M (`coinm_order`): the same events, in contracts. A contract is worth a fixed amount of USD
(`coinm_contract_size`) and the account is margined in the coin, so a fill's notional is
contracts x contract size / price coins and its commission that times the rate: quantity x price
would move a BTC wallet by tens of BTC an order.

Options (`options_order`): Options' own shapes
(https://developers.binance.com/docs/derivatives/options-trading/user-data-streams): a LIMIT order
placed (ORDER_TRADE_UPDATE NEW, an `o` without the futures' `sp`, `wt`, `ps`, `cp`), each fill a
TRADE and the BALANCE_POSITION_UPDATE it causes (the premium paid or received, and the position),
then the account (ACCOUNT_UPDATE, flat) and its Greeks (GREEK_UPDATE, decimal strings, illustrative).

Spot and margin (`spot_order`, the same shapes for both): a LIMIT order is placed (executionReport
NEW, and the outboundAccountPosition of the funds it locks), partly filled (TRADE /
PARTIALLY_FILLED, outboundAccountPosition), then filled (TRADE / FILLED, outboundAccountPosition),
with the shapes of user-data-stream.md's samples (https://github.com/binance/binance-spot-api-docs).

Portfolio Margin (`portfolio_order`): the same order on its UM side, in Portfolio Margin's shapes
(`fs`, `i`; no `wt`, `ot`, `cp`, ... in the order, no `mt`, `iw` in a position:
https://developers.binance.com/docs/derivatives/portfolio-margin/user-data-streams/Event-Futures-Order-update,
.../Event-Futures-Balance-and-Position-Update). Portfolio Margin Pro (`account_status`): its stream
carries no order events (they come on USD-M's), only the PM_PRO_ACCOUNT_UPDATE pushed every five
seconds (https://developers.binance.com/docs/derivatives/portfolio-margin-pro/portfolio-margin-pro-user-data-stream/Event-pmProAccountUpdate).
"""

from __future__ import annotations

import re
import threading
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation, localcontext

#: The commission rate charged on each fill (a taker's, in USD-M's default tier).
COMMISSION = Decimal("0.0005")
#: A COIN-M symbol: its pair (base coin, then USD) and its perpetual or delivery date.
_COINM_SYMBOL = re.compile(r"(?P<base>[A-Z0-9]+)USD_(PERP|[0-9]{6})")


def coinm_contract_size(symbol: str) -> int:
    """What one contract of a COIN-M `symbol` is worth, in USD: 100 for BTCUSD's (perpetual and
    delivery), 10 for every other pair's, as Binance's COIN-M contract specifications (and its
    exchangeInfo's `contractSize`) give them."""
    return 100 if symbol.partition("_")[0] == "BTCUSD" else 10


class Traffic:
    """Generates orders' events; each generator keeps its own ids and last event time, so a run's
    events are strictly increasing in `E`, order id and trade id."""

    def __init__(self, first_order_id: int = 8_886_774, first_trade_id: int = 1_300_000) -> None:
        self._order_id = first_order_id
        self._trade_id = first_trade_id
        self._last_time = 0
        self._balances: dict[str, Decimal] = {}
        self._positions: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}  # spot's and margin's, by `spot:ASSET`
        self._lock = threading.Lock()

    def load(
        self,
        balances: dict[str, Decimal],
        positions: dict[str, Decimal],
        locked: dict[str, Decimal] | None = None,
    ) -> None:
        """Start the next order from these balances, positions and (spot, margin) funds locked by
        other orders, keyed as the generators keep them (`spot:ASSET`, `options:ASSET`, ASSET;
        SYMBOL, `options:SYMBOL`): the simulator loads the account's ledger before each order, so
        that its events continue the account's state."""
        with self._lock:
            self._balances, self._positions = dict(balances), dict(positions)
            self._locked = dict(locked or {})

    def next_step(self, now_ms: int, *, trade: bool, span: int = 2) -> tuple[int, int]:
        """An id (a new order's, or with `trade` a new trade's) and a time from `now_ms` on, later
        than every event before; the next event comes at least `span` ms after it. For the
        simulator's orders step by step (`place_order`, `fill_order`, `cancel_order`)."""
        with self._lock:
            if trade:
                self._trade_id += 1
            else:
                self._order_id += 1
            time = max(now_ms, self._last_time + 1)
            self._last_time = time + span
            return (self._trade_id if trade else self._order_id), time

    def order(
        self,
        now_ms: int,
        *,
        symbol: str = "BTCUSDT",
        side: str = "BUY",
        quantity: str = "0.010",
        price: str = "43000.10",
        asset: str = "USDT",
        balance: str = "10000.00000000",
    ) -> list[dict[str, object]]:
        """The five events of one LIMIT order filled in two halves; `now_ms` is the first event's
        time (moved on if it would not be later than the previous event). `balance` is the wallet
        balance of `asset` before the account's first order."""
        return self._futures_order(now_ms, symbol, side, quantity, price, asset, balance, contract_size=None)

    def coinm_order(
        self,
        now_ms: int,
        *,
        symbol: str = "BTCUSD_PERP",
        side: str = "BUY",
        quantity: str = "2",
        price: str = "43000.1",
        asset: str | None = None,
        balance: str = "1.00000000",
    ) -> list[dict[str, object]]:
        """`order`'s five events on COIN-M: `quantity` counts contracts (a whole number), `asset` is
        the symbol's coin (its default), and the commission is charged in it on the contracts' USD
        value (`coinm_contract_size`) at `price`. ValueError for an order COIN-M could not have."""
        match = _COINM_SYMBOL.fullmatch(symbol)
        if match is None:
            raise ValueError(f"symbol must be a COIN-M symbol (such as 'BTCUSD_PERP'), not {symbol!r}")
        coin = match["base"]
        if asset not in (None, coin):
            raise ValueError(f"COIN-M's {symbol} is margined in {coin}, not {asset!r}")
        contracts = _amount("quantity", quantity)
        if contracts != contracts.to_integral_value():
            raise ValueError(f"quantity must be a whole number of contracts on COIN-M, not {quantity!r}")
        size = Decimal(coinm_contract_size(symbol))
        return self._futures_order(now_ms, symbol, side, quantity, price, coin, balance, contract_size=size)

    def _futures_order(
        self,
        now_ms: int,
        symbol: str,
        side: str,
        quantity: str,
        price: str,
        asset: str,
        balance: str,
        *,
        contract_size: Decimal | None,
    ) -> list[dict[str, object]]:
        """`order` (`contract_size` None: a quantity of the base asset, margined in `asset`) or
        `coinm_order` (a quantity of contracts worth `contract_size` USD each, margined in the coin)."""
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, not {side!r}")
        qty, px = _amount("quantity", quantity), _amount("price", price)
        _amount("balance", balance, positive=False)
        with self._lock, localcontext(_ARITHMETIC):
            self._order_id += 1
            order_id = self._order_id
            start = max(now_ms, self._last_time + 1)
            first = (qty / 2).quantize(qty, rounding=ROUND_DOWN)  # half, in the quantity's steps
            fills = [first, qty - first] if 0 < first < qty else [qty]
            client_id = f"sim-{order_id}"
            events: list[dict[str, object]] = [
                _order_event(start, symbol, side, qty, px, order_id, client_id, "NEW", "NEW", Decimal(0))
            ]
            filled = Decimal(0)
            wallet = self._balances.setdefault(asset, Decimal(balance))
            sign = 1 if side == "BUY" else -1
            for number, fill in enumerate(fills, 1):
                filled += fill
                self._trade_id += 1
                notional = fill * px if contract_size is None else fill * contract_size / px
                commission = (notional * COMMISSION).quantize(Decimal("0.00000001"))
                wallet -= commission
                position = self._positions.get(symbol, Decimal(0)) + sign * fill
                self._positions[symbol] = position
                status = "FILLED" if filled == qty else "PARTIALLY_FILLED"
                time = start + 2 * number
                trade = _order_event(
                    time - 1, symbol, side, qty, px, order_id, client_id, "TRADE", status, filled
                )
                trade_o = trade["o"]
                assert isinstance(trade_o, dict)
                trade_o.update(
                    l=str(fill), L=str(px), n=str(commission), t=self._trade_id, ap=str(px), N=asset
                )
                events.append(trade)
                events.append(_account_event(time, asset, wallet, symbol, position, px))
            self._balances[asset] = wallet
            self._last_time = start + 2 * len(fills)
            return events

    def options_order(
        self,
        now_ms: int,
        *,
        symbol: str = "BTC-251123-126000-C",
        side: str = "BUY",
        quantity: str = "0.2000",
        price: str = "1200.000",
        asset: str = "USDT",
        balance: str = "10000.00000000",
    ) -> list[dict[str, object]]:
        """The events of one Options LIMIT order filled in two halves, in Options' shapes: NEW, then
        per fill a TRADE and its BALANCE_POSITION_UPDATE, then ACCOUNT_UPDATE and GREEK_UPDATE.
        `balance` is the wallet balance of `asset` before the account's first Options order; a BUY
        pays the premium (price times quantity) and a SELL receives it, less the commission."""
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, not {side!r}")
        qty, px = _amount("quantity", quantity), _amount("price", price)
        _amount("balance", balance, positive=False)
        with self._lock, localcontext(_ARITHMETIC):
            self._order_id += 1
            order = _OptionsOrder(symbol, side, qty, px, self._order_id, asset)
            start = max(now_ms, self._last_time + 1)
            first = (qty / 2).quantize(qty, rounding=ROUND_DOWN)
            fills = [first, qty - first] if 0 < first < qty else [qty]
            events = [order.event(start, "NEW", "NEW", None)]
            wallet = self._balances.setdefault(f"options:{asset}", Decimal(balance))
            position = self._positions.get(f"options:{symbol}", Decimal(0))
            sign = 1 if side == "BUY" else -1
            time = start
            for fill in fills:
                self._trade_id += 1
                time += 2
                premium = fill * px
                commission = (premium * COMMISSION).quantize(Decimal("0.00000001"))
                wallet += -sign * premium - commission
                position += sign * fill
                events.append(order.event(time - 1, "TRADE", None, (fill, commission, self._trade_id)))
                events.append(_options_balance_position(time, asset, wallet, symbol, position, px))
            self._balances[f"options:{asset}"] = wallet
            self._positions[f"options:{symbol}"] = position
            events.append(_options_account(time + 1, wallet, position * px))
            events.append(_options_greeks(time + 2, symbol, asset, position))
            self._last_time = time + 2
            return events

    def spot_order(
        self,
        now_ms: int,
        *,
        symbol: str = "BTCUSDT",
        side: str = "BUY",
        quantity: str = "0.01000000",
        price: str = "43000.10000000",
        asset: str = "USDT",
        balance: str = "10000.00000000",
    ) -> list[dict[str, object]]:
        """The six events of one spot (or margin) LIMIT order filled in two halves: executionReport
        NEW, TRADE PARTIALLY_FILLED, TRADE FILLED, each followed by the outboundAccountPosition of the
        base asset (`symbol` without the quote `asset`) and the quote asset. `balance` is the free
        quote (BUY) or, for SELL, base balance before the account's first order."""
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, not {side!r}")
        qty, px = _amount("quantity", quantity), _amount("price", price)
        _amount("balance", balance, positive=False)
        base = symbol.removesuffix(asset) if symbol.endswith(asset) and symbol != asset else "BASE"
        step = Decimal("0.00000001")
        with self._lock, localcontext(_ARITHMETIC):
            self._order_id += 1
            order_id = self._order_id
            start = max(now_ms, self._last_time + 1)
            # free and locked balances: what a BUY pays (quote) and gets (base), or a SELL the reverse
            pay, get = (asset, base) if side == "BUY" else (base, asset)
            cost = (qty * px).quantize(step) if side == "BUY" else qty
            free = self._balances.setdefault(f"spot:{pay}", Decimal(balance))
            got = self._balances.setdefault(f"spot:{get}", Decimal(0))
            held = self._locked.get(f"spot:{pay}", Decimal(0))  # locked by the account's other orders
            held_got = self._locked.get(f"spot:{get}", Decimal(0))
            locked = held + cost
            free -= cost
            report = _SpotReport(symbol, side, qty, px, order_id, f"sim-{order_id}", start)
            events: list[dict[str, object]] = [
                report.event(start, "NEW", "NEW", Decimal(0), Decimal(0), None),
                _position(start + 1, {pay: (free, locked), get: (got, held_got)}),
            ]
            first = (qty / 2).quantize(qty, rounding=ROUND_DOWN)
            fills = [first, qty - first] if 0 < first < qty else [qty]
            filled = Decimal(0)
            for number, fill in enumerate(fills, 1):
                filled += fill
                self._trade_id += 1
                time = start + 2 * number
                spent = (fill * px).quantize(step) if side == "BUY" else fill
                received = fill if side == "BUY" else (fill * px).quantize(step)
                commission = (received * COMMISSION * 2).quantize(step)  # spot's 0.1% taker fee
                locked -= spent
                got += received - commission
                status = "FILLED" if filled == qty else "PARTIALLY_FILLED"
                trade = report.event(time, "TRADE", status, filled, fill, (commission, get, self._trade_id))
                events.append(trade)
                events.append(_position(time + 1, {pay: (free, locked), get: (got, held_got)}))
            self._balances[f"spot:{pay}"] = free + locked - held  # an unfilled rest (rounding) is unlocked
            self._balances[f"spot:{get}"] = got
            self._last_time = start + 2 * len(fills) + 1
            return events

    def portfolio_order(self, now_ms: int, **order: str) -> list[dict[str, object]]:
        """`order`'s five events as Portfolio Margin sends them for its UM side."""
        events = self.order(now_ms, **order)
        for event in events:
            event["fs"], event["i"] = "UM", ""  # the business unit; the account alias, empty for UM
            if event["e"] == "ORDER_TRADE_UPDATE":
                details = event["o"]
                assert isinstance(details, dict)
                for absent in _NOT_ON_PORTFOLIO_ORDERS:
                    del details[absent]
            else:
                update = event["a"]
                assert isinstance(update, dict)
                for position in update["P"]:
                    del position["mt"], position["iw"]
        return events

    def account_status(
        self, now_ms: int, *, asset: str = "USDT", balance: str = "10000.00000000"
    ) -> list[dict[str, object]]:
        """One PM_PRO_ACCOUNT_UPDATE: the account's equity is the wallet balance of `asset` (its
        balance before the account's first order, `balance`), in USD; the initial and maintenance
        margins are set at 1% and 0.5% of it, so uniMMR is 200."""
        _amount("balance", balance, positive=False)
        step = Decimal("0.00000001")
        with self._lock, localcontext(_ARITHMETIC):
            time = max(now_ms, self._last_time + 1)
            self._last_time = time
            equity = self._balances.get(asset, Decimal(balance))
            initial, maintenance = (equity / 100).quantize(step), (equity / 200).quantize(step)
            available = equity - initial
            return [
                {
                    "e": "PM_PRO_ACCOUNT_UPDATE",
                    "E": time,
                    "u": f"{equity / maintenance:.8f}" if maintenance else "0",
                    "eq": f"{equity:.8f}",
                    "ae": f"{equity:.8f}",
                    "im": f"{initial:.8f}",
                    "mm": f"{maintenance:.8f}",
                    "avb": f"{available:.8f}",
                    "vmw": f"{available:.8f}",
                }
            ]


#: The fields of a USD-M order that Portfolio Margin's ORDER_TRADE_UPDATE does not carry.
_NOT_ON_PORTFOLIO_ORDERS = ("wt", "ot", "cp", "pP", "si", "ss", "pm", "er")


class _SpotReport:
    """The executionReports of one spot order: what stays, and each step's fields."""

    def __init__(
        self, symbol: str, side: str, qty: Decimal, px: Decimal, order_id: int, client_id: str, created: int
    ) -> None:
        self.symbol, self.side, self.qty, self.px = symbol, side, qty, px
        self.order_id, self.client_id, self.created = order_id, client_id, created
        self.quote = Decimal(0)
        self.executions = 0

    def event(
        self,
        time: int,
        execution: str,
        status: str,
        filled: Decimal,
        last: Decimal,
        trade: tuple[Decimal, str, int] | None,
    ) -> dict[str, object]:
        last_quote = (last * self.px).quantize(Decimal("0.00000001"))
        self.quote += last_quote
        commission, commission_asset, trade_id = trade if trade else (Decimal(0), None, -1)
        self.executions += 1
        return {
            "e": "executionReport",
            "E": time,
            "s": self.symbol,
            "c": self.client_id,
            "S": self.side,
            "o": "LIMIT",
            "f": "GTC",
            "q": f"{self.qty:.8f}",
            "p": f"{self.px:.8f}",
            "P": "0.00000000",
            "F": "0.00000000",
            "g": -1,
            "C": "",
            "x": execution,
            "X": status,
            "r": "NONE",
            "i": self.order_id,
            "l": f"{last:.8f}",
            "z": f"{filled:.8f}",
            "L": f"{self.px if trade else 0:.8f}",
            "n": f"{commission:.8f}" if trade else "0",
            "N": commission_asset,
            "T": time - 1,
            "t": trade_id,
            "I": self.order_id * 100 + self.executions,
            "w": status != "FILLED",
            "m": False,
            "M": trade is not None,
            "O": self.created - 1,
            "Z": f"{self.quote:.8f}",
            "Y": f"{last_quote:.8f}",
            "Q": "0.00000000",
            "W": self.created - 1,
            "V": "EXPIRE_MAKER",
        }


class _OptionsOrder:
    """The ORDER_TRADE_UPDATEs of one Options order: what stays, and what each step moves."""

    def __init__(self, symbol: str, side: str, qty: Decimal, px: Decimal, order_id: int, asset: str) -> None:
        self.symbol, self.side, self.qty, self.px = symbol, side, qty, px
        self.order_id, self.asset = order_id, asset
        self.filled = Decimal(0)

    def event(
        self, time: int, execution: str, status: str | None, trade: tuple[Decimal, Decimal, int] | None
    ) -> dict[str, object]:
        last, commission, trade_id = trade if trade else (Decimal(0), Decimal(0), 0)
        self.filled += last
        left = self.px * (self.qty - self.filled)
        return {
            "e": "ORDER_TRADE_UPDATE",
            "E": time,
            "T": time - 1,
            "o": {
                "s": self.symbol,
                "c": f"sim-{self.order_id}",
                "S": self.side,
                "o": "LIMIT",
                "f": "GTC",
                "q": str(self.qty),
                "p": str(self.px),
                "ap": str(self.px) if self.filled else "0",
                "x": execution,
                "X": status or ("FILLED" if self.filled == self.qty else "PARTIALLY_FILLED"),
                "i": self.order_id,
                "l": str(last),
                "z": str(self.filled),
                "L": str(self.px) if trade else "0",
                "N": self.asset,
                "n": str(-commission) if trade else "0",  # negative: a fee charged
                "T": time - 1,
                "t": trade_id,
                "b": str(left) if self.side == "BUY" else "0",
                "a": str(left) if self.side == "SELL" else "0",
                "m": False,
                "R": False,
                "ot": "LIMIT",
                "rp": "0",
            },
        }


def _options_balance_position(
    time: int, asset: str, wallet: Decimal, symbol: str, position: Decimal, px: Decimal
) -> dict[str, object]:
    return {
        "e": "BALANCE_POSITION_UPDATE",
        "E": time,
        "T": time - 1,
        "m": "ORDER",
        "B": [{"a": asset, "b": str(wallet), "bc": "0"}],
        "P": [{"s": symbol, "c": str(position), "p": str(position * px), "a": str(px) if position else "0"}],
    }


def _options_account(time: int, wallet: Decimal, position_value: Decimal) -> dict[str, object]:
    """The flat Options ACCOUNT_UPDATE: equity and balances in USDT, no unrealized PnL (marked at the
    fill price)."""
    return {
        "e": "ACCOUNT_UPDATE",
        "E": time,
        "T": time - 1,
        "eq": str(wallet + position_value),
        "aeq": str(wallet + position_value),
        "b": str(wallet),
        "m": str(position_value),
        "u": "0",
        "i": "0",
        "M": "0",
    }


def _options_greeks(time: int, symbol: str, asset: str, position: Decimal) -> dict[str, object]:
    """GREEK_UPDATE for the option's underlying (`BTC-251123-126000-C` and USDT: BTCUSDT), with an
    illustrative delta of half the position per contract."""
    underlying = symbol.split("-", 1)[0] + asset
    return {
        "e": "GREEK_UPDATE",
        "E": time,
        "T": time,
        "G": [{"u": underlying, "d": str(position / 2), "g": "0", "t": "0", "v": "0"}],
    }


def _position(time: int, balances: dict[str, tuple[Decimal, Decimal]]) -> dict[str, object]:
    return {
        "e": "outboundAccountPosition",
        "E": time,
        "u": time - 1,
        "B": [
            {"a": asset, "f": f"{free:.8f}", "l": f"{locked:.8f}"}
            for asset, (free, locked) in balances.items()
        ],
    }


def _order_event(
    time: int,
    symbol: str,
    side: str,
    qty: Decimal,
    px: Decimal,
    order_id: int,
    client_id: str,
    execution: str,
    status: str,
    filled: Decimal,
) -> dict[str, object]:
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": time,
        "T": time - 1,
        "o": {
            "s": symbol,
            "c": client_id,
            "S": side,
            "o": "LIMIT",
            "f": "GTC",
            "q": str(qty),
            "p": str(px),
            "ap": "0",
            "sp": "0",
            "x": execution,
            "X": status,
            "i": order_id,
            "l": "0",
            "z": str(filled),
            "L": "0",
            "n": "0",
            "T": time - 1,
            "t": 0,
            "b": str(px * (qty - filled)) if side == "BUY" else "0",
            "a": str(px * (qty - filled)) if side == "SELL" else "0",
            "m": False,
            "R": False,
            "wt": "CONTRACT_PRICE",
            "ot": "LIMIT",
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_TAKER",
            "pm": "NONE",
            "gtd": 0,
            "er": "0",
        },
    }


def _account_event(
    time: int, asset: str, wallet: Decimal, symbol: str, position: Decimal, px: Decimal
) -> dict[str, object]:
    return {
        "e": "ACCOUNT_UPDATE",
        "E": time,
        "T": time - 1,
        "a": {
            "m": "ORDER",
            "B": [{"a": asset, "wb": str(wallet), "cw": str(wallet), "bc": "0"}],
            "P": [
                {
                    "s": symbol,
                    "pa": str(position),
                    "ep": str(px) if position else "0",
                    "bep": str(px) if position else "0",
                    "cr": "0",
                    "up": "0",
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            ],
        },
    }


#: Digits an amount may have before its decimal point, and after it: Binance's decimals have at most
#: 20 or so, and 8.
_MAX_DIGITS = 30
#: The arithmetic on an order's amounts: exact for any `_amount` takes (each has at most 2 * _MAX_DIGITS
#: digits, a product of two to 8 decimals 4 * _MAX_DIGITS + 8), where the default context's 28 digits
#: made quantize raise InvalidOperation (a quantity of 1e25) half-way through an order.
_ARITHMETIC = Context(prec=4 * _MAX_DIGITS + 8)


def _amount(name: str, text: object, *, positive: bool = True) -> Decimal:
    """`text` as a Decimal if it is a decimal string Binance could send (finite, not absurdly long,
    positive or, for a balance, not negative); ValueError otherwise, not the decimal module's
    InvalidOperation."""
    try:
        value = Decimal(text) if isinstance(text, str) else None
    except InvalidOperation:
        value = None
    if (
        value is None
        or not value.is_finite()
        or value.adjusted() >= _MAX_DIGITS
        or -int(value.as_tuple().exponent) > _MAX_DIGITS  # finite: its exponent is an int
        or value < 0
        or (positive and value == 0)
    ):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a {kind} decimal string (such as '0.010'), not {text!r}")
    return value
