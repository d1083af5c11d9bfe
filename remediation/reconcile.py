"""Close incidents whose run died without closing them, and name the actions it left half-done.

A run closes its own incident in every outcome it controls. It cannot when its process is SIGKILLed or OOM-killed,
when someone cancels or deletes it, or when the engine fails outside the runbook's code. The incident then stays
open, and policy's one-remediation-per-service rule would refuse every later change to that service. ``reconcile``
finds those incidents, closes each as **escalated**, and writes on the timeline which ledger rows are still
``intent``: their mutation may or may not have happened, and only a person can tell (the plan's undo is listed).

A dead run's incident is **taken over** when its ledger allows (``remediation.takeover``): a run that died after its
fix was applied is continued at recover by a new run of the same runbook (``continue_run``), recorded on the timeline
as the incident's continuation; anything else is closed escalated, naming each change still in effect and its undo.

A run is dead when its flow run is final, missing, or its **lease lapsed** (``remediation.store.flow_runs``): the
process executing it stopped renewing it, whatever state it left the run in (Running after a resume, Paused,
Pending), so the run is first marked ``Crashed`` in Prefect. Exactly one reconciler acts on a lapsed lease (the
reclaim is one conditional write), however many ``remediate serve`` replicas reconcile at once.

Only runs of *this* Prefect API (``here``) are judged: another API answers "no such run" for every run it does not
hold, so an incident owned by another API is reported ("owned by …: not reconciled here") and left alone, and an
incident with no recorded owner is only judged when its run is found here (and then recorded as ours).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from remediation.models import (
    UNSETTLED_STATES,
    IncidentReport,
    Outcome,
    Phase,
    TimelineEntry,
    utcnow,
)
from remediation.orchestration.leases import holder_name
from remediation.orchestration.prefect_identity import PrefectApi
from remediation.store import Store
from remediation.store.flow_runs import FlowRunRecord, LeaseState
from remediation.store.rows import ActionRow, IncidentSummary
from remediation.takeover import CONTINUED_EVENT, Next, Takeover, decide, describe

log = logging.getLogger("remediation.reconcile")

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
#: States in which a run needs its process: a lapsed lease then means it is dead. Not SCHEDULED (a runner takes it,
#: e.g. a run handed back, or resuming) and not a suspension (it waits for an answer, with no process at all).
NEEDS_A_PROCESS = frozenset({"PENDING", "RUNNING", "PAUSED", "CANCELLING"})
SUSPENDED = "Suspended"
#: A reclaim whose reconciler has not crashed the run after this long (it died meanwhile) may be taken over.
RECLAIM_RETRY_S = 120.0


class RunState(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str  # Prefect StateType value: COMPLETED, FAILED, CRASHED, CANCELLED, RUNNING, PAUSED, ...
    name: str = ""
    message: str = ""


class RunVerdict(StrEnum):
    DEAD = "dead"  # final, missing, or its lease lapsed: closed (on a dry run: would be)
    CONTINUED = "continued"  # dead, and a new run continues it at recover (on a dry run: would)
    ALIVE = "alive"  # it will close the incident itself
    NOT_STARTED = "not_started"  # no flow run recorded yet (intake starts one at the next delivery)
    FOREIGN = "foreign"  # its run belongs to another Prefect API: not reconciled here
    UNOWNED = "unowned"  # no owner recorded and its run is not on this API: not reconciled here


class Reconciled(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident_id: str
    service: str
    runbook: str
    flow_run_id: str | None
    run_state: str  # "missing" when the run no longer exists
    closed: bool
    dangling: tuple[str, ...] = ()  # summaries of ledger rows left in ``intent``
    verdict: RunVerdict = RunVerdict.DEAD
    detail: str = ""  # what was found, in words: the lease's holder and age, the owner, ...
    owner: str | None = None  # URL of the Prefect API the run lives on, when recorded
    crashed: bool = False  # this reconcile marked the run Crashed in Prefect (its lease had lapsed)
    in_effect: tuple[str, ...] = ()  # applied changes not undone, each with its undo
    continued_by: str | None = None  # the flow run that continues the incident at recover
    takeover: str = ""  # why it was continued, or why not


StateReader = Callable[[list[str]], dict[str, RunState | None]]
RunCrasher = Callable[[str, str], None]  # (flow run id, message)
#: Starts the continuation run of an incident whose run (the second argument) died; returns the new run's id.
Continuer = Callable[[IncidentSummary, str], str]


def crash_prefect_run(flow_run_id: str, message: str) -> None:
    """Mark the run ``Crashed`` (forced: a Paused or Running run admits no such transition otherwise)."""
    from uuid import UUID

    from prefect import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(flow_run_id), Crashed(message=message), force=True)


def prefect_run_states(flow_run_ids: list[str]) -> dict[str, RunState | None]:
    """Each run's current state from the Prefect API; None for a run that does not exist (deleted)."""
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    found: dict[str, RunState | None] = {run_id: None for run_id in flow_run_ids}
    if not flow_run_ids:
        return found
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in flow_run_ids])),
            limit=len(flow_run_ids))
    for run in runs:
        if run.state is not None:
            found[str(run.id)] = RunState(type=run.state.type.value, name=run.state.name or "",
                                          message=run.state.message or "")
    return found


