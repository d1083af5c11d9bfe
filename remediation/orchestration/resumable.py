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
(approve mode's per-step ones) do not. Only runs the warm executor executes are parked: served runs (the UI's
custom runs, the weekly drill) end Cancelled with their process as before. A suspended run nobody answers fails
at its deadline (the server's pause expiration), and is reconciled the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

log = logging.getLogger("remediation.orchestration")

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
