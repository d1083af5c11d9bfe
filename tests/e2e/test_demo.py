"""`remediate demo --json`, the README's main job, end to end in a fresh process and a fresh Prefect home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_recovers_after_an_approved_rollback(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "REMEDIATE_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "remediation.cli", "demo", "--json"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["outcome"] == "recovered"
    kinds = [(a["kind"], a["state"]) for a in report["actions"]]
    assert kinds == [("enable_maintenance", "applied"), ("rollback", "applied"), ("disable_maintenance", "applied")]
    rollback = report["actions"][1]
    assert rollback["decision"] == "needs_approval" and rollback["approver"] == "demo.oncall"
    assert "paused for approval" in done.stderr
    assert report["verification"]["healthy"] is True
    phases = {t["phase"] for t in report["timeline"]}
    assert {"identify", "contain", "investigate", "remediate", "recover", "close"} <= phases
