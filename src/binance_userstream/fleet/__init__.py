"""Many accounts, few connections: a fleet of accounts' event streams, multiplexed.

Each account keeps every rule one event stream has (`stream`): events in order, a StreamGap exactly
where events may be missing (for that account alone), make-before-break rotation, its key kept
alive or its token renewed, a bounded buffer. Their subscriptions share connections: up to 1,000
accounts on one WebSocket API connection (spot, margin), up to 1,024 listenKeys on a derivatives
combined stream (200 on Options), within Binance's per-IP limits (`FleetLimits`). The rules are
`_core` and `_pool` (no I/O); `_driver` is the asyncio driver (`events()` runs it too, a fleet of
one), `_async` gives each account its REST side, and `_sync` runs it all on a thread.
"""

from binance_userstream.fleet._account import Account
from binance_userstream.fleet._accounts_file import load_accounts
from binance_userstream.fleet._async import AsyncFleet
from binance_userstream.fleet._core import FleetItem
from binance_userstream.fleet._driver import FleetCallback
from binance_userstream.fleet._limits import FleetLimits
from binance_userstream.fleet._sync import Fleet

__all__ = ["Account", "AsyncFleet", "Fleet", "FleetCallback", "FleetItem", "FleetLimits", "load_accounts"]
