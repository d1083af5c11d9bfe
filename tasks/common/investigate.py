"""Investigate: gather the evidence a human (and the remediate step) needs, each source on its own.

A source that cannot be read yields Evidence with ``available=False``; it never fails the run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from remediation.models import Evidence
from remediation.providers.metrics import RequestStats
from remediation.providers.platform import FlagChange, Release
from remediation.runtime import Providers
from tasks import step


@step(name="investigate: deploy history")
async def deploy_history(providers: Providers, lookback_s: float) -> tuple[Evidence, list[Release]]:
    if providers.deploys is None:
        return Evidence(source="deploys", summary="deploy history unavailable: no deploys capability configured",
                        available=False), []
    try:
        releases = await providers.deploys.releases()
    except Exception as exc:
        return Evidence(source="deploys", summary=f"deploy history unreadable: {exc}", available=False), []
    since = providers.clock.now() - timedelta(seconds=lookback_s)
    recent = [r for r in releases if r.promoted_at and r.promoted_at >= since]
    current = next((r for r in releases if r.state == "current"), None)
    summary = (f"current {current.version} promoted {current.promoted_at:%H:%M:%S}Z; "
               f"{len(recent)} promotion(s) in the last {lookback_s / 60:g} min") if current else "no current release"
    items = tuple({"id": r.id, "version": r.version, "state": r.state,
                   "promoted_at": r.promoted_at.isoformat() if r.promoted_at else None} for r in releases[:5])
    return Evidence(source="deploys", summary=summary, items=items), releases


@step(name="investigate: feature flag changes")
async def flag_changes(providers: Providers, lookback_s: float) -> tuple[Evidence, list[FlagChange]]:
    if providers.edge is None:
        return Evidence(source="flags", summary="flag history unavailable: no edge capability configured",
                        available=False), []
    try:
        history = await providers.edge.flag_history()
    except Exception as exc:
        return Evidence(source="flags", summary=f"flag history unreadable: {exc}", available=False), []
    since = providers.clock.now() - timedelta(seconds=lookback_s)
    recent = [c for c in history if c.at >= since]
    evidence = Evidence(source="flags", summary=f"{len(recent)} flag change(s) in the last {lookback_s / 60:g} min",
                        items=tuple({"name": c.name, "enabled": c.enabled, "at": c.at.isoformat()} for c in recent))
    return evidence, history


@step(name="investigate: failing endpoints")
async def failing_endpoints(stats: RequestStats) -> Evidence:
    if not stats.available:
        return Evidence(source="endpoints", summary=stats.reason, available=False)
    failing = stats.failing_routes()
    summary = ", ".join(f"{r.method} {r.path}: {r.errors_5xx}/{r.total} 5xx" for r in failing[:5]) or "none"
    return Evidence(source="endpoints", summary=f"top failing: {summary}",
                    items=tuple(r.model_dump() for r in failing[:10]))


@step(name="investigate: log excerpts")
async def log_excerpts(providers: Providers, since: datetime, limit: int = 20) -> Evidence:
    try:
        lines = await providers.logs.lines(since=since, limit=2000)
    except Exception as exc:
        return Evidence(source="logs", summary=f"logs unreadable: {exc}", available=False)
    notable = [line for line in lines if line.level in ("warn", "error", "fatal")]
    by_message: dict[str, int] = {}
    for line in notable:
        by_message[line.message] = by_message.get(line.message, 0) + 1
    top = sorted(by_message.items(), key=lambda kv: -kv[1])[:5]
    return Evidence(source="logs",
                    summary=(f"{len(notable)} warn/error line(s) of {len(lines)}; "
                             + ("; ".join(f"{n}x {m}" for m, n in top) or "none")),
                    items=tuple({"raw": line.raw} for line in notable[-limit:]))


@step(name="investigate: error tracker")
async def error_tracker(providers: Providers) -> Evidence:
    try:
        issues = await providers.errors.issues()
    except Exception as exc:
        return Evidence(source="errors", summary=f"error tracker unreadable: {exc}", available=False)
    open_issues = [i for i in issues if i.status == "unresolved"]
    return Evidence(source="errors", summary=f"{len(open_issues)} unresolved issue(s)",
                    items=tuple({"id": i.id, "title": i.title, "culprit": i.culprit, "count": i.count,
                                 "release": i.release} for i in open_issues[:10]))
