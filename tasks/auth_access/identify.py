"""Identify for the auth runbook: admin denials from the app's request records, the middleware's security events,
auth errors in the error tracker. Missing data is ``unknown``, never ``ok``.

Two signals, read together in each reading:

* **Denial rate** (``admin_forbidden_rate``): the share of admin-area requests answered 403 among the app's most
  recent request records. Dead in the app as it is (no request records): then unknown.
* **Failed admin checks** (``admin_role_check_failures``): the middleware's ``Admin role check failed`` and
  ``Admin role check errored`` events against its ``Admin role check - Clerk claims debug`` lines (one per check,
  docs/reference/kamkmserve.md §6.3) over the last ``window_s``. These are real in the app as it is.

At baseline a few customers poke at the admin area and are refused; an incident is when most admin checks fail.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from remediation.models import Finding, FindingStatus
from remediation.providers.access_probe import DenialStats
from remediation.providers.platform import LogLine
from remediation.runtime import Providers
from tasks import step

FAILED = "Security event: Admin role check failed"
ERRORED = "Security event: Admin role check errored"
NON_ADMIN_CLAIM = "Security event: Non-admin claim used for admin route"
CLAIMS_DEBUG = "Security event: Admin role check - Clerk claims debug"
AUTH_ISSUE = re.compile(r"(?i)(clerk|\bauth|unauthori[sz]ed|forbidden|\bjwt\b|jwks|session token|handshake)")


class AdminEvents(BaseModel):
    """The middleware's admin-check events in a window of the app's logs."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    window_s: float = 0.0
    checks: int = 0  # claims debug lines: one per check that reached the claims
    failed: int = 0
    errored: int = 0
    non_admin_claims: int = 0
    users: tuple[str, ...] = ()  # distinct users refused

    @property
    def refused(self) -> int:
        return self.failed + self.errored

    @property
    def refused_pct(self) -> float | None:
        # An errored check never logs its claims: it counts as a check of its own.
        total = self.checks + self.errored
        return round(100.0 * self.refused / total, 1) if total else None


def count_events(lines: list[LogLine], window_s: float) -> AdminEvents:
    failed = errored = checks = claims = 0
    users: set[str] = set()
    for line in lines:
        if line.message == CLAIMS_DEBUG:
            checks += 1
        elif line.message in (FAILED, ERRORED):
            failed += line.message == FAILED
            errored += line.message == ERRORED
            if (user := (line.context or {}).get("userId")) is not None:
                users.add(str(user))
        elif line.message == NON_ADMIN_CLAIM:
            claims += 1
    return AdminEvents(available=True, window_s=window_s, checks=checks, failed=failed, errored=errored,
                       non_admin_claims=claims, users=tuple(sorted(users)))


async def read_events(providers: Providers, window_s: float) -> tuple[AdminEvents, list[LogLine]]:
    since = providers.clock.now() - timedelta(seconds=window_s)
    try:
        lines = await providers.logs.lines(since=since, limit=5000)
    except Exception as exc:
        return AdminEvents(available=False, reason=f"logs unreadable: {exc}", window_s=window_s), []
    return count_events(lines, window_s), lines


def denial_finding(stats: DenialStats, threshold_pct: float, min_records: int) -> Finding:
    admin = stats.admin
    evidence = {"records": stats.records, "admin_requests": admin.total, "forbidden": admin.forbidden,
                "unauthorized": admin.unauthorized, "pages_forbidden": stats.pages.forbidden,
                "pages_total": stats.pages.total, "api_forbidden": stats.api.forbidden, "api_total": stats.api.total}
    check = "admin_forbidden_rate"
    if not stats.available:
        return Finding(check=check, status=FindingStatus.UNKNOWN, threshold=threshold_pct, unit="%",
                       detail=stats.reason or "no request records", evidence=evidence)
    if admin.total < min_records or admin.forbidden_pct is None:
        return Finding(check=check, status=FindingStatus.UNKNOWN, observed=admin.forbidden_pct,
                       threshold=threshold_pct, unit="%", evidence=evidence,
                       detail=f"only {admin.total} admin requests among {stats.records} records (< {min_records})")
    breach = admin.forbidden_pct > threshold_pct
    return Finding(check=check, status=FindingStatus.BREACH if breach else FindingStatus.OK,
                   observed=admin.forbidden_pct, threshold=threshold_pct, unit="%", evidence=evidence,
                   detail=(f"{admin.forbidden} of {admin.total} admin requests answered 403 (pages "
                           f"{stats.pages.forbidden}/{stats.pages.total}, API {stats.api.forbidden}/{stats.api.total})"
                           f"; {admin.unauthorized} answered 401"))


