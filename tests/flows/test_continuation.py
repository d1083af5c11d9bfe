"""A run that dies after its fix is continued at recover by a new run (``continue_at_recover``): it verifies again and
undoes what is still contained, and never executes an applied step a second time.

The first run is stopped in-process (its task cancelled) at a chosen point of its recover phase, as a SIGKILL would
stop it: the incident stays open with its ledger. Real simulator over HTTP, real Prefect API, real store. The
process-level SIGKILL tests are in tests/orchestration/test_sigkill_takeover.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from kamkmserve_sim import SimServer

from flows.elevated_error_rate import elevated_error_rate
from remediation import runtime
from remediation.models import ActionState, utcnow
from remediation.providers.approvals import Scripted
from tests.flows.flowkit import FAST, sim_state, wait_for_bad_release

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]


async def _killed_when(providers: runtime.Providers, event: str, **params: Any) -> str:
    """Run the runbook until its timeline shows ``event``, then stop it dead; return the open incident's id."""
    async def first_run() -> Any:
        with runtime.use(providers):
            return await elevated_error_rate(**{**FAST, **params})

    task = asyncio.create_task(first_run())
    store = providers.store
    for _ in range(600):
        await asyncio.sleep(0.05)
        opened = [i for i in store.list_incidents() if i.is_open]
        if opened and any(e.event.startswith(event) for e in store.timeline(opened[0].id)):
            break
        assert not task.done(), f"the run ended before {event!r}: {task.result() if task.done() else ''}"
    else:
        raise AssertionError(f"the run never reached {event!r}")
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    (incident,) = [i for i in store.list_incidents() if i.is_open]
    # What the reconciler does once the dead process's lease lapses: declare its holder dead. (Cancelled here, the
    # process lives on and its lease stays renewed; a second run would rightly be refused as a duplicate.)
    assert incident.flow_run_id is not None
    assert store.reclaim_run_lease(incident.flow_run_id, by="test:reconciler", retry_after_s=120,
                                   now=utcnow() + timedelta(minutes=10)) is not None
    return incident.id


def _applied(providers: runtime.Providers, incident_id: str) -> list[str]:
    return [row.kind for row in providers.store.actions(incident_id) if row.state is ActionState.APPLIED]


@pytest.mark.parametrize("killed_at", ["verifying", "plan disable_maintenance"])
async def test_a_run_killed_after_its_rollback_is_continued_and_recovers_without_repeating_a_step(
    sim: Sim, providers: Build, killed_at: str
) -> None:
    server = sim("bad-release")
    wait_for_bad_release(server)
    p = providers(server.url, answers=[Scripted(approve=True, approver="alice", reason="INC-9")],
                  verify_consecutive=30, verify_interval_s=0.3, verify_deadline_s=60.0)
    incident_id = await _killed_when(p, killed_at)
    assert "rollback" in _applied(p, incident_id)
    releases_before = sim_state(server)["current_release"]["version"]

    continuation = providers(server.url, verify_consecutive=3, verify_interval_s=0.3)
    with runtime.use(continuation):
        report = await elevated_error_rate(**FAST, incident_id=incident_id, continue_at_recover=True)

    assert report["outcome"] == "recovered", report["escalation"]
    assert report["incident_id"] == incident_id
    applied = _applied(continuation, incident_id)
    assert applied.count("rollback") == 1 and applied.count("enable_maintenance") == 1, applied
    assert applied.count("disable_maintenance") == 1, "maintenance lifted exactly once, by whichever run got there"
    assert all(row.state is not ActionState.INTENT for row in continuation.store.actions(incident_id)), \
        "a step the dead run left half-done is read back and settled"
    events = [e.event for e in continuation.store.timeline(incident_id)]
    assert "continuing at recover" in events and "verification healthy" in events
    assert not any(e.startswith("plan rollback") for e in events[events.index("continuing at recover"):])
    state = sim_state(server)
    assert state["maintenance"] == [] and state["current_release"]["version"] == releases_before
    stored = continuation.store.get_report(incident_id)
    assert stored is not None and stored.outcome.value == "recovered"
    assert [a.kind for a in stored.actions if a.applied] == applied, "the closing report holds the whole ledger"


async def test_a_run_killed_before_its_fix_cannot_be_continued_by_hand_and_names_the_containment(
    sim: Sim, providers: Build
) -> None:
    server = sim("bad-release")
    wait_for_bad_release(server)
    p = providers(server.url, answers=[Scripted(approver=None)], approval_timeout_s=60)
    incident_id = await _killed_when(p, "waiting for approval of rollback")
    with runtime.use(p):
        report = await elevated_error_rate(**FAST, incident_id=incident_id, continue_at_recover=True)
    assert report["outcome"] == "escalated"
    assert "cannot continue at recover" in report["escalation"] and "only contained" in report["escalation"]
    assert "undo: disable_maintenance" in report["escalation"]
    assert _applied(p, incident_id) == ["enable_maintenance"], "nothing applied by the refused continuation"
    assert sim_state(server)["maintenance"], "containment stays on for a person, named with its undo"
