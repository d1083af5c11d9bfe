"""`remediate demo --json`, the README's main job, end to end in a fresh process and a fresh Prefect home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.demokit import demo_env


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = demo_env(tmp_path)
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "remediation.cli", "demo", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_demo_recovers_after_an_approved_rollback(tmp_path: Path) -> None:
    done = demo(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["outcome"] == "recovered"
    kinds = [(a["kind"], a["state"]) for a in report["actions"]]
    assert kinds == [("enable_maintenance", "applied"), ("rollback", "applied"), ("disable_maintenance", "applied")]
    rollback = report["actions"][1]
    assert rollback["decision"] == "needs_approval" and rollback["approver"] == "demo.oncall"
    assert "waits for 1 more approval(s) of rollback" in done.stderr
    assert report["verification"]["healthy"] is True
    phases = {t["phase"] for t in report["timeline"]}
    assert {"identify", "contain", "investigate", "remediate", "recover", "close"} <= phases


def test_demo_answering_as_a_name_off_the_servers_list_is_refused_by_the_run_and_nothing_is_rolled_back(
    tmp_path: Path,
) -> None:
    """`--approve-as mallory` no longer adds mallory to the list: the run refuses her answer and records it."""
    done = demo(tmp_path, "--approve-as", "mallory")
    assert done.returncode == 1, done.stderr[-3000:]  # not recovered: the demo's approval was refused
    report = json.loads(done.stdout)
    rollback = next(a for a in report["actions"] if a["kind"] == "rollback")
    assert rollback["state"] != "applied" and rollback["approval"] == "denied"
    assert "refused by the run: 'mallory' is not on the approver list" in done.stderr
    events = [t["event"] for t in report["timeline"]]
    assert "approval refused by mallory" in events
