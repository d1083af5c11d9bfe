"""The access probe: which admin routes let a non-admin through, whether an admin gets in, the denial counts."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from kamkmserve_sim import SimServer

from remediation.providers.access_probe import (
    ADMIN_ROUTES,
    AccessProbe,
    ProbeIdentity,
    parse_denials,
)
from remediation.providers.budget import RequestBudget
from remediation.providers.http import AppHttp
from remediation.providers.sim_identity import PROBE_ADMIN_SESSION, PROBE_USER_SESSION, SESSION_COOKIE
from tests.helpers import local_http

Start = Callable[..., SimServer]
MEMBER = ProbeIdentity(name="probe-member", role="USER", cookies={SESSION_COOKIE: PROBE_USER_SESSION})
ADMIN = ProbeIdentity(name="probe-admin", role="ADMIN", cookies={SESSION_COOKIE: PROBE_ADMIN_SESSION})
# docs/reference/kamkmserve.md §6.2, "No check at all": the ones a GET can reach. The rest serve mutating methods
# only and are skipped.
UNPROTECTED = {"GET /api/admin/orders/[id]", "GET /api/admin/orders/export", "GET /api/admin/payouts/export"}
SKIPPED = {
    "PATCH /api/admin/blogs/[id]", "PATCH /api/admin/commissions/[id]", "PATCH /api/admin/coupons/[id]",
    "PATCH /api/admin/payouts/[id]", "PATCH /api/admin/referrals/[id]", "PATCH /api/admin/services/[id]",
    "POST /api/admin/payouts/[id]/mark-paid", "PATCH /api/admin/upgrade-role",
}


def probe_for(url: str, per_minute: int = 100, transport: httpx.AsyncBaseTransport | None = None) -> AccessProbe:
    return AccessProbe(AppHttp(url, RequestBudget(per_minute), transport=transport), user=MEMBER, admin=ADMIN)


async def test_the_probe_finds_exactly_the_unprotected_admin_routes_of_the_reference(start_sim: Start) -> None:
    server = start_sim(scenario="healthy", rps=0)
    report = await probe_for(server.url).non_admin()
    assert {f"{r.method} {r.route}" for r in report.reached} == UNPROTECTED
    assert {f"{r.method} {r.route}" for r in report.skipped} == SKIPPED
    assert report.unknown == [] and report.unexpected == []
    rejected = {f"{r.method} {r.route}": r.status for r in report.results if r.verdict == "rejected"}
    assert rejected["GET /admin"] == 403 and rejected["GET /api/admin/orders"] == 403
    assert len(rejected) == len(ADMIN_ROUTES) - len(UNPROTECTED) - len(SKIPPED)


async def test_signed_out_the_probe_finds_the_unchecked_routes_and_keeps_no_body_of_a_success(start_sim: Start) -> None:
    """No session at all: the checked routes answer 401 or send to sign in; the unchecked ones run. An unchecked
    export answers with data, so the answer shown is its size and type, never its content."""
    server = start_sim(scenario="healthy", rps=0)
    report = await probe_for(server.url).signed_out()
    assert {f"{r.method} {r.route}" for r in report.reached} == UNPROTECTED
    refused = {r.route: r.status for r in report.results if r.verdict == "rejected"}
    assert refused["/admin"] == 307 and refused["/api/admin/orders"] == 401
    export = next(r for r in report.reached if r.route == "/api/admin/orders/export")
    assert export.status == 200 and "bytes of" in export.answer and "," in export.answer


async def test_the_admin_test_user_gets_in_and_the_denials_are_counted(start_sim: Start) -> None:
    server = start_sim(scenario="auth-misconfig", rps=0, onset_s=3600.0)
    probe = probe_for(server.url)
    access = await probe.admin_access()
    assert access.ok is True and [r.status for r in access.results] == [200, 200]
    stats = await probe.denials(500)
    assert stats.available and stats.admin.total >= 5 and stats.admin.forbidden < stats.admin.total


async def test_a_locked_out_admin_is_reported_refused(start_sim: Start) -> None:
    server = start_sim(scenario="auth-misconfig", rps=0, onset_s=0.0)
    local_http.patch(f"{server.url}/_sim/identity", json={"name": "role_claim", "value": "userRole"}, timeout=5)
    access = await probe_for(server.url).admin_access()
    assert access.ok is False and "refused" in access.detail


async def test_a_429_or_a_spent_budget_is_never_a_verdict() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "30"}, text="Too Many Requests")

    report = await probe_for("http://app", transport=httpx.MockTransport(answer)).non_admin()
    sent = [r for r in report.results if r.verdict != "skipped"]
    assert {r.verdict for r in sent} == {"unknown"}  # the first 429 blocks the rest of the budget too
    assert "429" in report.results[0].detail and report.results[1].detail.startswith("not sent")
    assert report.reached == []


async def test_no_handler_is_unknown_redirects_and_failed_auth_checks_refuse_a_json_500_reached_the_handler() -> None:
    answers = {"/admin": httpx.Response(307, headers={"location": "/sign-in"}),
               "/api/admin/orders/export": httpx.Response(500, json={"error": "db down"}),
               "/api/admin/blogs": httpx.Response(500, content=b'{"error":"Auth check failed"}',
                                                  headers={"content-type": "application/json"}),
               "/api/admin/payouts/export": httpx.Response(404, text="<html>404</html>",
                                                           headers={"content-type": "text/html"})}

    def answer(request: httpx.Request) -> httpx.Response:
        return answers.get(request.url.path, httpx.Response(403, json={"error": "Forbidden"}))

    report = await probe_for("http://app", transport=httpx.MockTransport(answer)).non_admin()
    verdicts = {r.route: r.verdict for r in report.results}
    assert verdicts["/admin"] == "rejected"
    assert verdicts["/api/admin/orders/export"] == "reached"  # the handler's own failure: it ran, unchecked
    assert verdicts["/api/admin/blogs"] == "rejected"  # requireRole threw: refused, fail closed
    assert verdicts["/api/admin/payouts/export"] == "unknown"


async def test_a_redirect_anywhere_but_sign_in_is_not_a_verdict() -> None:
    """The production HTTPS redirect (docs/reference/kamkmserve.md §6.1) answers before any check runs: it neither
    refuses nor lets in."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"location": f"https://shop.example{request.url.path}"})

    report = await probe_for("http://app", transport=httpx.MockTransport(answer)).signed_out()
    assert {r.verdict for r in report.results if r.verdict != "skipped"} == {"unknown"}
    assert "not to sign in" in report.results[0].detail


