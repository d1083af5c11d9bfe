"""``remediate demo``: a runbook end to end against the simulator, on the embedded default.

It starts the simulator with a scenario (default ``bad-release``: the elevated-5xx runbook), runs the
scenario's runbook in ``auto`` mode (reversible containment goes ahead by policy; the destructive fix pauses
for approval), answers the approval through the same path a person uses (``remediate approve``), and prints
the timeline. ``DEMOS`` says which runbook and parameters each scenario demonstrates.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.markup import escape

from remediation import approval_client, catalog, composition, report_view, runtime
from remediation.models import IncidentReport, Mode, new_id
from remediation.orchestration.slot_holder import release_held
from remediation.providers.sim_clock import charge_wait
from remediation.settings import Settings
from remediation.store import PendingStep

if TYPE_CHECKING:
    from kamkmserve_sim.inprocess import InProcessSim

DEMO_APPROVER = "demo.oncall"
#: The demo server's approver list: the scripted on-call and, for steps that need two people, the lead.
DEMO_APPROVERS = (DEMO_APPROVER, "demo.lead")


#: The simulator seed a demo runs with unless told (`remediate demo --seed`).
DEMO_SEED = 14


@dataclass(frozen=True)
class DemoScenario:
    """What ``remediate demo --scenario <name>`` runs: the simulator scenario, the runbook that answers it, the
    runbook's parameters (besides service, mode and incident id) and the alert name that "fired"."""

    runbook: str
    alert_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    sim: dict[str, Any] = field(default_factory=dict)  # SimConfig overrides (rps, ...)


DEMOS: dict[str, DemoScenario] = {
    "bad-release": DemoScenario(runbook="elevated-error-rate", alert_name="HighErrorRate",
                                parameters={"sample_interval_s": 2.0}),
    # A surge of users: scale up (reversible, auto), watch for 15 s instead of an hour, scale back down once the
    # TTL has ended; the surge is over by then (15 s after onset), so the check after scaling down is healthy.
    "load-spike": DemoScenario(runbook="high-latency", alert_name="HighLatency",
                               parameters={"sample_interval_s": 2.0, "watch_s": 15.0, "watch_interval_s": 2.0,
                                           "ttl_s": 15},
                               sim={"spike_s": 15.0}),
    # Runbook 3 on the simulated database (no PostgreSQL needed): the demo approves the index / the termination.
    "slow-query": DemoScenario(runbook="database-errors", alert_name="SlowQueries",
                               parameters={"sample_interval_s": 2.0, "min_seq_scans": 8, "probe_requests": 12}),
    "lock-contention": DemoScenario(runbook="database-errors", alert_name="PostgresLockWaits",
                                    parameters={"sample_interval_s": 2.0, "long_running_s": 2.0,
                                                "probe_requests": 12}),
    # Runbook 4: one client uploads malware in a burst; blocked at the edge for an hour (left to expire), the PDF
    # type its samples came in as dropped from the allowlist until a benign upload passes, then restored.
    "malware-burst": DemoScenario(runbook="suspicious-upload", alert_name="MalwareUploadBurst",
                                  parameters={"window_s": 120.0}),
    # Runbook 5: the Clerk session token's role claim is renamed and admins are refused; the admin features go off,
    # a status update is posted, the demo approves putting the claim back, an admin test user gets in again.
    # Higher traffic and short windows so the readings hold only post-change requests (admins are a small share).
    "auth-misconfig": DemoScenario(runbook="auth-access", alert_name="AdminRoleCheckFailures",
                                   parameters={"sample_interval_s": 2.0, "window_records": 300,
                                               "event_window_s": 10.0},
                                   sim={"rps": 100.0}),
    # Runbook 6 as a drill: three instances behind a load balancer, drained, restarted and put back one at a time
    # (the demo approves the one up-front question); SLO readings every 2 s, two in a row to call it stable.
    "rolling-restart": DemoScenario(runbook="rolling-restart", alert_name="RollingRestartDrill",
                                    parameters={"drill": True, "check_interval_s": 2.0, "stable_checks": 2,
                                                "min_records": 10, "window_records": 50}),
}


@dataclass
class DemoOptions:
    approve_as: str = DEMO_APPROVER
    interactive: bool = False
    deny: bool = False
    onset_s: float = 1.0
    scenario: str = "bad-release"
    #: The simulated users' random stream. Fixed, so a demo (and the test of it) tells the same story every time:
    #: with another seed the slow query may run too few times before the alert to be judged, and the runbook then
    #: rightly falls back to rolling back the release.
    seed: int = DEMO_SEED


