"""``remediate`` (or any Python) as a real process in a directory of the test's, with none of the caller's
``REMEDIATE_*`` settings or Prefect API: what a person typing the command in a fresh shell there would get."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def python(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python COMMAND...`` in ``cwd``, its Prefect home there too, with ``env`` added."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REMEDIATE_", "PREFECT_API_URL"))}
    return subprocess.run([sys.executable, *command], cwd=cwd, capture_output=True, text=True,
                          env={**clean, "PYTHONPATH": str(REPO), "PREFECT_HOME": str(cwd / "prefect"), **env},
                          timeout=120, check=False)


def remediate(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``remediate ARGS...`` (``python -m remediation.cli``) the same way."""
    return python(["-m", "remediation.cli", *args], cwd, **env)
