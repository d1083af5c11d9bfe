"""Fixtures for the simulator tests."""

from tests.helpers.sim_servers import start_sim  # noqa: F401  (a fixture)