def demo_settings(app_url: str, approvers: list[str]) -> Settings:
    """Settings for a demo run. The simulated world is new each time, so its incident history is too:
    a store left by an earlier demo would count its actions against this run's per-hour cap."""
    base = Settings()
    database = (base.home / "demo.db").resolve()
    database.unlink(missing_ok=True)
    return Settings(
        app_url=app_url, platform="sim", sim_url=app_url, sim_virtual_time=True, mode=Mode.AUTO,
        approvers=approvers,
        database_url=f"sqlite:///{database}",
        approval_timeout_s=300, approval_poll_s=1,
        verify_interval_s=2.0, verify_consecutive=3, verify_deadline_s=90.0,
    )


#: The simulator is its own distribution (sim/), which a production install leaves out: how to get it.
SIM_INSTALL = "install it with `pip install -e ./sim` from the repository (or run `make demo`, which does)"


class SimulatorMissing(RuntimeError):
    """The demo (or ``remediate sim``) needs the kamkmserve simulator and it cannot be imported here."""


def missing_simulator(exc: ImportError) -> SimulatorMissing:
    """One line for the operator: what is missing and how to install it (never a traceback)."""
    what = "is not installed" if exc.name == "kamkmserve_sim" else f"cannot be imported ({exc})"
    return SimulatorMissing(f"the kamkmserve simulator {what}: {SIM_INSTALL}")


def run_demo(options: DemoOptions, console: Console, ask: Callable[[str], str] | None = None) -> IncidentReport:
    try:
        from kamkmserve_sim import SimConfig
        from kamkmserve_sim.inprocess import InProcessSim
    except ImportError as exc:  # before anything starts: nothing to clean up
        raise missing_simulator(exc) from None

    demo = DEMOS[options.scenario]
    console.print("[bold]Starting Prefect's local API[/]")
    _start_prefect()
    console.print(f"[bold]Starting the kamkmserve simulator[/] (scenario {options.scenario})")
    sim_config = SimConfig(**{"scenario": options.scenario, "rps": 40.0, "onset_s": options.onset_s,
                              "seed": options.seed, **demo.sim})
    # In this process and on virtual time: the runbook's own waits move the simulated world, so how busy the machine
    # is (a CI runner, a laptop compiling) cannot change what the probes see or the outcome.
    with InProcessSim(sim_config) as sim:
        # The server's list, whatever --approve-as says: a name off it is refused by the run, as anywhere else.
        settings = demo_settings(sim.url, list(DEMO_APPROVERS))
        console.print(f"  in-process, on virtual time, seed {options.seed}; the fault starts {options.onset_s:g}s "
                      "(virtual) in")
        providers = composition.connect(settings, transport=sim.transport(on_wait=charge_wait))
        _advance(sim, options.onset_s + 3.0)  # let the bad release serve traffic before the alert "fires"
        incident_id = new_id("inc")
        flow = catalog.load(demo.runbook)
        result: dict[str, Any] = {}

        def run_flow() -> None:
            try:
                result["report"] = asyncio.run(flow(service="kamkmserve", mode=Mode.AUTO, incident_id=incident_id,
                                                    alert_name=demo.alert_name, **demo.parameters))
            except BaseException as exc:  # surfaced in the main thread
                result["error"] = exc

        with runtime.use(providers):
            console.print(f"[bold]Running runbook {demo.runbook}[/] (mode auto; Prefect starts a local API)")
            worker = threading.Thread(target=run_flow, name="runbook", daemon=True)
            worker.start()
            try:
                _watch(worker, incident_id, providers, options, console, ask)
            except BaseException:
                # Ctrl-C (at a prompt too): the runbook thread dies with the process without releasing its slot, and
                # Prefect's temporary API never expires it; release it now so the next demo is not stuck.
                for limit in release_held():
                    console.print(f"  interrupted: released the remediation slot {limit}")
                raise
            worker.join()
        if "error" in result:
            raise result["error"]
        report = providers.store.get_report(incident_id)
        if report is None:
            raise RuntimeError(f"the run finished without a report for {incident_id}")
        return report


def _advance(sim: InProcessSim, seconds: float) -> None:
    async def post() -> None:
        async with httpx.AsyncClient(transport=sim.transport(), base_url=sim.url) as client:
            (await client.post("/_sim/time/advance", json={"seconds": seconds})).raise_for_status()

    asyncio.run(post())


