"""Scenario tests for the auth runbook: the simulator in-process on virtual time, a real Prefect API, a real store.
The runbook's waits move the simulator (tests.flows.timekit), so no test waits on the wall clock; one test keeps a
real simulator over HTTP on the wall clock (real sockets, the probe's real requests)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from kamkmserve_sim import SimServer

from flows.auth_access import auth_access
from remediation import runtime
from remediation.models import Mode
from remediation.providers.access_probe import ADMIN_ROUTES, AccessProbe
from remediation.providers.approvals import Scripted
from tests.flows.authkit import (
    FAST,
    flags,
    flags_now,
    identity,
    identity_now,
    lockout_serving,
    status_incidents,
    status_incidents_now,
    wait_for_lockout,
)
from tests.flows.timekit import VirtualWorld

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]
APPROVE = [Scripted(approve=True, approver="alice", reason="INC-5")]
# The routes the reference lists without a check that a read-only (GET) probe can reach.
UNPROTECTED = sorted(f"{r.method} {r.route}" for r in ADMIN_ROUTES if r.guard == "none" and r.read_only)



async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await auth_access(**{**FAST, **params})


def kinds(report: dict[str, Any], state: str | None = None) -> list[str]:
    return [f"{a['kind']} {a['target']}" for a in report["actions"] if state is None or a["state"] == state]


def finding(report: dict[str, Any], check: str) -> dict[str, Any]:
    return next(f for f in report["findings"] if f["check"] == check)


def evidence(report: dict[str, Any], source: str) -> dict[str, Any]:
    return next(e for e in report["evidence"] if e["source"] == source)


def protected_routes_only(p: runtime.Providers) -> runtime.Providers:
    """The same probe, limited to the routes the reference says are checked: an app with no unchecked admin route."""
    assert p.access is not None
    routes = tuple(r for r in ADMIN_ROUTES if r.guard != "none")
    return p.with_(access=AccessProbe(p.access.http, user=p.access.user, admin=p.access.admin, routes=routes))


async def test_stands_down_when_admins_get_in_as_usual_and_every_admin_route_refuses(
    world: VirtualWorld
) -> None:
    world.start("auth-misconfig", onset_s=3600.0)  # the admin traffic, never the change
    await world.advance(1.0)
    report = await run(protected_routes_only(world.providers()))
    assert report["outcome"] == "stood_down"
    assert finding(report, "admin_forbidden_rate")["status"] == "ok"
    assert finding(report, "admin_role_check_failures")["status"] == "ok"
    assert finding(report, "admin_route_authorization")["status"] == "ok"
    assert report["actions"] == []
    assert (await flags_now(world)) == {} and (await status_incidents_now(world)) == []


async def test_normal_signals_still_probe_the_admin_routes_and_escalate_the_unchecked_ones_without_acting(
    world: VirtualWorld
) -> None:
    """The signals are normal, but the read-only probe finds the admin routes anyone reaches (the simulator keeps
    the real app's gaps): a breach named with its answer, escalated, nothing changed, never 'recovered'."""
    world.start("auth-misconfig", onset_s=3600.0)
    await world.advance(1.0)
    report = await run(world.providers())
    assert report["outcome"] == "escalated"
    assert finding(report, "admin_forbidden_rate")["status"] == "ok"
    holes = finding(report, "admin_route_authorization")
    assert holes["status"] == "breach" and holes["observed"] == len(UNPROTECTED)
    assert "/api/admin/orders/export answers without an authorization check (200" in holes["detail"]
    assert "a signed-out caller and non-admin probe-member (USER)" in holes["detail"]
    assert "/api/admin/orders/export answers without an authorization check" in report["escalation"]
    assert "No lever here can add a check" in report["escalation"]
    assert report["actions"] == []
    assert (await flags_now(world)) == {} and (await status_incidents_now(world)) == []


async def test_contains_fixes_the_role_claim_after_approval_and_verifies_admins_are_back(
    world: VirtualWorld
) -> None:
    world.start("auth-misconfig")
    await lockout_serving(world)
    p = world.providers(answers=APPROVE)
    report = await run(p)

    assert report["outcome"] == "recovered", report["escalation"]
    assert finding(report, "admin_forbidden_rate")["status"] == "breach"
    assert finding(report, "admin_role_check_failures")["status"] == "breach"
    assert kinds(report, "applied") == [
        "set_feature_flag admin-console=off", "set_feature_flag admin-api=off", "set_auth_setting role_claim='role'",
        "set_feature_flag admin-console=on", "set_feature_flag admin-api=on"]
    fix = next(a for a in report["actions"] if a["kind"] == "set_auth_setting")
    assert fix["risk"] == "destructive" and fix["decision"] == "needs_approval" and fix["approver"] == "alice"
    assert fix["undo"]["value"] == "userRole"  # the undo restores what the dashboard had set
    assert report["verification"]["healthy"] is True and "probe-admin gets in" in report["verification"]["detail"]
    assert (await identity_now(world))["settings"]["role_claim"] == "role"
    assert (await flags_now(world)) == {"admin-console": True, "admin-api": True}
    [posted] = (await status_incidents_now(world))
    assert [u["status"] for u in posted["updates"]] == ["investigating", "resolved"]
    # The evidence names the cause and the standing gap, which is recommended, not changed.
    assert "'userRole'" in evidence(report, "identity")["summary"]
    assert "role_claim 'role' -> 'userRole'" in evidence(report, "identity")["summary"]
    assert "over-restrictive: ADMIN GET /admin" in evidence(report, "access-policy")["summary"]
    assert "requireRole('ADMIN')" in evidence(report, "recommendations")["summary"]
    probed = evidence(report, "access-probe")["items"]
    assert sorted(f"{r['method']} {r['route']}" for r in probed if r["verdict"] == "reached") == UNPROTECTED
    assert [a.answer.value for a in p.store.approvals(report["incident_id"])] == ["approved"]


async def test_denied_fix_leaves_the_setting_and_keeps_the_admin_features_off(world: VirtualWorld) -> None:
    world.start("auth-misconfig")
    await lockout_serving(world)
    report = await run(world.providers(answers=[Scripted(approve=False, approver="bob", reason="not now")]))
    assert report["outcome"] == "denied"
    assert "not approved" in report["escalation"] and "admin features stay off" in report["escalation"]
    assert "set_auth_setting role_claim='role'" not in kinds(report, "applied")
    assert (await identity_now(world))["settings"]["role_claim"] == "userRole"
    assert (await flags_now(world)) == {"admin-console": False, "admin-api": False}
    assert (await status_incidents_now(world))[0]["status"] == "identified"


async def test_a_fix_that_does_not_let_admins_back_in_escalates_and_switches_the_features_off_again(
    world: VirtualWorld
) -> None:
    world.start("auth-misconfig-no-recovery")
    await lockout_serving(world)
    report = await run(world.providers(answers=APPROVE, verify_deadline_s=4.0))
    assert report["outcome"] == "escalated"
    assert report["verification"]["healthy"] is False
    assert "containment kept" in report["escalation"]
    assert kinds(report, "applied")[-2:] == ["set_feature_flag admin-console=off", "set_feature_flag admin-api=off"]
    assert (await identity_now(world))["settings"]["role_claim"] == "role"  # the fix went in; it was not enough
    assert (await flags_now(world)) == {"admin-console": False, "admin-api": False}


async def test_as_is_mode_reads_the_security_events_but_is_unknown_and_changes_nothing(
    world: VirtualWorld
) -> None:
    world.start("auth-misconfig", request_metrics=False)
    await lockout_serving(world)
    report = await run(world.providers(answers=APPROVE))
    assert report["outcome"] == "escalated"
    denials = finding(report, "admin_forbidden_rate")
    assert denials["status"] == "unknown" and denials["observed"] is None
    assert finding(report, "admin_role_check_failures")["status"] == "breach"  # the middleware's lines are real
    assert "denial rate is unknown" in report["escalation"]
    assert report["actions"] == []
    assert (await identity_now(world))["settings"]["role_claim"] == "userRole"
    assert (await flags_now(world)) == {} and (await status_incidents_now(world)) == []


async def test_dry_run_plans_and_records_but_touches_and_posts_nothing(world: VirtualWorld) -> None:
    world.start("auth-misconfig")
    await lockout_serving(world)
    report = await run(world.providers(), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert kinds(report) == ["set_feature_flag admin-console=off", "set_feature_flag admin-api=off",
                             "set_auth_setting role_claim='role'"]
    assert all(a["decision"] == "deny" and not a["applied"] for a in report["actions"])
    assert (await identity_now(world))["settings"]["role_claim"] == "userRole"
    assert (await flags_now(world)) == {} and (await status_incidents_now(world)) == []


async def test_a_revoked_secret_key_is_contained_and_left_to_a_human(world: VirtualWorld) -> None:
    world.start("auth-key-rotated")
    await lockout_serving(world)
    report = await run(world.providers(answers=APPROVE))
    assert report["outcome"] == "escalated"
    assert "no automatic fix" in report["escalation"]
    errored = re.search(r"(\d+) errored admin checks", finding(report, "admin_role_check_failures")["detail"])
    assert errored is not None and int(errored.group(1)) > 0
    assert "revoked" in evidence(report, "recommendations")["summary"]
    # requireRole's own failure (500 "Auth check failed") refuses the non-admin: only the unchecked routes let it in.
    assert finding(report, "non_admin_admin_access")["status"] == "ok"
    assert "set_auth_setting" not in " ".join(kinds(report))
    assert (await flags_now(world))["admin-console"] is False


async def test_over_real_http_on_the_wall_clock_plans_the_containment_and_the_fix_and_touches_nothing(
    sim: Sim, providers: Build
) -> None:
    """The identification against a real simulator server: real sockets, admins locked out for real seconds."""
    server = sim("auth-misconfig")
    wait_for_lockout(server)
    report = await run(providers(server.url), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert finding(report, "admin_forbidden_rate")["status"] == "breach"
    assert kinds(report) == ["set_feature_flag admin-console=off", "set_feature_flag admin-api=off",
                             "set_auth_setting role_claim='role'"]
    assert identity(server)["settings"]["role_claim"] == "userRole"
    assert flags(server) == {} and status_incidents(server) == []
