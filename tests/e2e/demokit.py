"""The environment the demo tests run ``remediate demo`` in: their own homes, and Prefect's temporary API starting
from the run's migrated database (tests.helpers.prefect_templates) instead of migrating a new one each time."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.prefect_templates import seed_prefect_home


def demo_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment with ``PREFECT_HOME`` and ``REMEDIATE_HOME`` under ``tmp_path``."""
    prefect_home = seed_prefect_home(tmp_path / "prefect")
    return {**os.environ, "PREFECT_HOME": str(prefect_home), "REMEDIATE_HOME": str(tmp_path / "home")}
