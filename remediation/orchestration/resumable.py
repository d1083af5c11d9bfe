"""A run waiting for an approval survives a restart of the process that executes it.

A warm run (``warm.WarmExecutor``) waits for approval in a *blocking* pause: ``apause_flow_run`` keeps polling in
this process. On SIGTERM the executor would crash it, and the approval could no longer be answered. Prefect 3.9.1
offers what is needed to keep it, in its server rules (``HandlePausingFlows``, ``HandleResumingPausedFlows``):

1. ``PrefectApprovals`` pauses under a key that is deterministic per execution (``<incident>-<n>``, the n-th
   approval this execution asks for) and registers the wait here (:func:`waiting`).
2. At shutdown the executor calls :func:`park` with the runs it still executes. A run found waiting here, still
   ``Paused`` under that key, whose incident has applied nothing (``may_park``), is turned into a *suspension*:
   ``Suspended`` with the same pause key, run-input keyset (the form) and deadline, forced, since the server
   admits no Paused -> Suspended transition. Forcing skips the rule that would delete the form's stored schema and
   keeps the run's fired pause keys. Then its task is cancelled; ``PrefectApprovals`` turns that cancellation into
   Prefect's own ``Pause`` signal, so the engine leaves the run suspended: no ``Crashed``, no crash hooks, its
   heartbeats stop (the zombie automation accepts a ``Suspended`` event) and what the flow held is released.
3. It is answered like any paused run (the UI's Resume, ``remediate approve``): the server validates the input
   against the stored schema, stores it and, the pause being a reschedule one, moves the run to
   ``Scheduled("Resuming")``, keeping its fired pause keys.
4. The restarted ``remediate serve``'s runner picks the run up and runs the flow again from the top, as Prefect does
   for every suspended run. The runbook adopts the incident its earlier execution opened (same flow run id), asks
   the same approval under the same key, the server rejects that pause as "already fired", and ``apause_flow_run``
   returns the answer that was given.

Why only runs that have applied nothing: the second execution repeats everything before the approval. Reads are
harmless; a containment already in place would make identify see a calmer service than the one that was paused
(it might stand down with maintenance left on). Such runs are crashed as before: their containment stays, the
ledger lists it, ``remediate reconcile`` closes the incident as escalated. The rolling restart asks its one
up-front question before it touches anything, so that approval survives; questions asked after a first change
(approve mode's per-step ones) do not. A suspended run nobody answers fails at its deadline (the server's pause
expiration), and is reconciled the same way.

Served runs (the UI's custom runs, the weekly drill, event-triggered runs) are parked too, by the same rule and the
same :func:`park`, but the run's own process does it, because only it can stop its pause without a crash. Prefect's
``Runner.astop`` cannot be used for them: it SIGTERMs each child and then *forces* ``Cancelled`` over whatever state
the run is in. So ``deployments.serve`` asks first, before stopping its runner:

5. :func:`request_park` (serve): for each run its runner executes that is in a blocking pause under its incident's
   key (``<incident>-<n>``, the incident found by flow run id in the store) and whose incident ``may_park``, it sets
   the run's label ``remediation.park`` to that pause key. Nothing else: the run is still ``Paused``, unanswerable
   in any new way.
6. :func:`unless_parked` (the served child, only in the process Prefect started for that run): while the pause
   waits, a watcher reads the run every approval poll; finding the label naming the pause it waits in, it calls
   :func:`park` (which re-checks the live state) and cancels the pause *in the same step*, with the synchronous
   client, so no code of the pause runs between the run becoming answerable and the pause being stopped (an answer
   and a re-execution elsewhere can never be mistaken by this process for its own resume). It then raises Prefect's
   ``Pause`` with the suspended state: the engine leaves the run suspended and the process exits 0, so the runner
   proposes nothing.
7. Serve waits (bounded: two approval polls and 10 s) until those processes have exited, then stops the runner,
   which cancels whatever it still executes, as before: runs not waiting, runs that changed something, and a child
   that did not park in time end ``Cancelled``.

The label stays on the run (it says the run was parked at a shutdown); a later execution asks under the same key,
which the server answers at once, and :func:`park` refuses a run that is not waiting, so it never parks twice. Only
serve's ``SIGTERM``/``SIGINT`` is handled this way: a supervisor that signals the whole process group at once (the
children too, before serve asks them) gets Prefect's own behaviour for the children.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

log = logging.getLogger("remediation.orchestration")

#: The label :func:`request_park` sets on a served run: the pause key it asks that run's process to park.
PARK_LABEL = "remediation.park"
#: Set by Prefect's runner (and workers) in the process it starts for a run: that process is the run's own.
RUN_PROCESS_ENV = "PREFECT__FLOW_RUN_ID"

T = TypeVar("T")

SUSPENDED_MESSAGE = ("Suspended while the process executing it restarted: answer it as usual; the run then starts "
                     "again from the top and finds the answer")


@dataclass(frozen=True)
class Waiting:
    run_id: UUID
    key: str
    incident_id: str


_lock = threading.Lock()
_waiting: dict[UUID, Waiting] = {}
_parked: dict[UUID, Any] = {}  # run id -> the Suspended state it was given


@contextmanager
def waiting(run_id: UUID, key: str, incident_id: str) -> Iterator[None]:
    """Marks ``run_id`` as waiting in the pause ``key`` for the duration of the block."""
    with _lock:
        _waiting[run_id] = Waiting(run_id, key, incident_id)
    try:
        yield
    finally:
        with _lock:
            _waiting.pop(run_id, None)


def parked_state(run_id: UUID) -> Any | None:
    """The ``Suspended`` state :func:`park` gave this run (None: it was not parked)."""
    with _lock:
        return _parked.get(run_id)


def park(client: Any, run_ids: Iterable[UUID], may_park: Callable[[str], bool]) -> list[UUID]:
    """Turn the blocking pauses of ``run_ids`` that wait here, and whose incident ``may_park``, into suspensions;
    returns the ids parked (the caller then cancels their tasks). ``client`` is a sync Prefect client."""
    from prefect.states import Suspended

    parked: list[UUID] = []
    for run_id in run_ids:
        with _lock:
            entry = _waiting.get(run_id)
        if entry is None:
            continue
        try:
            if not may_park(entry.incident_id):
                log.info("run %s waits for approval but its incident %s has changed things: not parked",
                         run_id, entry.incident_id)
                continue
            run = client.read_flow_run(run_id)
            state = run.state
            details = state.state_details if state is not None else None
            if (state is None or details is None or not state.is_paused() or details.pause_reschedule
                    or details.pause_key != entry.key or run.deployment_id is None):
                continue
            suspended: Any = Suspended(pause_expiration_time=details.pause_timeout, pause_key=entry.key,
                                  message=SUSPENDED_MESSAGE,
                                  state_details={"run_input_keyset": details.run_input_keyset})
            with _lock:  # registered first: the cancellation may land as soon as the state is set
                _parked[run_id] = suspended
            client.set_flow_run_state(run_id, suspended, force=True)
        except Exception:
            with _lock:
                _parked.pop(run_id, None)
            log.exception("could not park run %s; it is crashed instead", run_id)
            continue
        log.info("run %s (incident %s) suspended while waiting for approval %s: answer it after the restart",
                 run_id, entry.incident_id, entry.key)
        parked.append(run_id)
    return parked


def nothing_applied(store: Any) -> Callable[[str], bool]:
    """``may_park`` for :func:`park`: the incident's ledger has no row that changed (or may have changed) anything."""
    from remediation.models import ActionState

    changed = {ActionState.INTENT, ActionState.APPLIED, ActionState.FAILED, ActionState.UNKNOWN, ActionState.UNDONE}

    def check(incident_id: str) -> bool:
        return not any(row.state in changed for row in store.actions(incident_id))

    return check



