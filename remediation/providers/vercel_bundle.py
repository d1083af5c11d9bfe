"""Pieces of the ``REMEDIATE_PLATFORM=vercel`` bundle (built in remediation.composition): kamkmserve as it really
runs (Vercel, Sentry, Clerk).

What each capability is on Vercel, and what it is not:

- deploys: the project's production deployments (``vercel``); edge (maintenance, flags) and the upload
  allowlist: Edge Config items (``vercel_edge``; the upload lever is None without an Edge Config);
- blocks: IPs in the Vercel Firewall (``vercel_firewall``), users and sessions through Clerk (``clerk_blocks``),
  routed by kind (:class:`RoutedBlocks`); a kind with no backend is refused with the reason;
- errors: Sentry's REST API when ``REMEDIATE_SENTRY_API_TOKEN`` / ``_ORG`` / ``_PROJECT`` are set; identity:
  Clerk when ``REMEDIATE_CLERK_SECRET_KEY`` is set;
- metrics and the load probe: the app's own endpoints (``REMEDIATE_APP_URL``); database and audit reads need
  ``REMEDIATE_APP_DATABASE_URL``; the scanner ``REMEDIATE_CLAMD_HOST``;
- **no lever**: capacity (Vercel autoscales, docs/reference/kamkmserve.md §12) and jobs (kamkmserve has none): None, so
the gate
  answers NoLever. Logs: Vercel keeps runtime logs only behind a log drain: ``POST /logs/vercel`` on `serve`
  receives one (``logs = "vercel-drain"``); without it the log evidence is ``unavailable``, never empty-and-healthy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from remediation.providers.capabilities import ActorBlocks, Clock
from remediation.providers.platform import PlatformError
from remediation.providers.security import Block, BlockKind

if TYPE_CHECKING:
    from remediation.providers.clerk import ClerkIdentity
    from remediation.providers.sentry_api import SentryApi
    from remediation.settings import Settings


class RoutedBlocks:
    """:class:`~remediation.providers.capabilities.ActorBlocks` joining the edge (ip) and the identity provider
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


def sentry_errors(settings: Settings, clock: Clock | None = None) -> SentryApi | None:
    """The Sentry REST adapter when settings name it, else None (any platform can use this)."""
    from remediation.providers.sentry_api import SentryApi

    if settings.sentry.api_token is None or not settings.sentry.org or not settings.sentry.project:
        return None
    return SentryApi(settings.sentry.api_token, org=settings.sentry.org, project=settings.sentry.project,
                     base_url=settings.sentry.api_url, timeout_s=settings.http_timeout_s, clock=clock)


def clerk_identity(settings: Settings, clock: Clock | None = None) -> ClerkIdentity | None:
    """The Clerk adapter when a secret key is set, else None."""
    from remediation.providers.clerk import ClerkIdentity

    if settings.clerk.secret_key is None:
        return None
    return ClerkIdentity(settings.clerk.secret_key, publishable_key=settings.clerk.publishable_key,
                         base_url=settings.clerk.api_url, timeout_s=settings.http_timeout_s, clock=clock)