def reconcile(store: Store, read_states: StateReader = prefect_run_states, *, here: PrefectApi | None = None,
              crash_run: RunCrasher = crash_prefect_run, dry_run: bool = False, now: Callable[[], datetime] = utcnow,
              limit: int = 1000, include_alive: bool = False, claim_unowned: bool = False,
              reconciler: str = "", continue_run: Continuer | None = None) -> list[Reconciled]:
    """Close every open incident of ours whose run is dead; return what was found (and done) per incident.

    ``here``: the API ``read_states`` asks (None: ownership is not checked, every run is taken for ours).
    ``include_alive`` also reports incidents left alone because their run is alive or not started.
    ``claim_unowned``: an incident with no recorded owner whose run is missing here is closed as "run missing"
    (for incidents recorded before owners were; only when this is the API they ran on). ``reconciler`` names who
    crashes a run whose lease lapsed (default: this process). ``continue_run`` starts the continuation of an
    incident whose ledger allows it (None: every dead run's incident is closed escalated).
    """
    at = now()
    reconciler = reconciler or holder_name()
    opened = [i for i in store.list_incidents(limit) if i.is_open]
    results: list[Reconciled] = []
    if include_alive:
        results.extend(_found(i, RunVerdict.NOT_STARTED, "-", "no flow run started yet") for i in opened
                       if not i.flow_run_id)
    candidates = [i for i in opened if i.flow_run_id]
    records = store.flow_runs(i.flow_run_id for i in candidates if i.flow_run_id)
    ours: list[tuple[IncidentSummary, FlowRunRecord | None, bool | None]] = []
    for incident in candidates:
        assert incident.flow_run_id is not None
        record = records.get(incident.flow_run_id)
        owned = here.owns(record.api_url, record.api_id) if here is not None and record is not None else None
        if owned is False:
            assert record is not None and here is not None
            results.append(_found(incident, RunVerdict.FOREIGN, "not asked", _foreign(record, here), record))
            continue
        ours.append((incident, record, owned))
    states = read_states([i.flow_run_id for i, _, _ in ours if i.flow_run_id]) if ours else {}
    for incident, record, owned in ours:
        assert incident.flow_run_id is not None
        state = states.get(incident.flow_run_id)
        if here is not None and owned is None:
            if state is None and not claim_unowned:
                results.append(_found(incident, RunVerdict.UNOWNED, "missing", f"its run is not on {here.url} and "
                                      "no owner is recorded: not reconciled here (if it ran here and was deleted: "
                                      "remediate reconcile --claim-unowned)", record))
                continue
            if state is not None and not dry_run:  # a run id names one run on one API: it is ours
                store.record_run_owner(incident.flow_run_id, api_url=here.url, api_id=here.id)
        crashed, detail = False, ""
        if state is not None and state.type not in FINAL_STATES:
            lapsed = _lapsed(record, state, at)
            if lapsed is None:  # the run is alive (or not ours to judge by lease): it closes the incident itself
                if include_alive:
                    results.append(_found(incident, RunVerdict.ALIVE, state.name or state.type,
                                          _liveness(record, state, at), record))
                continue
            assert record is not None
            detail = lapsed
            if not dry_run:
                if store.reclaim_run_lease(incident.flow_run_id, by=reconciler, retry_after_s=RECLAIM_RETRY_S,
                                           now=at) is None:
                    continue  # renewed meanwhile, or another reconciler reclaimed it first and acts on it
                message = f"{lapsed}; crashed by the reconciler on {reconciler}"
                try:
                    crash_run(incident.flow_run_id, message)
                except Exception as exc:  # retried after RECLAIM_RETRY_S: the incident stays open until then
                    log.warning("could not crash run %s of incident %s: %s: %s", incident.flow_run_id, incident.id,
                                type(exc).__name__, str(exc)[:300])
                    continue
                state, crashed = RunState(type="CRASHED", name="Crashed", message=message), True
        rows = store.actions(incident.id)
        # Unsettled: still ``intent``, or ``unknown`` (answer lost, read-back inconclusive): either may be in effect.
        dangling = tuple(describe(row) for row in rows if row.state in UNSETTLED_STATES)
        described = "missing" if state is None else (state.name or state.type)
        detail = detail or _why_dead(state, here)
        takeover = decide(incident.runbook, incident.mode, rows, _continuations(store, incident.id),
                          read_back_first=continue_run is not None)
        continued_by: str | None = None
        if takeover.next is Next.CONTINUE and continue_run is not None and not dry_run:
            continued_by, takeover = _continue(store, incident, takeover, detail, continue_run, here)
        elif takeover.next is Next.CONTINUE and continue_run is None:
            takeover = takeover.model_copy(update={
                "next": Next.ESCALATE, "reason": f"{takeover.reason}, but no continuation can be started here"})
        if not dry_run and continued_by is None:
            _close(store, incident, rows, state, dangling, takeover, now())
        continues = continued_by is not None or (dry_run and takeover.next is Next.CONTINUE)
        results.append(Reconciled(incident_id=incident.id, service=incident.service, runbook=incident.runbook,
                                  flow_run_id=incident.flow_run_id, run_state=described,
                                  closed=not dry_run and continued_by is None, dangling=dangling,
                                  verdict=RunVerdict.CONTINUED if continues else RunVerdict.DEAD, crashed=crashed,
                                  owner=record.api_url if record is not None else (here.url if here else None),
                                  detail=detail, in_effect=takeover.in_effect, continued_by=continued_by,
                                  takeover=takeover.reason))
    return results


