"""The simulator without a socket: its ASGI app behind an ``httpx`` transport, on virtual time.

``InProcessSim`` builds the state and app and starts the scenario (what the server's lifespan does); any
``httpx.AsyncClient(transport=sim.transport())`` then reaches it at :attr:`InProcessSim.url`, with no thread, no
port and no waiting. Time moves only through ``POST /_sim/time/advance``.

A slow answer (a release's extra latency, a slow metrics endpoint) is not waited for: the app records how long it
"took" (``clock.REQUEST_WAIT``) and :class:`SimTransport` turns that into what a client over a socket would see: a
``httpx.ReadTimeout`` when it exceeds the request's read timeout, else ``on_wait(seconds)`` so a client timing its
requests can add the simulated duration. Needs ``httpx`` (the ``inprocess`` extra).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import TracebackType

import httpx
from starlette.applications import Starlette

from kamkmserve_sim.app import create_app
from kamkmserve_sim.clock import REQUEST_WAIT
from kamkmserve_sim.config import SimConfig
from kamkmserve_sim.scenarios import start_scenario
from kamkmserve_sim.state import SimState

#: Never resolved: the transport answers every request itself.
IN_PROCESS_URL = "http://kamkmserve-sim.invalid"


class SimTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` over the simulator's app, carrying each answer's simulated duration to the client."""

    def __init__(self, app: Starlette, *, on_wait: Callable[[float], None] | None = None) -> None:
        self._asgi = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        self._on_wait = on_wait

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        waits: list[float] = []
        # ASGITransport awaits the app in this very task, so the handler's clock.sleep finds this list.
        token = REQUEST_WAIT.set(waits)
        try:
            response = await self._asgi.handle_async_request(request)
        finally:
            REQUEST_WAIT.reset(token)
        waited = sum(waits)
        timeout = (request.extensions.get("timeout") or {}).get("read")
        if timeout is not None and waited > timeout:
            await response.aclose()
            raise httpx.ReadTimeout(f"the simulated answer took {waited:g}s (read timeout {timeout:g}s)",
                                    request=request)
        if waited and self._on_wait is not None:
            self._on_wait(waited)
        return response


class InProcessSim:
    """``with InProcessSim(SimConfig(scenario="bad-release")) as sim: ...`` (always on virtual time)."""

    url = IN_PROCESS_URL

    def __init__(self, config: SimConfig | None = None) -> None:
        # Nothing would drive wall-clock traffic here (no server, no lifespan): virtual time is the only sense.
        self.config = (config or SimConfig()).model_copy(update={"virtual_time": True})
        self.state = SimState(self.config)
        self.app = create_app(self.config, state=self.state)
        self._started = False

    def start(self) -> InProcessSim:
        if not self._started:
            start_scenario(self.state, self.config.scenario)
            self._started = True
        return self

    def transport(self, *, on_wait: Callable[[float], None] | None = None) -> SimTransport:
        return SimTransport(self.app, on_wait=on_wait)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.state.database.close()  # real PostgreSQL: the scenario's sessions and threads end with it
        with contextlib.suppress(Exception):
            self.state.security.close()

    def __enter__(self) -> InProcessSim:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
