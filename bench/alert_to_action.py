"""Alert -> first containment action: the warm executor versus Prefect's own event -> trigger -> served path.

Both paths run the same runbook (elevated-error-rate, auto mode, rollback pre-approved so nothing waits for a
person) against the same simulator (scenario ``bad-release``, reset before every incident), in one process,
interleaved (the order alternates per round), against one Prefect API. Per incident:

  t0  "alert received": just before the start call (``WarmExecutor.start`` / ``emit_event``)
  t1  the run's first timeline entry ("run started"): how long the path took to reach flow code
  t2  ``Store.actions(incident)[0].started_at``: the ledger's intent row of the first containment action

and the incident must close before the next one (policy allows one active remediation per service).
Run ``python bench/alert_to_action.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RUNBOOK = "elevated-error-rate"
DEPLOYMENT = f"{RUNBOOK}/{RUNBOOK}"
SERVICE = "kamkmserve"


@dataclass
class Sample:
    path: str
    incident_id: str
    to_run_started_s: float | None
    to_action_s: float | None
    outcome: str
    run_id: str | None = None
    taken_by_runner: bool = False
    to_created_s: float | None = None  # the flow run exists (API)
    to_running_s: float | None = None  # Prefect's engine reported Running (before any flow code)


def _configure_env(home: Path, sim_url: str) -> None:
    """Settings for both paths: served runs are child processes and read them from the environment."""
    os.environ.update({
        "REMEDIATE_HOME": str(home), "REMEDIATE_APP_URL": sim_url, "REMEDIATE_PLATFORM": "sim",
        "REMEDIATE_SIM_URL": sim_url,
        "REMEDIATE_DATABASE_URL": f"sqlite:///{home / 'bench.db'}", "REMEDIATE_MODE": "auto",
        "REMEDIATE_PREAPPROVED": "rollback", "REMEDIATE_APPROVERS": "bench",
        "REMEDIATE_MAX_ACTIONS_PER_SERVICE_PER_HOUR": "1000000", "REMEDIATE_METRICS_BUDGET_PER_MIN": "100",
    })


def _fast_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Deployment defaults, so that both paths run with identical parameters (the trigger sets only 4)."""
    return {"mode": "auto", "sample_interval_s": args.sample_interval, "min_records": 20,
            "verify_interval_s": 0.3, "verify_consecutive": 2, "verify_deadline_s": 20.0}


def _reset_world(sim_url: str) -> None:
    """A fresh bad-release world: the faulty release live and a window of failing traffic recorded."""
    import httpx

    httpx.post(f"{sim_url}/_sim/scenario", json={"name": "bad-release"}, timeout=10).raise_for_status()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = httpx.get(f"{sim_url}/_sim/state", timeout=5).json()
        if state["current_release"]["version"] != "v1.4.2":
            time.sleep(1.0)
            return
        time.sleep(0.05)
    raise RuntimeError("the simulator's bad release never went out")


def _measure(store: Any, incident_id: str, t0: datetime, timeout_s: float) -> tuple[float | None, float | None, str]:
    """Poll the ledger for the first action, then wait for the incident to close (the next one needs that)."""
    deadline = time.monotonic() + timeout_s
    to_action = to_started = None
    while time.monotonic() < deadline:
        actions = store.actions(incident_id) if to_action is None else []
        if actions:
            to_action = (actions[0].started_at - t0).total_seconds()
            timeline = store.timeline(incident_id)
            to_started = (timeline[0].at - t0).total_seconds() if timeline else None
        incident = store.get_incident(incident_id)
        if incident is not None and not incident.is_open:
            return to_started, to_action, incident.outcome.value if incident.outcome else "closed"
        time.sleep(0.01 if to_action is None else 0.1)
    return to_started, to_action, "timeout"


def _wait_idle(timeout_s: float) -> None:
    """Until no run of the deployment is unfinished: the next incident must not meet this one's tail."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    unfinished = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[
        StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.CANCELLING])))
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if not client.read_flow_runs(flow_run_filter=unfinished, limit=1, deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=[RUNBOOK]))):
                return
            time.sleep(0.1)


def _run_timing(incident_id: str, t0: datetime) -> tuple[str | None, bool, float | None, float | None]:
    """The incident's run: (id, claimed by the runner?, t0 -> created, t0 -> Running), from Prefect's records."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[RUNBOOK])),
                                     limit=20)
        run = next((r for r in runs if r.parameters.get("incident_id") == incident_id), None)
        if run is None:
            return None, False, None, None
        states = client.read_flow_run_states(run.id)
    running = next((s.timestamp for s in sorted(states, key=lambda s: s.timestamp) if s.name == "Running"), None)
    return (str(run.id), any(s.name == "Submitting" for s in states),
            (run.created - t0).total_seconds() if run.created else None,
            (running - t0).total_seconds() if running else None)