def _start_prefect() -> None:
    """Start (or reach) the Prefect API before the simulator, so the scenario's clock starts when the runbook can
    run: a first start migrates a new database and can take half a minute, and a load spike does not wait."""
    from prefect.client.orchestration import get_client

    async def ping() -> None:
        async with get_client() as client:
            await client.api_healthcheck()

    asyncio.run(ping())


def _watch(worker: threading.Thread, incident_id: str, providers: runtime.Providers, options: DemoOptions,
           console: Console, ask: Callable[[str], str] | None) -> None:
    seen = 0
    answers: dict[str, int] = {}  # per waiting step (action id): answers given so far
    while True:
        running = worker.is_alive()
        timeline = providers.store.timeline(incident_id) if providers.store.get_incident(incident_id) else []
        for entry in timeline[seen:]:
            detail = f" [dim]{escape(entry.detail)}[/]" if entry.event.startswith("approval ") and entry.detail else ""
            console.print(f"  {entry.at:%H:%M:%S} [cyan]{entry.phase.value:<11}[/] {escape(entry.event)}{detail}",
                          soft_wrap=True)
        seen = len(timeline)
        if not running:
            return
        incident = providers.store.get_incident(incident_id)
        run_id = incident.flow_run_id if incident else None
        waiting = providers.store.pending_steps(run_id) if run_id else []
        if waiting and _is_paused(run_id or ""):
            step = waiting[-1]
            answers[step.action_id] = _answer(run_id or "", step, answers.get(step.action_id, 0), options, providers,
                                              console, ask)
        time.sleep(0.5)


def _is_paused(run_id: str) -> bool:
    return any(str(run.id) == run_id for run in approval_client.paused_runs())


def _answer(run_id: str, step: PendingStep, answers: int, options: DemoOptions, providers: runtime.Providers,
            console: Console, ask: Callable[[str], str] | None) -> int:
    """Answer the waiting step once, as a person would with `remediate approve`; the number of answers so far."""
    console.print(f"  [yellow]run {run_id} waits for {step.still_needed} more approval(s) of {escape(step.summary)}"
                  "[/]", soft_wrap=True)
    if options.interactive and ask is not None:
        name = ask_approver(ask, providers.settings.approvers, console)
        if name is None:
            return answers  # asked again on the next look, while the step still waits
        approve = ask("  approve the step shown above? [y/N]").strip().lower().startswith("y")
        reason = ask("  reason").strip()
    else:
        # The scripted on-call answers first; a second person follows when the step needs two (a SEV-1 destructive
        # step). A refused name is answered by a deny: nobody else is coming, and the demo should not wait 5 minutes.
        name = options.approve_as if answers == 0 else _second(options.approve_as)
        approve = not options.deny and answers < 2
        reason = "demo: answered by the scripted on-call"
        if answers >= 2:
            name, reason = DEMO_APPROVER, "demo: the first answer was refused; the scripted on-call denies instead"
        console.print(f"  answering as [bold]{escape(name)}[/] with `remediate approve {run_id} --as {escape(name)}"
                      f"{' --deny' if not approve else ''}`", soft_wrap=True)
    try:
        found = approval_client.answer(run_id, name, approve, reason, providers.store)
    except approval_client.CannotAnswer as exc:
        console.print(f"  [red]{escape(str(exc))}[/]", soft_wrap=True)
        return answers
    status, line = approval_client.describe(found)
    console.print(f"  [{'green' if status == approval_client.COUNTED else 'red'}]{escape(line)}[/]", soft_wrap=True)
    if status == approval_client.REFUSED and not options.interactive:
        return 2  # next: the deny above
    return answers + 1


#: Wrong names in a row before the demo looks at the run again (and then asks again if the step still waits).
NAME_TRIES = 3


def ask_approver(ask: Callable[[str], str], approvers: list[str], console: Console) -> str | None:
    """A name from ``approvers``, asked until one is given (a typo is not sent to the run to be refused); None after
    ``NAME_TRIES`` wrong ones."""
    who = ", ".join(approvers) or "nobody is configured"
    for _ in range(NAME_TRIES):
        name = ask(f"  your name (may approve: {who})").strip()
        if name in approvers:
            return name
        console.print(f"  [red]{escape(repr(name))} may not approve here;[/] who may: {escape(who)}", soft_wrap=True)
    return None


def _second(first: str) -> str:
    return next(name for name in DEMO_APPROVERS if name != first) if first in DEMO_APPROVERS else DEMO_APPROVERS[1]


def print_report(report: IncidentReport, console: Console) -> None:
    """The run's summary (rendered by remediation.report_view, within the terminal's width)."""
    report_view.print_report(report, console)
