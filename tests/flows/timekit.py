"""Runbook scenario tests on virtual time: the simulator in-process, moved only by the runbook's own waits.

``VirtualWorld`` starts a scenario in this process (``kamkmserve_sim.inprocess``, no socket), and builds the
providers the way ``remediate`` would for ``REMEDIATE_SIM_VIRTUAL_TIME=1``, with the in-process transport: every
``clock.sleep`` of a runbook advances the simulator, so a run never waits on the wall clock and its outcome does not
depend on the machine's load. A test waits for a condition by advancing virtual time until it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from kamkmserve_sim import SimConfig
from kamkmserve_sim.inprocess import InProcessSim

from remediation import composition, runtime
from remediation.models import Mode
from remediation.providers.approvals import Scripted, ScriptedApprovals
from remediation.providers.sim_clock import charge_wait
from remediation.settings import Settings

GOOD_RELEASE = "v1.4.2"
STEP_S = 0.1


class VirtualWorld:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._sims: list[InProcessSim] = []
        self.sim: InProcessSim | None = None

    def start(self, scenario: str = "bad-release", **overrides: Any) -> InProcessSim:
        """The same world the wall-clock fixture starts (200 users/s, onset after 0.2 s), on virtual time."""
        config = SimConfig(**{"scenario": scenario, "rps": 200.0, "onset_s": 0.2, "seed": 7, **overrides})
        self.sim = InProcessSim(config).start()
        self._sims.append(self.sim)
        return self.sim

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._running().transport(), base_url=self._running().url, **kwargs)

    def providers(self, *, answers: list[Scripted] | None = None, **settings: Any) -> runtime.Providers:
        sim = self._running()
        base = {
            "app_url": sim.url, "platform": "sim", "sim_url": sim.url, "sim_virtual_time": True, "home": self.home,
            "mode": Mode.AUTO, "approvers": ["alice", "bob"], "approval_timeout_s": 30, "approval_poll_s": 1,
            "verify_interval_s": 0.3, "verify_consecutive": 3, "verify_deadline_s": 20.0,
            "metrics_budget_per_min": 100,
        }
        live = composition.connect(Settings(**{**base, **settings}), transport=sim.transport(on_wait=charge_wait))
        # An unanswered approval times out on the run's clock, which here is the simulator's.
        return live.with_(approvals=ScriptedApprovals(answers or [], clock=live.clock))

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self.client() as client:
            response = await client.request(method, path, **kwargs)
        response.raise_for_status()
        return response

    async def state(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.request("GET", "/_sim/state")).json()
        return body

    async def advance(self, seconds: float) -> None:
        await self.request("POST", "/_sim/time/advance", json={"seconds": seconds})

    async def advance_until(self, what: str, check: Callable[[dict[str, Any]], bool], *,
                            within_s: float = 30.0) -> None:
        """Advance in small steps until ``check(state)`` holds; fail after ``within_s`` of *virtual* time."""
        waited = 0.0
        while not check(await self.state()):
            if waited >= within_s:
                raise AssertionError(f"{what} did not happen within {within_s:g} virtual seconds")
            await self.advance(STEP_S)
            waited += STEP_S

    async def bad_release_serving(self) -> str:
        """The scenario's faulty release is current and has served a second of traffic; its version."""
        await self.advance_until("the bad release", lambda s: s["current_release"]["version"] != GOOD_RELEASE)
        await self.advance(1.0)
        version: str = (await self.state())["current_release"]["version"]
        return version

    def _running(self) -> InProcessSim:
        if self.sim is None:
            raise RuntimeError("start a scenario first")
        return self.sim

    def close(self) -> None:
        for sim in self._sims:
            sim.close()
