"""The simulator's virtual time as the runbooks' ``Clock``: a sleep is ``POST /_sim/time/advance``.

With a simulator on virtual time (``REMEDIATE_SIM_VIRTUAL_TIME``), nothing in the simulated world moves unless a
runbook waits: its every ``clock.sleep(s)`` advances the simulator by ``s`` (users, scheduled events, restarts),
and ``now()``/``monotonic()`` read the simulator's time as last told (one ``GET /_sim/time`` before the first
advance). So a run's outcome does not depend on how busy the machine is.

:func:`request_timer` is the load probe's stopwatch on virtual time: the simulated durations of the answers this
task received (:func:`charge_wait`, called by the in-process transport), not the wall time they took to compute.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from remediation.providers.platform import PlatformError
from remediation.providers.sim_platform import ControlPlane

#: The simulator refuses advances over a day; longer waits go in steps.
MAX_STEP_S = 3600.0

_WAITED: ContextVar[float] = ContextVar("remediation_sim_waited", default=0.0)


def charge_wait(seconds: float) -> None:
    """An answer took ``seconds`` of simulated time (to this task): the in-process transport's ``on_wait``."""
    _WAITED.set(_WAITED.get() + seconds)


def request_timer() -> float:
    """Seconds of simulated answer time this task has waited so far (differences time one request)."""
    return _WAITED.get()


class SimClock:
    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane
        self._now_ms: int | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._known_ms() / 1000, UTC)

    def monotonic(self) -> float:
        # Virtual time never goes backwards, so its epoch seconds serve as the monotonic reading too.
        return self._known_ms() / 1000

    async def sleep(self, seconds: float) -> None:
        left = max(seconds, 0.0)
        while True:
            step = min(left, MAX_STEP_S)
            self._learn(await self._plane.json("POST", "/time/advance", json_body={"seconds": step}))
            left -= step
            if left <= 0:
                return

    async def refresh(self) -> None:
        """Read the simulator's time."""
        self._learn(await self._plane.json("GET", "/time"))

    def _learn(self, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("now_ms"), int):
            raise PlatformError(f"/_sim/time: no now_ms in {str(body)[:200]}")
        with self._lock:
            self._now_ms = max(self._now_ms or 0, body["now_ms"])

    def _known_ms(self) -> int:
        with self._lock:
            known = self._now_ms
        if known is None:
            # now() is synchronous and may be called on a running event loop: ask once, on a loop of its own.
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(asyncio.run, self.refresh()).result()
            with self._lock:
                known = self._now_ms
        assert known is not None
        return known
