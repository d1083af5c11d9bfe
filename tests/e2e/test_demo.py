"""`remediate demo --json`, the README's main job, end to end in a fresh process and a fresh Prefect home: Prefect's
temporary API, started by the demo as on a user's machine (the first test), or the session's (the second, whose
subject is the approval)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.demokit import demo, demo_env


def test_demo_recovers_after_an_approved_rollback(tmp_path: Path) -> None:
    done = demo(demo_env(tmp_path))
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
    tmp_path: Path, prefect_api_url: str,
) -> None:
    """`--approve-as mallory` no longer adds mallory to the list: the run refuses her answer and records it."""
    done = demo(demo_env(tmp_path, prefect_api_url), "--approve-as", "mallory")
    assert done.returncode == 1, done.stderr[-3000:]  # not recovered: the demo's approval was refused
    report = json.loads(done.stdout)
    rollback = next(a for a in report["actions"] if a["kind"] == "rollback")
    assert rollback["state"] != "applied" and rollback["approval"] == "denied"
    assert "refused by the run: 'mallory' is not on the approver list" in done.stderr
    events = [t["event"] for t in report["timeline"]]
    assert "approval refused by mallory" in events
