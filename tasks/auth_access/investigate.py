"""Investigate for the auth runbook: the identity configuration, who the admin routes let in, and the recorded
access decisions against the written policy. A source that cannot be read is Evidence with ``available=False``."""

from __future__ import annotations

from collections.abc import Sequence

from remediation.models import Evidence, Finding, FindingStatus
from remediation.providers.abac import (
    KAMKMSERVE_ADMIN_POLICY,
    AbacReport,
    evaluate,
    records_from_events,
    records_from_probe,
    subjects,
)
from remediation.providers.access_probe import SIGNED_OUT, AccessReport
from remediation.providers.platform import LogLine
from remediation.providers.security import IdentityCheck
from remediation.runtime import Providers
from tasks import step


@step(name="identify: read-only admin route probe")
async def admin_route_probe(providers: Providers) -> tuple[AccessReport, AccessReport]:
    """Every admin route, signed out and as the non-admin test user where one is configured: GETs only. Runs
    whatever the signals say (the app's real hole shows in none of them) and before containment: once the admin
    features are off at the edge, the edge answers and the app's own checks cannot be seen."""
    if providers.access is None:
        none = "no access probe on this platform"
        return (AccessReport(identity=SIGNED_OUT.name, role=SIGNED_OUT.role, reason=none),
                AccessReport(identity="(none)", role="USER", reason=none))
    signed_out = await providers.access.signed_out()  # one after the other: both spend the app's request budget
    return signed_out, await providers.access.non_admin()


def route_authorization_finding(*reports: AccessReport) -> Finding:
    """A ``breach`` for every admin route that answered a signed-out or non-admin caller with anything but a refusal
    (401/403, a redirect to sign in, requireRole's own fail-closed 500), named with what it answered. Whatever
    docs/reference/kamkmserve.md §6.2 says of the route: a known gap is still open. ``unknown`` when nothing was
    open but some routes could not be asked (rate limit, budget, no handler)."""
    check = "admin_route_authorization"
    probed = [r for r in reports if not r.reason]
    if not probed:
        return Finding(check=check, status=FindingStatus.UNKNOWN,
                       detail="; ".join(dict.fromkeys(r.reason for r in reports)) or "nothing probed")
    answered: dict[str, tuple[str, list[str]]] = {}  # route -> (its first answer, who it let through)
    for report in probed:
        for result in report.reached:
            first = answered.setdefault(result.route, (result.answer or str(result.status), []))
            first[1].append(_caller(report))
    unknown = sorted({f"{r.method} {r.route}" for report in probed for r in report.unknown})
    skipped = sorted({f"{r.method} {r.route}" for report in probed for r in report.skipped})
    evidence = {"open": [f"{route}: {answer} to {' and '.join(who)}" for route, (answer, who) in answered.items()],
                "not_judged": unknown, "not_probed": skipped, "callers": [_caller(r) for r in probed]}
    # Counts only: the lists are in the evidence, and the detail is what an escalation reads out.
    tail = (f"; {len(unknown)} route(s) not judged (rate limit, budget or no handler)" if unknown else "") + (
        f"; {len(skipped)} not probed (they serve mutating methods only)" if skipped else "")
    if answered:
        opened = "; ".join(f"{route} answers without an authorization check ({answer}) to {' and '.join(who)}"
                           for route, (answer, who) in answered.items())
        return Finding(check=check, status=FindingStatus.BREACH, observed=len(answered), threshold=0, unit="routes",
                       detail=opened + tail, evidence=evidence)
    asked = len({r.route for report in probed for r in report.results if r.verdict == "rejected"})
    return Finding(check=check, status=FindingStatus.UNKNOWN if unknown else FindingStatus.OK, observed=0,
                   threshold=0, unit="routes", evidence=evidence,
                   detail=f"{asked} admin route(s) refused {' and '.join(evidence['callers'])}" + tail)


def _caller(report: AccessReport) -> str:
    if report.identity == SIGNED_OUT.name:
        return "a signed-out caller"
    return f"non-admin {report.identity} ({report.role})"


