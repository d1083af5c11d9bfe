"""Pointed at the real app with nothing else configured, every runbook in auto mode only reads it.

The replay server answers with the real kamkmserve's captured answers (tests/fixtures/kamkmserve). Each runbook
runs the way a user starts it, ``remediate run <runbook> --mode auto --json``, in a fresh process whose environment
holds only ``REMEDIATE_APP_URL`` besides the test's own homes (store, Prefect), PATH and the test session's Prefect
API (Prefect is not the app; the temporary API a run starts without one is the demo tests' subject). With no
platform, no error tracker and no notification channel configured, nothing may be changed: the replay must see only
GET/HEAD, and nothing under the simulator's control plane ``/_sim``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediation.catalog import RUNBOOKS
from remediation.replay import ReplayServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve"
READ_ONLY = {"GET", "HEAD"}


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayServer]:
    """The real app's answers; every request is also logged to requests.jsonl, to read after a failure."""
    with ReplayServer(FIXTURES, log_path=tmp_path_factory.mktemp("replay") / "requests.jsonl") as server:
        yield server


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home for the six runs (profiles, logs); the API is the session's."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.mark.parametrize("runbook", sorted(RUNBOOKS))
def test_a_runbook_in_auto_mode_against_the_real_app_sends_only_reads(
        runbook: str, replay: ReplayServer, prefect_home: Path, prefect_api_url: str, tmp_path: Path) -> None:
    """Only REMEDIATE_APP_URL set, mode auto: the run finishes, applies nothing, and every request the app received
    is a GET or HEAD, none under /_sim. Positive control: the run read the app at that URL, or (the rolling restart,
    whose instances come from a platform) its report says it had nothing to address."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(tmp_path),
        "REMEDIATE_APP_URL": replay.url,
        "REMEDIATE_HOME": str(tmp_path / "remediate"),
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_API_URL": prefect_api_url,
        "PYTHONUNBUFFERED": "1",
    }
    before = len(replay.requests)
    done = subprocess.run(
        [sys.executable, "-c", "from remediation.cli import app; app()", "run", runbook, "--mode", "auto", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    seen = replay.requests[before:]

    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert report["runbook"] == runbook and report["mode"] == "auto"
    if not seen:
        assert runbook == "rolling-restart" and "no instances lever" in report["escalation"], report["escalation"]
    writes = [f"{r.method} {r.target}" for r in seen if r.method not in READ_ONLY]
    control_plane = [f"{r.method} {r.target}" for r in seen if r.path == "/_sim" or r.path.startswith("/_sim/")]
    applied = [(a["kind"], a["state"]) for a in report["actions"] if a["state"] == "applied"]
    assert (writes, control_plane, applied) == ([], [], []), f"outcome {report['outcome']}"
