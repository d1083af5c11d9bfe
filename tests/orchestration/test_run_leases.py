"""Run leases and what the reconciler does with them, on a real store with a fake Prefect (states, crashes) and an
injected clock: a run whose lease lapsed is crashed and its incident closed whatever state it was left in; a run
leased in time, suspended or scheduled is left alone; one reconciler acts however many look; the keeper renews,
gives back and notices a reclaim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediation.models import ActionRecord, ActionState, Alert, EnableMaintenance, Mode, Outcome, Phase, Severity
from remediation.models import Verdict as PolicyVerdict
from remediation.orchestration.leases import LeaseKeeper
from remediation.orchestration.prefect_identity import PrefectApi
from remediation.reconcile import RECLAIM_RETRY_S, RunState, RunVerdict, StateReader, reconcile
from remediation.store import Store
from remediation.store.flow_runs import LeaseState

HERE = PrefectApi(url="http://127.0.0.1:4200/api", id="api-here")
T0 = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
TTL_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Crashes:
    """Stands in for Prefect: records each run marked Crashed."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    def __call__(self, flow_run_id: str, message: str) -> None:
        self.runs.append((flow_run_id, message))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'leases.db'}")
    s.migrate()
    return s


def states(mapping: dict[str, RunState | None]) -> StateReader:
    return lambda ids: {i: mapping.get(i) for i in ids}


def open_incident(store: Store, incident_id: str, flow_run_id: str, service: str = "web") -> None:
    store.open_incident(incident_id=incident_id, runbook="rolling-restart", service=service, severity=Severity.SEV2,
                        mode=Mode.AUTO, alert=Alert(name="manual", service=service))
    store.set_flow_run(incident_id, flow_run_id)


def leased(store: Store, flow_run_id: str, at: datetime, holder: str = "host-a:101") -> None:
    store.take_run_lease(flow_run_id, holder=holder, ttl_s=TTL_S, api_url=HERE.url, api_id=HERE.id, now=at)


RUNNING_AFTER_RESUME = RunState(type="RUNNING", name="Running")
PAUSED = RunState(type="PAUSED", name="Paused")
PENDING = RunState(type="PENDING", name="Pending")


@pytest.mark.parametrize("left_in", [RUNNING_AFTER_RESUME, PAUSED, PENDING], ids=lambda s: s.name)
def test_a_run_whose_lease_lapsed_is_crashed_and_its_incident_closed_whatever_state_it_was_left_in(
    store: Store, left_in: RunState
) -> None:
    clock, crashes = Clock(), Crashes()
    open_incident(store, "inc-1", "run-1")
    leased(store, "run-1", clock.now)
    store.record_intent("inc-1", ActionRecord(phase=Phase.CONTAIN, decision=PolicyVerdict.ALLOW,
                                              state=ActionState.INTENT,
                                              plan=EnableMaintenance(service="web", path_prefixes=("/api",))))
    clock.advance(TTL_S + 1)

    found = reconcile(store, states({"run-1": left_in}), here=HERE, crash_run=crashes, now=clock,
                      reconciler="host-b:202")

    assert [(r.incident_id, r.verdict, r.run_state, r.closed, r.crashed) for r in found] == [
        ("inc-1", RunVerdict.DEAD, "Crashed", True, True)]
    assert "host-a:101" in found[0].detail and "stopped renewing its lease" in found[0].detail
    assert [run for run, _ in crashes.runs] == ["run-1"]
    assert "crashed by the reconciler on host-b:202" in crashes.runs[0][1]
    incident = store.get_incident("inc-1")
    assert incident is not None and incident.outcome is Outcome.ESCALATED
    report = store.get_report("inc-1")
    assert report is not None and report.escalation is not None
    assert "stopped renewing its lease" in report.escalation and "half-done" in report.escalation
    assert store.active_incidents("web") == [], "the service is free for its next remediation"
    assert store.flow_runs(["run-1"])["run-1"].reclaimed_by == "host-b:202"


