"""Store behaviour, each test on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from remediation.models import (
    ActionState,
    Approval,
    ApprovalAnswer,
    DisableMaintenance,
    DrainInstance,
    EnableMaintenance,
    IncidentReport,
    Mode,
    Outcome,
    Phase,
    RestartInstance,
    RestoreInstance,
    Rollback,
    ScaleUp,
    Severity,
    TimelineEntry,
)
from remediation.store import (
    ActionConflict,
    ActionNotFound,
    IncidentExists,
    IncidentNotFound,
    IncidentStatus,
    Store,
)
from remediation.store.engine import make_engine
from tests.store.store_factories import IST, T0, action, alert, all_plans, full_report, open_incident


def _assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# -- incidents -------------------------------------------------------------------------------------------


def test_full_report_round_trips(store: Store) -> None:
    incident_id = open_incident(store)
    report = full_report(incident_id)
    assert {a.kind for a in report.actions} == {p.kind for p in all_plans()}
    store.close_incident(incident_id, report)

    loaded = store.get_report(incident_id)
    assert isinstance(loaded, IncidentReport)
    assert loaded == report
    assert loaded.summary_json() == report.summary_json()
    assert [type(a.plan) for a in loaded.actions] == [type(a.plan) for a in report.actions]

    summary = store.get_incident(incident_id)
    assert summary is not None
    assert summary.status is IncidentStatus.CLOSED and not summary.is_open
    assert summary.outcome is Outcome.RECOVERED
    assert summary.closed_at == report.finished_at
    assert summary.flow_run_id == report.flow_run_id


def test_open_incident_summary(store: Store) -> None:
    incident_id = open_incident(store, incident_key="web:Elevated5xx")
    summary = store.get_incident(incident_id)
    assert summary is not None
    assert summary.id == incident_id
    assert (summary.runbook, summary.service) == ("elevated_5xx", "web")
    assert (summary.severity, summary.mode) == (Severity.SEV2, Mode.AUTO)
    assert summary.status is IncidentStatus.OPEN and summary.is_open
    assert summary.outcome is None and summary.closed_at is None and summary.flow_run_id is None
    assert summary.incident_key == "web:Elevated5xx"
    assert summary.alert == alert("web")
    assert store.get_report(incident_id) is None
    assert store.get_incident("inc-nope") is None
    assert store.get_report("inc-nope") is None


def test_set_flow_run(store: Store) -> None:
    incident_id = open_incident(store)
    store.set_flow_run(incident_id, "run-1")
    summary = store.get_incident(incident_id)
    assert summary is not None and summary.flow_run_id == "run-1"


def test_incident_for_flow_run(store: Store) -> None:
    incident_id = open_incident(store)
    open_incident(store)
    store.set_flow_run(incident_id, "run-7")
    found = store.incident_for_flow_run("run-7")
    assert found is not None and found.id == incident_id
    assert store.incident_for_flow_run("run-none") is None


def test_unknown_incident_raises(store: Store) -> None:
    with pytest.raises(IncidentNotFound):
        store.set_flow_run("inc-nope", "run-1")
    with pytest.raises(KeyError):  # IncidentNotFound is a KeyError
        store.close_incident("inc-nope", full_report("inc-nope"))
    with pytest.raises(IncidentNotFound):
        store.add_timeline("inc-nope", TimelineEntry(phase=Phase.IDENTIFY, event="x"))
    with pytest.raises(IncidentNotFound):
        store.record_intent("inc-nope", action(all_plans()[0]))
    with pytest.raises(IncidentNotFound):
        store.record_action("inc-nope", action(all_plans()[0]))
    with pytest.raises(IncidentNotFound):
        store.record_approval("inc-nope", Approval(answer=ApprovalAnswer.DENIED))
    assert store.list_incidents() == []


def test_duplicate_incident_id_is_rejected(store: Store) -> None:
    incident_id = open_incident(store)
    with pytest.raises(IncidentExists):
        open_incident(store, incident_id=incident_id)


def test_close_rejects_report_for_another_incident(store: Store) -> None:
    incident_id = open_incident(store)
    with pytest.raises(ValueError, match="not"):
        store.close_incident(incident_id, full_report("inc-other"))


def test_list_incidents_newest_first(store: Store) -> None:
    ids = [open_incident(store, opened_at=T0 + timedelta(minutes=m)) for m in (5, 1, 9, 3)]
    listed = [s.id for s in store.list_incidents()]
    assert listed == [ids[2], ids[0], ids[3], ids[1]]
    assert [s.id for s in store.list_incidents(limit=2)] == [ids[2], ids[0]]
    assert store.list_incidents(limit=0) == []
    with pytest.raises(ValueError):
        store.list_incidents(limit=-1)


def test_active_incidents(store: Store) -> None:
    first = open_incident(store, service="web", opened_at=T0)
    second = open_incident(store, service="web", opened_at=T0 + timedelta(minutes=1))
    closed = open_incident(store, service="web", opened_at=T0 + timedelta(minutes=2))
    open_incident(store, service="api", opened_at=T0)
    store.close_incident(closed, full_report(closed))

    assert [s.id for s in store.active_incidents("web")] == [first, second]
    assert [s.id for s in store.active_incidents("web", exclude=first)] == [second]
    assert store.active_incidents("db") == []


def test_datetimes_come_back_aware_utc(store: Store) -> None:
    opened = datetime(2026, 3, 1, 17, 30, tzinfo=IST)  # 12:00 UTC
    incident_id = open_incident(store, opened_at=opened)
    store.add_timeline(incident_id, TimelineEntry(at=opened, phase=Phase.IDENTIFY, event="alert"))
    store.record_action(incident_id, action(all_plans()[0], started_at=opened, completed_at=opened))
    store.record_approval(incident_id, Approval(answer=ApprovalAnswer.APPROVED, approver="a", at=opened))

    summary = store.get_incident(incident_id)
    assert summary is not None
    _assert_utc(summary.opened_at)
    assert summary.opened_at == opened and summary.opened_at.hour == 12
    (entry,) = store.timeline(incident_id)
    _assert_utc(entry.at)
    (row,) = store.actions(incident_id)
    _assert_utc(row.started_at)
    _assert_utc(row.completed_at)
    assert row.started_at == opened
    (approval,) = store.approvals(incident_id)
    _assert_utc(approval.at)
    assert approval.at == opened
    assert store.list_incidents()[0].opened_at.tzinfo is not None


def test_naive_datetimes_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        open_incident(store, opened_at=datetime(2026, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.actions_applied_since("web", datetime(2026, 3, 1, 12, 0))


# -- the ledger ------------------------------------------------------------------------------------------


def test_action_lifecycle(store: Store) -> None:
    incident_id = open_incident(store)
    approval = Approval(answer=ApprovalAnswer.APPROVED, approver="alice", reason="ok", at=T0)
    record = action(all_plans()[2], approval=approval)  # rollback
    store.record_action(incident_id, record)
    (row,) = store.actions(incident_id)
    assert row.state is ActionState.PLANNED
    assert (row.id, row.incident_id, row.kind, row.service) == (record.id, incident_id, "rollback", "web")
    assert row.risk is record.risk and row.phase is Phase.REMEDIATE and row.decision is record.decision
    assert row.target == record.plan.target
    assert isinstance(row.plan, Rollback) and row.plan == record.plan
    assert row.reasons == record.reasons
    assert row.approver == "alice"

    store.record_intent(incident_id, record)
    (row,) = store.actions(incident_id)
    assert row.state is ActionState.INTENT and row.completed_at is None

    done = T0 + timedelta(seconds=30)
    store.complete_action(record.id, state=ActionState.FAILED, error="boom", completed_at=done)
    (row,) = store.actions(incident_id)
    assert (row.state, row.error, row.completed_at) == (ActionState.FAILED, "boom", done)


def test_every_plan_kind_round_trips_through_the_ledger(store: Store) -> None:
    incident_id = open_incident(store)
    plans = all_plans()
    for i, plan in enumerate(plans):
        store.record_action(incident_id, action(plan, started_at=T0 + timedelta(seconds=i)))
    assert [row.plan for row in store.actions(incident_id)] == plans


def test_record_action_upserts(store: Store) -> None:
    incident_id = open_incident(store)
    record = action(all_plans()[4])
    store.record_action(incident_id, record)
    applied = record.model_copy(update={"state": ActionState.APPLIED, "completed_at": T0 + timedelta(1)})
    store.record_action(incident_id, applied)
    (row,) = store.actions(incident_id)
    assert row.state is ActionState.APPLIED and row.completed_at == applied.completed_at
    assert row.approver is None


def test_empty_approver_is_stored_as_none(store: Store) -> None:
    incident_id = open_incident(store)
    timeout = Approval(answer=ApprovalAnswer.TIMEOUT, approver="")
    store.record_action(incident_id, action(all_plans()[2], approval=timeout))
    assert store.actions(incident_id)[0].approver is None


def test_action_id_cannot_move_between_incidents(store: Store) -> None:
    first, second = open_incident(store), open_incident(store)
    record = action(all_plans()[0])
    store.record_action(first, record)
    with pytest.raises(ActionConflict):
        store.record_intent(second, record)


def test_complete_action_errors(store: Store) -> None:
    with pytest.raises(ActionNotFound):
        store.complete_action("act-nope", state=ActionState.APPLIED)
    incident_id = open_incident(store)
    record = action(all_plans()[0])
    store.record_intent(incident_id, record)
    with pytest.raises(ValueError, match="intent"):
        store.complete_action(record.id, state=ActionState.INTENT)


def test_complete_action_defaults_completed_at_to_now(store: Store) -> None:
    incident_id = open_incident(store)
    record = action(all_plans()[0])
    store.record_intent(incident_id, record)
    before = datetime.now(UTC)
    store.complete_action(record.id, state=ActionState.APPLIED)
    (row,) = store.actions(incident_id)
    assert row.completed_at is not None and row.completed_at >= before - timedelta(seconds=1)
    assert row.error is None


def test_intent_is_visible_to_another_store_before_completion(store: Store, make_store: Callable[[], Store]) -> None:
    """The crash-safety contract: once record_intent returns, another process sees the intent row."""
    incident_id = open_incident(store)
    record = action(all_plans()[0])
    store.record_intent(incident_id, record)

    other = make_store()
    (dangling,) = other.dangling_actions()
    assert (dangling.id, dangling.incident_id, dangling.state) == (record.id, incident_id, ActionState.INTENT)
    assert other.actions(incident_id)[0].state is ActionState.INTENT

    store.complete_action(record.id, state=ActionState.APPLIED)
    assert other.dangling_actions() == []
    assert other.actions(incident_id)[0].state is ActionState.APPLIED


def test_dangling_actions_only_lists_intent_rows(store: Store) -> None:
    a, b = open_incident(store), open_incident(store)
    plans = all_plans()
    in_flight_a = action(plans[0], started_at=T0 + timedelta(seconds=2))
    in_flight_b = action(plans[1], started_at=T0 + timedelta(seconds=1))
    store.record_intent(a, in_flight_a)
    store.record_intent(b, in_flight_b)
    finished = action(plans[2])
    store.record_intent(a, finished)
    store.complete_action(finished.id, state=ActionState.APPLIED)
    store.record_action(b, action(plans[3]))  # planned only
    assert [r.id for r in store.dangling_actions()] == [in_flight_b.id, in_flight_a.id]


def test_actions_applied_since_counts_mutations_per_service(store: Store) -> None:
    incident_id = open_incident(store)
    hour_ago = T0 - timedelta(hours=1)

    def add(state: ActionState, service: str = "web", at: datetime = T0) -> None:
        plan = ScaleUp(service=service, from_replicas=1, to_replicas=2)
        store.record_action(incident_id, action(plan, state=state, started_at=at, completed_at=at))

    add(ActionState.APPLIED)
    add(ActionState.APPLIED, at=hour_ago + timedelta(seconds=1))
    add(ActionState.UNDONE)
    add(ActionState.APPLIED, at=hour_ago - timedelta(seconds=1))  # too old
    add(ActionState.FAILED)
    add(ActionState.PLANNED)
    add(ActionState.INTENT)
    add(ActionState.APPLIED, service="api")  # another service

    assert store.actions_applied_since("web", hour_ago) == 3
    assert store.actions_applied_since("web", hour_ago.astimezone(IST)) == 3  # same instant, other zone
    assert store.actions_applied_since("api", hour_ago) == 1
    assert store.actions_applied_since("db", hour_ago) == 0


# -- approvals and timeline ------------------------------------------------------------------------------


def test_approvals_round_trip_in_order(store: Store) -> None:
    incident_id = open_incident(store)
    answers = [
        Approval(answer=ApprovalAnswer.REFUSED, approver="mallory", reason="not listed", at=T0),
        Approval(answer=ApprovalAnswer.APPROVED, approver="alice", reason="go", at=T0 + timedelta(seconds=5)),
        Approval(answer=ApprovalAnswer.TIMEOUT, at=T0 + timedelta(seconds=1)),
    ]
    for i, a in enumerate(answers):
        store.record_approval(incident_id, a, action_id=f"act-{i}" if i else None)
    assert store.approvals(incident_id) == [answers[0], answers[2], answers[1]]
    assert store.approvals("inc-other") == []


def test_timeline_is_ordered_by_time_then_insertion(store: Store) -> None:
    incident_id = open_incident(store)
    entries = [
        TimelineEntry(at=T0 + timedelta(seconds=10), phase=Phase.REMEDIATE, event="rollback", detail="r41"),
        TimelineEntry(at=T0, phase=Phase.IDENTIFY, event="alert"),
        TimelineEntry(at=T0 + timedelta(seconds=5), phase=Phase.CONTAIN, event="b-second"),
        TimelineEntry(at=T0 + timedelta(seconds=5), phase=Phase.CONTAIN, event="a-third"),
    ]
    for entry in entries:
        store.add_timeline(incident_id, entry)
    assert store.timeline(incident_id) == [entries[1], entries[2], entries[3], entries[0]]
    assert store.timeline("inc-other") == []


def test_actions_of_one_instant_come_back_in_the_order_they_were_written(store: Store) -> None:
    """A clock that did not move between two actions (virtual time) must not let the ledger reorder them: what
    reads it in order (a continuation's "undone by a later applied row") depends on it. Many rows, so that an order
    by the random ids would show."""
    incident_id = open_incident(store)
    written = []
    for n in range(12):
        plan = (EnableMaintenance(service="web", path_prefixes=("/a",), reason=f"on {n}") if n % 2 == 0
                else DisableMaintenance(service="web", path_prefixes=("/a",)))
        record = action(plan, state=ActionState.APPLIED, started_at=T0, completed_at=T0)
        store.record_action(incident_id, record)
        written.append(record.id)
    later = action(Rollback(service="web", from_release="r42", to_release="r41", from_version="1.4.2",
                            to_version="1.4.1"), started_at=T0 - timedelta(seconds=1))
    store.record_action(incident_id, later)  # started earlier, written last: time still comes first
    store.complete_action(written[0], state=ActionState.UNDONE, completed_at=T0)  # completing keeps its place
    assert [row.id for row in store.actions(incident_id)] == [later.id, *written]


# -- lifecycle -------------------------------------------------------------------------------------------


def test_construction_is_lazy(tmp_path: Path) -> None:
    path = tmp_path / "lazy" / "store.db"
    store = Store(f"sqlite:///{path}")
    assert not path.parent.exists()
    store.dispose()  # disposing an unused store is fine
    assert "lazy" in repr(store)


def test_dispose_then_reuse(store: Store) -> None:
    incident_id = open_incident(store)
    store.dispose()
    assert store.get_incident(incident_id) is not None
    store.dispose()


def test_repr_hides_password() -> None:
    assert "secret" not in repr(Store("postgresql://u:secret@db.invalid/x"))


def test_in_memory_sqlite_store_works() -> None:
    store = Store("sqlite://")
    store.migrate()
    incident_id = open_incident(store)
    assert [s.id for s in store.list_incidents()] == [incident_id]
    store.dispose()


def test_missing_report_is_sql_null(store: Store, db_url: str) -> None:
    """``report`` must be SQL NULL, not the JSON literal ``null``, so ``IS NULL`` queries work."""
    open_incident(store)
    closed = open_incident(store)
    store.close_incident(closed, full_report(closed))
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM incidents WHERE report IS NULL")) == 1
            assert conn.scalar(text("SELECT count(*) FROM incidents WHERE report IS NOT NULL")) == 1
    finally:
        engine.dispose()


def test_changes_applied_since_leaves_out_the_steps_that_put_back_their_own_incidents_change(store: Store) -> None:
    first, second = open_incident(store), open_incident(store)
    hour_ago = T0 - timedelta(hours=1)
    on = EnableMaintenance(service="web", path_prefixes=("/api/cart",), reason="contain")
    off = DisableMaintenance(service="web", path_prefixes=("/api/cart",), reason="recovered")
    store.record_action(first, action(on, state=ActionState.APPLIED, started_at=T0, completed_at=T0))
    later = T0 + timedelta(seconds=30)
    store.record_action(first, action(off, state=ActionState.APPLIED, started_at=later, completed_at=later))
    # Another incident turning off maintenance it never turned on is a change of its own, and counts.
    store.record_action(second, action(off, state=ActionState.APPLIED, started_at=later, completed_at=later))

    assert store.actions_applied_since("web", hour_ago) == 3
    assert store.changes_applied_since("web", hour_ago) == 2


def test_a_rolling_restart_counts_as_one_operation_and_its_instances_on_their_own_cap(store: Store) -> None:
    restart, other = open_incident(store), open_incident(store)
    hour_ago = T0 - timedelta(hours=1)
    at = T0
    for instance in ("i-01", "i-02", "i-03", "i-04", "i-05", "i-06"):
        for plan in (DrainInstance(service="web", instance_id=instance),
                     RestartInstance(service="web", instance_id=instance, drained=True),
                     RestoreInstance(service="web", instance_id=instance, timeout_s=300)):
            at += timedelta(seconds=1)
            store.record_action(restart, action(plan, state=ActionState.APPLIED, started_at=at, completed_at=at))
    # A restore by an incident that drained nothing (putting back what a dead run left out) is never counted.
    store.record_action(other, action(RestoreInstance(service="web", instance_id="i-07"), state=ActionState.APPLIED,
                                      started_at=at, completed_at=at))
    store.record_action(other, action(EnableMaintenance(service="web", path_prefixes=("/api",)),
                                      state=ActionState.APPLIED, started_at=at, completed_at=at))

    assert store.actions_applied_since("web", hour_ago) == 20
    assert store.changes_applied_since("web", hour_ago) == 2  # the whole restart, and the maintenance
    assert store.instances_restarted_since("web", hour_ago) == 6
    assert store.instances_restarted_since("web", at + timedelta(seconds=1)) == 0
    assert store.instances_restarted_since("api", hour_ago) == 0