def probe_finding(report: AccessReport) -> Finding:
    """Routes that let a non-admin through. The unprotected routes of docs/reference/kamkmserve.md §6.2 are a
    standing gap (evidence and a recommendation), so only a route it says is protected makes this a breach."""
    check = "non_admin_admin_access"
    if report.reason or not report.results:
        return Finding(check=check, status=FindingStatus.UNKNOWN, detail=report.reason or "nothing probed")
    reached, unknown, unexpected = report.reached, report.unknown, report.unexpected
    asked = len(report.results) - len(report.skipped)
    detail = (f"{len(reached)} of {asked} probed admin routes let {report.identity} ({report.role}) through"
              + (f" ({len(unknown)} could not be asked)" if unknown else "")
              + (f"; unexpectedly: {', '.join(f'{r.method} {r.route}' for r in unexpected)}" if unexpected else ""))
    status = FindingStatus.BREACH if unexpected else FindingStatus.OK
    return Finding(check=check, status=status, observed=len(reached), threshold=0, unit="routes", detail=detail,
                   evidence={"reached": [f"{r.method} {r.route}" for r in reached],
                             "unknown": [f"{r.method} {r.route}" for r in unknown]})


def probe_evidence(report: AccessReport) -> Evidence:
    """``access-probe`` for the non-admin test user, ``access-probe-signed-out`` for the caller with no session."""
    signed_out = report.identity == SIGNED_OUT.name
    source = "access-probe-signed-out" if signed_out else "access-probe"
    if report.reason:
        return Evidence(source=source, summary=report.reason, available=False)
    reached = report.reached
    who = "a signed-out caller" if signed_out else f"a signed-in {report.role}"
    summary = (f"{len(reached)} admin route(s) answer {who} without any check: "
               + (", ".join(f"{r.method} {r.route} ({r.answer})" for r in reached) or "none"))
    if report.unknown:
        summary += f"; {len(report.unknown)} not judged (rate limit, budget or no handler)"
    if report.skipped:
        summary += f"; {len(report.skipped)} not probed (they serve mutating methods only)"
    return Evidence(source=source, summary=summary, items=tuple(r.model_dump() for r in report.results))


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
async def access_policy(providers: Providers, lines: list[LogLine], probe: AccessReport,
                        signed_out: AccessReport | None = None) -> tuple[Evidence, AbacReport]:
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
    probed = [*records_from_probe(probe), *(records_from_probe(signed_out) if signed_out is not None else [])]
    report = evaluate(KAMKMSERVE_ADMIN_POLICY, [*records_from_events(lines, roles), *probed])
    items = tuple({"violation": what, "count": count} for what, count in report.groups()[:20])
    return Evidence(source="access-policy", summary=report.summary() + note, items=items), report


def recommendations(probes: Sequence[AccessReport], by_hand: list[str]) -> Evidence:
    """What a human should change that no robot will: missing checks in handlers, secrets in the app's env."""
    advice: list[str] = []
    reached = list(dict.fromkeys(f"{r.method} {r.route}" for p in probes for r in p.reached))
    if reached:
        anyone = ("anyone, signed in or not," if any(p.identity == SIGNED_OUT.name and p.reached for p in probes)
                  else "anyone signed in")
        advice.append(f"add requireRole('ADMIN') to the admin handlers that have no check ({', '.join(reached)}); "
                      f"until then {anyone} can call them")
    unprobed = list(dict.fromkeys(f"{r.method} {r.route}" for p in probes for r in p.skipped if r.guard == "none"))
    if unprobed:
        advice.append(f"review by hand the handlers the reference lists without a check that a read-only probe "
                      f"cannot call ({', '.join(unprobed)})")
    advice.extend(f"fix by hand: {problem}" for problem in by_hand)
    return Evidence(source="recommendations", summary="; ".join(advice) or "none",
                    items=tuple({"recommendation": a} for a in advice))