def test_a_run_leased_in_time_is_reported_alive_and_left_alone(store: Store) -> None:
    clock, crashes = Clock(), Crashes()
    open_incident(store, "inc-1", "run-1")
    leased(store, "run-1", clock.now)
    clock.advance(TTL_S - 1)
    found = reconcile(store, states({"run-1": PAUSED}), here=HERE, crash_run=crashes, now=clock, include_alive=True)
    assert [(r.verdict, r.closed) for r in found] == [(RunVerdict.ALIVE, False)]
    assert found[0].detail == "lease held by host-a:101, renewed 59s ago"
    assert crashes.runs == [] and store.get_incident("inc-1").is_open  # type: ignore[union-attr]
    assert reconcile(store, states({"run-1": PAUSED}), here=HERE, crash_run=crashes, now=clock) == [], \
        "without include_alive only incidents acted on (or left to another API) are returned"


@pytest.mark.parametrize("waiting", [RunState(type="PAUSED", name="Suspended"),
                                     RunState(type="SCHEDULED", name="Resuming")], ids=lambda s: s.name)
def test_a_run_that_waits_without_a_process_is_not_crashed_for_a_lapsed_lease(store: Store,
                                                                              waiting: RunState) -> None:
    clock, crashes = Clock(), Crashes()
    open_incident(store, "inc-1", "run-1")
    leased(store, "run-1", clock.now)
    clock.advance(TTL_S * 10)
    assert reconcile(store, states({"run-1": waiting}), here=HERE, crash_run=crashes, now=clock) == []
    assert crashes.runs == []


def test_a_lease_given_back_is_not_a_death(store: Store) -> None:
    clock, crashes = Clock(), Crashes()
    open_incident(store, "inc-1", "run-1")
    leased(store, "run-1", clock.now)
    store.release_run_lease("run-1", holder="host-a:101", now=clock.now)
    clock.advance(TTL_S * 10)
    found = reconcile(store, states({"run-1": RUNNING_AFTER_RESUME}), here=HERE, crash_run=crashes, now=clock,
                      include_alive=True)
    assert [r.verdict for r in found] == [RunVerdict.ALIVE] and crashes.runs == []
    assert store.flow_runs(["run-1"])["run-1"].lease(clock.now) is LeaseState.RELEASED


def test_of_two_reconcilers_finding_one_lapsed_lease_exactly_one_crashes_and_closes(store: Store,
                                                                                    tmp_path: Path) -> None:
    clock, crashes = Clock(), Crashes()
    other_replica = Store(f"sqlite:///{tmp_path / 'leases.db'}")
    open_incident(store, "inc-1", "run-1")
    leased(store, "run-1", clock.now)
    clock.advance(TTL_S + 1)
    first = reconcile(store, states({"run-1": RUNNING_AFTER_RESUME}), here=HERE, crash_run=crashes, now=clock,
                      reconciler="a:1")
    # The second still reads the run Running (its read raced the crash): the reclaim is already taken.
    second = reconcile(other_replica, states({"run-1": RUNNING_AFTER_RESUME}), here=HERE, crash_run=crashes,
                       now=clock, reconciler="b:2")
    assert [r.closed for r in first] == [True] and second == []
    assert len(crashes.runs) == 1
    assert [e.event for e in store.timeline("inc-1")].count("reconciled: closed as escalated") == 1
    other_replica.dispose()


