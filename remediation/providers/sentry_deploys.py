"""Deploy correlation: "release X was deployed N minutes before the spike", from Sentry's releases and deploys.

The investigate phase asks whether an error spike follows a deploy. Sentry knows each release and the deploys
recorded for it (``sentry-cli releases deploys`` or the Vercel integration). :func:`correlate` reads the newest
releases, takes every deploy (the ``lastDeploy`` shortcut when a release has one deploy that went out before the
spike, the full deploy list otherwise), keeps those in ``[spike - window, spike]`` (optionally one environment)
and answers with the latest of them. A release with no deploy recorded counts by its ``dateReleased``, and the
answer says so ("released", not "deployed"). Unreadable Sentry is ``available=False`` with the reason, never
"no deploy".

kamkmserve sets no release anywhere (docs/reference/kamkmserve.md §9), so until its build passes one, Sentry's release
list is empty and the honest answer is "no release recorded", which the report states.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from remediation.providers.platform import PlatformError
from remediation.providers.sentry_api import SentryApi, SentryDeploy, SentryRelease


class DeployCorrelation(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    release: str | None = None
    environment: str | None = None
    deployed_at: datetime | None = None
    minutes_before: float | None = None
    kind: str = ""  # "deployed" (a recorded deploy) or "released" (no deploy recorded; dateReleased)
    summary: str = ""

    @property
    def found(self) -> bool:
        return self.release is not None


async def correlate(api: SentryApi, spike_at: datetime, window_s: float = 3600.0,
                    environment: str | None = None, max_releases: int = 20) -> DeployCorrelation:
    listing = await api.releases(limit=max_releases)
    if not listing.available:
        return DeployCorrelation(available=False, reason=listing.reason,
                                 summary=f"deploy history unavailable: {listing.reason}")
    start = spike_at - timedelta(seconds=window_s)
    candidates: list[tuple[datetime, str, str | None, str]] = []
    for release in listing.releases:
        try:
            deploys = await _deploys_of(api, release, spike_at)
        except PlatformError as exc:
            return DeployCorrelation(available=False, reason=str(exc),
                                     summary=f"deploys of {release.version} unreadable: {exc}")
        if deploys:
            for deploy in deploys:
                if deploy.at is not None and (environment is None or deploy.environment == environment):
                    candidates.append((deploy.at, release.version, deploy.environment or None, "deployed"))
        elif release.date_released is not None and environment is None:
            candidates.append((release.date_released, release.version, None, "released"))
    window = [c for c in candidates if start <= c[0] <= spike_at]
    minutes = window_s / 60
    if not window:
        if not listing.releases:
            why = "no release recorded in Sentry (kamkmserve sets none unless its build passes one)"
        else:
            why = f"no release deployed in the {minutes:g} min before the spike"
        return DeployCorrelation(available=True, summary=why)
    at, version, env, kind = max(window, key=lambda c: c[0])
    before = round((spike_at - at).total_seconds() / 60, 1)
    where = f" to {env}" if env else ""
    return DeployCorrelation(available=True, release=version, environment=env, deployed_at=at,
                             minutes_before=before, kind=kind,
                             summary=f"release {version} was {kind}{where} {before:g} min before the spike")


async def _deploys_of(api: SentryApi, release: SentryRelease, spike_at: datetime) -> list[SentryDeploy]:
    last = release.last_deploy
    if release.deploy_count == 0 and last is None:
        return []
    if release.deploy_count <= 1 and last is not None and last.at is not None and last.at <= spike_at:
        return [last]  # the only deploy, already known: no extra request
    return await api.deploys(release.version)
