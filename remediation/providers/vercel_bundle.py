"""The live bundle for ``REMEDIATE_PLATFORM=vercel``: kamkmserve as it really runs (Vercel, Sentry, Clerk).

What each capability is on Vercel, and what it is not:

- deploys: the project's production deployments (``vercel``); edge (maintenance, flags) and the upload
  allowlist: Edge Config items (``vercel_edge``; the upload lever is None without an Edge Config);
- blocks: IPs in the Vercel Firewall (``vercel_firewall``), users and sessions through Clerk (``clerk_blocks``),
  routed by kind (:class:`RoutedBlocks`); a kind with no backend is refused with the reason;
- errors: Sentry's REST API when ``REMEDIATE_SENTRY_API_TOKEN`` / ``_ORG`` / ``_PROJECT`` are set; identity:
  Clerk when ``REMEDIATE_CLERK_SECRET_KEY`` is set;
- metrics and the load probe: the app's own endpoints (``REMEDIATE_APP_URL``); database and audit reads need
  ``REMEDIATE_APP_DATABASE_URL``; the scanner ``REMEDIATE_CLAMD_HOST``;
- **no lever**: capacity (Vercel autoscales, reference §12) and jobs (kamkmserve has none): None, so the gate
  answers NoLever. Logs: Vercel keeps runtime logs only behind a log drain, which is not wired here, so reading
  logs fails with that reason and the runbook's log evidence is ``unavailable``, never empty-and-healthy.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from remediation.providers.clock import Clock, RealClock
from remediation.providers.platform import ErrorIssue, LogLine, PlatformError
from remediation.providers.security import ActorBlocks, Block, BlockKind

if TYPE_CHECKING:
    from remediation.providers.clerk import ClerkIdentity
    from remediation.providers.sentry_api import SentryApi
    from remediation.runtime import Providers
    from remediation.settings import Settings


class RoutedBlocks:
    """:class:`~remediation.providers.security.ActorBlocks` joining the edge (ip) and the identity provider
    (user, session). ``blocks()`` is all or nothing: a list missing one side would read as "nothing blocked"."""

    def __init__(self, ip: ActorBlocks | None, people: ActorBlocks | None) -> None:
        self.ip = ip
        self.people = people

    def _for(self, kind: BlockKind) -> ActorBlocks:
        lever = self.ip if kind == "ip" else self.people
        if lever is None:
            where = "an edge firewall (REMEDIATE_VERCEL_PROJECT_ID)" if kind == "ip" else \
                "Clerk (REMEDIATE_CLERK_SECRET_KEY)"
            raise PlatformError(f"no lever blocks a {kind} here: configure {where}")
        return lever

    async def blocks(self) -> list[Block]:
        found: list[Block] = []
        for lever in (self.ip, self.people):
            if lever is not None:
                found.extend(await lever.blocks())
        return found

    async def block(self, kind: BlockKind, value: str, ttl_s: int, reason: str) -> Block:
        return await self._for(kind).block(kind, value, ttl_s, reason)

    async def unblock(self, kind: BlockKind, value: str) -> bool:
        return await self._for(kind).unblock(kind, value)


class DrainlessLogs:
    """Logs on Vercel without a log drain: there is nothing we can read, and we say so."""

    async def lines(self, since: datetime | None = None, limit: int = 500) -> list[LogLine]:
        raise PlatformError("no log source on Vercel: runtime logs are readable only through a log drain, which "
                            "is not configured for the remediator")


class UnconfiguredErrors:
    async def issues(self, since: datetime | None = None) -> list[ErrorIssue]:
        raise PlatformError("no error tracker configured: set REMEDIATE_SENTRY_API_TOKEN, REMEDIATE_SENTRY_ORG "
                            "and REMEDIATE_SENTRY_PROJECT")


def sentry_errors(settings: Settings, clock: Clock | None = None) -> SentryApi | None:
    """The Sentry REST adapter when settings name it, else None (any platform can use this)."""
    from remediation.providers.sentry_api import SentryApi

    if settings.sentry_api_token is None or not settings.sentry_org or not settings.sentry_project:
        return None
    return SentryApi(settings.sentry_api_token, org=settings.sentry_org, project=settings.sentry_project,
                     base_url=settings.sentry_api_url, timeout_s=settings.http_timeout_s, clock=clock)


def clerk_identity(settings: Settings, clock: Clock | None = None) -> ClerkIdentity | None:
    """The Clerk adapter when a secret key is set, else None."""
    from remediation.providers.clerk import ClerkIdentity

    if settings.clerk_secret_key is None:
        return None
    return ClerkIdentity(settings.clerk_secret_key, publishable_key=settings.clerk_publishable_key,
                         base_url=settings.clerk_api_url, timeout_s=settings.http_timeout_s, clock=clock)


def connect_vercel(settings: Settings, *, migrate: bool = True, clock: Clock | None = None) -> Providers:
    from remediation.providers.audit import PostgresAuditLog
    from remediation.providers.budget import RequestBudget
    from remediation.providers.clerk_blocks import ClerkBlocks
    from remediation.providers.database import PostgresInspector
    from remediation.providers.http import AppHttp
    from remediation.providers.metrics import AppMetrics
    from remediation.providers.prefect_approvals import PrefectApprovals
    from remediation.providers.probe import LoadProbe
    from remediation.providers.vercel import VercelApi, VercelDeploys
    from remediation.providers.vercel_edge import EdgeConfig, VercelEdge, VercelUploadPolicy
    from remediation.providers.vercel_firewall import VercelFirewallBlocks
    from remediation.runtime import Providers
    from remediation.store import Store

    clock = clock or RealClock()
    store = Store(settings.resolved_database_url)
    if migrate:
        store.migrate()
    http = AppHttp(settings.app_url, RequestBudget(settings.metrics_budget_per_min), timeout_s=settings.http_timeout_s)
    api = VercelApi(settings.vercel_token, project_id=settings.vercel_project_id, team_id=settings.vercel_team_id,
                    base_url=settings.vercel_api_url, timeout_s=settings.http_timeout_s, clock=clock)
    config = EdgeConfig(api, settings.vercel_edge_config_id)
    identity = clerk_identity(settings, clock)
    antivirus = None
    if settings.clamd_host:
        from remediation.providers.clamd import ClamdAntivirus

        antivirus = ClamdAntivirus(settings.clamd_host, settings.clamd_port, timeout_s=settings.http_timeout_s)
    return Providers(
        settings=settings, metrics=AppMetrics(http), deploys=VercelDeploys(api), edge=VercelEdge(config),
        logs=DrainlessLogs(), errors=sentry_errors(settings, clock) or UnconfiguredErrors(),
        approvals=PrefectApprovals(poll_interval_s=settings.approval_poll_s), store=store, clock=clock,
        blocks=RoutedBlocks(VercelFirewallBlocks(api) if settings.vercel_project_id else None,
                            ClerkBlocks(identity) if identity is not None else None),
        uploads=VercelUploadPolicy(config) if settings.vercel_edge_config_id else None,
        identity=identity, antivirus=antivirus, probe=LoadProbe(http),
        database=PostgresInspector(settings.app_database_url) if settings.app_database_url else None,
        audit=PostgresAuditLog(settings.app_database_url) if settings.app_database_url else None,
    )
