"""Runbook scenario tests on virtual time: the simulator in-process, moved only by the runbook's own waits.

``VirtualWorld`` starts a scenario in this process (``kamkmserve_sim.inprocess``, no socket), and builds the
providers the way ``remediate`` would for ``REMEDIATE_SIM_VIRTUAL_TIME=1``, with the in-process transport: every
``clock.sleep`` of a runbook advances the simulator, so a run never waits on the wall clock and its outcome does not
depend on the machine's load. A test waits for a condition by advancing virtual time until it holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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

#: Called with the simulator after every answer it gives (a runbook's request, a clock advance, a test's read).
Watcher = Callable[[InProcessSim], None]


class WatchedTransport(httpx.AsyncBaseTransport):
    """The simulator's transport, telling the world's watchers after each answer.

    On virtual time the world changes only inside a request (an action, or an advance), so a watcher called after
    every answer sees every state the world was in between requests: what a background poller saw on the wall clock,
    without missing a short-lived state between two polls.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, sim: InProcessSim, watchers: list[Watcher]) -> None:
        self._inner = inner
        self._sim = sim
        self._watchers = watchers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        for watcher in list(self._watchers):
            watcher(self._sim)
        return response


def scripted(providers: runtime.Providers) -> ScriptedApprovals:
    """The scripted approvals a world's providers answer with: what each approval request said."""
    assert isinstance(providers.approvals, ScriptedApprovals)
    return providers.approvals


class VirtualWorld:
    def __init__(self, home: Path) -> None:
        self.home = home
        self._sims: list[InProcessSim] = []
        self.sim: InProcessSim | None = None
        self._watchers: list[Watcher] = []

    def start(self, scenario: str = "bad-release", **overrides: Any) -> InProcessSim:
        """The same world the wall-clock fixture starts (200 users/s, onset after 0.2 s), on virtual time."""
        config = SimConfig(**{"scenario": scenario, "rps": 200.0, "onset_s": 0.2, "seed": 7, **overrides})
        self.sim = InProcessSim(config).start()
        self._sims.append(self.sim)
        return self.sim

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self._transport(), base_url=self._running().url, **kwargs)

    def providers(self, *, answers: list[Scripted] | None = None, **settings: Any) -> runtime.Providers:
        sim = self._running()
        base = {
            "app_url": sim.url, "platform": "sim", "sim_url": sim.url, "sim_virtual_time": True, "home": self.home,
            "mode": Mode.AUTO, "approvers": ["alice", "bob"], "approval_timeout_s": 30, "approval_poll_s": 1,
            "verify_interval_s": 0.3, "verify_consecutive": 3, "verify_deadline_s": 20.0,
            "metrics_budget_per_min": 100,
        }
        live = composition.connect(Settings(**{**base, **settings}), transport=self._transport(on_wait=charge_wait))
        # An unanswered approval times out on the run's clock, which here is the simulator's.
        return live.with_(approvals=ScriptedApprovals(answers or [], clock=live.clock))

    def providers_through(self, wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport], *,
                          answers: list[Scripted] | None = None, **settings: Any) -> runtime.Providers:
        """``providers`` whose requests (the app's, the control plane's, the clock's) all go through
        ``wrap(transport)``: a test's stand-in for the network between the runbook and the platform."""
        # Built only for its settings (so the two never differ) and the store it migrated; its connections closed.
        plain = self.providers(**settings)
        plain.store.dispose()
        live = composition.connect(plain.settings, migrate=False, transport=wrap(self._transport(on_wait=charge_wait)))
        return live.with_(approvals=ScriptedApprovals(answers or [], clock=live.clock))

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self.client() as client:
            response = await client.request(method, path, **kwargs)
        response.raise_for_status()
        return response

    async def state(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.request("GET", "/_sim/state")).json()
        return body

    async def now_s(self) -> float:
        """The simulator's time, epoch seconds (virtual)."""
        return float((await self.read("/_sim/time"))["now_ms"]) / 1000

    async def advance(self, seconds: float) -> None:
        await self.request("POST", "/_sim/time/advance", json={"seconds": seconds})

    async def read(self, path: str) -> dict[str, Any]:
        """A control-plane reading, ``/_sim/state`` or any other (``/_sim/capacity``, ``/_sim/maintenance``)."""
        body: dict[str, Any] = (await self.request("GET", path)).json()
        return body

    async def advance_until(self, what: str, check: Callable[[dict[str, Any]], bool], *,
                            within_s: float = 30.0, reading: str = "/_sim/state") -> None:
        """Advance in small steps until ``check(GET reading)`` holds; fail after ``within_s`` of *virtual* time."""

        async def holds() -> bool:
            return check(await self.read(reading))

        await self._advance_until(what, holds, within_s)

    async def advance_until_inside(self, what: str, check: Callable[[InProcessSim], bool], *,
                                   within_s: float = 30.0) -> None:
        """``advance_until`` for what the control plane does not tell (the surge's traffic multiplier): the
        simulator's own state, read as the wall-clock tests read their server's."""

        async def holds() -> bool:
            return check(self._running())

        await self._advance_until(what, holds, within_s)

    async def _advance_until(self, what: str, holds: Callable[[], Awaitable[bool]], within_s: float) -> None:
        waited = 0.0
        while not await holds():
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

    @contextmanager
    def watching(self, watcher: Watcher) -> Iterator[None]:
        """Call ``watcher(sim)`` after every answer the simulator gives inside the block."""
        self._watchers.append(watcher)
        try:
            yield
        finally:
            self._watchers.remove(watcher)

    def runbook_transport(self) -> WatchedTransport:
        """A transport to the simulator like the one the world's providers use (watched, each answer's simulated
        duration charged to the run's request timer), for providers a test builds beside them."""
        return self._transport(on_wait=charge_wait)

    def _transport(self, on_wait: Callable[[float], None] | None = None) -> WatchedTransport:
        sim = self._running()
        return WatchedTransport(sim.transport(on_wait=on_wait), sim, self._watchers)

    def inside(self) -> InProcessSim:
        """The running simulator itself, for what its control plane does not tell."""
        return self._running()

    def _running(self) -> InProcessSim:
        if self.sim is None:
            raise RuntimeError("start a scenario first")
        return self.sim

    def close(self) -> None:
        for sim in self._sims:
            sim.close()