@dataclass(frozen=True)
class ServedParking:
    """What serve needs to decide which of its served runs to park (:func:`request_park`)."""

    may_park: Callable[[str], bool]  # incident id -> whether it may be run again from the top
    incident_of: Callable[[str], str | None]  # flow run id -> its incident's id


def served_parking(store: Any) -> ServedParking:
    """The warm path's rule (:func:`nothing_applied`), with the store's incident of a flow run."""

    def incident_of(flow_run_id: str) -> str | None:
        found = store.incident_for_flow_run(flow_run_id)
        return str(found.id) if found is not None else None

    return ServedParking(may_park=nothing_applied(store), incident_of=incident_of)


def request_park(client: Any, run_ids: Iterable[UUID], parking: ServedParking) -> list[UUID]:
    """Serve side: ask the processes of ``run_ids`` that wait in a blocking pause of their incident, which
    ``parking.may_park``, to park themselves (the ``remediation.park`` label naming that pause); returns the ids
    asked. ``client`` is a sync Prefect client."""
    asked: list[UUID] = []
    for run_id in run_ids:
        try:
            run = client.read_flow_run(run_id)
            state = run.state
            details = state.state_details if state is not None else None
            if (state is None or details is None or not state.is_paused() or details.pause_reschedule
                    or not details.pause_key or run.deployment_id is None):
                continue
            incident_id = parking.incident_of(str(run_id))
            # Only a runbook's approval (PrefectApprovals keys it <incident>-<n>) is known to survive a re-run.
            if incident_id is None or not details.pause_key.startswith(f"{incident_id}-"):
                continue
            if not parking.may_park(incident_id):
                log.info("served run %s waits for approval but its incident %s has changed things: not parked",
                         run_id, incident_id)
                continue
            client.update_flow_run_labels(run_id, {PARK_LABEL: details.pause_key})
        except Exception:
            log.exception("could not ask served run %s to park; it is cancelled instead", run_id)
            continue
        asked.append(run_id)
    return asked


