"""Time for the simulator: the wall clock (a real server), or a manual one that only the control plane advances.

On the manual clock (``SimConfig.virtual_time``) nothing waits: a request that the app would serve slowly
records its duration (:data:`REQUEST_WAIT`) and answers at once, and the in-process transport
(``kamkmserve_sim.inprocess``) reports that duration to the client (a read timeout when it is longer).
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from typing import Protocol

#: Seconds a request's handler "waited" on the manual clock; the in-process transport sets a fresh list per request.
REQUEST_WAIT: ContextVar[list[float] | None] = ContextVar("kamkmserve_sim_request_wait", default=None)


class Clock(Protocol):
    def now_ms(self) -> int:
        """``Date.now()``: epoch milliseconds."""
        ...

    def monotonic_ns(self) -> int:
        """For ``process.uptime()``; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """A request's simulated service time: really waited on the wall clock, only recorded on a manual one."""
        ...


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """Virtual time: epoch milliseconds and a monotonic counter that move only when :meth:`advance` says so."""

    def __init__(self, start_ms: int | None = None) -> None:
        # Starts at the wall time of its creation, so logs and Date headers still look like today's.
        self._now_ns = (time.time_ns() // 1_000_000 if start_ms is None else start_ms) * 1_000_000
        self._mono_ns = 0

    def now_ms(self) -> int:
        return self._now_ns // 1_000_000

    def monotonic_ns(self) -> int:
        return self._mono_ns

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time never goes backwards")
        step = round(seconds * 1e9)
        self._now_ns += step
        self._mono_ns += step

    async def sleep(self, seconds: float) -> None:
        # No wait, no global advance (other requests are in flight in the same instant): the duration is recorded
        # for the transport that carried this request, which tells its client.
        waits = REQUEST_WAIT.get()
        if waits is not None:
            waits.append(max(seconds, 0.0))


class PinnableClock:
    """Wraps a clock so a block of work can run "in the past" (warming buffers with backdated samples)."""

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._pinned_ms: int | None = None

    def now_ms(self) -> int:
        return self._base.now_ms() if self._pinned_ms is None else self._pinned_ms

    def monotonic_ns(self) -> int:
        return self._base.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await self._base.sleep(seconds)

    @property
    def manual(self) -> ManualClock | None:
        """The manual clock underneath, when the simulator runs on virtual time."""
        return self._base if isinstance(self._base, ManualClock) else None

    def epoch_s(self) -> float:
        """Now for Date headers: exactly ``time.time()`` on the wall clock (byte-identical), the virtual time else."""
        return time.time() if self.manual is None else self.now_ms() / 1000

    def pin(self, at_ms: int | None) -> None:
        """Make ``now_ms`` return ``at_ms`` until pinned to None again."""
        self._pinned_ms = at_ms