def _child_pids() -> list[int]:
    """This process's live children (served runs are ``python -m prefect.engine`` children of the runner)."""
    me, children = os.getpid(), []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 1 and int(fields[1]) == me and fields[0] != "Z":
                children.append(int(entry))
    return children


def _settle(settle_s: float, baseline: set[int]) -> None:
    """Let the previous incident's tail finish before the next t0: a served run's child process exiting (and
    the server digesting its events) would otherwise share the 2 cores with the next incident of either path.
    Each path is timed on a quiet machine; the comparison is of start-up paths, not of throughput."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and set(_child_pids()) - baseline:
        time.sleep(0.05)
    time.sleep(settle_s)


def _incident(path: str, settings: Any, executor: Any, sim_url: str, timeout_s: float) -> Sample:
    from remediation import composition, runtime
    from remediation.models import new_id
    from remediation.orchestration.events import emit_alert

    _reset_world(sim_url)
    incident_id = new_id("inc")
    params = {"service": SERVICE, "severity": "sev2", "alert_name": "HighErrorRate", "incident_id": incident_id}
    # A fresh provider bundle per warm incident: its request budget (100/min, the app's limit) would otherwise
    # be shared by all warm incidents, while each served child starts with its own. Built outside the timing.
    providers = composition.connect(settings, migrate=False)
    run_id = None
    with runtime.use(providers):
        t0 = datetime.now(UTC)
        if path == "warm":
            run_id = asyncio.run(executor.start(DEPLOYMENT, params, f"bench:{incident_id}"))
        else:
            emit_alert(RUNBOOK, **params)
        to_started, to_action, outcome = _measure(providers.store, incident_id, t0, timeout_s)
    _wait_idle(timeout_s)
    providers.store.dispose()
    found_id, taken, to_created, to_running = _run_timing(incident_id, t0)
    return Sample(path, incident_id, to_started, to_action, outcome, run_id or found_id, taken and path == "warm",
                  to_created, to_running)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def report(samples: list[Sample], poll_s: float) -> str:
    labels = {"warm": "warm executor", "event": f"event -> trigger -> served (poll {poll_s:g}s)"}
    lines = [f"{'path':<40} {'n':>3} {'fail':>4} | {'alert->action p50':>17} {'p95':>6} {'max':>6} | "
             f"{'alert->run started p50':>22} {'p95':>6} | p50 created / Running"]
    stats: dict[str, tuple[float, float]] = {}
    for path in ("warm", "event"):
        ok = [s for s in samples if s.path == path and s.to_action_s is not None]
        failed = sum(1 for s in samples if s.path == path) - len(ok)
        if not ok:
            lines.append(f"{labels[path]:<40} {0:>3} {failed:>4} | no successful incidents")
            continue
        action = [s.to_action_s for s in ok if s.to_action_s is not None]
        started = [s.to_run_started_s for s in ok if s.to_run_started_s is not None] or [float("nan")]
        created = [s.to_created_s for s in ok if s.to_created_s is not None] or [float("nan")]
        running = [s.to_running_s for s in ok if s.to_running_s is not None] or [float("nan")]
        stats[path] = (percentile(action, 50), percentile(action, 95))
        lines.append(f"{labels[path]:<40} {len(ok):>3} {failed:>4} | {stats[path][0]:>16.2f}s "
                     f"{stats[path][1]:>5.2f}s {max(action):>5.2f}s | {percentile(started, 50):>21.2f}s "
                     f"{percentile(started, 95):>5.2f}s | {percentile(created, 50):.2f}s / "
                     f"{percentile(running, 50):.2f}s")
    if len(stats) == 2:
        lines.append(f"{'ratio served/warm':<40} {'':>3} {'':>4} | {stats['event'][0] / stats['warm'][0]:>16.1f}x "
                     f"{stats['event'][1] / stats['warm'][1]:>5.1f}x")
    taken = [s for s in samples if s.taken_by_runner]
    if taken:
        lines.append(f"note: {len(taken)} warm start(s) were claimed first by the co-located runner (slow path)")
    outcomes = sorted({s.outcome for s in samples})
    lines.append(f"outcomes: {', '.join(outcomes)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--incidents", type=int, default=20, help="measured incidents per path (>= 20)")
    parser.add_argument("--poll", type=float, default=1.0, help="served runner poll, seconds (remediate serve: 1)")
    parser.add_argument("--sample-interval", type=float, default=0.3, help="runbook sample_interval_s")
    parser.add_argument("--timeout", type=float, default=90.0, help="per incident, seconds")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="quiet seconds between incidents, after served children exit (0: none)")
    parser.add_argument("--prefect-pg", action="store_true",
                        help="run the script's Prefect server on a throwaway PostgreSQL database (admin URL from "
                             "REMEDIATE_TEST_PG_ADMIN_URL or postgres@127.0.0.1:5432)")
    args = parser.parse_args(argv)
    # Before Prefect is imported: served runs and this process keep their console to warnings.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    home = Path(tempfile.mkdtemp(prefix="bench-alert-"))
    from kamkmserve_sim import SimConfig, SimServer

    with SimServer(SimConfig(scenario="bad-release", rps=200.0, onset_s=0.2, seed=7, rate_limit=1_000_000)) as sim:
        _configure_env(home, sim.url)
        if not args.prefect_pg:
            return _run(args, home, sim.url)
        with _throwaway_postgres() as url:
            os.environ["REMEDIATE_PREFECT_DATABASE_URL"] = url
            return _run(args, home, sim.url)


@contextlib.contextmanager
def _throwaway_postgres() -> Iterator[str]:
    import uuid

    from sqlalchemy import create_engine, text

    admin_url = os.environ.get("REMEDIATE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    name = f"bench_prefect_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _run(args: argparse.Namespace, home: Path, sim_url: str) -> int:
    from deployments.bootstrap import bootstrap
    from deployments.serve import serve_runbooks
    from remediation.orchestration.stack import (
        drain_prefect_workers,
        export_prefect_api,
        prefect_database_url,
        start_local_prefect_server,
    )
    from remediation.orchestration.warm import WarmExecutor
    from remediation.settings import Settings
    from remediation.store import Store

    settings = Settings()
    Store(settings.resolved_database_url).migrate()
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        prefect_home = home / "prefect"
        database = prefect_database_url(settings, prefect_home)
        print(f"starting a Prefect server ({database.split(':')[0]}) ...", flush=True)
        server = start_local_prefect_server(prefect_home, database_url=database)
        export_prefect_api(server.api_url, prefect_home)
    stop, ready = threading.Event(), threading.Event()
    serving = threading.Thread(target=serve_runbooks, args=(settings,), daemon=True, kwargs={
        "query_seconds": args.poll, "stop": stop, "ready": ready,
        "parameter_defaults": {RUNBOOK: _fast_parameters(args)}})
    executor = None
    try:
        bootstrap(settings)
        serving.start()
        if not ready.wait(120):
            raise RuntimeError("serve did not register the deployments")
        executor = WarmExecutor().open()
        baseline = set(_child_pids())  # the Prefect server and the simulator are children too
        print("warm-up (not measured) ...", flush=True)
        for path in ("warm", "event"):
            _incident(path, settings, executor, sim_url, args.timeout)
        samples: list[Sample] = []
        for i in range(args.incidents):
            for path in (("warm", "event") if i % 2 == 0 else ("event", "warm")):
                _settle(args.settle, baseline)
                sample = _incident(path, settings, executor, sim_url, args.timeout)
                samples.append(sample)
                print(f"  {i + 1:>3} {path:<5} action {sample.to_action_s if sample.to_action_s is not None else '-'}"
                      f"  ({sample.outcome})", flush=True)
        print()
        print(report(samples, args.poll))
        if args.json:
            args.json.write_text(json.dumps([asdict(s) for s in samples], indent=2))
        return 0
    finally:
        stop.set()
        serving.join(30)
        if executor is not None:
            executor.shutdown(grace_s=5)
        if server is not None:
            drain_prefect_workers()
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
