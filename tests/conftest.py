"""Suite-wide fixtures. A real Prefect API is started once per session, only for the tests that need it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import prefect_templates

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


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin made its factory
def pytest_configure(config: pytest.Config) -> None:
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    prefect_templates.configure(config._tmp_path_factory,  # type: ignore[attr-defined]  # pytest's own factory
                                cache.mkdir("prefect-templates") if cache is not None else None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controlling process: every worker is done with it
        prefect_templates.drop_run_templates()


#: The slowest files first (several real processes each; measured with --durations), then their directories:
#: ``make test`` runs ``-n 3 --dist loadfile --no-loadscope-reorder``, which hands files out in this order, so none of
#: them starts last while the other workers have run out of work (longest first). xdist's own reorder puts files with
#: fewer tests last: exactly these.
SLOW_FIRST = (
    "tests/orchestration/test_sigkill_takeover.py", "tests/orchestration/test_paused_approval_survives_restart.py",
    "tests/orchestration/test_served_paused_approval_survives_restart.py", "tests/e2e/test_real_app_replay.py",
    "tests/orchestration/test_two_replicas_share_one_store.py", "tests/orchestration/test_second_shell_finds_serve.py",
    "tests/browser/", "tests/orchestration/", "tests/e2e/",
)


def _slowness_rank(item: pytest.Item) -> int:
    return next((rank for rank, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)), len(SLOW_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_slowness_rank)  # stable: within a rank, collection order
    for item in items:
        if WALL_CLOCK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.wallclock)


REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"  # captured from the real app and Alertmanager; see its README


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real local Prefect API (temporary SQLite database) for the whole session.

    Prefect's own test harness, whose temporary directory comes with the run's migrated database already in it
    (tests.helpers.prefect_templates): the server starts without migrating."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    import prefect.testing.utilities as harness

    def seeded_temp_dir() -> str:
        made = tmp_path_factory.mktemp("prefect-api")
        prefect_templates.seed_sqlite(made / "prefect-test.db")  # the name the harness gives its database
        return str(made)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "mkdtemp", seeded_temp_dir)
        with harness.prefect_test_harness(server_startup_timeout=90):
            yield
