"""The durable log: each account's items published to NATS JetStream, every one acknowledged or reported lost.

`Sink` is what a log offers the fleet (publish, flush, the losses, close); `JetStreamSink` is its
JetStream implementation (nats-py, imported when first started: `pip install
binance-userstream[nats]`); `pump` carries a fleet's items into a sink and publishes a gap for every
account whose items the sink lost. `_subjects` decides, with no I/O, each item's subject, headers,
payload and message id (`Envelope`).
"""

from binance_userstream.sink._jetstream import JetStreamSink
from binance_userstream.sink._protocol import Lost, Sink
from binance_userstream.sink._pump import PumpResult, pump
from binance_userstream.sink._subjects import DEFAULT_PREFIX, Envelope

__all__ = ["DEFAULT_PREFIX", "Envelope", "JetStreamSink", "Lost", "PumpResult", "Sink", "pump"]
