"""Replicas and load: how many instances serve the simulated app, and what too much traffic does to latency.

kamkmserve on Vercel has no scale knob (docs/reference/kamkmserve.md §12): this stands for the platform's replica count
(ECS desiredCount or an Auto Scaling group later). Load is measured in *replica units*: the usual user traffic
keeps ``BASELINE_LOAD`` replicas busy, so the default two replicas run at 40 % utilisation. A traffic surge
multiplies the load; maintenance at the edge removes the share of the user mix it covers.

Latency follows a deterministic queueing-like curve of utilisation ``rho`` (load / replicas), applied to every
request the app serves on top of its own service time, as the wait before a replica picks it up:

* ``rho <= 0.5``: no wait (replicas idle most of the time; the other scenarios are unaffected);
* ``0.5 < rho < 1``: the wait grows as ``rho`` approaches saturation, M/M/c-like: 30 ms at 0.8, 150 ms at 1;
* ``rho >= 1``: the queue the load balancer holds is full; the wait grows with the excess demand
  (2 s per unit of excess: about 1.35 s at rho 1.6).

Each request's wait is drawn from an exponential distribution with that mean (queue waits are), from the
model's own random stream, seeded from the simulator's seed, so a run is reproducible and the draws of the
other scenarios are untouched. Database time is not affected: the wait happens before the handler runs,
which is what tells pure load from a slow query.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from kamkmserve_sim.usermix import ENDPOINTS

SERVICE = "kamkmserve"
DEFAULT_REPLICAS = 2
MAX_REPLICAS = 100
BASELINE_LOAD = 0.8  # replica units the usual traffic needs
KNEE = 0.5
WAIT_UNIT_MS = 30.0
SLACK = 0.1
WAIT_AT_SATURATION_MS = WAIT_UNIT_MS * (1.0 - KNEE) / SLACK  # 150 ms: the two branches meet at rho = 1
OVERLOAD_MS_PER_UNIT = 2000.0


def mean_wait_ms(rho: float) -> float:
    """Mean queueing wait at utilisation ``rho`` (continuous, non-decreasing)."""
    if rho <= KNEE:
        return 0.0
    if rho < 1.0:
        return WAIT_UNIT_MS * (rho - KNEE) / (1.0 - rho + SLACK)
    return WAIT_AT_SATURATION_MS + OVERLOAD_MS_PER_UNIT * (rho - 1.0)


class LoadModel:
    """Replica count, traffic multiplier and the queueing wait they imply."""

    def __init__(self, rng: random.Random, replicas: int = DEFAULT_REPLICAS) -> None:
        self._rng = rng
        self.replicas = replicas
        self.traffic_multiplier = 1.0

    def scale(self, replicas: int) -> bool:
        """Set the replica count; returns whether it changed."""
        if not 1 <= replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be between 1 and {MAX_REPLICAS}")
        changed = replicas != self.replicas
        self.replicas = replicas
        return changed

    def utilisation(self, under_maintenance: Callable[[str], bool]) -> float:
        """Load per replica. Requests the edge answers (maintenance) never reach a replica."""
        total = sum(e.weight for e in ENDPOINTS)
        reaching = sum(e.weight for e in ENDPOINTS if not under_maintenance(e.path))
        return BASELINE_LOAD * self.traffic_multiplier * (reaching / total) / self.replicas

    def wait_ms(self, under_maintenance: Callable[[str], bool]) -> int:
        """The queueing wait of one request arriving now (0 below the knee, no random draw then)."""
        mean = mean_wait_ms(self.utilisation(under_maintenance))
        if mean <= 0.0:
            return 0
        return round(self._rng.expovariate(1.0 / mean))

    def public(self, under_maintenance: Callable[[str], bool]) -> dict[str, object]:
        return {"service": SERVICE, "replicas": self.replicas, "traffic_multiplier": self.traffic_multiplier,
                "utilisation": round(self.utilisation(under_maintenance), 3)}
