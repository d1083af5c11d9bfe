"""Suite-wide fixtures. A real Prefect API is started once per session, only for the tests that need it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

#: ``make unit-without-sim`` sets this: the simulator is made unimportable before any test module loads, as on a
#: production install (which leaves the sim/ distribution out), so a unit test that needs it fails loudly.
WITHOUT_SIM = os.environ.get("REMEDIATE_TESTS_WITHOUT_SIM") == "1"
if WITHOUT_SIM:
    sys.modules["kamkmserve_sim"] = None  # type: ignore[assignment]  # None in sys.modules: ImportError on import


@pytest.fixture(scope="session")
def simulator() -> ModuleType:
    """The ``kamkmserve_sim`` package, for a unit test that needs it; such a test is skipped under
    ``make unit-without-sim`` (and only there: everywhere else the simulator is installed and must import)."""
    if WITHOUT_SIM:
        pytest.skip("needs the simulator (blocked by REMEDIATE_TESTS_WITHOUT_SIM=1)")
    import kamkmserve_sim

    return kamkmserve_sim

#: Fixtures that start the simulator on the wall clock: a test using one sees what the simulated users did in real
#: seconds, which a loaded machine changes, so it runs in ``make test``'s serial part (marker ``wallclock``).
WALL_CLOCK_FIXTURES = frozenset({"sim"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if WALL_CLOCK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.wallclock)


REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"  # captured from the real app and Alertmanager; see its README


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real local Prefect API (temporary SQLite database) for the whole session."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
