"""One readable line per event, for `binance-userstream listen`: what a person watching needs.

Which attributes a line shows is a table (`SHOWN`), a row per event model, rather than code per
market: an order shows its symbol, side, status, quantity and price; an account update its
balances and positions; an UnknownEvent the event type it carries. A model without a row (one
added to the spec later) shows its plain attributes. A credential (a field kept out of the model's
repr) is shown redacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from attrs import frozen
from binance_userstream_client.models import (
    AccountConfigUpdate,
    AccountUpdate,
    AlgoUpdate,
    BalanceUpdate,
    ConditionalOrderTradeUpdate,
    ConditionalOrderTriggerReject,
    EventStreamTerminated,
    ExecutionReport,
    ExternalLockUpdate,
    GridUpdate,
    LiabilityChange,
    ListenKeyExpired,
    ListStatus,
    MarginCall,
    OpenOrderLoss,
    OptionsAccountUpdate,
    OptionsBalancePositionUpdate,
    OptionsGreekUpdate,
    OptionsOrderTradeUpdate,
    OptionsRiskLevelChange,
    OrderTradeUpdate,
    OutboundAccountPosition,
    PortfolioAlgoUpdate,
    PortfolioBalanceUpdate,
    PortfolioExecutionReport,
    PortfolioOutboundAccountPosition,
    PortfolioProAccountUpdate,
    PortfolioRiskLevelChange,
    ServerShutdown,
    StrategyUpdate,
    TradeLite,
    UnknownEvent,
)
from binance_userstream_client.types import Unset

from binance_userstream._secrets import redact, server_text


@frozen
class Each:
    """A list attribute at `path`, shown as `label=[KEY name=value ...; ...]`: each element's `key`
    attribute, then its `fields`."""

    label: str
    path: str
    key: str
    fields: tuple[str, ...]


Shown = str | Each
"""`"path"` (shown under its last attribute's name), `"label=path"`, or an `Each`."""

#: An executionReport's row, and an outboundAccountPosition's: spot's, margin's and Portfolio Margin's.
_REPORT: tuple[Shown, ...] = (
    "symbol",
    "side",
    "type=order_type",
    "execution=execution_type",
    "status=order_status",
    "quantity",
    "price",
    "filled=cumulative_filled_quantity",
    "last_price=last_executed_price",
)
_POSITION: tuple[Shown, ...] = (Each("balances", "balances", "asset", ("free", "locked")),)

#: A futures or Options order update's fields (Options' orders have no position side).
_DERIVATIVES_ORDER: tuple[Shown, ...] = (
    "symbol=order.symbol",
    "side=order.side",
    "type=order.order_type",
    "execution=order.execution_type",
    "status=order.order_status",
    "quantity=order.quantity",
    "price=order.price",
    "filled=order.cumulative_filled_quantity",
    "last_price=order.last_filled_price",
)

SHOWN: Mapping[type[Any], tuple[Shown, ...]] = {
    OrderTradeUpdate: (*_DERIVATIVES_ORDER, "position_side=order.position_side"),
    TradeLite: (
        "symbol",
        "side",
        "quantity",
        "price",
        "last_quantity=last_filled_quantity",
        "last_price=last_filled_price",
    ),
    AccountUpdate: (
        "reason=update_data.reason",
        Each("balances", "update_data.balances", "asset", ("wallet_balance", "balance_change")),
        Each(
            "positions",
            "update_data.positions",
            "symbol",
            ("position_amount", "entry_price", "unrealized_pnl"),
        ),
    ),
    AccountConfigUpdate: (
        "symbol=symbol_config.symbol",
        "leverage=symbol_config.leverage",
        "multi_assets_mode=account_config.multi_assets_mode",
    ),
    MarginCall: (
        "cross_wallet_balance",
        Each("positions", "positions", "symbol", ("position_amount", "mark_price", "maintenance_margin")),
    ),
    AlgoUpdate: (
        "symbol=order.symbol",
        "side=order.side",
        "type=order.order_type",
        "status=order.algo_status",
        "quantity=order.quantity",
        "trigger_price=order.trigger_price",
        "price=order.price",
    ),
    ConditionalOrderTriggerReject: (
        "symbol=order.symbol",
        "order_id=order.order_id",
        "reason=order.reject_reason",
    ),
    GridUpdate: ("symbol=grid.symbol", "status=grid.strategy_status", "realized_pnl=grid.realized_pnl"),
    StrategyUpdate: ("symbol=strategy.symbol", "status=strategy.strategy_status", "op_code=strategy.op_code"),
    OptionsOrderTradeUpdate: _DERIVATIVES_ORDER,
    OptionsAccountUpdate: ("equity", "wallet_balance", "unrealized_pnl", "maintenance_margin"),
    OptionsBalancePositionUpdate: (
        "reason",
        Each("balances", "balances", "asset", ("balance", "balance_change")),
        Each("positions", "positions", "symbol", ("position_quantity", "average_entry_price")),
    ),
    OptionsGreekUpdate: (Each("greeks", "greeks", "underlying", ("delta", "gamma", "theta", "vega")),),
    OptionsRiskLevelChange: ("risk_level", "margin_balance", "maintenance_margin"),
    ConditionalOrderTradeUpdate: (
        "symbol=strategy_order.symbol",
        "side=strategy_order.side",
        "type=strategy_order.strategy_type",
        "status=strategy_order.strategy_status",
        "quantity=strategy_order.quantity",
        "price=strategy_order.price",
        "stop_price=strategy_order.stop_price",
    ),
    PortfolioAlgoUpdate: (
        "symbol=algo_order.symbol",
        "side=algo_order.side",
        "type=algo_order.order_type",
        "status=algo_order.algo_status",
        "quantity=algo_order.quantity",
        "trigger_price=algo_order.trigger_price",
        "price=algo_order.price",
    ),
    LiabilityChange: ("asset", "type=liability_type", "principal", "interest", "total_liability"),
    OpenOrderLoss: (Each("losses", "losses", "asset", ("amount",)),),
    PortfolioRiskLevelChange: ("risk_level", "uni_mmr", "account_equity", "maintenance_margin"),
    PortfolioProAccountUpdate: ("uni_mmr", "account_equity", "maintenance_margin", "available_balance"),
    ExecutionReport: _REPORT,
    PortfolioExecutionReport: _REPORT,  # Portfolio Margin's margin account: spot's events, shown as spot's
    ListStatus: (
        "symbol",
        "contingency_type",
        "status=list_order_status",
        Each("orders", "orders", "symbol", ("order_id",)),
    ),
    OutboundAccountPosition: _POSITION,
    PortfolioOutboundAccountPosition: _POSITION,
    BalanceUpdate: ("asset", "delta=balance_delta"),
    PortfolioBalanceUpdate: ("asset", "delta=balance_delta"),
    ExternalLockUpdate: ("asset", "delta"),
    ListenKeyExpired: ("listen_key",),
    EventStreamTerminated: (),
    ServerShutdown: (),
    UnknownEvent: ("type=event_type",),  # its class says nothing of what came: the `e` it carries does
}
"""Each event model's row: what its line shows, in order."""

_MISSING = object()
#: Digits an event time in milliseconds has at most (20 are 300 million years): a longer string
#: is no time, and int() refuses one of more than 4,300.
_TIME_DIGITS = 20


def line(event: attrs.AttrsInstance) -> str:
    """`Model 2026-12-04 18:47:01.106 name=value, ...` for a decoded event (its time in UTC)."""
    row = next((SHOWN[cls] for cls in type(event).__mro__ if cls in SHOWN), None)
    parts = [_shown(event, entry) for entry in row] if row is not None else _plain(event)
    head = f"{type(event).__name__} {_time(getattr(event, 'event_time', None))}"
    return " ".join([head, ", ".join(part for part in parts if part)]).rstrip()


def _time(value: object) -> str:
    """An event time in ms since the epoch as a UTC time to the millisecond; anything else as sent,
    escaped and bounded as the line's other server text."""
    # isascii: str.isdigit also takes digits int() refuses ("²").
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= _TIME_DIGITS:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return f"event_time={_text(value)}"
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{value % 1000:03d}"
    return "" if value is None or isinstance(value, Unset) else f"event_time={_text(value)}"


def _shown(event: attrs.AttrsInstance, entry: Shown) -> str:
    if isinstance(entry, Each):
        items = _get(event, entry.path)
        if not isinstance(items, list):
            return ""
        shown = [f"{_text(_get(item, entry.key))} {_fields(item, entry.fields)}".strip() for item in items]
        return f"{entry.label}=[{'; '.join(shown)}]"
    label, _, path = entry.rpartition("=")
    value = _get(event, path)
    if value is _MISSING:
        return ""
    return f"{label or path.rsplit('.', 1)[-1]}={_text(value)}"


def _text(value: object) -> str:
    """A value as the server sent it, fit for a terminal: control characters escaped, length
    bounded, anything shaped like a key scrubbed (the values are the server's text)."""
    return server_text(str(value))


def _fields(item: object, names: tuple[str, ...]) -> str:
    values = ((name, _get(item, name)) for name in names)
    return " ".join(f"{name}={_text(value)}" for name, value in values if value is not _MISSING)


def _get(obj: object, path: str) -> Any:
    """The attribute at the dotted `path`, redacted if it is a credential (kept out of its model's
    repr); _MISSING where a step is absent (Unset or None). A name the model lacks raises
    AttributeError: a row that names one is wrong."""
    for name in path.split("."):
        owner = obj
        obj = getattr(obj, name)
        if obj is None or isinstance(obj, Unset):
            return _MISSING
    kind = type(owner)
    if attrs.has(kind) and attrs.fields_dict(kind)[name].repr is False:
        return redact(str(obj))
    return obj


def _plain(event: attrs.AttrsInstance) -> list[str]:
    """`name=value` for a model's plain attributes: nested objects, lists, absent fields, the
    event's type and time (in the line's head) and credentials (repr=False) left out."""
    parts = []
    for field in attrs.fields(type(event)):
        value = getattr(event, field.name)
        if field.repr is False or field.name in ("event_type", "event_time", "additional_properties"):
            continue
        if isinstance(value, Unset | list | dict) or attrs.has(type(value)):
            continue
        parts.append(f"{field.name}={_text(value)}")
    return parts
