"""The ``start_sim`` fixture: simulators on free ports, all stopped when the test ends (tests/sim, tests/providers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kamkmserve_sim import SimConfig, SimServer


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimServer]]:
    """``start_sim(scenario=..., rps=...)`` starts a simulator on a free port (seed 7 unless given)."""
    servers: list[SimServer] = []

    def start(**settings: object) -> SimServer:
        server = SimServer(SimConfig.model_validate({"seed": 7, **settings})).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
