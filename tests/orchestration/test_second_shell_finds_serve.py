"""A second shell finds the Prefect API of a running ``remediate serve`` with no export at all.

Real processes: ``remediate serve`` started with no ``PREFECT_API_URL`` (so it starts its own Prefect server), in a
working directory whose default state directory (``./.remediate``) it records itself in; a production rolling restart
pauses for its approval; then ``remediate paused``, run from the same directory with a clean environment, lists that
run (before serve.json it asked a temporary API of its own and printed nothing). On SIGTERM serve removes its record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kamkmserve_sim import SimConfig, SimServer

from remediation.orchestration import serve_record
from remediation.orchestration.stack import free_port
from tests.flows.restartkit import FAST_RESTART, FLEET
from tests.helpers.prefect_templates import seed_prefect_home
from tests.orchestration.orchkit import wait_for
from tests.orchestration.stackkit import REPO, with_api

pytestmark = pytest.mark.prefect_server


def _clean_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REMEDIATE_", "SENTRY_"))}
    env.update({"PYTHONPATH": str(REPO), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_HOME": str(workdir / "client-prefect-home")})
    return env


def test_remediate_paused_in_a_second_shell_lists_the_run_paused_in_serve_without_prefect_api_url(
    tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    home = tmp_path / ".remediate"  # the default state directory, relative to the shared working directory
    with SimServer(SimConfig(scenario="rolling-restart", rps=200.0, seed=5, fleet=FLEET)) as sim:
        serve_env = _clean_env(tmp_path)
        serve_env.update({"REMEDIATE_PREFECT_PORT": str(free_port()), "REMEDIATE_APP_URL": sim.url,
                          "REMEDIATE_PLATFORM": "sim", "REMEDIATE_SIM_URL": sim.url, "REMEDIATE_APPROVERS": "alice",
                          "REMEDIATE_APPROVAL_POLL_S": "1", "REMEDIATE_METRICS_BUDGET_PER_MIN": "100"})
        serve_env.pop("PREFECT_HOME")  # serve gives its own server and runs .remediate/prefect
        seed_prefect_home(home / "prefect")  # with a migrated database: it starts without migrating
        log = tmp_path / "serve.log"
        with log.open("w") as out:
            serve = subprocess.Popen([sys.executable, "-m", "remediation.cli", "serve", "--port", str(free_port())],
                                     cwd=tmp_path, env=serve_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            def recorded() -> dict[str, object] | None:
                assert serve.poll() is None, f"serve exited early:\n{log.read_text()}"
                try:
                    return dict(json.loads(serve_record.path(home).read_text()))
                except (OSError, ValueError):
                    return None

            record = wait_for(recorded, timeout_s=180, interval_s=0.25, what="serve to record itself")
            api_url = str(record["prefect_api_url"])
            assert record["pid"] == serve.pid
            banner = wait_for(lambda: "remediate serve is ready" in log.read_text() and log.read_text(),
                              timeout_s=30, what="the banner")
            assert f"  {api_url}\n" in banner and "rolling-restart" in banner and "alice: sim only" in banner

            with with_api(api_url):
                run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call: a FlowRun, not a coroutine
                    "rolling-restart/rolling-restart", timeout=0, parameters={
                        "service": "kamkmserve", "mode": "auto", "approval_timeout_s": 900, **FAST_RESTART})
                with get_client(sync_client=True) as client:
                    wait_for(lambda: (r := client.read_flow_run(run.id)).state and r.state.name == "Paused",
                             timeout_s=120, interval_s=0.5, what="the served run to pause for its approval")

            second = subprocess.run([sys.executable, "-m", "remediation.cli", "paused"], cwd=tmp_path,
                                    env=_clean_env(tmp_path), capture_output=True, text=True, timeout=120)
            assert second.returncode == 0, second.stderr
            assert str(run.id) in second.stdout, (second.stdout, second.stderr)
        finally:
            if serve.poll() is None:
                serve.send_signal(signal.SIGTERM)
                try:
                    serve.wait(90)
                except subprocess.TimeoutExpired:
                    serve.kill()
                    serve.wait()
        assert serve.returncode == 0, log.read_text()
        assert not serve_record.path(home).exists(), "a clean exit removes the record"
