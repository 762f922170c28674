"""Realistic USD-M event traffic for demos and tests: one order's life, as its account sees it.

An order is placed (ORDER_TRADE_UPDATE NEW), partly filled (PARTIALLY_FILLED / TRADE, then the
ACCOUNT_UPDATE the fill causes), then filled (FILLED / TRADE, and its ACCOUNT_UPDATE). Payloads
have the shapes of Binance's documentation samples
(https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Order-Update,
.../Event-Balance-and-Position-Update); decimals are strings, event times `E` and ids only grow.
"""

from __future__ import annotations

import threading
from decimal import ROUND_DOWN, Decimal

#: The commission rate charged on each fill (a taker's, in USD-M's default tier).
COMMISSION = Decimal("0.0005")


class Traffic:
    """Generates orders' events; each generator keeps its own ids and last event time, so a run's
    events are strictly increasing in `E`, order id and trade id."""

    def __init__(self, first_order_id: int = 8_886_774, first_trade_id: int = 1_300_000) -> None:
        self._order_id = first_order_id
        self._trade_id = first_trade_id
        self._last_time = 0
        self._balances: dict[str, Decimal] = {}
        self._positions: dict[str, Decimal] = {}
        self._lock = threading.Lock()

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
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, not {side!r}")
        qty, px = Decimal(quantity), Decimal(price)
        if not (qty > 0 and px > 0):
            raise ValueError("quantity and price must be positive decimals")
        with self._lock:
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
                commission = (fill * px * COMMISSION).quantize(Decimal("0.00000001"))
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
