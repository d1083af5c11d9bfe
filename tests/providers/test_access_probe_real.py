"""The access probe against the real kamkmserve's captured answers to signed-out admin requests (default-6*.http),
replayed over real HTTP on 127.0.0.1: what each answer means, and that the probe never sends a mutating request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from remediation.providers.access_probe import ADMIN_ROUTES, AccessProbe, AdminRoute
from remediation.providers.budget import RequestBudget
from remediation.providers.http import AppHttp
from remediation.replay import ReplayServer

ADMIN_CAPTURES = (
    "default-6a-get-api-admin-orders-unauth.http", "default-6b-get-api-admin-services-unauth.http",
    "default-6c-patch-api-admin-upgrade-role-unauth.http",
    "default-6d-get-api-admin-orders-export-no-handler-check.http",
    "default-6e-get-api-admin-coupons-abc-no-handler-check.http", "default-6f-get-admin-page-headers-only.http",
    "default-6g-get-admin-orders-with-basic-auth-header.http",
)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve"


@pytest.fixture
def real_app() -> Iterator[ReplayServer]:
    with ReplayServer(FIXTURES, pattern="default-6*.http") as app:  # exactly the ADMIN_CAPTURES
        assert sorted(c.name for seq in app.captures.values() for c in seq) == sorted(ADMIN_CAPTURES)
        yield app


def signed_out_probe(app: ReplayServer, routes: tuple[AdminRoute, ...] = ADMIN_ROUTES) -> AccessProbe:
    return AccessProbe(AppHttp(app.url, RequestBudget(100)), user=None, admin=None, routes=routes)


async def test_each_captured_signed_out_answer_is_read_as_the_real_app_means_it(real_app: ReplayServer) -> None:
    """401 and a redirect to sign in refuse; the export's 500 with the database's error is a handler that ran with no
    check (named with its answer); the item route's bodiless 405 says nothing about authorization."""
    routes = tuple(AdminRoute(method="GET", path=path, route=path, guard=guard) for path, guard in (
        ("/api/admin/orders", "ADMIN"), ("/api/admin/services", "ADMIN"), ("/api/admin/orders/export", "none"),
        ("/api/admin/coupons/abc", "none"), ("/admin", "middleware"), ("/admin/orders", "middleware")))
    report = await signed_out_probe(real_app, routes).signed_out()
    by_route = {r.route: r for r in report.results}
    assert {route: r.verdict for route, r in by_route.items()} == {
        "/api/admin/orders": "rejected", "/api/admin/services": "rejected", "/api/admin/orders/export": "reached",
        "/api/admin/coupons/abc": "unknown", "/admin": "rejected", "/admin/orders": "rejected"}
    assert by_route["/api/admin/orders/export"].answer == \
        '500 {"error":"Error connecting to database: TypeError: fetch failed"}'
    assert by_route["/admin"].detail == "307: sent to sign in"
    assert report.identity == "signed-out" and report.role == "ANONYMOUS"


async def test_the_reference_routes_are_probed_with_get_only_and_no_session(real_app: ReplayServer) -> None:
    """The PATCH-only upgrade-role (captured 6c), the item routes' PATCH and mark-paid's POST are listed as skipped,
    never sent: the real app only ever sees GETs without a cookie."""
    report = await signed_out_probe(real_app).signed_out()
    assert {r.method for r in real_app.requests} == {"GET"}
    assert not any(r.path.startswith("/api/admin/upgrade-role") for r in real_app.requests)
    skipped = {f"{r.method} {r.route}" for r in report.skipped}
    assert skipped == {f"{r.method} {r.route}" for r in ADMIN_ROUTES if not r.read_only}
    assert "PATCH /api/admin/upgrade-role" in skipped and "POST /api/admin/payouts/[id]/mark-paid" in skipped
    assert all("never sends a method that can change a record" in r.detail for r in report.skipped)
    assert [r.route for r in report.reached] == ["/api/admin/orders/export"]
    assert len(real_app.requests) == len(ADMIN_ROUTES) - len(skipped)
