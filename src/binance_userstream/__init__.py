"""Binance user data streams: the account's events as typed models, and a gap wherever one was lost.

The derivatives' listenKeys (USD-M, COIN-M, Portfolio Margin and Pro, Options) are created and kept
alive; spot and margin subscribe on the WebSocket API (signed, or with a margin listenToken).
Connections are replaced before Binance's 24-hour cut and after a loss, with a StreamGap to say so.

from binance_userstream import UserDataStream

with UserDataStream(market="usdm") as uds, uds.events() as stream:  # key from $BINANCE_API_KEY
    for item in stream:  # OrderTradeUpdate, AccountUpdate, ..., or a StreamGap
        print(item)
"""

import logging

from binance_userstream import errors
from binance_userstream._budget import SHARED_BUDGET, BudgetWait, WeightBudget
from binance_userstream._client import AsyncUserDataStream, UserDataStream
from binance_userstream._clock import AcceleratedClock, Clock, SteppedClock, SystemClock, VirtualClock
from binance_userstream._gate import SHARED_GATE, BackoffGate
from binance_userstream._hosts import HOSTS
from binance_userstream._markets import MARKETS, Market
from binance_userstream._policy import RetryPolicy
from binance_userstream._session import (
    MAX_INTERVAL,
    MIN_INTERVAL,
    AsyncKeepaliveSession,
    EventKind,
    KeepaliveSession,
    SessionEvent,
    SessionState,
)
from binance_userstream.account import (
    AccountMirror,
    AccountState,
    AsyncAccountMirror,
    Balance,
    Change,
    Order,
    Position,
    Reconciled,
    Trade,
)
from binance_userstream.errors import (
    AuthenticationError,
    BinanceAPIError,
    EndpointRetiredError,
    IPBannedError,
    ListenKeyNotFoundError,
    MalformedAnswerError,
    NetworkError,
    RateLimitedError,
    ServerError,
    SignatureError,
    SignerMissingError,
    TimestampError,
    UserStreamError,
    WeightBudgetError,
)
from binance_userstream.fleet import (
    Account,
    AsyncFleet,
    Fleet,
    FleetCallback,
    FleetItem,
    FleetLimits,
    load_accounts,
)
from binance_userstream.sink import JetStreamSink, Lost, PumpResult, Sink, pump
from binance_userstream.stream import (
    AsyncEventStream,
    EventStream,
    GapReason,
    RawEvent,
    StreamEvent,
    StreamEventKind,
    StreamGap,
    StreamTiming,
)

# A library leaves output to the application: nothing reaches stderr unless logging is configured.
logging.getLogger("binance_userstream").addHandler(logging.NullHandler())

__all__ = [
    "HOSTS",
    "MARKETS",
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "SHARED_BUDGET",
    "SHARED_GATE",
    "AcceleratedClock",
    "Account",
    "AccountMirror",
    "AccountState",
    "AsyncAccountMirror",
    "AsyncEventStream",
    "AsyncFleet",
    "AsyncKeepaliveSession",
    "AsyncUserDataStream",
    "AuthenticationError",
    "BackoffGate",
    "Balance",
    "BinanceAPIError",
    "BudgetWait",
    "Change",
    "Clock",
    "EndpointRetiredError",
    "EventKind",
    "EventStream",
    "Fleet",
    "FleetCallback",
    "FleetItem",
    "FleetLimits",
    "GapReason",
    "IPBannedError",
    "JetStreamSink",
    "KeepaliveSession",
    "ListenKeyNotFoundError",
    "Lost",
    "MalformedAnswerError",
    "Market",
    "NetworkError",
    "Order",
    "Position",
    "PumpResult",
    "RateLimitedError",
    "RawEvent",
    "Reconciled",
    "RetryPolicy",
    "ServerError",
    "SessionEvent",
    "SessionState",
    "SignatureError",
    "SignerMissingError",
    "Sink",
    "SteppedClock",
    "StreamEvent",
    "StreamEventKind",
    "StreamGap",
    "StreamTiming",
    "SystemClock",
    "TimestampError",
    "Trade",
    "UserDataStream",
    "UserStreamError",
    "VirtualClock",
    "WeightBudget",
    "WeightBudgetError",
    "errors",
    "load_accounts",
    "pump",
]
