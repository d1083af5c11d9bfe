"""Who gets into kamkmserve's admin area: the app's own denial counts, and probes with known identities.

* :meth:`AccessProbe.denials` reads the request records of ``/api/monitoring/metrics`` (dead in the app as it is:
  then every figure is unknown) and counts 401 and 403 answers on the admin pages and the admin API.
* :meth:`AccessProbe.signed_out` and :meth:`AccessProbe.non_admin` call every admin route of
  docs/reference/kamkmserve.md §6.2 with no session and with a signed-in **non-admin** session, and report the routes
  that do not refuse the caller. The real app has routes with no check at all (§6.2; ``/api/admin/orders/export``
  answers a signed-out caller with the database's error, observed at runtime); they are evidence and a
  recommendation, never fixed by a robot. The probe is **read-only**: it sends GET and nothing else, to an id that
  does not exist where a route takes one. A route that serves only mutating methods (``upgrade-role``, the item
  routes' PATCH/DELETE, ``mark-paid``) is listed but not called: its result is ``skipped`` and says so.
* :meth:`AccessProbe.admin_access` opens the admin page and one admin API with an **admin** session: the check that
  admins are back in after a fix.

Everything goes through the app HTTP client, so it spends the same budget as every reader of the app (100
requests/min per IP, docs/reference/kamkmserve.md §8): a request the budget refuses is not sent and a 429 is the rate
limit talking, not the app's access control. Both are ``unknown`` for that route, never a verdict.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from remediation.providers.http import AppHttp, Fetched
from remediation.providers.metrics import METRICS_PATH

AUTH_CHECK_FAILED = '{"error":"Auth check failed"}'  # requireRole's answer when the check itself throws (§6.2)
PROBE_ID = "remediate-probe-0000"  # an id no record has: a handler that runs finds nothing to change
Guard = Literal["middleware", "ADMIN", "SUPERADMIN", "none"]
RouteVerdict = Literal["rejected", "reached", "unknown", "skipped"]
#: What the probe may send to the real app: nothing that can change a record, whatever the handler does.
READ_ONLY = frozenset({"GET", "HEAD"})


class AdminRoute(BaseModel):
    model_config = ConfigDict(frozen=True)

    method: str
    path: str  # as probed (an item route carries PROBE_ID)
    route: str  # as the app names it, e.g. /api/admin/coupons/[id]
    guard: Guard  # what docs/reference/kamkmserve.md §6.2 says protects it

    @property
    def read_only(self) -> bool:
        return self.method in READ_ONLY


def _item(collection: str, method: str = "PATCH", suffix: str = "") -> AdminRoute:
    return AdminRoute(method=method, path=f"/api/admin/{collection}/{PROBE_ID}{suffix}",
                      route=f"/api/admin/{collection}/[id]{suffix}", guard="none")


#: The admin routes of docs/reference/kamkmserve.md §6.2. The item routes serve PATCH/DELETE only (a GET answers
#: 405, captured ``default-6e``), so they, ``upgrade-role`` and ``mark-paid`` are listed by their mutating method
#: and skipped by the probe.
ADMIN_ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute(method="GET", path="/admin", route="/admin", guard="middleware"),
    *(AdminRoute(method="GET", path=f"/api/admin/{c}", route=f"/api/admin/{c}", guard="ADMIN")
      for c in ("services", "blogs", "coupons", "referrals", "commissions", "payouts", "orders")),
    AdminRoute(method="PATCH", path="/api/admin/upgrade-role", route="/api/admin/upgrade-role", guard="SUPERADMIN"),
    *(_item(c) for c in ("blogs", "commissions", "coupons", "payouts", "referrals", "services")),
    _item("orders", "GET"),
    AdminRoute(method="GET", path="/api/admin/orders/export", route="/api/admin/orders/export", guard="none"),
    AdminRoute(method="GET", path="/api/admin/payouts/export", route="/api/admin/payouts/export", guard="none"),
    _item("payouts", "POST", "/mark-paid"),
)
#: What the admin access check opens: the page behind the middleware gate and one requireRole('ADMIN') handler.
ADMIN_CHECKS: tuple[AdminRoute, ...] = tuple(r for r in ADMIN_ROUTES if r.route in ("/admin", "/api/admin/orders"))


class ProbeIdentity(BaseModel):
    """A test user the probe signs in as. ``cookies`` hold its session (a secret: never logged or reported)."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: str
    cookies: dict[str, str]


