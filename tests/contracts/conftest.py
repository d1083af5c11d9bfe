"""Fixtures of the contract suites: a fresh simulator and a wiped moto server per test (started lazily, only for
the implementations a test runs against)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kamkmserve_sim import SimConfig, SimServer

from tests.helpers.moto_server import moto  # noqa: F401  (the fixture)


@pytest.fixture
def contract_sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(scenario="healthy", rps=40.0, seed=7)) as server:
        yield server
