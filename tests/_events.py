"""Recorder: collects a session's events and lets a test wait until a condition on them holds."""

from __future__ import annotations

import threading
from collections.abc import Callable

from binance_userstream import EventKind, SessionEvent


class Recorder:
    def __init__(self) -> None:
        self.events: list[SessionEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: SessionEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]

    def of(self, kind: EventKind) -> list[SessionEvent]:
        return [e for e in self.events if e.kind is kind]

    def wait_for(self, condition: Callable[[list[SessionEvent]], bool], timeout: float = 20.0) -> None:
        """Block (on a condition variable, not a sleep) until `condition(events)` holds."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.events), timeout):
                raise AssertionError(f"timed out; events: {[e.describe() for e in self.events]}")

    def wait_for_count(self, kind: EventKind, count: int) -> None:
        self.wait_for(lambda events: sum(e.kind is kind for e in events) >= count)