async def test_requests_carry_the_session_and_are_bodiless_gets_only() -> None:
    seen: list[tuple[str, str, str, bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("cookie", ""), request.content))
        return httpx.Response(403, json={"error": "Forbidden"})

    await probe_for("http://app", transport=httpx.MockTransport(answer)).non_admin()
    assert all(cookie == f"{SESSION_COOKIE}={PROBE_USER_SESSION}" for _, _, cookie, _ in seen)
    assert all(body == b"" for _, _, _, body in seen)
    assert {m for m, _, _, _ in seen} == {"GET"}  # never a method that can change a record
    assert len(seen) == len(ADMIN_ROUTES) - len(SKIPPED)
    assert all("remediate-probe-0000" in path for _, path, _, _ in seen if "/orders/" in path and "export" not in path)


def test_denials_count_401_and_403_on_the_admin_pages_and_api_only() -> None:
    page = "\n".join([
        "# HELP process_uptime_seconds Process uptime in seconds", "# TYPE process_uptime_seconds gauge",
        "process_uptime_seconds 12.5",
        "# HELP http_requests_total Total HTTP requests observed", "# TYPE http_requests_total counter",
        'http_requests_total{method="GET",path="/admin/orders",status="403"} 1',
        'http_requests_total{method="GET",path="/admin",status="200"} 1',
        'http_requests_total{method="GET",path="/api/admin/orders",status="401"} 1',
        'http_requests_total{method="GET",path="/api/admin/orders",status="403"} 1',
        'http_requests_total{method="GET",path="/api/cart",status="401"} 1',
        'http_requests_total{method="GET",path="/administrator",status="403"} 1', ""])
    stats = parse_denials(page, 500)
    assert stats.records == 6
    assert (stats.pages.total, stats.pages.forbidden) == (2, 1)
    assert (stats.api.total, stats.api.unauthorized, stats.api.forbidden) == (2, 1, 1)
    assert stats.admin.forbidden_pct == 50.0
    assert parse_denials(page, 2).admin.total == 0  # only the last two records count


def test_a_page_without_request_records_is_unknown_and_garbage_is_refused() -> None:
    empty = "# HELP http_requests_total Total HTTP requests observed\n# TYPE http_requests_total counter\n"
    assert parse_denials(empty, 500).available is False
    try:
        parse_denials("<<<not metrics>>>", 500)
    except ValueError:
        pass
    else:
        raise AssertionError("garbage must not parse")
