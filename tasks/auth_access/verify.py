"""Recover for the auth runbook: admin denials back under the threshold, then an admin test user gets in.

A reading is healthy when the app's recent admin requests are answered 403 no more often than the threshold (with
enough of them to judge) and the middleware has not refused most of its admin checks since the fix. The denial
rate is judged over the app's last request records, which still hold requests from before the fix: it takes a
window's turnover to clear, so only the deadline ends a failing verification, not a run of bad readings.
"""

from __future__ import annotations

from datetime import datetime

from remediation.models import Sample, Verification
from remediation.runtime import Providers
from tasks import step
from tasks.auth_access.identify import count_events, denial_finding


@step(name="recover: verify admin access")
async def verify_admin_access(providers: Providers, *, since: datetime, forbidden_pct: float, min_admin_records: int,
                              refused_pct: float, min_refused: int, window_records: int, consecutive: int,
                              interval_s: float, deadline_s: float) -> Verification:
    clock = providers.clock
    started = clock.monotonic()
    samples: list[Sample] = []
    streak = 0
    check = (f"admin 403 share <= {forbidden_pct:g}% for {consecutive} readings {interval_s:g}s apart, "
             "then an admin test user gets in")
    last = "no reading"
    while True:
        healthy, value, last = await _reading(providers, since, forbidden_pct, min_admin_records, refused_pct,
                                              min_refused, window_records)
        samples.append(Sample(at=clock.now(), value=value, healthy=healthy))
        streak = streak + 1 if healthy else 0
        if streak >= consecutive:
            break
        if clock.monotonic() - started + interval_s > deadline_s:
            return Verification(check=check, healthy=False, samples=tuple(samples), required_consecutive=consecutive,
                                detail=f"not recovered: deadline {deadline_s:g}s reached; {last}")
        await clock.sleep(interval_s)
    if providers.access is None:
        return Verification(check=check, healthy=False, samples=tuple(samples), required_consecutive=consecutive,
                            detail="denials are back to normal, but no admin test identity can prove admins get in")
    access = await providers.access.admin_access()
    return Verification(check=check, healthy=access.ok is True, samples=tuple(samples),
                        required_consecutive=consecutive,
                        detail=f"{'recovered' if access.ok else 'not recovered'}: {last}; {access.detail}")


async def _reading(providers: Providers, since: datetime, forbidden_pct: float, min_admin_records: int,
                   refused_pct: float, min_refused: int, window_records: int) -> tuple[bool, float | None, str]:
    if providers.access is None:
        return False, None, "no access reader: the denial rate is unknown"
    stats = await providers.access.denials(window_records)
    finding = denial_finding(stats, forbidden_pct, min_admin_records)
    value = float(finding.observed) if isinstance(finding.observed, int | float) else None
    if finding.status.value != "ok":
        return False, value, f"denial rate {finding.status.value}: {finding.detail}"
    try:
        lines = await providers.logs.lines(since=since, limit=5000)
    except Exception as exc:  # the request records are the verdict; the logs only veto
        return True, value, f"{finding.detail}; logs unreadable ({exc})"
    events = count_events(lines, (providers.clock.now() - since).total_seconds())
    share = events.refused_pct
    if share is not None and events.refused >= min_refused and share > refused_pct:
        return False, value, (f"{events.refused} of {events.checks + events.errored} admin checks since the fix "
                              f"refused ({share:g}%)")
    return True, value, finding.detail