def _continuations(store: Store, incident_id: str) -> int:
    return sum(1 for entry in store.timeline(incident_id) if entry.event == CONTINUED_EVENT)


def _continue(store: Store, incident: IncidentSummary, takeover: Takeover, detail: str, continue_run: Continuer,
              here: PrefectApi | None) -> tuple[str | None, Takeover]:
    """Start the continuation run and record it on the incident; on failure, say why (the incident is then closed)."""
    assert incident.flow_run_id is not None
    try:
        new_run = continue_run(incident, incident.flow_run_id)
    except Exception as exc:
        log.warning("could not continue incident %s: %s: %s", incident.id, type(exc).__name__, str(exc)[:300])
        return None, takeover.model_copy(update={
            "next": Next.ESCALATE,
            "reason": f"{takeover.reason}, but the continuation run could not be started ({type(exc).__name__})"})
    store.add_timeline(incident.id, TimelineEntry(
        at=utcnow(), phase=Phase.RECOVER, event=CONTINUED_EVENT,
        detail=f"run {incident.flow_run_id} died ({detail}); run {new_run} continues it: {takeover.reason}. "
               "Identify, contain and remediate are not run again"))
    store.set_flow_run(incident.id, new_run)
    if here is not None:
        store.record_run_owner(new_run, api_url=here.url, api_id=here.id)
    return new_run, takeover


