"""Wall-clock time for the simulator: it is a real server, so it runs on real time (tests can substitute)."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """``Date.now()``: epoch milliseconds."""
        ...

    def monotonic_ns(self) -> int:
        """For ``process.uptime()``; never goes backwards."""
        ...


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


class PinnableClock:
    """Wraps a clock so a block of work can run "in the past" (warming buffers with backdated samples)."""

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._pinned_ms: int | None = None

    def now_ms(self) -> int:
        return self._base.now_ms() if self._pinned_ms is None else self._pinned_ms

    def monotonic_ns(self) -> int:
        return self._base.monotonic_ns()

    def pin(self, at_ms: int | None) -> None:
        """Make ``now_ms`` return ``at_ms`` until pinned to None again."""
        self._pinned_ms = at_ms
