"""kamkmserve's routes as a signed-out curl or a simulated signed-in user meets them.

One dispatcher serves both real HTTP requests and simulated traffic, so a fault or an outage shows up the
same way in either. Route behaviour follows the handlers in src/app (auth check first, then database work
inside a try/catch that ``console.error``s and answers the handler's own 500 body).
"""

from __future__ import annotations

import base64
import binascii
import math
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kamkmserve_sim.applog import AppLog, RequestFields
from kamkmserve_sim.collector import AppError, MetricsCollector
from kamkmserve_sim.faults import DATABASE_DOWN, RELEASE_BUG, Fault, stack_for
from kamkmserve_sim.jsfmt import js_json
from kamkmserve_sim.uploads import AuditWriter, UploadFile, UploadQuota, UploadRequest, UploadRules, handle_upload

if TYPE_CHECKING:
    from kamkmserve_sim.database import AppDatabase
    from kamkmserve_sim.identity import SimIdentity

Shape = Literal["api", "page", "redirect", "not_found"]

PAGES = ("/", "/services", "/blog", "/pricing", "/about", "/contact", "/portfolio")
_ADMIN_COLLECTIONS = ("services", "blogs", "coupons", "orders", "referrals", "commissions", "payouts")
_ADMIN_ITEM = re.compile(r"^/api/admin/(" + "|".join(_ADMIN_COLLECTIONS) + r")/[^/]+$")
_MARK_PAID = re.compile(r"^/api/admin/payouts/[^/]+/mark-paid$")
AUDIT_TABLE_MISSING = 'relation "kamkmserve_audit_log" does not exist'


@dataclass(frozen=True)
class AppRequest:
    method: str
    path: str
    forwarded_for: str | None = None  # raw, as the app sees it (Next fills in the peer address if absent)
    real_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    role: str | None = None  # None: signed out (every real HTTP request: there is no Clerk session)
    content_type: str = ""
    upload: UploadFile | None = None
    json_body: object = None
    authorization: str | None = None
    session: str | None = None  # the Clerk ``__session`` cookie of a real HTTP request (kamkmserve_sim.identity)

    def fields(self) -> RequestFields:
        return RequestFields(path=self.path, method=self.method, request_id=self.request_id,
                             user_agent=self.user_agent, ip=self.forwarded_for or self.real_ip)


@dataclass(frozen=True)
class Outcome:
    status: int
    shape: Shape
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    duration_ms: int = 1
    exception: AppError | None = None  # caught in the handler (what an error tracker would report)


@dataclass
class RouteEnv:
    """What a handler can reach: the current instance's collector and stores, the active faults."""

    rng: random.Random
    log: AppLog
    collector: MetricsCollector
    upload_quota: UploadQuota
    request_metrics: bool
    now_ms: int
    release_fault: Fault | None = None
    dependency_fault: Fault | None = None
    av_mode: str = "off"
    # In the simulated world the database is up but the audit table was never migrated. None: the ``audit`` sink
    # decides (kamkmserve_sim.security_audit); a string: every audit write fails with it (an outage).
    audit_error: str | None = AUDIT_TABLE_MISSING
    audit: AuditWriter | None = None
    upload_rules: UploadRules | None = None  # allowlists and the AV hook (kamkmserve_sim.security)
    # The database scenarios (slow query, lock contention) reach handlers through this; None: no effect.
    database: AppDatabase | None = None
    # Clerk and the admin role checks (kamkmserve_sim.identity); None: the role on the request decides.
    identity: SimIdentity | None = None


def latency(rng: random.Random, median_ms: float, sigma: float = 0.45) -> int:
    """Log-normal service time: most requests near the median, a long tail."""
    return max(1, round(median_ms * math.exp(rng.gauss(0.0, sigma))))


