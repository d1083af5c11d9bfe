"""Running the simulator: a background SimServer for tests, and the foreground CLI that behaves like the app."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from kamkmserve_sim import SimConfig, SimServer, create_app

from tests.sim.simkit import REPO_ROOT, fetch


def test_sim_server_picks_a_free_port_and_stops_cleanly() -> None:
    with SimServer(SimConfig(rps=0, seed=1)) as server:
        assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0")
        assert fetch(server.url, "/monitoring/ready").status == 200
        url = server.url
    with pytest.raises(OSError):
        fetch(url, "/monitoring/ready", timeout_s=1)
    server.stop()  # a second stop is harmless


def test_two_servers_share_no_state() -> None:
    with SimServer(SimConfig(rps=0)) as first, SimServer(SimConfig(rps=0)) as second:
        for _ in range(3):
            fetch(first.url, "/api/cart")
        assert fetch(second.url, "/api/cart").header("ratelimit-remaining") == "99"
        assert first.state is not second.state


def test_create_app_refuses_unknown_scenarios() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        create_app(SimConfig(scenario="nope"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_like_next_start_and_exits_zero_on_signal(sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kamkmserve_sim", "--port", "0", "--rps", "50", "--seed", "3"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 20
        seen = []
        while not any("Ready in" in line for line in seen):
            assert time.monotonic() < deadline, f"no banner: {seen}"
            seen.append(process.stdout.readline())
        time.sleep(0.3)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert seen[0] == "   \u25b2 Next.js 15.5.0\n"
    last = json.loads(stderr.strip().splitlines()[-1])
    assert last["message"] == f"Received {sig.name}, initiating graceful shutdown..." and last["level"] == "warn"
    for line in (seen + stdout.splitlines())[7:]:
        if line.strip():
            assert json.loads(line)["level"] in ("info", "debug")