#: The caller with no session at all: what anyone on the internet gets.
SIGNED_OUT = ProbeIdentity(name="signed-out", role="ANONYMOUS", cookies={})  # the ABAC policy's role for it


class RouteResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    method: str
    route: str
    guard: Guard
    status: int | None
    verdict: RouteVerdict
    detail: str = ""
    answer: str = ""  # what the route answered, shown in findings: status and (error answers only) a body excerpt


class AccessReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    identity: str
    role: str
    results: tuple[RouteResult, ...] = ()
    reason: str = ""  # why nothing was probed

    @property
    def reached(self) -> list[RouteResult]:
        return [r for r in self.results if r.verdict == "reached"]

    @property
    def unknown(self) -> list[RouteResult]:
        return [r for r in self.results if r.verdict == "unknown"]

    @property
    def skipped(self) -> list[RouteResult]:
        return [r for r in self.results if r.verdict == "skipped"]

    @property
    def unexpected(self) -> list[RouteResult]:
        """Routes §6.2 says are protected that let this identity through."""
        return [r for r in self.reached if r.guard != "none"]


class AdminAccess(BaseModel):
    """``ok`` True: every check answered 2xx; False: one was refused or failed; None: not all could be asked."""

    model_config = ConfigDict(frozen=True)

    ok: bool | None
    detail: str
    results: tuple[RouteResult, ...] = ()


