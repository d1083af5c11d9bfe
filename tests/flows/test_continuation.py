"""A run that dies after its fix is continued at recover by a new run (``continue_at_recover``): it verifies again and
undoes what is still contained, and never executes an applied step a second time.

The first run is stopped in-process (its task cancelled) at a chosen point of its recover phase, as a SIGKILL would
stop it: the incident stays open with its ledger. The simulator in-process on virtual time (tests.flows.timekit),
real Prefect API, real store. The process-level SIGKILL tests are in tests/orchestration/test_sigkill_takeover.py
(over real HTTP, on the wall clock)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import httpx
import pytest

from flows.elevated_error_rate import elevated_error_rate
from remediation import runtime
from remediation.models import ActionState, utcnow
from remediation.providers.approvals import Scripted
from remediation.store import Store
from tests.flows.flowkit import FAST
from tests.flows.timekit import VirtualWorld

pytestmark = pytest.mark.usefixtures("prefect_api")

#: A safety net against a hung test only: on virtual time the first run reaches its event in a few wall seconds.
HUNG_S = 120.0



class Stopper:
    """Holds a run where it stands once its timeline shows an event, for the test to kill it there.

    On the wall clock the test polled the store and cancelled the run within 50 ms of the event; on virtual time a
    run is through its whole recover phase in that much wall time, so the run is held instead: its first request
    after the event (to the app, the control plane or the clock: every step of a run on virtual time makes one)
    never returns, and the test cancels the run's task there. ``wrap`` is the transport for the run's providers.
    """

    def __init__(self) -> None:
        self.event: str | None = None
        self.store: Store | None = None
        self.holding: asyncio.Event | None = None

    def wrap(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        return _Held(inner, self)

    def arm(self, store: Store, event: str) -> asyncio.Event:
        self.store, self.event, self.holding = store, event, asyncio.Event()
        return self.holding

    def disarm(self) -> None:
        self.store = self.event = self.holding = None

    def reached(self) -> bool:
        if self.store is None or self.event is None:
            return False
        opened = [i for i in self.store.list_incidents() if i.is_open]
        return bool(opened) and any(e.event.startswith(self.event) for e in self.store.timeline(opened[0].id))


class _Held(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, stopper: Stopper) -> None:
        self._inner = inner
        self._stopper = stopper

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        holding = self._stopper.holding
        if holding is not None and (holding.is_set() or self._stopper.reached()):
            holding.set()
            await asyncio.get_running_loop().create_future()  # never done: the run is cancelled here
        return await self._inner.handle_async_request(request)


async def _killed_when(providers: runtime.Providers, stopper: Stopper, event: str, **params: Any) -> str:
    """Run the runbook until its timeline shows ``event``, then stop it dead; return the open incident's id.
    ``providers`` make their requests through ``stopper.wrap``."""
    async def first_run() -> Any:
        with runtime.use(providers):
            return await elevated_error_rate(**{**FAST, **params})

    store = providers.store
    held = asyncio.create_task(stopper.arm(store, event).wait())
    task = asyncio.create_task(first_run())
    done, _ = await asyncio.wait({task, held}, timeout=HUNG_S, return_when=asyncio.FIRST_COMPLETED)
    if held not in done:
        held.cancel()
        assert not task.done(), f"the run ended before {event!r}: {task.result()}"
        task.cancel()
        raise AssertionError(f"the run never reached {event!r}")
    assert not task.done()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    stopper.disarm()
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
    world: VirtualWorld, killed_at: str
) -> None:
    world.start("bad-release")
    await world.bad_release_serving()
    stopper = Stopper()
    p = world.providers_through(
        stopper.wrap, answers=[Scripted(approve=True, approver="alice", reason="INC-9")],
        verify_consecutive=30, verify_interval_s=0.3, verify_deadline_s=60.0)
    incident_id = await _killed_when(p, stopper, killed_at)
    assert "rollback" in _applied(p, incident_id)
    releases_before = (await world.state())["current_release"]["version"]

    continuation = world.providers(verify_consecutive=3, verify_interval_s=0.3)
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
    state = await world.state()
    assert state["maintenance"] == [] and state["current_release"]["version"] == releases_before
    stored = continuation.store.get_report(incident_id)
    assert stored is not None and stored.outcome.value == "recovered"
    assert [a.kind for a in stored.actions if a.applied] == applied, "the closing report holds the whole ledger"


async def test_a_run_killed_before_its_fix_cannot_be_continued_by_hand_and_names_the_containment(
    world: VirtualWorld,
) -> None:
    world.start("bad-release")
    await world.bad_release_serving()
    stopper = Stopper()
    p = world.providers_through(stopper.wrap, answers=[Scripted(approver=None)], approval_timeout_s=60)
    incident_id = await _killed_when(p, stopper, "waiting for approval of rollback")
    with runtime.use(p):
        report = await elevated_error_rate(**FAST, incident_id=incident_id, continue_at_recover=True)
    assert report["outcome"] == "escalated"
    assert "cannot continue at recover" in report["escalation"] and "only contained" in report["escalation"]
    assert "undo: disable_maintenance" in report["escalation"]
    assert _applied(p, incident_id) == ["enable_maintenance"], "nothing applied by the refused continuation"
    assert (await world.state())["maintenance"], "containment stays on for a person, named with its undo"
