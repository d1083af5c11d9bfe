"""``run_stack`` (``remediate serve``) as a real subprocess for tests that kill it, and a PostgreSQL-backed Prefect
server several such processes can share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from remediation.orchestration.stack import free_port
from tests.helpers import local_http
from tests.helpers.prefect_templates import postgres_template
from tests.helpers.services import pg_admin_url, postgres_reachable, require_service, temporary_postgres_database
from tests.orchestration.orchkit import wait_for

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def prefect_database(prefix: str) -> Iterator[str]:
    """An empty PostgreSQL database for a Prefect server (several processes talk to it; SQLite would stall them)."""
    admin_url = pg_admin_url()
    reachable, why = postgres_reachable(admin_url)
    require_service("PostgreSQL", reachable, why)
    with temporary_postgres_database(admin_url, prefix=prefix, template=postgres_template()) as url:
        _, _, rest = url.partition("://")
        yield f"postgresql+asyncpg://{rest}"


@contextmanager
def shared_prefect_server(home: Path, prefix: str) -> Iterator[str]:
    """A Prefect server on its own PostgreSQL database, for several stacks to share: its API URL."""
    from remediation.orchestration.stack import start_local_prefect_server

    with prefect_database(prefix) as database_url:
        server = start_local_prefect_server(home, database_url=database_url)
        try:
            yield server.api_url
        finally:
            server.stop()


def replica_env(tmp_path: Path, api_url: str, sim_url: str, *, lease_s: int, renew_s: int, reconcile_s: int,
                metrics_budget_per_min: int = 100) -> dict[str, str]:
    """The environment of ``run_stack`` replicas sharing one Prefect API and one store (``tmp_path``) against the
    simulator at ``sim_url``, with short leases; this process's own Prefect, remediation and Sentry settings are
    left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REMEDIATE_", "SENTRY_"))}
    env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(tmp_path / "prefect-home"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "REMEDIATE_HOME": str(tmp_path),
                "REMEDIATE_APP_URL": sim_url, "REMEDIATE_PLATFORM": "sim", "REMEDIATE_SIM_URL": sim_url,
                "REMEDIATE_APPROVERS": "alice", "REMEDIATE_MODE": "auto", "REMEDIATE_APPROVAL_POLL_S": "1",
                "REMEDIATE_METRICS_BUDGET_PER_MIN": str(metrics_budget_per_min),
                "REMEDIATE_RUN_LEASE_S": str(lease_s), "REMEDIATE_RUN_LEASE_RENEW_S": str(renew_s),
                "REMEDIATE_RECONCILE_INTERVAL_S": str(reconcile_s)})
    return env


@contextmanager
def rolling_restart_sim() -> Iterator[Any]:
    """The simulator with three instances behind a load balancer (the rolling restart's world), in this process."""
    from kamkmserve_sim import SimConfig, SimServer

    from tests.flows.restartkit import FLEET

    with SimServer(SimConfig(scenario="rolling-restart", rps=200.0, seed=5, fleet=FLEET)) as sim:
        yield sim


def run_state(api_url: str, run_id: str) -> Any:
    """The run's current state, read from ``api_url``."""
    from prefect import get_client

    with with_api(api_url), get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def with_api(api_url: str) -> Any:
    """This process's Prefect client pointed at ``api_url`` for a ``with`` block."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: api_url})


class Stack:
    """``run_stack`` in a subprocess (``tests.orchestration.orch_stack_main``), its output in a file (a pipe nobody
    reads would block it)."""

    def __init__(self, home: Path, env: dict[str, str], name: str, *, receiver: bool = False) -> None:
        """``receiver``: run ``remediate serve`` itself (the real alert receiver) instead of the stand-in app."""
        self.port = free_port()
        self.log = home / f"{name}.log"
        command = (["-m", "remediation.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--poll", "1"]
                   if receiver else ["-m", "tests.orchestration.orch_stack_main", "127.0.0.1", str(self.port)])
        with self.log.open("w") as out:
            self.process = subprocess.Popen([sys.executable, *command], cwd=REPO, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, text=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def ready(self, timeout_s: float = 180) -> dict[str, Any]:
        def healthy() -> dict[str, Any] | None:
            assert self.process.poll() is None, f"the stack exited early:\n{self.output()}"
            try:
                answer = local_http.get(f"{self.url}/healthz", timeout=2)
            except httpx.HTTPError:
                return None
            body: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
            # The stand-in app says whether the starter is healthy; the real receiver answers once serve is up.
            return body if body.get("healthy") or body.get("status") == "ok" else None

        found: dict[str, Any] = wait_for(healthy, timeout_s=timeout_s, interval_s=0.25, what="the stack to be ready")
        return found

    def start(self, deployment: str, key: str, parameters: dict[str, Any]) -> str:
        """Start a run that this stack's process executes (``"here"``): the tests kill or restart that process and
        mean the run to go with it, not to be picked up by another stack's runner."""
        started = local_http.post(f"{self.url}/start", timeout=30,
                                  json={"deployment": deployment, "key": key, "parameters": parameters, "here": True})
        assert started.status_code == 200, started.text
        return str(started.json()["run_id"])

    def sigkill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        """SIGTERM and the exit code; a stack that does not exit within 90 s is killed and fails the test."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the stack did not exit on SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM (the polite way), SIGKILL if it does not exit."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
