"""A `remediate demo --interactive` interrupted with Ctrl-C at its approval prompt leaves nothing stuck: the next demo
on the same Prefect home gets the kamkmserve remediation slot and recovers (it used to wait forever after "run
started", the slot still counted as taken)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.demokit import demo, demo_env
from tests.orchestration.orchkit import wait_for


def test_a_demo_interrupted_at_its_prompt_releases_the_slot_and_the_next_demo_recovers(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    out = tmp_path / "interrupted.out"
    with out.open("w") as sink:
        first = subprocess.Popen([sys.executable, "-m", "remediation.cli", "demo", "--interactive"], env=env,
                                 stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: "your name" in out.read_text(), timeout_s=180, interval_s=0.5,
                 what=f"the approval prompt:\n{out.read_text()[-2000:]}")
        first.send_signal(signal.SIGINT)
        first.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert "released the remediation slot remediate-kamkmserve" in out.read_text(), out.read_text()[-2000:]

    second = demo(env, timeout_s=240)
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout)["outcome"] == "recovered"
