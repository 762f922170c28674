"""Fault: one answer the simulator gives instead of the real one (a 5XX, a 429, a dropped connection...)."""

from __future__ import annotations

import math
from typing import Literal, get_args

from attrs import frozen

Kind = Literal["status", "drop", "delay", "lose_keys"]
KINDS: tuple[Kind, ...] = get_args(Kind)


@frozen
class Fault:
    """The next answer, replaced: an HTTP status (with Retry-After), a dropped connection, or a delay."""

    kind: Kind
    status: int = 0
    retry_after: float | None = None
    delay: float = 0.0

    def __attrs_post_init__(self) -> None:
        """Refuse a fault the server could not serve (a status 200, a negative or NaN delay...)."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.kind == "status" and not (self.status in (410, 418, 429) or 500 <= self.status <= 599):
            raise ValueError(f"a status fault is 410, 418, 429 or a 5XX, not {self.status!r}")
        if self.retry_after is not None and not _seconds(self.retry_after):
            raise ValueError(f"retry_after must be a finite number of seconds >= 0, not {self.retry_after!r}")
        if not _seconds(self.delay):
            raise ValueError(f"delay must be a finite number of seconds >= 0, not {self.delay!r}")

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        return cls("status", status=status)

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0) -> Fault:
        return cls("status", status=429, retry_after=retry_after)

    @classmethod
    def banned(cls, retry_after: float = 120.0) -> Fault:
        return cls("status", status=418, retry_after=retry_after)

    @classmethod
    def retired(cls) -> Fault:
        return cls("status", status=410)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def lose_keys(cls) -> Fault:
        """Lose every listenKey (as if each expired), then answer normally: a keepalive gets -1125."""
        return cls("lose_keys")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Answer normally, `seconds` (real time) late."""
        return cls("delay", delay=seconds)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """A fault from its command-line form: `503`, `429:RETRY_AFTER`, `418:RETRY_AFTER`, `410`,
        `drop`, `lose-keys`, or `delay:SECONDS`."""
        name, _, arg = spec.strip().partition(":")
        try:
            if name == "drop" and not arg:
                return cls.drop()
            if name == "lose-keys" and not arg:
                return cls.lose_keys()
            if name == "delay":
                return cls.slow(float(arg))
            status = int(name)
            if status == 429:
                return cls.rate_limited(float(arg or 1))
            if status == 418:
                return cls.banned(float(arg or 120))
            if status == 410 and not arg:
                return cls.retired()
            if 500 <= status <= 599 and not arg:
                return cls.server_error(status)
        except ValueError:
            pass
        raise ValueError(
            f"unknown fault {spec!r}: use 5XX, 429:SECONDS, 418:SECONDS, 410, drop, lose-keys or "
            "delay:SECONDS (seconds finite and >= 0)"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
        }

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """The fault `to_json` described; ValueError naming what is wrong with anything else."""
        if not isinstance(data, dict):
            raise ValueError(f"a fault is a JSON object (Fault.to_json()), not {type(data).__name__}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: use one of {', '.join(KINDS)}")
        status = data.get("status", 0)
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError(f"status must be an integer, not {status!r}")
        retry_after = data.get("retry_after")
        return cls(
            kind,
            status=status,
            retry_after=None if retry_after is None else _number("retry_after", retry_after),
            delay=_number("delay", data.get("delay", 0.0)),
        )


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    return float(value)


def _seconds(value: float) -> bool:
    return math.isfinite(value) and value >= 0