def dispatch(request: AppRequest, env: RouteEnv) -> Outcome:
    path, method = request.path, request.method
    if path == "/api/uploads":
        return _uploads(request, env) if method == "POST" else _api_status(405, env, 8)
    if path.startswith("/api/") or path == "/api":
        return _api(request, env)
    if path == "/admin" or path.startswith("/admin/"):
        return _admin_page(request, env)
    if path in PAGES and method in ("GET", "HEAD"):
        return _page(request, env)
    return Outcome(404, "not_found", duration_ms=latency(env.rng, 25))


def _api(request: AppRequest, env: RouteEnv) -> Outcome:
    path, method = request.path, request.method
    if path == "/api/cart" and method in ("GET", "DELETE"):
        return _user_handler(request, env, ("SELECT", "kamkmserve_cart"), "Failed to load cart"
                             if method == "GET" else "Failed to clear cart", 60)
    if path == "/api/cart/items" and method == "POST":
        return _user_handler(request, env, ("INSERT", "kamkmserve_cart_item"), "Failed to add to cart", 80)
    if path == "/api/checkout" and method == "POST":
        return _user_handler(request, env, ("INSERT", "kamkmserve_order"), "Failed to checkout", 180)
    if path == "/api/contact" and method == "POST":
        return _contact(request, env)
    if path in ("/api/cart", "/api/cart/items", "/api/checkout", "/api/contact"):
        return _api_status(405, env, 6)
    if path.startswith("/api/admin/"):
        return _admin_api(request, env)
    return Outcome(404, "not_found", duration_ms=latency(env.rng, 25))


def _admin_api(request: AppRequest, env: RouteEnv) -> Outcome:
    path, method = request.path, request.method
    if path in ("/api/admin/orders/export", "/api/admin/payouts/export") and method == "GET":
        # No auth check at all in these handlers (the authorization gap of docs/reference/kamkmserve.md §6.2); a
        # failure answers the raw error message and logs nothing.
        return _business(request, env, ("SELECT", "kamkmserve_order"), None, 120, ok=_export_csv(path))
    if path == "/api/admin/upgrade-role" and method == "PATCH":
        return _role_gated(request, env, "SUPERADMIN", ("UPDATE", "kamkmserve_user"), "Failed to upgrade role")
    collection = path.removeprefix("/api/admin/")
    if collection in _ADMIN_COLLECTIONS and method in ("GET", "POST"):
        return _role_gated(request, env, "ADMIN", ("SELECT", f"kamkmserve_{collection.rstrip('s')}"),
                           f"Failed to fetch {collection}")
    if path.startswith("/api/admin/orders/") and _ADMIN_ITEM.match(path) and method == "GET":
        # GET orders/[id] checks no role at all (docs/reference/kamkmserve.md §6.2).
        return _business(request, env, ("SELECT", "kamkmserve_order"), "Failed to fetch order", 60)
    if _MARK_PAID.match(path) and method == "POST":  # payouts/[id]/mark-paid: no check either
        return _business(request, env, ("UPDATE", "kamkmserve_payout"), "Failed to mark payout as paid", 70)
    if path.startswith("/api/admin/orders/") and _ADMIN_ITEM.match(path) and method == "PATCH":
        # PATCH orders/[id] is the one item route with requireRole('ADMIN') (docs/reference/kamkmserve.md §6.2).
        return _role_gated(request, env, "ADMIN", ("UPDATE", "kamkmserve_order"), "Failed to update order")
    if _ADMIN_ITEM.match(path) and method in ("PATCH", "DELETE"):
        failure = "Failed to update order" if path.startswith("/api/admin/orders/") else "Failed to update"
        return _business(request, env, ("UPDATE", "kamkmserve_order"), failure, 70)
    if _ADMIN_ITEM.match(path) or collection in _ADMIN_COLLECTIONS:
        return _api_status(405, env, 6)
    return Outcome(404, "not_found", duration_ms=latency(env.rng, 25))


def _user_handler(request: AppRequest, env: RouteEnv, db: tuple[str, str], failure: str,
                  median_ms: float) -> Outcome:
    signed_in = request.role is not None or (env.identity is not None and env.identity.principal(request) is not None)
    if not signed_in:  # getCurrentUserRole() without a Clerk session
        return _json(401, {"error": "Unauthorized"}, env, 12)
    return _business(request, env, db, failure, median_ms)