def events_finding(events: AdminEvents, threshold_pct: float, min_refused: int) -> Finding:
    check = "admin_role_check_failures"
    evidence = {"checks": events.checks, "failed": events.failed, "errored": events.errored,
                "non_admin_claims": events.non_admin_claims, "users_refused": len(events.users)}
    if not events.available:
        return Finding(check=check, status=FindingStatus.UNKNOWN, threshold=threshold_pct, unit="%",
                       detail=events.reason, evidence=evidence)
    detail = (f"{events.failed} failed and {events.errored} errored admin checks of {events.checks + events.errored} "
              f"in the last {events.window_s:g}s, {len(events.users)} distinct user(s) refused; "
              f"{events.non_admin_claims} non-admin claim(s)")
    share = events.refused_pct
    breach = share is not None and events.refused >= min_refused and share > threshold_pct
    return Finding(check=check, status=FindingStatus.BREACH if breach else FindingStatus.OK, observed=share,
                   threshold=threshold_pct, unit="%", detail=detail, evidence=evidence)


class AuthReading(BaseModel):
    model_config = ConfigDict(frozen=True)

    denials: DenialStats
    events: AdminEvents


async def read_once(providers: Providers, window_records: int, window_s: float) -> tuple[AuthReading, list[LogLine]]:
    if providers.access is None:
        stats = DenialStats(available=False, reason="no access reader on this platform (providers.access)")
    else:
        stats = await providers.access.denials(window_records)
    events, lines = await read_events(providers, window_s)
    return AuthReading(denials=stats, events=events), lines


@step(name="identify: admin denials and failed admin checks")
async def sample_auth(providers: Providers, *, forbidden_pct: float, min_admin_records: int, refused_pct: float,
                      min_refused: int, window_records: int, window_s: float, samples: int, interval_s: float
                      ) -> tuple[list[Finding], AuthReading, list[LogLine]]:
    """``samples`` readings ``interval_s`` apart; a signal breaches only if every reading of it breaches."""
    denial_readings: list[Finding] = []
    event_readings: list[Finding] = []
    reading: AuthReading | None = None
    lines: list[LogLine] = []
    for i in range(samples):
        if i:
            await providers.clock.sleep(interval_s)
        reading, lines = await read_once(providers, window_records, window_s)
        denial_readings.append(denial_finding(reading.denials, forbidden_pct, min_admin_records))
        event_readings.append(events_finding(reading.events, refused_pct, min_refused))
    assert reading is not None, "samples must be at least 1"
    return [_confirmed(denial_readings, samples), _confirmed(event_readings, samples)], reading, lines


def _confirmed(readings: list[Finding], samples: int) -> Finding:
    statuses = {f.status for f in readings}
    last = readings[-1]
    if statuses == {FindingStatus.BREACH}:
        verdict = last
    elif FindingStatus.UNKNOWN in statuses:
        verdict = next(f for f in readings if f.status is FindingStatus.UNKNOWN)
    else:
        verdict = last.model_copy(update={"status": FindingStatus.OK,
                                          "detail": f"{last.detail}; not every one of {samples} readings breached"})
    return verdict.model_copy(update={"evidence": {**verdict.evidence, "readings": [f.observed for f in readings]}})


def verdict(denials: Finding, events: Finding) -> FindingStatus:
    """Unknown when the denial rate cannot be read: a fix that cannot be verified is not made by a robot, whatever
    the logs say (they are reported). Otherwise either signal in breach is an incident."""
    if denials.status is FindingStatus.UNKNOWN:
        return FindingStatus.UNKNOWN
    if FindingStatus.BREACH in (denials.status, events.status):
        return FindingStatus.BREACH
    return FindingStatus.OK


@step(name="identify: auth errors in the error tracker")
async def auth_issues_finding(providers: Providers) -> Finding:
    """Informational: unresolved error-tracker issues about the identity provider or auth checks."""
    try:
        issues = await providers.errors.issues()
    except Exception as exc:
        return Finding(check="auth_provider_errors", status=FindingStatus.UNKNOWN,
                       detail=f"error tracker unreadable: {exc}")
    auth = [i for i in issues if i.status == "unresolved" and AUTH_ISSUE.search(f"{i.title} {i.culprit}")]
    return Finding(check="auth_provider_errors", status=FindingStatus.INFO,
                   observed=len(auth), threshold=0, unit="issues",
                   detail="; ".join(f"{i.title} ({i.count} events)" for i in auth[:3]) or "none about auth")
