"""`remediate demo --scenario slow-query|lock-contention --json`: runbook 3 end to end in a fresh process, on the
simulated database (no PostgreSQL), approved by the demo's scripted on-call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.demokit import demo_env


@pytest.mark.parametrize(("scenario", "fix"), [("slow-query", "create_index"),
                                               ("lock-contention", "terminate_backend")])
def test_database_demo_recovers_after_the_approved_fix(tmp_path: Path, scenario: str, fix: str) -> None:
    env = demo_env(tmp_path)
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "remediation.cli", "demo", "--scenario", scenario, "--json"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["runbook"] == "database-errors" and report["outcome"] == "recovered", report["escalation"]
    assert [(a["kind"], a["state"]) for a in report["actions"]] == [
        ("pause_jobs", "applied"), (fix, "applied"), ("resume_jobs", "applied")]
    assert report["actions"][1]["approver"] == "demo.oncall"
    assert report["verification"]["healthy"] is True