def _role_gated(request: AppRequest, env: RouteEnv, needed: str, db: tuple[str, str], failure: str) -> Outcome:
    if env.identity is not None:
        status, stack = env.identity.require_role(request, needed)
        if status == 500 and stack is not None:
            env.log.print_raw("stderr", stack)  # requireRole's console.error(e)
            return _json(500, {"error": "Auth check failed"}, env, 40)
        if status in (401, 403):
            return _json(status, {"error": "Unauthorized" if status == 401 else "Forbidden"}, env,
                         12 if status == 401 else 25)  # requireRole denials are never logged
        return _business(request, env, db, failure, 90)
    if request.role is None:
        return _json(401, {"error": "Unauthorized"}, env, 12)
    rank = {"USER": 0, "ADMIN": 1, "SUPERADMIN": 2}
    if rank.get(request.role, 0) < rank[needed]:
        return _json(403, {"error": "Forbidden"}, env, 25)  # requireRole denials are never logged
    return _business(request, env, db, failure, 90)


def _business(request: AppRequest, env: RouteEnv, db: tuple[str, str], failure: str | None, median_ms: float,
              ok: Outcome | None = None) -> Outcome:
    """The handler's try block: one query, then code that may hit the release's bug.

    ``failure`` is the handler's own 500 message after ``console.error(e)``; None means the handler answers
    the exception's message instead and logs nothing (the export routes).
    """
    release = env.release_fault if env.release_fault and env.release_fault.applies_to(request.path) else None
    outage = env.dependency_fault if env.dependency_fault and env.dependency_fault.applies_to(request.path) else None
    duration = latency(env.rng, median_ms) + (release.extra_latency_ms if release else 0)
    own_db_ms = max(1, round(duration * 0.4))
    operation, table = db
    exception: AppError | None = None
    scenario = env.database.run(request, operation, table, env) if env.database is not None else None
    if scenario is not None:
        duration += scenario.extra_ms
    if scenario is not None and scenario.error is not None:
        exception = scenario.error  # logged and recorded by the scenario as the db.execute wrapper would
    elif outage is not None and env.rng.random() < outage.error_share:
        exception = DATABASE_DOWN
        db_ms = latency(env.rng, 600, 0.6) + outage.extra_latency_ms  # the driver waits for its fetch to fail
        duration += db_ms
        if env.request_metrics:
            env.log.log("error", f"DB {operation} on {table} failed", {"duration": db_ms})
            env.collector.record_database_operation(operation, table, db_ms, False, _with_stack(exception, request))
    else:
        db_ms = own_db_ms
        if env.request_metrics:
            rows = env.rng.randint(0, 6)
            env.log.log("info", f"Database operation: {operation} on {table}",
                        {"rows": rows, "operation": operation, "table": table, "duration": db_ms, "database": True})
            env.collector.record_database_operation(operation, table, db_ms, True)
        if release is not None and env.rng.random() < release.error_share:
            exception = RELEASE_BUG
    if exception is not None:
        if failure is not None:
            env.log.print_raw("stderr", stack_for(exception, request.path))  # console.error(e)
        failed = _json(500, {"error": failure if failure is not None else exception.message}, env, 1)
        return Outcome(500, "api", failed.body, failed.content_type, duration_ms=duration,
                       exception=_with_stack(exception, request))
    if ok is not None:
        return Outcome(200, "api", ok.body, ok.content_type, ok.headers, duration_ms=duration)
    body: dict[str, object] = {"data": {"ok": True}}
    headers: tuple[tuple[str, str], ...] = ()
    if request.path == "/api/cart":
        body = {"data": {"items": [], "totals": {"subtotal": 0, "tax": 0, "total": 0}}}
        headers = (("cache-control", "private, max-age=0, no-store"),)
    elif request.path == "/api/checkout":
        body = {"data": {"orderId": f"ord_{env.rng.getrandbits(48):012x}", "totalAmount": 4900}}
    answer = _json(200, body, env, 1)
    return Outcome(200, "api", answer.body, answer.content_type, headers, duration_ms=duration)


