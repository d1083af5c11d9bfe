"""Fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kamkmserve_sim import SimConfig, SimServer


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimServer]]:
    """``start_sim(scenario=..., rps=...)`` starts a simulator on a free port; all are stopped afterwards."""
    servers: list[SimServer] = []

    def start(**settings: object) -> SimServer:
        settings.setdefault("seed", 7)
        server = SimServer(SimConfig(**settings)).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
