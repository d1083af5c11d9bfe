"""The Node process behind one deployment: ``process.uptime()`` and ``process.memoryUsage()``'s heap."""

from __future__ import annotations

import random
from dataclasses import dataclass

from kamkmserve_sim.clock import Clock

_GC_PERIOD_S = 23.0  # heap grows for a while, then a major GC drops it and V8 may resize the heap
_PAGE = 4096


@dataclass(frozen=True)
class HeapSample:
    used: int
    total: int


class SimulatedProcess:
    """Uptime from a monotonic start; a sawtooth heap whose used/total ratio sweeps ``[low, high]``.

    The real idle app's heap ratio alone flipped its health status between healthy, warning and critical,
    so the simulated one must wander over the same range.
    """

    def __init__(self, clock: Clock, *, seed: int, ratio_low: float, ratio_high: float) -> None:
        self._clock = clock
        self._started_ns = clock.monotonic_ns()
        self._seed = seed
        self._low = ratio_low
        self._high = ratio_high
        self._phase_s = random.Random(seed).uniform(0.0, _GC_PERIOD_S)

    def uptime_s(self) -> float:
        # Node derives uptime from a nanosecond clock, hence values like 6.86705338.
        return (self._clock.monotonic_ns() - self._started_ns) / 1e9

    def heap(self) -> HeapSample:
        elapsed = self.uptime_s() + self._phase_s
        cycle = int(elapsed // _GC_PERIOD_S)
        progress = (elapsed % _GC_PERIOD_S) / _GC_PERIOD_S
        cycle_rng = random.Random(self._seed * 1_000_003 + cycle)
        total = _PAGE * cycle_rng.randint(24_000, 36_000)  # about 98 to 147 MB, like the observed run
        ratio = self._low + (self._high - self._low) * progress
        used = int(total * ratio) // 8 * 8
        return HeapSample(used=used, total=total)
