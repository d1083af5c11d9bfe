"""The ``rolling-restart`` scenario: kamkmserve on several instances behind a load balancer, all healthy.

Registered in ``kamkmserve_sim.scenarios.SCENARIOS``. Nothing goes wrong by itself: this is the world a
rolling restart (or a drill of one) runs in. Restarting an instance that is still registered drops requests (the
load balancer answers 502); draining it first does not. ``POST /_sim/instances/faults`` makes instances that
restart from then on come back broken, for a drill that must abort.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kamkmserve_sim.instances import Fleet
from kamkmserve_sim.traffic import HOUR_MS, PREFILL_SPAN_MS, prefill

if TYPE_CHECKING:
    from kamkmserve_sim.state import SimState

PREFILL_REQUESTS = 400  # spread over every instance's own buffers (traffic.PREFILL_REQUESTS is for one)


class RollingRestart:
    """``rolling-restart``: v1.4.2 (deployed an hour ago) on ``SimConfig.fleet.instances`` instances (default 3)
    behind an Application Load Balancer, every instance registered and healthy, ~400 requests already spread
    over them in the last minute (each instance's own buffers). Only this scenario has a load balancer."""

    name = "rolling-restart"

    def start(self, state: SimState) -> None:
        now = state.clock.now_ms()
        boot = now - PREFILL_SPAN_MS - 1000
        state.clock.pin(boot)
        try:
            state.log.print_banner(state.port)
            state.fleet = Fleet(state, state.config.fleet)  # booted and registered before the prefill
        finally:
            state.clock.pin(None)
        state.releases.deploy("v1.4.2", None, now, created_at_ms=now - HOUR_MS)
        prefill(state, PREFILL_REQUESTS, PREFILL_SPAN_MS)