async def unless_parked(pause: Awaitable[T], run_id: UUID, key: str, poll_s: float) -> T:
    """Await ``pause`` (a blocking pause under ``key``, inside :func:`waiting`). In the run's own process (a served
    or worker child), also watch for serve's request (:func:`request_park`); when it comes, park this run and raise
    Prefect's ``Pause`` with the suspended state, which makes the engine leave the run suspended and exit 0."""
    if os.environ.get(RUN_PROCESS_ENV) != str(run_id):  # warm runs are parked by their executor
        return await pause
    from prefect.exceptions import Pause

    pausing: asyncio.Future[T] = asyncio.ensure_future(pause)
    watcher = asyncio.ensure_future(_park_when_asked(pausing, run_id, key, poll_s))
    try:
        return await pausing
    except asyncio.CancelledError:
        task = asyncio.current_task()
        parked = parked_state(run_id)  # set by park() only once the run is suspended
        if (task is not None and task.cancelling()) or parked is None:
            raise  # cancelled from outside (a timeout, Prefect's cancellation), not by the watcher
        raise Pause(state=parked) from None
    finally:
        watcher.cancel()
        pausing.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await watcher


async def _park_when_asked(pausing: asyncio.Future[Any], run_id: UUID, key: str, poll_s: float) -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        while not pausing.done():
            await asyncio.sleep(poll_s)
            try:
                run = await client.read_flow_run(run_id)
            except Exception as exc:  # the pause itself reports an API that stays away
                log.warning("could not read run %s for a park request: %s", run_id, exc)
                continue
            if (run.labels or {}).get(PARK_LABEL) != key:
                continue
            # Synchronous on purpose: from the state becoming Suspended (answerable) to the pause being cancelled no
            # other code of this event loop runs, so the pause cannot see a later execution's Running as its resume.
            with get_client(sync_client=True) as sync_client:
                parked = park(sync_client, [run_id], lambda _incident: True)  # serve applied may_park
            if parked:
                pausing.cancel()
            return