def test_the_keeper_renews_in_time_gives_back_on_release_and_notices_a_reclaim(store: Store) -> None:
    clock = Clock()
    keeper = LeaseKeeper(ttl_s=TTL_S, renew_s=15, holder="host-a:101", clock=clock)
    lost: list[str] = []
    open_incident(store, "inc-1", "run-1")
    open_incident(store, "inc-2", "run-2", service="api")
    try:
        keeper.hold(store, "run-1", HERE, on_lost=lambda: lost.append("run-1"))
        keeper.hold(store, "run-2", HERE)
        assert store.flow_runs(["run-1"])["run-1"].api_id == HERE.id, "taking a lease records the run's owner"
        for _ in range(8):  # two minutes, renewed every 15 s: never lapses
            clock.advance(15)
            keeper.renew_all()
            assert store.flow_runs(["run-1"])["run-1"].lease(clock.now) is LeaseState.HELD
        keeper.release("run-2")
        assert store.flow_runs(["run-2"])["run-2"].lease(clock.now) is LeaseState.RELEASED

        clock.advance(TTL_S + 1)  # this process stalled past its lease: a reconciler reclaims it
        assert store.reclaim_run_lease("run-1", by="host-b:202", retry_after_s=120, now=clock.now) is not None
        keeper.renew_all()
        assert lost == ["run-1"] and keeper.held() == []
    finally:
        keeper.close()


def test_the_keeper_lets_go_of_a_run_whose_incident_closed(store: Store) -> None:
    clock = Clock()
    keeper = LeaseKeeper(ttl_s=TTL_S, renew_s=15, holder="host-a:101", clock=clock)
    open_incident(store, "inc-1", "run-1")
    try:
        keeper.hold(store, "run-1", HERE)
        found = reconcile(store, states({"run-1": RunState(type="COMPLETED", name="Completed")}), here=HERE,
                          now=clock)
        assert [r.closed for r in found] == [True]
        keeper.renew_all()
        assert keeper.held() == []
    finally:
        keeper.close()


def test_a_renewal_every_more_than_half_the_lease_is_refused() -> None:
    with pytest.raises(ValueError, match="too slow"):
        LeaseKeeper(ttl_s=60, renew_s=31)


def test_reconcile_without_here_keeps_its_old_contract(store: Store) -> None:
    """Callers that do not name their API (tests, older code) judge every run as theirs, as before."""
    open_incident(store, "inc-gone", "run-gone")
    found = reconcile(store, states({}))
    assert [(r.incident_id, r.run_state, r.closed) for r in found] == [("inc-gone", "missing", True)]




def test_an_unowned_incident_whose_run_is_missing_here_is_only_closed_when_claimed(store: Store) -> None:
    open_incident(store, "inc-old", "run-from-before-owners")
    found = reconcile(store, states({}), here=HERE)
    assert [(r.verdict, r.closed) for r in found] == [(RunVerdict.UNOWNED, False)]
    assert store.get_incident("inc-old").is_open  # type: ignore[union-attr]
    found = reconcile(store, states({}), here=HERE, claim_unowned=True)
    assert [(r.verdict, r.run_state, r.closed) for r in found] == [(RunVerdict.DEAD, "missing", True)]


def test_a_run_that_could_not_be_crashed_keeps_its_incident_open_and_is_retried_later(store: Store) -> None:
    clock = Clock()
    open_incident(store, "inc-1", "run-1")
    leased(store, "run-1", clock.now)
    clock.advance(TTL_S + 1)

    def prefect_down(flow_run_id: str, message: str) -> None:
        raise ConnectionError("Prefect API unreachable")

    assert reconcile(store, states({"run-1": PAUSED}), here=HERE, crash_run=prefect_down, now=clock) == []
    assert store.get_incident("inc-1").is_open  # type: ignore[union-attr]
    crashes = Crashes()
    clock.advance(30)  # the reclaim is fresh: its reconciler may still be acting on it
    assert reconcile(store, states({"run-1": PAUSED}), here=HERE, crash_run=crashes, now=clock) == []
    clock.advance(RECLAIM_RETRY_S)
    found = reconcile(store, states({"run-1": PAUSED}), here=HERE, crash_run=crashes, now=clock)
    assert [(r.closed, r.crashed) for r in found] == [(True, True)] and len(crashes.runs) == 1
