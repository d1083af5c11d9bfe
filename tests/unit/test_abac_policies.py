"""ABAC as data: kamkmserve's admin policy, its decisions, and violations found in recorded access decisions."""

from __future__ import annotations

import json

import pytest

from remediation.providers.abac import (
    KAMKMSERVE_ADMIN_POLICY,
    AccessRecord,
    Policy,
    Rule,
    evaluate,
    records_from_events,
    records_from_probe,
    route_of,
    subjects,
)
from remediation.providers.access_probe import AccessReport, RouteResult
from remediation.providers.logparse import parse_line

POLICY = KAMKMSERVE_ADMIN_POLICY


@pytest.mark.parametrize(("role", "method", "path", "effect"), [
    ("ADMIN", "GET", "/admin", "allow"),
    ("ADMIN", "GET", "/admin/orders", "allow"),
    ("ADMIN", "PATCH", "/api/admin/coupons/abc", "allow"),
    ("SUPERADMIN", "PATCH", "/api/admin/upgrade-role", "allow"),
    ("ADMIN", "PATCH", "/api/admin/upgrade-role", "deny"),  # deny wins over the admin-area allow
    ("USER", "GET", "/admin", "deny"),
    ("USER", "PATCH", "/api/admin/coupons/abc", "deny"),
    ("ANONYMOUS", "GET", "/api/admin/orders/export", "deny"),
    ("ADMIN", "GET", "/administrator", "deny"),  # a prefix of a segment is not the admin area
])
def test_the_admin_policy_decides_like_the_app_intends(role: str, method: str, path: str, effect: str) -> None:
    assert POLICY.decide(role, method, path)[0] == effect


def test_policies_are_plain_data_that_round_trip_through_json() -> None:
    again = Policy.model_validate(json.loads(POLICY.model_dump_json()))
    assert again == POLICY
    only = Rule(roles=("USER",), methods=("GET",), paths=("/api/admin/orders/[id]",))
    custom = Policy(name="orders-only", rules=(only,))
    assert custom.decide("USER", "GET", "/api/admin/orders/42")[0] == "allow"
    assert custom.decide("USER", "GET", "/api/admin/orders/42/items")[0] == "deny"  # [id] is one segment
    assert custom.decide("USER", "PATCH", "/api/admin/orders/42")[0] == "deny"


def record(role: str, method: str, path: str, allowed: bool) -> AccessRecord:
    return AccessRecord(subject="u", role=role, method=method, path=path, allowed=allowed, source="test")


def test_violations_are_over_permissive_or_over_restrictive_and_agreement_is_not_one() -> None:
    report = evaluate(POLICY, [
        record("USER", "PATCH", "/api/admin/coupons/x", True),  # a customer got through: over-permissive
        record("ADMIN", "GET", "/admin", False),  # an admin refused: over-restrictive
        record("ADMIN", "GET", "/admin", True), record("USER", "GET", "/admin", False),  # as intended
    ])
    assert report.evaluated == 4
    assert [v.record.role for v in report.over_permissive] == ["USER"]
    assert [v.record.role for v in report.over_restrictive] == ["ADMIN"]
    assert "1 over-restrictive and 1 over-permissive of 4" in report.summary()
    assert evaluate(POLICY, [record("ADMIN", "GET", "/admin", True)]).violations == ()


def line(message: str, context: dict[str, object], path: str = "/admin/orders") -> str:
    at = "2026-01-01T00:00:00.000Z"
    return json.dumps({"timestamp": at, "level": "warn", "message": f"Security event: {message}",
                       "context": {**context, "securityEvent": True, "timestamp": at},
                       "path": path, "method": "GET", "ip": "203.0.113.9"})


def test_security_events_become_decisions_judged_by_each_users_real_role() -> None:
    raw = [
        line("Admin role check - Clerk claims debug", {"feature": "admin_role_debug", "userId": "user_admin",
                                                         "hasSessionClaims": True, "claimsKeys": ["sub"]}),
        line("Admin role check failed", {"feature": "admin_role_check", "userId": "user_admin", "role": "USER"}),
        line("Admin role check failed", {"feature": "admin_role_check", "userId": "user_cust", "role": "USER"}),
        line("Admin role check - Clerk claims debug", {"feature": "admin_role_debug", "userId": "user_boss",
                                                         "directRole": "ADMIN", "claimRole": "ADMIN",
                                                         "hasSessionClaims": True, "claimsKeys": ["role", "sub"]}),
        line("Role cache miss or invalid", {"feature": "role_cache", "cookiePresent": False}),
    ]
    lines = [parsed for text in raw if (parsed := parse_line(text)) is not None]
    assert subjects(lines) == ["user_admin", "user_boss", "user_cust"]
    records = records_from_events(lines, {"user_admin": "ADMIN", "user_cust": None})
    assert [(r.subject, r.role, r.allowed) for r in records] == [
        ("user_admin", "ADMIN", False), ("user_cust", "USER", False), ("user_boss", "ADMIN", True)]
    report = evaluate(POLICY, records)
    assert [(v.kind, v.record.subject) for v in report.violations] == [("over_restrictive", "user_admin")]
    assert report.groups() == [("over-restrictive: ADMIN GET /admin/orders", 1)]


def test_probe_answers_become_decisions_and_unknown_answers_are_left_out() -> None:
    probe = AccessReport(identity="probe-member", role="USER", results=(
        RouteResult(method="PATCH", route="/api/admin/coupons/[id]", guard="none", status=200, verdict="reached"),
        RouteResult(method="GET", route="/api/admin/orders", guard="ADMIN", status=403, verdict="rejected"),
        RouteResult(method="GET", route="/api/admin/blogs", guard="ADMIN", status=429, verdict="unknown"),
    ))
    records = records_from_probe(probe)
    assert [(r.path, r.allowed) for r in records] == [("/api/admin/coupons/[id]", True), ("/api/admin/orders", False)]
    report = evaluate(POLICY, records)
    assert [v.kind for v in report.violations] == ["over_permissive"]


def test_route_of_collapses_ids_of_admin_api_paths_only() -> None:
    assert route_of("/api/admin/orders/5b0e0c2a-0000-4000") == "/api/admin/orders/[id]"
    assert route_of("/api/admin/payouts/p1/mark-paid") == "/api/admin/payouts/[id]/mark-paid"
    assert route_of("/api/admin/orders/export") == "/api/admin/orders/export"
    assert route_of("/api/admin/upgrade-role") == "/api/admin/upgrade-role"
    assert route_of("/admin/orders") == "/admin/orders"
