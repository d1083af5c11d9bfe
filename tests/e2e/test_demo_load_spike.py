"""`remediate demo --scenario load-spike --json`: the high-latency runbook end to end in a fresh process and a fresh
home, on the session's Prefect API."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.demokit import demo, demo_env


def test_load_spike_demo_scales_up_watches_scales_back_and_recovers(tmp_path: Path, prefect_api_url: str) -> None:
    done = demo(demo_env(tmp_path, prefect_api_url), "--scenario", "load-spike")
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