def _export_csv(path: str) -> Outcome:
    name = "orders" if "/orders/" in path else "payouts"
    header = ("id,userId,couponId,status,currency,totalAmount,requirements,suggestions,preferences,questions,"
              "metadata,referralId,createdAt,updatedAt\n")
    return Outcome(200, "api", header.encode(), "text/csv",
                   (("content-disposition", f'attachment; filename="{name}.csv"'),))


def _with_stack(error: AppError, request: AppRequest) -> AppError:
    return AppError(error.name, error.message, stack_for(error, request.path))


def _contact(request: AppRequest, env: RouteEnv) -> Outcome:
    body = request.json_body
    if not isinstance(body, dict):
        return _json(400, {"error": "Invalid JSON"}, env, 8)
    fields_ok = all(isinstance(body.get(k), str) and body.get(k) for k in ("name", "email", "message"))
    if not fields_ok or "@" not in str(body.get("email")):
        return _json(400, {"error": "Invalid fields", "issues": []}, env, 8)
    return _json(200, {"ok": True}, env, 350)  # Resend round trip


def _uploads(request: AppRequest, env: RouteEnv) -> Outcome:
    duration = latency(env.rng, 4, 0.5)
    answer = handle_upload(
        UploadRequest(request.forwarded_for, request.real_ip, request.user_agent, request.content_type,
                      request.upload),
        quota=env.upload_quota, collector=env.collector, log=env.log, now_ms=env.now_ms,
        duration_ms=duration, av_mode=env.av_mode,
        audit_error=env.audit_error, rules=env.upload_rules, audit=env.audit,
    )
    return Outcome(answer.status, "api", js_json(answer.body).encode(), "application/json", answer.headers,
                   duration_ms=duration)


def _admin_page(request: AppRequest, env: RouteEnv) -> Outcome:
    principal = env.identity.principal(request) if env.identity is not None else None
    if env.identity is not None and principal is not None:  # signed in: the middleware's admin gate
        if env.identity.middleware(request, principal, env.log) == "allow":
            return Outcome(200, "page", duration_ms=latency(env.rng, 110))
        return Outcome(403, "api", b"Forbidden", "text/plain;charset=UTF-8", duration_ms=latency(env.rng, 30))
    if request.authorization and request.authorization.startswith("Basic "):
        user = _basic_user(request.authorization)
        env.log.security("Admin Basic Auth attempt failed",
                         {"feature": "admin_basic_bypass", "enabled": False, "user": user}, request.fields())
    return Outcome(307, "redirect", duration_ms=latency(env.rng, 15))


def _basic_user(header: str) -> str:
    try:
        decoded = base64.b64decode(header[6:], validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
    return decoded.split(":", 1)[0]


def _page(request: AppRequest, env: RouteEnv) -> Outcome:
    release = env.release_fault if env.release_fault and env.release_fault.applies_to(request.path) else None
    duration = latency(env.rng, 90) + (release.extra_latency_ms if release else 0)
    if release is not None and env.rng.random() < release.error_share:
        env.log.print_raw("stderr", stack_for(RELEASE_BUG, request.path))
        return Outcome(500, "page", duration_ms=duration, exception=_with_stack(RELEASE_BUG, request))
    return Outcome(200, "page", duration_ms=duration)


def _api_status(status: int, env: RouteEnv, median_ms: float) -> Outcome:
    return Outcome(status, "api", duration_ms=latency(env.rng, median_ms))


def _json(status: int, body: dict[str, object], env: RouteEnv, median_ms: float) -> Outcome:
    return Outcome(status, "api", js_json(body).encode(), "application/json",
                   duration_ms=latency(env.rng, median_ms))
