"""The stack a person meets: a real ``prefect server start`` (with its UI), the simulator, ``remediate serve``.

Everything runs on 127.0.0.1 as separate processes, the way an operator runs it, except the simulator, which is
served from a thread of the test process so a test can reset its scenario. Runs started from the UI are picked
up by ``remediate serve``'s served runner and execute as child processes that read ``REMEDIATE_*`` from the
environment given here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from remediation.orchestration.stack import LocalPrefectServer, free_port, start_local_prefect_server
from remediation.sim import SimConfig, SimServer

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("REMEDIATE_CHROMIUM", "/usr/bin/chromium")
APPROVERS = ("alice", "bob")
RUNBOOK = "elevated-error-rate"
#: Set to 1 to copy the screenshots a run takes into docs/images/ (commit them with the change that moved the UI).
UPDATE_SCREENSHOTS_ENV = "REMEDIATE_UPDATE_SCREENSHOTS"
DOCS_IMAGES = REPO / "docs" / "images"


def browser_missing() -> str:
    """Why the browser tests cannot run here ("" when they can): Debian's chromium and Playwright for Python."""
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return ""


@dataclass
class ServeProcess:
    """``remediate serve`` in its own session, stopped by its process group like an init system would."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_s: float = 30.0) -> None:
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            if self.process.poll() is not None:
                return
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class UiStack:
    ui_url: str  # the Prefect UI, e.g. http://127.0.0.1:4321
    api_url: str
    sim: SimServer
    env: dict[str, str]  # the environment `remediate` commands of this stack need
    home: Path
    server: LocalPrefectServer
    serve: ServeProcess

    def reset_scenario(self, scenario: str = "bad-release") -> None:
        response = httpx.post(f"{self.sim.url}/_sim/scenario", json={"name": scenario}, timeout=10)
        response.raise_for_status()

    def sim_state(self) -> dict[str, Any]:
        state: dict[str, Any] = httpx.get(f"{self.sim.url}/_sim/state", timeout=10).json()
        return state

    def incidents(self) -> list[dict[str, Any]]:
        """What ``remediate incidents --json`` prints for this stack's store (newest first)."""
        done = subprocess.run([sys.executable, "-m", "remediation.cli", "incidents", "--json"], env=self.env,
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)["incidents"]
        return rows


def stack_env(home: Path, api_url: str, app_url: str) -> dict[str, str]:
    """The environment of ``remediate serve`` and its runs: our Prefect server, the simulator, fast polling.

    Anything REMEDIATE_*/PREFECT_* in the caller's environment is dropped so a developer's settings cannot
    leak into the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REMEDIATE_"))}
    env.update({
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(home / "prefect-client"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "REMEDIATE_HOME": str(home / "remediate"),
        "REMEDIATE_APP_URL": app_url,
        "REMEDIATE_PLATFORM": "sim",
        "REMEDIATE_SIM_URL": app_url,
        "REMEDIATE_APPROVERS": ",".join(APPROVERS),
        "REMEDIATE_APPROVAL_POLL_S": "1",
        "REMEDIATE_METRICS_BUDGET_PER_MIN": "100",
    })
    return env


def start_serve(env: dict[str, str], log_path: Path, timeout_s: float = 120.0) -> ServeProcess:
    """Start ``remediate serve`` and wait for its receiver's ``/healthz`` (deployments registered by then)."""
    port = free_port()
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "remediation.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--poll", "1"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    serve = ServeProcess(process, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"remediate serve exited with {process.returncode}:\n{serve.tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return serve
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    serve.stop()
    raise AssertionError(f"remediate serve not healthy after {timeout_s:g}s:\n{serve.tail()}")


@contextmanager
def ui_stack(home: Path, prefect_database_url: str) -> Iterator[UiStack]:
    """Prefect server (UI included) + simulator (bad release) + ``remediate serve``; all stopped on exit."""
    with ExitStack() as cleanup:
        server = start_local_prefect_server(home / "prefect-server", database_url=prefect_database_url)
        cleanup.callback(server.stop)
        sim = SimServer(SimConfig(scenario="bad-release", rps=200.0, onset_s=0.2, seed=7)).start()
        cleanup.callback(sim.stop)
        env = stack_env(home, server.api_url, sim.url)
        serve = start_serve(env, home / "serve.log")
        cleanup.callback(serve.stop)
        yield UiStack(ui_url=server.api_url.removesuffix("/api"), api_url=server.api_url, sim=sim, env=env,
                      home=home, server=server, serve=serve)


def keep_screenshot(path: Path) -> None:
    """Copy a fresh screenshot into docs/images/ when asked to (``REMEDIATE_UPDATE_SCREENSHOTS=1``)."""
    if os.environ.get(UPDATE_SCREENSHOTS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)
