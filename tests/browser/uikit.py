"""The stack a person meets: a real ``prefect server start`` (with its UI), the simulator, ``remediate serve``.

Everything runs on 127.0.0.1 as separate processes, the way an operator runs it, except the simulator, which is
served from a thread of the test process so a test can reset its scenario. Runs started from the UI are picked
up by ``remediate serve``'s served runner and execute as child processes that read ``REMEDIATE_*`` from the
environment given here.

Approvers: ``alice`` and ``bob`` are bare names (believed on the simulator platform), ``carol`` is enrolled with a
TOTP secret made for the stack (``REMEDIATE_APPROVER_FACTORS`` plus the secret's variable), so her answers must
carry a current code; :meth:`UiStack.code` is what her authenticator shows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from kamkmserve_sim import SimConfig, SimServer

from remediation import approvers
from remediation.models import Approval, TimelineEntry
from remediation.orchestration.stack import LocalPrefectServer, free_port, start_local_prefect_server
from remediation.store import Store
from tests.helpers import local_http

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("REMEDIATE_CHROMIUM", "/usr/bin/chromium")
#: The enrolled approver: answers only with a current code from her authenticator (the stack's TOTP secret).
ENROLLED = "carol"
APPROVERS = ("alice", "bob", ENROLLED)
#: The variable holding the enrolled approver's TOTP secret, as remediate.toml's ``totp = { env = ... }`` names it.
TOTP_ENV = {ENROLLED: "REMEDIATE_TOTP_CAROL"}
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
    totp_secrets: dict[str, str] = field(default_factory=dict)  # enrolled approver -> TOTP secret

    def reset_scenario(self, scenario: str = "bad-release") -> None:
        response = local_http.post(f"{self.sim.url}/_sim/scenario", json={"name": scenario}, timeout=10)
        response.raise_for_status()

    def sim_state(self) -> dict[str, Any]:
        state: dict[str, Any] = local_http.get(f"{self.sim.url}/_sim/state", timeout=10).json()
        return state

    def incidents(self) -> list[dict[str, Any]]:
        """What ``remediate incidents --json`` prints for this stack's store (newest first)."""
        done = subprocess.run([sys.executable, "-m", "remediation.cli", "incidents", "--json"], env=self.env,
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)["incidents"]
        return rows

    def code(self, approver: str) -> str:
        """The code ``approver``'s authenticator shows now: compute it right before typing it."""
        return approvers.code_at(self.totp_secrets[approver], datetime.now(UTC))

    def wrong_code(self, approver: str) -> str:
        """A 6-digit code that is not ``approver``'s for a good while around now (so it is refused as wrong)."""
        secret = self.totp_secrets[approver]
        now = datetime.now(UTC).timestamp()
        near = {approvers.code_at(secret, datetime.fromtimestamp(now + k * approvers.TOTP_INTERVAL_S, UTC))
                for k in range(-3, 5)}
        return next(c for c in (f"{d}" * 6 for d in range(10)) if c not in near)

    def _store(self) -> Store:
        """The store ``serve`` and its runs write: under this stack's REMEDIATE_HOME, never the caller's settings."""
        return Store(f"sqlite:///{(Path(self.env['REMEDIATE_HOME']) / 'remediate.db').resolve()}")

    def approvals(self, incident_id: str) -> list[Approval]:
        """Every answer the run judged for the incident, with its verdict (approved, denied, refused...)."""
        store = self._store()
        try:
            return store.approvals(incident_id)
        finally:
            store.dispose()

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        store = self._store()
        try:
            return store.timeline(incident_id)
        finally:
            store.dispose()

    def flow_run_state(self, run_id: str) -> dict[str, Any]:
        """The run's current state from the Prefect API (``id``, ``type`` such as "PAUSED", ``state_details``)."""
        response = local_http.get(f"{self.api_url}/flow_runs/{run_id}", timeout=10)
        response.raise_for_status()
        state: dict[str, Any] = response.json()["state"]
        return state


def wait_until(probe: Callable[[], T | None], what: str, timeout_s: float = 60.0, every_s: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g}s")
        time.sleep(every_s)


def stack_env(home: Path, api_url: str, app_url: str, totp_secrets: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``remediate serve`` and its runs: our Prefect server, the simulator, fast polling, and
    the approvers, those in ``totp_secrets`` enrolled with that TOTP secret (the env form of remediate.toml's
    ``[approvers.NAME] totp = { env = ... }``).

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
    secrets = dict(totp_secrets or {})
    env["REMEDIATE_APPROVER_FACTORS"] = json.dumps({name: {"totp_env": TOTP_ENV[name]} for name in secrets})
    env.update({TOTP_ENV[name]: secret for name, secret in secrets.items()})
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
            if local_http.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
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
        secrets = {ENROLLED: approvers.new_secret()}
        env = stack_env(home, server.api_url, sim.url, totp_secrets=secrets)
        serve = start_serve(env, home / "serve.log")
        cleanup.callback(serve.stop)
        yield UiStack(ui_url=server.api_url.removesuffix("/api"), api_url=server.api_url, sim=sim, env=env,
                      home=home, server=server, serve=serve, totp_secrets=secrets)


def keep_screenshot(path: Path) -> None:
    """Copy a fresh screenshot into docs/images/ when asked to (``REMEDIATE_UPDATE_SCREENSHOTS=1``)."""
    if os.environ.get(UPDATE_SCREENSHOTS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)
