"""`remediate demo --scenario load-spike --json`: the high-latency runbook end to end in a fresh process and a fresh
Prefect home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.demokit import demo_env


def test_load_spike_demo_scales_up_watches_scales_back_and_recovers(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "remediation.cli", "demo", "--scenario", "load-spike", "--json"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["runbook"] == "high-latency"
    assert report["outcome"] == "recovered", report["escalation"]
    assert [(a["kind"], a["state"]) for a in report["actions"]] == [("scale_up", "applied"),
                                                                    ("scale_down", "applied")]
    assert report["actions"][0]["target"].startswith("kamkmserve 2->4 replicas")
    assert report["verification"]["healthy"] is True
    phases = {t["phase"] for t in report["timeline"]}
    assert {"identify", "contain", "investigate", "remediate", "recover", "close"} <= phases
