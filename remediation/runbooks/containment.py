"""Contain and remediate: choose the scope of a lever from the evidence (pure planning helpers)."""

from __future__ import annotations

from datetime import datetime, timedelta

from remediation.models import EnableMaintenance, Rollback, SetFeatureFlag
from remediation.providers.metrics import RequestStats
from remediation.providers.platform import FlagChange, Release

# Paths maintenance must never cover: our own eyes on the app (and its probes) would go dark.
NEVER_CONTAIN = ("/api/monitoring", "/monitoring")


def failing_prefixes(stats: RequestStats, min_share_pct: float, min_errors: int = 2) -> tuple[str, ...]:
    """Paths whose own 5xx share exceeds ``min_share_pct``, worst first."""
    chosen = []
    for route in stats.failing_routes():
        share = 100.0 * route.errors_5xx / route.total
        if route.errors_5xx >= min_errors and share > min_share_pct and not route.path.startswith(NEVER_CONTAIN):
            chosen.append(route.path)
    return tuple(dict.fromkeys(chosen))


def maintenance_plan(service: str, prefixes: tuple[str, ...],
                     reason: str = "serve the maintenance page on the failing paths while we investigate"
                     ) -> EnableMaintenance | None:
    if not prefixes:
        return None
    return EnableMaintenance(service=service, path_prefixes=prefixes, reason=reason)


def rollback_plan(service: str, releases: list[Release], now: datetime, lookback_s: float) -> Rollback | None:
    """Roll back only when the current release went out within the lookback and an earlier one exists."""
    current = next((r for r in releases if r.state == "current"), None)
    if current is None or current.promoted_at is None:
        return None
    if current.promoted_at < now - timedelta(seconds=lookback_s):
        return None
    earlier = [r for r in releases if r.id != current.id and r.promoted_at and r.promoted_at < current.promoted_at]
    if not earlier:
        return None
    previous = max(earlier, key=lambda r: r.promoted_at or now)
    age = (now - current.promoted_at).total_seconds()
    return Rollback(service=service, from_release=current.id, to_release=previous.id,
                    from_version=current.version, to_version=previous.version,
                    reason=f"the spike follows the promotion of {current.version} {age:.0f}s ago")


def flag_plan(service: str, changes: list[FlagChange], now: datetime, lookback_s: float) -> SetFeatureFlag | None:
    """Turn off the most recently enabled flag when that change falls within the lookback."""
    latest_per_flag: dict[str, FlagChange] = {}
    for change in sorted(changes, key=lambda c: c.at):
        latest_per_flag[change.name] = change
    recent = [c for c in latest_per_flag.values() if c.enabled and c.at >= now - timedelta(seconds=lookback_s)]
    if not recent:
        return None
    latest = max(recent, key=lambda c: c.at)
    return SetFeatureFlag(service=service, flag=latest.name, enabled=False, previous=True,
                          reason=f"flag {latest.name} was enabled at {latest.at:%H:%M:%S}Z, before the spike")
