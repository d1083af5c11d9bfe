"""Investigate for the auth runbook: the identity configuration, who the admin routes let in, and the recorded
access decisions against the written policy. A source that cannot be read is Evidence with ``available=False``."""

from __future__ import annotations

from remediation.models import Evidence, Finding, FindingStatus
from remediation.providers.abac import (
    KAMKMSERVE_ADMIN_POLICY,
    AbacReport,
    evaluate,
    records_from_events,
    records_from_probe,
    subjects,
)
from remediation.providers.access_probe import AccessReport
from remediation.providers.platform import LogLine
from remediation.providers.security import IdentityCheck
from remediation.runtime import Providers
from tasks import step


@step(name="identify: non-admin access probe")
async def non_admin_probe(providers: Providers) -> AccessReport:
    """Every admin route with a signed-in non-admin test user. Runs before containment: once the admin features
    are switched off at the edge, the edge answers and the app's own checks cannot be seen."""
    if providers.access is None:
        return AccessReport(identity="(none)", role="USER", reason="no access probe on this platform")
    return await providers.access.non_admin()


def probe_finding(report: AccessReport) -> Finding:
    """Routes that let a non-admin through. §6.2's unprotected routes are a standing gap (evidence and a
    recommendation), so only a route the reference says is protected makes this a breach."""
    check = "non_admin_admin_access"
    if report.reason or not report.results:
        return Finding(check=check, status=FindingStatus.UNKNOWN, detail=report.reason or "nothing probed")
    reached, unknown, unexpected = report.reached, report.unknown, report.unexpected
    detail = (f"{len(reached)} of {len(report.results)} admin routes let {report.identity} ({report.role}) through"
              + (f" ({len(unknown)} could not be asked)" if unknown else "")
              + (f"; unexpectedly: {', '.join(f'{r.method} {r.route}' for r in unexpected)}" if unexpected else ""))
    status = FindingStatus.BREACH if unexpected else FindingStatus.OK
    return Finding(check=check, status=status, observed=len(reached), threshold=0, unit="routes", detail=detail,
                   evidence={"reached": [f"{r.method} {r.route}" for r in reached],
                             "unknown": [f"{r.method} {r.route}" for r in unknown]})


def probe_evidence(report: AccessReport) -> Evidence:
    if report.reason:
        return Evidence(source="access-probe", summary=report.reason, available=False)
    reached = report.reached
    summary = (f"{len(reached)} admin route(s) answer a signed-in {report.role} without any check: "
               + (", ".join(f"{r.method} {r.route}" for r in reached) or "none"))
    if report.unknown:
        summary += f"; {len(report.unknown)} not judged (rate limit, budget or no handler)"
    return Evidence(source="access-probe", summary=summary,
                    items=tuple(r.model_dump() for r in report.results))


@step(name="investigate: identity configuration")
async def identity_check(providers: Providers) -> tuple[Evidence, IdentityCheck]:
    if providers.identity is None:
        check = IdentityCheck(available=False, reason="no identity provider lever on this platform")
    else:
        try:
            check = await providers.identity.check()
        except Exception as exc:
            check = IdentityCheck(available=False, reason=f"identity provider unreadable: {exc}")
    if not check.available:
        return Evidence(source="identity", summary=check.reason, available=False), check
    changes = [f"{c.get('name')} {c.get('previous')!r} -> {c.get('value')!r} at {c.get('at')} by {c.get('actor', '?')}"
               for c in check.changes[-5:]]
    summary = ("; ".join(check.problems) if check.problems else "keys consistent, JWKS reachable, role claim as the "
               "app reads it") + (f". Recent changes: {'; '.join(changes)}" if changes else "")
    items = ({"settings": check.settings, "jwks_reachable": check.jwks_reachable},
             *({"problem": p} for p in check.problems), *({"change": c} for c in check.changes[-5:]))
    return Evidence(source="identity", summary=summary, items=items), check


@step(name="investigate: access policy (ABAC)")
async def access_policy(providers: Providers, lines: list[LogLine], probe: AccessReport) -> tuple[Evidence, AbacReport]:
    """Recorded decisions (the middleware's events, the probe's answers) against kamkmserve's admin policy, with
    each user's real role from the identity provider."""
    roles: dict[str, str | None] = {}
    note = ""
    ids = subjects(lines)
    if providers.identity is not None and ids:
        try:
            roles = await providers.identity.user_roles(ids)
        except Exception as exc:
            note = f" (user roles unreadable, judged by the roles the events show: {exc})"
    report = evaluate(KAMKMSERVE_ADMIN_POLICY, [*records_from_events(lines, roles), *records_from_probe(probe)])
    items = tuple({"violation": what, "count": count} for what, count in report.groups()[:20])
    return Evidence(source="access-policy", summary=report.summary() + note, items=items), report


def recommendations(probe: AccessReport, by_hand: list[str]) -> Evidence:
    """What a human should change that no robot will: missing checks in handlers, secrets in the app's env."""
    advice: list[str] = []
    if probe.reached:
        routes = ", ".join(f"{r.method} {r.route}" for r in probe.reached)
        advice.append(f"add requireRole('ADMIN') to the admin handlers that have no check ({routes}); until then "
                      "anyone signed in can call them")
    advice.extend(f"fix by hand: {problem}" for problem in by_hand)
    return Evidence(source="recommendations", summary="; ".join(advice) or "none",
                    items=tuple({"recommendation": a} for a in advice))