class SurfaceDenials(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: int = 0
    unauthorized: int = 0  # 401
    forbidden: int = 0  # 403

    @property
    def forbidden_pct(self) -> float | None:
        return round(100.0 * self.forbidden / self.total, 2) if self.total else None


class DenialStats(BaseModel):
    """401/403 on the admin surfaces among the most recent request records; ``available`` False: unknown."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    records: int = 0
    pages: SurfaceDenials = SurfaceDenials()
    api: SurfaceDenials = SurfaceDenials()
    rate_limited: bool = False

    @property
    def admin(self) -> SurfaceDenials:
        return SurfaceDenials(total=self.pages.total + self.api.total,
                              unauthorized=self.pages.unauthorized + self.api.unauthorized,
                              forbidden=self.pages.forbidden + self.api.forbidden)


def parse_denials(text: str, window_records: int) -> DenialStats:
    """Count admin answers among the last ``window_records`` request records of a metrics page.

    Raises ValueError on a page that is not kamkmserve's (the parser checks every line that is kept)."""
    from prometheus_client.parser import text_string_to_metric_families

    from remediation.providers.promtext import tail_samples

    page = tail_samples(text, ("process_uptime_seconds", "http_requests_total"), window_records)
    families = {family.name: family for family in text_string_to_metric_families(page)}
    if "http_requests" not in families and "process_uptime_seconds" not in families:
        raise ValueError("neither process_uptime_seconds nor http_requests_total")
    samples = list(families["http_requests"].samples) if "http_requests" in families else []
    if not samples:
        return DenialStats(available=False, reason="no request records on the metrics page "
                           "(kamkmserve's request metrics are not emitted)")
    counts = {"pages": [0, 0, 0], "api": [0, 0, 0]}
    recent = samples[-window_records:]
    for sample in recent:
        path, status = sample.labels.get("path", ""), sample.labels.get("status", "")
        surface = "api" if path.startswith("/api/admin/") else "pages" if _is_admin_page(path) else None
        if surface is None:
            continue
        counts[surface][0] += 1
        counts[surface][1] += status == "401"
        counts[surface][2] += status == "403"
    pages, api = (SurfaceDenials(total=c[0], unauthorized=c[1], forbidden=c[2]) for c in counts.values())
    return DenialStats(available=True, records=len(recent), pages=pages, api=api)


def _is_admin_page(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


def classify(fetched: Fetched) -> tuple[RouteVerdict, str]:
    """What one answer says about the route's access control."""
    if fetched.status is None:
        return "unknown", fetched.error or "no answer"
    if fetched.status == 429:
        return "unknown", "rate limited (429): not a verdict"
    if fetched.status in (401, 403):
        return "rejected", f"{fetched.status}"
    if fetched.status in (404, 405) and fetched.content_type != "application/json":
        return "unknown", f"{fetched.status}: no handler answered (the route or method does not exist here)"
    if fetched.status in (301, 302, 303, 307, 308):
        where = fetched.headers.get("location", "")
        if _SIGN_IN.search(where):
            return "rejected", f"{fetched.status}: sent to sign in"
        # e.g. the production HTTPS redirect (docs/reference/kamkmserve.md §6.1): the route's own check was never
        # reached.
        return "unknown", f"{fetched.status}: redirected to {where or '(no location)'}, not to sign in: not a verdict"
    if fetched.status == 500 and AUTH_CHECK_FAILED in fetched.text:
        return "rejected", "500: requireRole's own check threw (fail closed)"
    return "reached", f"{fetched.status}: the handler ran for this identity"


_SIGN_IN = re.compile(r"(?i)sign-?in|sign_in|login")
_TEXTUAL = ("application/json", "text/plain")


def answer_of(fetched: Fetched) -> str:
    """Status and, for an error answer, the start of its body. A success's body is never kept: an unchecked export
    answers with customer data, which has no place in a report or a chat message."""
    if fetched.status is None:
        return fetched.error or "no answer"
    body = " ".join(fetched.text.split())
    if not body:
        return str(fetched.status)
    if fetched.status >= 400 and fetched.content_type in _TEXTUAL:
        return f"{fetched.status} {body[:160]}{'...' if len(body) > 160 else ''}"
    return f"{fetched.status}, {len(fetched.text.encode())} bytes of {fetched.content_type or 'untyped content'}"


class AccessProbe:
    def __init__(self, http: AppHttp, *, user: ProbeIdentity | None, admin: ProbeIdentity | None,
                 routes: tuple[AdminRoute, ...] = ADMIN_ROUTES) -> None:
        self.http = http
        self.user = user
        self.admin = admin
        self.routes = routes

    async def denials(self, window_records: int) -> DenialStats:
        fetched = await self.http.get(METRICS_PATH)
        if not fetched.ok:
            return DenialStats(available=False, reason=f"{fetched.url}: {fetched.error}",
                               rate_limited=fetched.rate_limited)
        if fetched.content_type == "text/html" or fetched.text.lstrip().startswith("<"):
            return DenialStats(available=False, reason=f"{fetched.url}: an HTML page instead of metrics")
        try:
            return parse_denials(fetched.text, window_records)
        except ValueError as exc:
            return DenialStats(available=False, reason=f"{fetched.url}: unparseable metrics page ({exc})")

    async def non_admin(self) -> AccessReport:
        """Every admin route with the non-admin session, one after the other (the budget is shared)."""
        if self.user is None:
            return AccessReport(identity="(none)", role="USER", reason="no non-admin test identity is configured")
        results = [await self._one(route, self.user) for route in self.routes]
        return AccessReport(identity=self.user.name, role=self.user.role, results=tuple(results))

    async def signed_out(self) -> AccessReport:
        """Every admin route with no session: needs no test user, so it runs against any deployment."""
        results = [await self._one(route, SIGNED_OUT) for route in self.routes]
        return AccessReport(identity=SIGNED_OUT.name, role=SIGNED_OUT.role, results=tuple(results))

    async def admin_access(self) -> AdminAccess:
        if self.admin is None:
            return AdminAccess(ok=None, detail="no admin test identity is configured")
        results = tuple([await self._one(route, self.admin) for route in ADMIN_CHECKS])
        shown = "; ".join(f"{r.method} {r.route}: {r.detail}" for r in results)
        if any(r.verdict == "rejected" or (r.status is not None and r.status >= 500) for r in results):
            return AdminAccess(ok=False, detail=f"admin {self.admin.name} is refused: {shown}", results=results)
        if any(r.verdict == "unknown" for r in results):
            return AdminAccess(ok=None, detail=f"could not ask: {shown}", results=results)
        return AdminAccess(ok=True, detail=f"admin {self.admin.name} gets in: {shown}", results=results)

    async def _one(self, route: AdminRoute, identity: ProbeIdentity) -> RouteResult:
        if not route.read_only:
            return RouteResult(method=route.method, route=route.route, guard=route.guard, status=None,
                               verdict="skipped", detail=f"not probed: the route serves {route.method} only and the "
                               "probe never sends a method that can change a record")
        fetched = await self.http.send(route.method, route.path, cookies=identity.cookies or None)
        verdict, detail = classify(fetched)
        return RouteResult(method=route.method, route=route.route, guard=route.guard, status=fetched.status,
                           verdict=verdict, detail=detail, answer=answer_of(fetched))