def _found(incident: IncidentSummary, verdict: RunVerdict, run_state: str, detail: str,
           record: FlowRunRecord | None = None) -> Reconciled:
    return Reconciled(incident_id=incident.id, service=incident.service, runbook=incident.runbook,
                      flow_run_id=incident.flow_run_id, run_state=run_state, closed=False, verdict=verdict,
                      detail=detail, owner=record.api_url if record is not None else None)


def _foreign(record: FlowRunRecord, here: PrefectApi) -> str:
    where = record.api_url or "another Prefect API"
    if record.api_url and record.api_url == here.url:  # same URL, other identity: another database behind it
        where += f" (another Prefect database: identity {record.api_id}, this one {here.id})"
    return f"owned by {where}: not reconciled here"


def _lapsed(record: FlowRunRecord | None, state: RunState, at: datetime) -> str | None:
    """Why the run's process is gone (its lease lapsed, or was reclaimed by a reconciler that then died); None when
    nothing says so."""
    if record is None or state.type not in NEEDS_A_PROCESS or state.name == SUSPENDED:
        return None
    lease = record.lease(at)
    retry = lease is LeaseState.RECLAIMED and record.reclaimed_at is not None and \
        (at - record.reclaimed_at).total_seconds() > RECLAIM_RETRY_S and record.released_at is None
    if lease is not LeaseState.LAPSED and not retry:
        return None
    assert record.renewed_at is not None and record.expires_at is not None
    return (f"the process executing it ({record.holder}) stopped renewing its lease: last renewed "
            f"{record.renewed_at:%Y-%m-%d %H:%M:%S}Z, expired {record.expires_at:%H:%M:%S}Z, "
            f"{(at - record.renewed_at).total_seconds():.0f}s ago")


def _liveness(record: FlowRunRecord | None, state: RunState, at: datetime) -> str:
    lease = record.lease(at) if record is not None else LeaseState.NONE
    if record is not None and lease is LeaseState.HELD and record.renewed_at is not None:
        return f"lease held by {record.holder}, renewed {(at - record.renewed_at).total_seconds():.0f}s ago"
    if state.name == SUSPENDED:
        return "suspended: waits for an answer, no process needed until then"
    if state.type == "SCHEDULED":
        return "scheduled: waits for a runner"
    if lease is LeaseState.RELEASED:
        return "its last executor gave its lease back; not leased since: only Prefect's heartbeats watch it"
    if lease is LeaseState.RECLAIMED:
        return f"its lease was reclaimed by {record.reclaimed_by if record else '?'}: being crashed"
    return "no lease taken: only Prefect's heartbeats watch it"


def _why_dead(state: RunState | None, here: PrefectApi | None) -> str:
    if state is None:
        return f"its run is not on {here.url}" if here is not None else "its run no longer exists"
    return f"its run ended {state.name or state.type}" + (f" ({state.message})" if state.message else "")


def _close(store: Store, incident: IncidentSummary, rows: Iterable[ActionRow], state: RunState | None,
           dangling: tuple[str, ...], takeover: Takeover, at: datetime) -> None:
    what = ("its flow run no longer exists" if state is None
            else f"its flow run ended {state.name or state.type}" + (f" ({state.message})" if state.message else ""))
    escalation = f"the run stopped without closing the incident: {what}; not continued: {takeover.reason}"
    if dangling:
        escalation += ("; check by hand whether these half-done actions took effect: " + "; ".join(dangling))
    if takeover.in_effect:
        escalation += "; still in effect, undo when safe: " + "; ".join(takeover.in_effect)
    entry = TimelineEntry(at=at, phase=Phase.CLOSE, event="reconciled: closed as escalated", detail=escalation)
    store.add_timeline(incident.id, entry)
    report = IncidentReport(
        incident_id=incident.id, runbook=incident.runbook, service=incident.service, mode=incident.mode,
        severity=incident.severity, outcome=Outcome.ESCALATED, alert=incident.alert,
        flow_run_id=incident.flow_run_id, actions=[row.as_record() for row in rows],
        timeline=store.timeline(incident.id), escalation=escalation, started_at=incident.opened_at,
        finished_at=at,
    )
    store.close_incident(incident.id, report)

