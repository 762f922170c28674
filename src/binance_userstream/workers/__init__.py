"""Which worker publishes which account: leases in a JetStream key-value bucket, shared by workers.

Workers on any number of machines share the accounts by leases (one per account, with a TTL,
renewed by heartbeat, moved by compare-and-set on the revision): each takes a fair share, a dead
worker's accounts are taken by the others after the TTL (each with a gap), a planned handover (a
joining worker, SIGTERM on a leaving one) is make-before-break, and a worker that can no longer
renew stops publishing before anyone else may start. The rules are `_leases` (no I/O); `_kv` runs
them over nats-py's key-value API (`Leases`, nats-py imported when it starts: `pip install
binance-userstream[nats]`) and hands the application `Start` and `Stop` changes.
`tune_collector` sets the garbage collector for a process of workers, as `fleet serve` does.
"""

from binance_userstream.workers._collector import tune_collector
from binance_userstream.workers._kv import BUCKET, Leases
from binance_userstream.workers._leases import Change, LeaseCore, LeaseTiming, LeaseValue, Start, Stop

__all__ = [
    "BUCKET",
    "Change",
    "LeaseCore",
    "LeaseTiming",
    "LeaseValue",
    "Leases",
    "Start",
    "Stop",
    "tune_collector",
]
