"""Scenario tests for the database runbook on the simulated database: the simulator in-process on virtual time, a
real Prefect API, a real store, scripted approvals. The runbook's waits move the simulator (tests.flows.timekit), so
no test waits on the wall clock; one test keeps a real simulator over HTTP on the wall clock (real sockets; the
real-PostgreSQL tests in test_database_errors_pg.py stay there too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kamkmserve_sim import SimServer

from flows.database_errors import database_errors
from remediation import runtime
from remediation.models import Mode
from remediation.providers.approvals import Scripted
from tests.flows.dbkit import (
    DB_FAST,
    blocker_holding,
    database,
    database_now,
    seq_scans_flagged,
    wait_for_blocker,
    workers,
    workers_now,
)
from tests.flows.timekit import GOOD_RELEASE, VirtualWorld, scripted

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]
RUNNING = {"report-export": 2, "email-digest": 1}
PAUSED = {"report-export": 0, "email-digest": 1}



async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await database_errors(**{**DB_FAST, **params})


def kinds(report: dict[str, Any], state: str | None = None) -> list[str]:
    return [a["kind"] for a in report["actions"] if state is None or a["state"] == state]


def evidence(report: dict[str, Any], source: str) -> dict[str, Any]:
    return next(e for e in report["evidence"] if e["source"] == source)


async def test_stands_down_when_database_work_succeeds(world: VirtualWorld) -> None:
    world.start("healthy")
    await world.advance(0.8)
    report = await run(world.providers())
    assert report["outcome"] == "stood_down"
    assert report["findings"][0]["check"] == "database_errors" and report["findings"][0]["status"] == "ok"
    assert report["actions"] == []
    assert await workers_now(world) == RUNNING


async def test_lock_contention_pauses_jobs_terminates_the_blocker_on_approval_and_recovers(
    world: VirtualWorld
) -> None:
    world.start("lock-contention")
    blocker = await blocker_holding(world)
    p = world.providers(answers=[Scripted(approve=True, approver="alice", reason="INC-7")])
    approvals = scripted(p)
    report = await run(p)

    assert report["outcome"] == "recovered", report["escalation"]
    assert report["findings"][0]["status"] == "breach"
    assert kinds(report, "applied") == ["pause_jobs", "terminate_backend", "resume_jobs"]
    terminate = next(a for a in report["actions"] if a["kind"] == "terminate_backend")
    assert terminate["target"] == f"backend {blocker} (kamkmserve-jobs:report-export)"
    assert terminate["risk"] == "destructive" and terminate["approver"] == "alice"
    assert f"SELECT pg_terminate_backend({blocker})" in approvals.requests[0].description
    assert str(blocker) in evidence(report, "locks")["summary"]
    assert "update \"kamkmserve_order\" set \"status\"" in str(evidence(report, "locks")["items"])
    assert report["verification"]["healthy"] is True and len(report["verification"]["samples"]) >= 3
    assert "probe" in report["verification"]["check"]
    assert (await database_now(world))["blocker"] is None
    assert await workers_now(world) == RUNNING  # resumed with the remembered counts


async def test_slow_query_creates_the_missing_index_on_approval_and_recovers(world: VirtualWorld) -> None:
    world.start("slow-query")
    await seq_scans_flagged(world)
    p = world.providers(answers=[Scripted(approve=True, approver="bob")])
    approvals = scripted(p)
    report = await run(p)

    assert report["outcome"] == "recovered", report["escalation"]
    assert kinds(report, "applied") == ["pause_jobs", "create_index", "resume_jobs"]
    index = next(a for a in report["actions"] if a["kind"] == "create_index")
    assert index["target"] == "public.kamkmserve_order(user_id)"
    statement = 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ix_kamkmserve_order_user_id" ON "public"."kamkmserve_order"'
    assert statement in approvals.requests[0].description
    assert "kamkmserve_order" in evidence(report, "scans")["summary"]
    state = (await database_now(world))
    assert state["slow_column_indexed"] is True and "ix_kamkmserve_order_user_id" in state["indexes"]
    assert (await world.state())["current_release"]["version"] == "v1.6.0"  # fixed by the index, not a rollback
    assert await workers_now(world) == RUNNING


async def test_denied_termination_changes_nothing_keeps_jobs_paused_and_is_denied(world: VirtualWorld) -> None:
    world.start("lock-contention")
    blocker = await blocker_holding(world)
    report = await run(world.providers(answers=[Scripted(approve=False, approver="bob", reason="batch run")]))
    assert report["outcome"] == "denied"
    assert "not approved" in report["escalation"] and "jobs stay paused" in report["escalation"]
    assert kinds(report, "applied") == ["pause_jobs"]
    assert (await database_now(world))["blocker"]["pid"] == blocker
    assert await workers_now(world) == PAUSED


async def test_failed_probe_escalates_and_keeps_the_jobs_paused(world: VirtualWorld) -> None:
    world.start("lock-contention")
    await blocker_holding(world)
    report = await run(world.providers(answers=[Scripted(approve=True, approver="alice")]), probe_p95_ms=0.001)
    assert report["outcome"] == "escalated"
    assert report["verification"]["healthy"] is False and "probe" in report["verification"]["detail"]
    assert "jobs stay paused" in report["escalation"]
    assert kinds(report, "applied") == ["pause_jobs", "terminate_backend"]
    assert await workers_now(world) == PAUSED


async def test_db_errors_after_a_release_without_lock_or_index_cause_hand_over_to_rollback(
    world: VirtualWorld
) -> None:
    """The database keeps failing after the rollback (an outage, not the release): escalate, jobs stay paused."""
    world.start("bad-release-no-recovery")
    await world.bad_release_serving()
    report = await run(world.providers(answers=[Scripted(approve=True, approver="alice")],
                                       verify_deadline_s=4.0))
    assert kinds(report, "applied") == ["pause_jobs", "rollback"]
    assert "NeonDbError" in report["findings"][0]["detail"] or "failed" in report["findings"][0]["detail"]
    assert report["outcome"] == "escalated" and report["verification"]["healthy"] is False
    assert (await world.state())["current_release"]["version"] == GOOD_RELEASE
    assert await workers_now(world) == PAUSED


async def test_as_is_mode_is_unknown_and_changes_nothing(world: VirtualWorld) -> None:
    world.start("lock-contention", request_metrics=False)
    await blocker_holding(world)
    report = await run(world.providers(answers=[Scripted(approve=True, approver="alice")]))
    assert report["outcome"] == "escalated"
    findings = {f["check"]: f for f in report["findings"]}
    assert findings["database_errors"]["status"] == "unknown"
    assert {findings[c]["status"] for c in ("db_operation_failures", "db_operation_p95", "db_log_errors")} == {
        "unknown"}
    assert report["actions"] == []
    assert (await database_now(world))["blocker"] is not None and await workers_now(world) == RUNNING


async def test_dry_run_plans_pause_and_termination_but_touches_nothing(world: VirtualWorld) -> None:
    world.start("lock-contention")
    await blocker_holding(world)
    report = await run(world.providers(), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert kinds(report) == ["pause_jobs", "terminate_backend"]
    assert all(a["decision"] == "deny" and not a["applied"] for a in report["actions"])
    assert (await database_now(world))["blocker"] is not None and await workers_now(world) == RUNNING


async def test_without_a_jobs_lever_it_notes_so_and_still_fixes_the_lock(world: VirtualWorld) -> None:
    world.start("lock-contention")
    await blocker_holding(world)
    p = world.providers(answers=[Scripted(approve=True, approver="alice")]).with_(jobs=None)
    report = await run(p)
    assert report["outcome"] == "recovered", report["escalation"]
    assert kinds(report, "applied") == ["terminate_backend"]
    assert any(t["event"] == "no jobs lever" for t in report["timeline"])


async def test_without_an_inspector_nothing_is_terminated_and_it_escalates(world: VirtualWorld) -> None:
    world.start("lock-contention")
    await blocker_holding(world)
    report = await run(world.providers().with_(database=None))
    assert report["outcome"] == "escalated" and "no automatic fix" in report["escalation"]
    assert kinds(report, "applied") == ["pause_jobs"]
    assert evidence(report, "locks")["available"] is False
    assert "REMEDIATE_APP_DATABASE_URL" in evidence(report, "locks")["summary"]
    assert (await database_now(world))["blocker"] is not None


async def test_a_refused_resume_escalates_with_the_jobs_still_paused(world: VirtualWorld) -> None:
    """Approve mode: pause and terminate are approved, the resume is not. The database is healthy, but the service
    is not whole until a person resumes its background work, so the run does not call it recovered."""
    world.start("lock-contention")
    await blocker_holding(world)
    answers = [Scripted(approve=True, approver="alice"), Scripted(approve=True, approver="alice"),
               Scripted(approve=False, approver="bob", reason="not during the batch window")]
    report = await run(world.providers(answers=answers), mode=Mode.APPROVE)
    assert report["outcome"] == "escalated", report["escalation"]
    assert kinds(report, "applied") == ["pause_jobs", "terminate_backend"]
    assert "paused jobs were not resumed" in report["escalation"] and "resume_jobs" in report["escalation"]
    assert report["verification"]["healthy"] is True
    assert await workers_now(world) == PAUSED


async def test_over_real_http_on_the_wall_clock_plans_pause_and_termination_for_a_really_held_lock(
    sim: Sim, providers: Build
) -> None:
    """The identification against a real simulator server: real sockets, a transaction held for real seconds."""
    server = sim("lock-contention")
    blocker = wait_for_blocker(server)
    report = await run(providers(server.url), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert kinds(report) == ["pause_jobs", "terminate_backend"]
    assert str(blocker) in evidence(report, "locks")["summary"]
    assert database(server)["blocker"]["pid"] == blocker and workers(server) == RUNNING
