"""``remediate demo`` in a fresh process, with its own homes.

Either on Prefect's temporary API, as ``make demo`` runs it, starting from the run's migrated database
(tests.helpers.prefect_templates) instead of migrating a new one each time; or on the session's Prefect API, for a
test whose subject is a scenario's story rather than Prefect's start-up (a temporary API costs ~8 CPU-seconds: the
server's modules imported in the demo's process to start it, then again in the server's)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.prefect_templates import seed_prefect_home


def demo_env(tmp_path: Path, api_url: str | None = None) -> dict[str, str]:
    """This process's environment with ``PREFECT_HOME`` and ``REMEDIATE_HOME`` under ``tmp_path``; the Prefect API at
    ``api_url``, or none (the demo starts Prefect's temporary API)."""
    env = {**os.environ, "REMEDIATE_HOME": str(tmp_path / "home")}
    if api_url is None:
        env.pop("PREFECT_API_URL", None)
        env["PREFECT_HOME"] = str(seed_prefect_home(tmp_path / "prefect"))
    else:
        env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(tmp_path / "prefect")})
    return env


def demo(env: dict[str, str], *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """``remediate demo --json ARGS`` in a fresh process, to its end."""
    return subprocess.run([sys.executable, "-m", "remediation.cli", "demo", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)
