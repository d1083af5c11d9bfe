"""The glue between a parsed delivery and the rest of the system: route, dedupe into incidents, start runs.

Two steps, kept apart so each endpoint can choose when the second one happens:

* :meth:`IntakeService.ingest` routes every alert of a delivery and writes them all through
  ``Store.ingest_alerts``, routed and unrouted, in one transaction (the store guarantees one open incident
  per key, and one open alert-opened incident per runbook and service whatever the source, across
  processes). This is the step a delivery must not be acknowledged without.
* :meth:`IntakeService.start_runs` starts the runbook run of each incident that has none yet. Alertmanager
  and generic deliveries wait for it (a failed start is answered 503, so the sender redelivers and the
  redelivery finds the incident still ``needs_run``); Sentry, which must be answered within a second,
  gets it as a background task.

Starting is idempotent twice over: within this process an incident being started is skipped by other
deliveries (and the store is re-read after the claim, so a run recorded meanwhile is reused), and across
processes the starter's ``idempotency_key`` (the incident id) makes a second start return the first run.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal, Protocol

from starlette.concurrency import run_in_threadpool

from remediation.intake.dedupe import incident_key
from remediation.intake.incoming import Incoming
from remediation.intake.logsafe import intake_logger
from remediation.intake.routing import Routed, Routes, Unrouted, route
from remediation.models import Alert
from remediation.orchestration.starter import RunStarter
from remediation.settings import Settings
from remediation.store import AlertIn, IncidentStatus, IngestResult, Store, UnroutedIn

log = intake_logger()

#: Deliveries written to the store at once by one receiver: the threads of its own pool. Starlette's thread pool
#: runs up to 40 calls at once, more than the connections a PostgreSQL store keeps (20): in a storm the rest came
#: from the pool's overflow, which closes them when they are returned, so a connection (a PostgreSQL backend
#: process) was opened and closed every ~20 deliveries. Below the kept connections, intake never needs one and
#: leaves some to the other users of the store (runs, /metrics); two cores gain nothing from more transactions at
#: once. A plain executor also costs less CPU per call than anyio's thread offload (~25 against ~60 us).
CONCURRENT_WRITES = 16

AlertVerdict = Literal["created", "attached", "suppressed", "recorded", "unrouted"]
StartState = Literal["started", "existing", "in_progress", "closed", "failed"]


class IntakeRecorder(Protocol):
    """Counts what intake did (remediation.intake.metrics.IntakeMetrics); called from worker threads."""

    def alert_outcome(self, source: str, outcome: str) -> None: ...

    def run_start(self, state: str) -> None: ...


class _Uncounted:
    def alert_outcome(self, source: str, outcome: str) -> None:
        pass

    def run_start(self, state: str) -> None:
        pass


@dataclass
class AlertOutcome:
    """What happened to one alert; the JSON the response reports per alert."""

    name: str
    fingerprint: str
    status: str
    outcome: AlertVerdict
    incident_id: str | None = None
    runbook: str | None = None
    service: str | None = None
    severity: str | None = None
    alert_count: int | None = None
    reason: str | None = None
    run_id: str | None = None
    needs_run: bool = False

    def to_json(self) -> dict[str, Any]:
        # Every field is a str, an int or None: no deep copy (``asdict``) needed, and it cost ~13 us an alert.
        return {name: value for name in _OUTCOME_JSON if (value := getattr(self, name)) is not None}


_OUTCOME_JSON = tuple(f.name for f in fields(AlertOutcome) if f.name != "needs_run")


@dataclass
class RunStart:
    incident_id: str
    state: StartState
    run_id: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def to_json(self) -> dict[str, Any]:
        return {name: value for name in _RUN_START_JSON if (value := getattr(self, name)) is not None}


_RUN_START_JSON = tuple(f.name for f in fields(RunStart))


class IntakeService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        starter: RunStarter,
        routes: Routes,
        now: Callable[[], datetime],
        start_timeout_s: float,
        recorder: IntakeRecorder | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.starter = starter
        self.routes = routes
        self._now = now
        self._start_timeout_s = start_timeout_s
        self._recorder: IntakeRecorder = recorder or _Uncounted()
        self._starting: set[str] = set()
        self._starting_lock = threading.Lock()
        # Its threads end when the service is collected (the executor is referenced from here only).
        self._writers = ThreadPoolExecutor(CONCURRENT_WRITES, thread_name_prefix="intake-write")

    # -- ingest ----------------------------------------------------------------------------------------

    async def ingest(self, alerts: list[Incoming]) -> list[AlertOutcome]:
        """Store every alert of a delivery (in a worker thread: the store is synchronous)."""
        if not alerts:
            return []
        received_at = self._now()
        context = contextvars.copy_context()  # as run_in_threadpool does: the thread sees this task's context
        return await asyncio.get_running_loop().run_in_executor(
            self._writers, context.run, self._ingest_delivery, alerts, received_at
        )

    def _ingest_delivery(self, alerts: list[Incoming], received_at: datetime) -> list[AlertOutcome]:
        try:
            decisions = [route(incoming, self.routes) for incoming in alerts]
            items = [self._item(a, d, received_at) for a, d in zip(alerts, decisions, strict=True)]
            # One transaction for the whole delivery: it is stored entirely or not at all.
            results = self.store.ingest_alerts(items)
        except Exception:
            for incoming in alerts:
                self._recorder.alert_outcome(incoming.source, "failed")
            raise
        outcomes = []
        for incoming, decision, result in zip(alerts, decisions, results, strict=True):
            if isinstance(decision, Unrouted):
                log.warning("unrouted %s alert %r: %s", incoming.source, incoming.name, decision.reason)
                outcome = self._outcome(incoming, "unrouted", reason=decision.reason)
            else:
                outcome = self._routed_outcome(incoming, decision, result)
            self._recorder.alert_outcome(incoming.source, outcome.outcome)
            outcomes.append(outcome)
        return outcomes

    def _item(self, incoming: Incoming, decision: Routed | Unrouted, received_at: datetime) -> AlertIn | UnroutedIn:
        if isinstance(decision, Unrouted):
            return UnroutedIn(source=incoming.source, name=incoming.name, payload=incoming.payload,
                              received_at=received_at, reason=decision.reason, fingerprint=incoming.fingerprint,
                              status=incoming.status)
        alert = Alert(
            name=incoming.name,
            service=decision.service,
            severity=decision.severity,
            source=incoming.source,
            fingerprint=incoming.fingerprint,
            labels=dict(incoming.labels),
            annotations=dict(incoming.annotations),
            starts_at=incoming.starts_at,
        )
        return AlertIn(
            incident_key=incident_key(decision.runbook, decision.service, incoming.group),
            runbook=decision.runbook,
            service=decision.service,
            severity=decision.severity,
            alert=alert,
            source=incoming.source,
            fingerprint=incoming.fingerprint,
            status=incoming.status,
            received_at=received_at,
            payload=incoming.payload,
            mode=self.settings.intake_mode,
            reopen_cooldown_s=self.settings.reopen_cooldown_s,
        )

    def _routed_outcome(self, incoming: Incoming, routed: Routed, result: IngestResult) -> AlertOutcome:
        verdict: AlertVerdict
        if result.incident_id is None:
            verdict = "recorded"
        elif result.created:
            verdict = "created"
            log.info("incident %s opened by %s alert %r", result.incident_id, incoming.source, incoming.name)
        elif result.suppressed:
            verdict = "suppressed"
        elif result.incident_status is IncidentStatus.CLOSED:
            verdict = "recorded"  # a resolution arriving after its incident closed
        else:
            verdict = "attached"
        return self._outcome(
            incoming,
            verdict,
            incident_id=result.incident_id,
            runbook=routed.runbook,
            service=routed.service,
            severity=routed.severity.value,
            alert_count=result.alert_count if result.incident_id else None,
            needs_run=result.needs_run,
        )

    @staticmethod
    def _outcome(incoming: Incoming, verdict: AlertVerdict, **fields: Any) -> AlertOutcome:
        return AlertOutcome(
            name=incoming.name,
            fingerprint=incoming.fingerprint,
            status=incoming.status.value,
            outcome=verdict,
            **fields,
        )

    # -- runs ------------------------------------------------------------------------------------------

    async def start_runs(self, outcomes: list[AlertOutcome]) -> list[RunStart]:
        """Start (at most once per incident) the run of every incident that needs one; fill in run ids."""
        incident_ids = list(dict.fromkeys(o.incident_id for o in outcomes if o.needs_run and o.incident_id))
        starts = [await self._start(incident_id) for incident_id in incident_ids]
        for start in starts:
            self._recorder.run_start(start.state)
        by_incident = {s.incident_id: s.run_id for s in starts}
        for outcome in outcomes:
            if outcome.incident_id in by_incident:
                outcome.run_id = by_incident[outcome.incident_id]
        return starts

    async def start_runs_quietly(self, outcomes: list[AlertOutcome]) -> None:
        """``start_runs`` for a background task: nothing may escape (the response is already sent)."""
        try:
            await self.start_runs(outcomes)
        except Exception:
            log.exception("starting runs in the background failed")

    async def _start(self, incident_id: str) -> RunStart:
        with self._starting_lock:
            if incident_id in self._starting:
                return RunStart(incident_id, "in_progress")
            self._starting.add(incident_id)
        try:
            incident = await run_in_threadpool(self.store.get_incident, incident_id)
            if incident is None or not incident.is_open:
                return RunStart(incident_id, "closed")
            if incident.flow_run_id:
                return RunStart(incident_id, "existing", run_id=incident.flow_run_id)
            parameters = {
                "service": incident.service,
                "severity": incident.severity.value,
                "alert_name": incident.alert.name,
                "incident_id": incident_id,
                "mode": incident.mode.value,
            }
            deployment = f"{incident.runbook}/{incident.runbook}"
            run_id = await asyncio.wait_for(
                self.starter.start(deployment, parameters, idempotency_key=incident_id), self._start_timeout_s
            )
            await run_in_threadpool(self.store.set_flow_run, incident_id, run_id)
            log.info("incident %s: started %s run %s", incident_id, deployment, run_id)
            return RunStart(incident_id, "started", run_id=run_id)
        except Exception as exc:
            # The incident stays open without a run (needs_run): the next delivery starts it again.
            log.exception("incident %s: starting its run failed", incident_id)
            return RunStart(incident_id, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
        finally:
            with self._starting_lock:
                self._starting.discard(incident_id)
