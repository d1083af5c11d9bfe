"""Scenario tests for the elevated-5xx runbook: the simulator in-process on virtual time, a real Prefect API, a real
store. The runbook's waits are what move the simulator (tests.flows.timekit), so no test waits on the wall clock;
two tests keep a real simulator over HTTP on the wall clock (the unreachable app, and one whole containment)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kamkmserve_sim import SimServer

from flows.elevated_error_rate import elevated_error_rate
from remediation import runtime
from remediation.models import Mode
from remediation.providers.approvals import Scripted
from tests.flows.flowkit import FAST, sim_state, wait_for_bad_release
from tests.flows.timekit import GOOD_RELEASE, VirtualWorld

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]



async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await elevated_error_rate(**{**FAST, **params})


def kinds(report: dict[str, Any], state: str | None = None) -> list[str]:
    return [a["kind"] for a in report["actions"] if state is None or a["state"] == state]


async def test_stands_down_when_the_error_rate_is_normal(world: VirtualWorld) -> None:
    world.start("healthy")
    await world.advance(0.6)
    report = await run(world.providers())
    assert report["outcome"] == "stood_down"
    assert report["findings"][0]["check"] == "error_rate_5xx"
    assert report["findings"][0]["status"] == "ok"
    assert report["actions"] == []
    assert (await world.state())["maintenance"] == []


async def test_contains_rolls_back_after_approval_and_verifies_recovery(world: VirtualWorld) -> None:
    world.start("bad-release")
    bad_version = await world.bad_release_serving()
    p = world.providers(answers=[Scripted(approve=True, approver="alice", reason="INC-1")])
    report = await run(p)

    assert report["outcome"] == "recovered", report["escalation"]
    assert report["findings"][0]["status"] == "breach"
    assert kinds(report, "applied") == ["enable_maintenance", "rollback", "disable_maintenance"]
    rollback = next(a for a in report["actions"] if a["kind"] == "rollback")
    assert rollback["risk"] == "destructive"
    assert rollback["decision"] == "needs_approval" and rollback["approver"] == "alice"
    assert rollback["undo"]["kind"] == "rollback"
    assert report["verification"]["healthy"] is True
    assert len(report["verification"]["samples"]) >= 3
    state = await world.state()
    assert state["current_release"]["version"] == GOOD_RELEASE != bad_version
    assert state["maintenance"] == []
    stored = p.store.get_report(report["incident_id"])
    assert stored is not None and stored.outcome.value == "recovered"
    assert [a.answer.value for a in p.store.approvals(report["incident_id"])] == ["approved"]


async def test_over_real_http_on_the_wall_clock_contains_rolls_back_and_recovers(
    sim: Sim, providers: Build
) -> None:
    """The same containment against a real simulator server, with real sockets and real waits."""
    server = sim("bad-release")
    wait_for_bad_release(server)
    report = await run(providers(server.url, answers=[Scripted(approve=True, approver="alice", reason="INC-1")]))
    assert report["outcome"] == "recovered", report["escalation"]
    assert kinds(report, "applied") == ["enable_maintenance", "rollback", "disable_maintenance"]
    assert sim_state(server)["current_release"]["version"] == GOOD_RELEASE


async def test_denied_approval_means_no_rollback_and_escalation_with_containment_kept(world: VirtualWorld) -> None:
    world.start("bad-release")
    bad_version = await world.bad_release_serving()
    report = await run(world.providers(answers=[Scripted(approve=False, approver="bob", reason="peak")]))
    assert report["outcome"] == "denied"
    assert "not approved" in report["escalation"]
    assert "rollback" not in kinds(report, "applied")
    state = await world.state()
    assert state["current_release"]["version"] == bad_version
    assert state["maintenance"], "containment must be kept"


async def test_approval_timeout_is_treated_as_deny(world: VirtualWorld) -> None:
    world.start("bad-release")
    await world.bad_release_serving()
    report = await run(world.providers(answers=[Scripted(approver=None)]), approval_timeout_s=5)
    assert report["outcome"] == "denied"
    rollback = next(a for a in report["actions"] if a["kind"] == "rollback")
    assert rollback["approval"] == "timeout" and rollback["applied"] is False
    assert (await world.state())["current_release"]["version"] != GOOD_RELEASE


async def test_unlisted_approver_is_refused_and_recorded_then_a_real_approver_counts(world: VirtualWorld) -> None:
    world.start("bad-release")
    await world.bad_release_serving()
    p = world.providers(answers=[Scripted(approve=True, approver="mallory"), Scripted(approve=True, approver="alice")])
    report = await run(p)
    assert report["outcome"] == "recovered"
    answers = [(a.answer.value, a.approver) for a in p.store.approvals(report["incident_id"])]
    assert answers == [("refused", "mallory"), ("approved", "alice")]


async def test_verification_that_never_recovers_escalates_and_keeps_containment(world: VirtualWorld) -> None:
    world.start("bad-release-no-recovery")
    await world.bad_release_serving()
    p = world.providers(answers=[Scripted(approve=True, approver="alice")], verify_deadline_s=6.0)
    report = await run(p)
    assert report["outcome"] == "escalated"
    assert report["verification"]["healthy"] is False
    assert "containment kept" in report["escalation"]
    assert kinds(report, "applied")[-1] == "enable_maintenance"  # contained again after the failed fix
    assert (await world.state())["maintenance"]


async def test_as_is_mode_has_unknown_findings_and_takes_no_action(world: VirtualWorld) -> None:
    world.start("bad-release", request_metrics=False)
    await world.bad_release_serving()
    report = await run(world.providers(answers=[Scripted(approve=True, approver="alice")]))
    assert report["outcome"] == "escalated"
    finding = report["findings"][0]
    assert finding["status"] == "unknown" and finding["observed"] is None
    assert report["actions"] == []
    assert (await world.state())["maintenance"] == []


async def test_dry_run_plans_and_records_but_touches_nothing(world: VirtualWorld) -> None:
    world.start("bad-release")
    bad_version = await world.bad_release_serving()
    report = await run(world.providers(), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert kinds(report) == ["enable_maintenance", "rollback"]
    assert all(a["decision"] == "deny" and not a["applied"] for a in report["actions"])
    state = await world.state()
    assert state["maintenance"] == [] and state["current_release"]["version"] == bad_version


@pytest.mark.parametrize("fault", ["down", "garbage", "html", "slow"])
async def test_broken_metrics_endpoint_is_unknown_with_a_clear_message_and_no_action(
    world: VirtualWorld, fault: str
) -> None:
    world.start("bad-release")
    await world.bad_release_serving()
    await world.request("POST", "/_sim/faults", json={"metrics": fault, "slow_seconds": 3.0})
    report = await run(world.providers(http_timeout_s=1.0), confirm_samples=1)
    assert report["outcome"] == "escalated"
    finding = report["findings"][0]
    assert finding["status"] == "unknown" and finding["detail"]
    assert report["actions"] == []


async def test_unreachable_app_is_unknown_and_takes_no_action(providers: Build) -> None:
    report = await run(providers("http://127.0.0.1:9"), confirm_samples=1)
    assert report["outcome"] == "escalated"
    assert report["findings"][0]["status"] == "unknown"
    assert "unreachable" in report["findings"][0]["detail"]


async def test_app_rate_limit_wall_makes_the_rate_unknown_and_is_its_own_finding(world: VirtualWorld) -> None:
    """The real app answers 429 beyond 100 requests/min per IP: that is unknown, never an error spike."""
    world.start("bad-release", rate_limit=2)
    await world.bad_release_serving()
    report = await run(world.providers(), confirm_samples=3)
    findings = {f["check"]: f for f in report["findings"]}
    assert findings["error_rate_5xx"]["status"] == "unknown"
    assert "rate limit" in findings["error_rate_5xx"]["detail"]
    assert findings["app_rate_limit"]["status"] == "breach"
    assert report["outcome"] == "escalated" and report["actions"] == []
