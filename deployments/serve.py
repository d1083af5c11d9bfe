"""Serve every runbook deployment from this process (the embedded default of ``remediate serve``).

The deployments are built from prefect.yaml's entries (same names, descriptions, parameters, tags, triggers), so a
served deployment and a ``prefect deploy``-ed one are interchangeable; only the work pool is dropped, because a
served deployment needs none (docs/reference/prefect.md §3.1). Whichever registers last owns the deployment on that
server.

This is ``prefect.serve(...)`` with two changes it cannot be asked for: it runs in a background thread (``serve``
calls ``asyncio.run`` and relies on SIGTERM in the main thread), and it stops when ``stop`` is set. It builds the
same ``Runner`` that ``serve`` builds, with ``pause_on_shutdown=False`` (a restart must not leave schedules
paused), and stops it with ``Runner.astop``: served runs still executing are cancelled, as on ``serve``'s SIGTERM.
Before that, given ``parking``, served runs waiting for an approval that may be run again are asked to park
themselves (``remediation.orchestration.resumable``, 5-7): they end ``Suspended``, answerable after the restart.

Served runs are child processes (``python -m prefect.engine``): they inherit this process's environment and
Prefect settings, and build their ``remediation`` Settings from ``REMEDIATE_*`` in that environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from remediation import catalog
from remediation.orchestration import resumable
from remediation.orchestration.events import trigger_spec
from remediation.orchestration.triggers import prune_duplicate_triggers
from remediation.settings import Settings
from remediation.settings_vendors import flat_values

log = logging.getLogger("remediation.orchestration")

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"


def runbook_specs(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """Deployment entries of prefect.yaml for the catalogued runbooks; catalogue defaults where the file is absent.

    YAML anchors are already resolved by the loader; the work pool is removed (served deployments have none).
    """
    import yaml

    entries: dict[str, dict[str, Any]] = {}
    if path.is_file():
        document = yaml.safe_load(path.read_text()) or {}
        entries = {d["name"]: d for d in document.get("deployments") or []}
    specs = []
    for runbook in catalog.RUNBOOKS:
        spec = copy.deepcopy(entries.get(runbook) or {"name": runbook, "tags": ["remediation"],
                                                        "triggers": [trigger_spec(runbook)]})
        spec.pop("work_pool", None)
        specs.append(spec)
    return specs


def build_deployments(specs: list[dict[str, Any]], flows: Mapping[str, Any] | None = None,
                      parameter_defaults: Mapping[str, Mapping[str, Any]] | None = None) -> list[Any]:
    """``RunnerDeployment``s for ``specs``; ``flows`` maps deployment name -> flow (default: the catalogue).

    ``parameter_defaults`` adds or overrides default parameters per deployment (benchmarks, tests). The
    entrypoint is the flow's *module path*, so served child processes import it from any working directory.
    """
    from prefect.deployments.runner import RunnerDeployment
    from prefect.events import DeploymentTriggerTypes
    from prefect.types.entrypoint import EntrypointType
    from pydantic import TypeAdapter

    trigger_adapter: TypeAdapter[Any] = TypeAdapter(DeploymentTriggerTypes)
    deployments = []
    for spec in specs:
        name = spec["name"]
        flow = (flows or {}).get(name) or catalog.load(name)
        parameters = {**(spec.get("parameters") or {}), **((parameter_defaults or {}).get(name) or {})}
        triggers = []
        for i, raw in enumerate(spec.get("triggers") or [], start=1):
            trigger_raw = dict(raw)
            trigger_raw.setdefault("name", f"{name}__automation_{i}")
            triggers.append(trigger_adapter.validate_python(trigger_raw))
        deployments.append(RunnerDeployment.from_flow(
            flow, name=name, description=spec.get("description"), tags=list(spec.get("tags") or []),
            parameters=parameters, triggers=triggers, schedules=_schedules(spec) or None,
            enforce_parameter_schema=bool(spec.get("enforce_parameter_schema", True)),
            entrypoint_type=EntrypointType.MODULE_PATH,
        ))
    return deployments


def _schedules(spec: dict[str, Any]) -> list[Any]:
    """prefect.yaml's ``schedules`` (cron or interval; timezone, active, per-schedule parameters) as Prefect schedules,
    so that a served deployment keeps its schedule too (the weekly rolling-restart drill)."""
    from datetime import timedelta

    from prefect.schedules import Cron, Interval

    built: list[Any] = []
    for raw in spec.get("schedules") or []:
        common = {"timezone": raw.get("timezone"), "active": bool(raw.get("active", True)),
                  "parameters": dict(raw.get("parameters") or {})}
        if "cron" in raw:
            built.append(Cron(str(raw["cron"]), **common))
        elif "interval" in raw:
            built.append(Interval(timedelta(seconds=float(raw["interval"])), **common))
    return built


def serve_runbooks(settings: Settings, *, query_seconds: float = 1.0, stop: threading.Event | None = None,
                   ready: threading.Event | None = None, limit: int | None = None,
                   deployments: list[Any] | None = None,
                   parameter_defaults: Mapping[str, Mapping[str, Any]] | None = None,
                   parking: resumable.ServedParking | None = None) -> None:
    """Register and serve the runbook deployments until ``stop`` is set (forever if None); blocks the caller.

    ``query_seconds`` is the runner's poll (Prefect's default of 10 s puts ~5 s median on every served start;
    fast-start §1). ``ready`` is set once every deployment (and its trigger automation) is registered.
    ``deployments`` replaces the runbooks (tests serve a tiny flow the same way). ``parking``: at stop, served
    runs waiting for an approval it accepts are suspended rather than cancelled (None: all are cancelled).
    """
    _warn_if_settings_differ_from_env(settings)
    if deployments is None:
        deployments = build_deployments(runbook_specs(), parameter_defaults=parameter_defaults)
    # A served run reads the park request at its approval poll; its engine then takes ~3.5 s to exit (measured).
    park_wait_s = 2.0 * settings.approval_poll_s + 10.0
    asyncio.run(_serve(deployments, query_seconds=query_seconds, stop=stop or threading.Event(), ready=ready,
                       limit=limit, parking=parking, park_wait_s=park_wait_s))


async def _serve(deployments: list[Any], *, query_seconds: float, stop: threading.Event,
                 ready: threading.Event | None, limit: int | None,
                 parking: resumable.ServedParking | None = None, park_wait_s: float = 12.0) -> None:
    from prefect.client.orchestration import get_client
    from prefect.runner import Runner

    runner = (Runner(name="remediate-serve", query_seconds=query_seconds, pause_on_shutdown=False)
              if limit is None else
              Runner(name="remediate-serve", query_seconds=query_seconds, pause_on_shutdown=False, limit=limit))
    triggers = {await runner.aadd_deployment(deployment): [t.name for t in deployment.triggers]
                for deployment in deployments}
    async with get_client() as client:
        await prune_duplicate_triggers(client, triggers)
    log.info("serving %s (poll %gs)", ", ".join(f"{d.flow_name}/{d.name}" for d in deployments), query_seconds)
    if ready is not None:
        ready.set()
    task = asyncio.create_task(runner.start())
    try:
        while not stop.is_set():
            done, _ = await asyncio.wait({task}, timeout=0.2)
            if done:
                break
    finally:
        if not task.done():
            if runner.started:
                if parking is not None:
                    await _park_waiting_runs(runner, parking, park_wait_s)
                await runner.astop()
            else:
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    log.info("stopped serving runbooks")


def _executing(runner: Any) -> set[Any]:
    """Ids of the runs whose processes ``runner`` tracks: the set ``Runner.astop`` cancels (Prefect 3.9.1 keeps it
    in the private ``_process_manager``; pinned in pyproject, so a change shows up as no run being parked)."""
    manager = getattr(runner, "_process_manager", None)
    ids = getattr(manager, "flow_run_ids", None)
    return set(ids()) if callable(ids) else set()


async def _park_waiting_runs(runner: Any, parking: resumable.ServedParking, wait_s: float) -> None:
    """Ask the served runs waiting for a parkable approval to park themselves, and wait until their processes
    are gone: ``Runner.astop`` would otherwise kill them and force ``Cancelled`` over their ``Suspended``."""
    from prefect import get_client

    executing = _executing(runner)
    if not executing:
        return

    def ask() -> list[Any]:
        with get_client(sync_client=True) as client:
            return resumable.request_park(client, executing, parking)

    asked = set(await asyncio.to_thread(ask))
    if not asked:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    left = asked & _executing(runner)
    while left and loop.time() < deadline:  # the runner tells us when a process exits only through its own set
        await asyncio.sleep(0.1)
        left &= _executing(runner)
    parked = asked - left
    if parked:
        log.info("suspended %d served run(s) waiting for approval: answer them after the restart", len(parked))
    if left:
        log.warning("served run(s) %s did not park within %gs: cancelled with the others",
                    ", ".join(str(r) for r in left), wait_s)


def _warn_if_settings_differ_from_env(settings: Settings) -> None:
    try:
        from_env = Settings()
    except Exception:  # the environment alone does not validate: served runs will fail the same way
        log.warning("REMEDIATE_* in the environment do not form valid Settings; served runs will fail to start")
        return
    env_values = flat_values(from_env)  # by flat name: aws_region, not the whole aws group
    differing = sorted(k for k, v in flat_values(settings).items() if env_values.get(k) != v)
    if differing:
        log.warning("served runs read Settings from the environment, which differs from the given settings in: %s",
                    ", ".join(differing))
