"""How a worker process runs Python's garbage collector: rarely, since its objects die young.

A worker keeps each event in flight until JetStream acknowledges it (thousands at a time, for a
few milliseconds). With the collector's default thresholds (a young collection every 700 objects)
those events outlive their first collections, are promoted, and make the old generations grow
until a full collection walks every object the process holds: about a tenth of a worker's CPU at
full load (docs/guides/performance.md). Collecting the young generation every 50,000 objects
instead lets them die there, at the cost of a few more megabytes of garbage between collections.
"""

from __future__ import annotations

import gc

#: The collector's thresholds in a worker process: (young, middle, old), see `gc.set_threshold`.
THRESHOLDS = (50_000, 20, 20)


def tune_collector() -> None:
    """Set the garbage collector as `fleet serve` does (`THRESHOLDS`): for a process that runs
    workers and little else, since the setting is the whole process's."""
    gc.set_threshold(*THRESHOLDS)
