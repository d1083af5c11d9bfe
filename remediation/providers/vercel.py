"""Vercel REST API (httpx): the project's production deployments, and rolling back or forward between them.

kamkmserve deploys with ``vercel deploy --prebuilt --prod`` and has no rollback script
(docs/reference/kamkmserve.md §12); the practical rollback is pointing production back at an earlier deployment, which
is what this adapter does.

Endpoints (Vercel REST API reference): ``GET /v9/projects/{id}`` (``targets.production`` is what serves production
now; ``lastAliasRequest`` is the last promote/rollback with its ``jobStatus``), ``GET /v6/deployments?projectId=
&target=production`` (newest first), ``GET /v13/deployments/{id}``, ``POST /v1/projects/{id}/rollback/{deploymentId}``
(Instant Rollback to an *earlier* production deployment) and ``POST /v10/projects/{id}/promote/{deploymentId}``
(promote without rebuilding; Vercel's documented way to undo a rollback). All take ``teamId`` for team projects.

Rollback is idempotent and never doubled: when production already serves the target nothing is sent, and when a
promote/rollback to the target is still in flight (``lastAliasRequest``) we wait for it instead of asking again.
Vercel moves the aliases asynchronously, so a request is followed by a bounded poll; if production has not moved
within ``settle_s`` the call fails with the state it saw (the request itself stands and finishes on Vercel's side).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.providers.platform import PlatformError, Release
from remediation.providers.saas_client import NotConfigured, RestClient, epoch_ms

DEFAULT_API_URL = "https://api.vercel.com"
_IN_FLIGHT = {"pending", "in-progress"}


class VercelApi:
    """Credentials and scope for one Vercel project: a bearer token, the project and (for team projects) the team."""

    def __init__(self, token: SecretStr | str | None, *, project_id: str | None, team_id: str | None = None,
                 base_url: str = DEFAULT_API_URL, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None, clock: Clock | None = None,
                 max_wait_s: float = 10.0) -> None:
        self.clock: Clock = clock or RealClock()
        self.rest = RestClient("vercel", base_url, token, timeout_s=timeout_s, transport=transport, clock=self.clock,
                               max_wait_s=max_wait_s, token_setting="REMEDIATE_VERCEL_TOKEN")
        self.project_id = project_id
        self.team_id = team_id

    def scoped(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        merged = dict(params or {})
        if self.team_id:
            merged["teamId"] = self.team_id
        return merged

    def project(self) -> str:
        if not self.project_id:
            raise self.rest.error("vercel: no project configured (set REMEDIATE_VERCEL_PROJECT_ID)", NotConfigured)
        return self.project_id

    async def get(self, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return await self.rest.json("GET", path, params=self.scoped(params), **kwargs)

    async def send(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        return await self.rest.json(method, path, params=self.scoped(params), json_body=body)


class VercelDeploys:
    """:class:`~remediation.providers.capabilities.Deploys` over the project's production deployments."""

    def __init__(self, api: VercelApi, *, limit: int = 20, settle_s: float = 60.0, poll_s: float = 2.0) -> None:
        self.api = api
        self.limit = limit
        self.settle_s = settle_s
        self.poll_s = poll_s

    async def releases(self) -> list[Release]:
        project = await self._project()
        body = await self.api.get("/v6/deployments", {"projectId": self.api.project(), "target": "production",
                                                      "limit": str(self.limit)})
        if not isinstance(body, dict) or not isinstance(body.get("deployments"), list):
            raise PlatformError(f"vercel GET /v6/deployments: not a deployment list: {str(body)[:200]}")
        deployments = [d for d in body["deployments"] if isinstance(d, dict) and _id(d)]
        current = _production_id(project)
        if current and all(_id(d) != current for d in deployments):
            deployments.append(await self._deployment(current))  # older than the page: still list what serves
        previous = _previous_id(project, current, deployments)
        alias = _last_alias(project)
        releases = [_release(d, current, previous, alias) for d in deployments]
        return sorted(releases, key=lambda r: r.created_at, reverse=True)

    async def rollback(self, to_release: str) -> Release:
        project = await self._project()
        current = _production_id(project)
        if current == to_release:
            return await self._release_of(to_release, project)
        alias = _last_alias(project)
        if not (alias.get("toDeploymentId") == to_release and alias.get("jobStatus") in _IN_FLIGHT):
            target = await self._deployment(to_release)
            if str(target.get("readyState", target.get("state", ""))).upper() != "READY":
                raise PlatformError(f"vercel: deployment {to_release} is not READY "
                                    f"({target.get('readyState', target.get('state'))}); it cannot serve production")
            await self._move_production(to_release, target, current)
        return await self._settle(to_release)

    async def _move_production(self, to_release: str, target: dict[str, Any], current: str | None) -> None:
        project_id = self.api.project()
        older = current is not None and _created(target) < _created(await self._deployment(current))
        if older and target.get("target") == "production":
            # Instant Rollback: back to an earlier production deployment.
            await self.api.send("POST", f"/v1/projects/{project_id}/rollback/{to_release}",
                                params={"description": "automated remediation"})
        else:
            # Forward again (the undo of a rollback) or a deployment that was never production: promote.
            await self.api.send("POST", f"/v10/projects/{project_id}/promote/{to_release}")

    async def _settle(self, to_release: str) -> Release:
        waited = 0.0
        while True:
            project = await self._project()
            if _production_id(project) == to_release:
                return await self._release_of(to_release, project)
            alias = _last_alias(project)
            if alias.get("toDeploymentId") == to_release and alias.get("jobStatus") == "failed":
                raise PlatformError(f"vercel: moving production to {to_release} failed (lastAliasRequest "
                                    f"{alias.get('type', '?')} jobStatus failed)")
            if waited >= self.settle_s:
                raise PlatformError(
                    f"vercel: production still serves {_production_id(project)} {waited:g}s after asking for "
                    f"{to_release} (jobStatus {alias.get('jobStatus', 'unknown')}); Vercel finishes the move "
                    "asynchronously, check `vercel rollback status`")
            await self.api.clock.sleep(self.poll_s)
            waited += self.poll_s

    async def _release_of(self, deployment_id: str, project: dict[str, Any]) -> Release:
        current = _production_id(project)
        return _release(await self._deployment(deployment_id), current, None, _last_alias(project))

    async def _project(self) -> dict[str, Any]:
        body = await self.api.get(f"/v9/projects/{self.api.project()}")
        if not isinstance(body, dict):
            raise PlatformError(f"vercel GET /v9/projects: not a project: {str(body)[:200]}")
        return body

    async def _deployment(self, deployment_id: str) -> dict[str, Any]:
        body = await self.api.get(f"/v13/deployments/{deployment_id}")
        if not isinstance(body, dict) or not _id(body):
            raise PlatformError(f"vercel GET /v13/deployments/{deployment_id}: not a deployment: {str(body)[:200]}")
        return body


def _id(deployment: dict[str, Any]) -> str:
    # The v6 listing calls it ``uid``, the v13 single read ``id``.
    return str(deployment.get("uid") or deployment.get("id") or "")


def _created(deployment: dict[str, Any]) -> float:
    value = deployment.get("createdAt", deployment.get("created", 0))
    return float(value) if isinstance(value, int | float) else 0.0


def _production_id(project: dict[str, Any]) -> str | None:
    targets = project.get("targets")
    production = targets.get("production") if isinstance(targets, dict) else None
    if isinstance(production, dict) and production.get("id"):
        return str(production["id"])
    return None


def _last_alias(project: dict[str, Any]) -> dict[str, Any]:
    alias = project.get("lastAliasRequest")
    return alias if isinstance(alias, dict) else {}


def _previous_id(project: dict[str, Any], current: str | None, deployments: list[dict[str, Any]]) -> str | None:
    """What served production right before the current deployment."""
    alias = _last_alias(project)
    if current and alias.get("toDeploymentId") == current and alias.get("fromDeploymentId"):
        return str(alias["fromDeploymentId"])
    by_id = {_id(d): d for d in deployments}
    if current not in by_id:
        return None
    earlier = [d for d in deployments if _id(d) != current and _ready(d) and _created(d) < _created(by_id[current])]
    return _id(max(earlier, key=_created)) if earlier else None


def _ready(deployment: dict[str, Any]) -> bool:
    return str(deployment.get("readyState", deployment.get("state", ""))).upper() == "READY"


def _release(deployment: dict[str, Any], current: str | None, previous: str | None,
             alias: dict[str, Any]) -> Release:
    deployment_id = _id(deployment)
    created = epoch_ms(deployment.get("createdAt", deployment.get("created")))
    if created is None:
        raise PlatformError(f"vercel: deployment {deployment_id} has no createdAt")
    # A production deployment goes live when it is READY (auto-assigned domains); a promote or rollback to it
    # moves that moment to the request's time.
    promoted = epoch_ms(deployment.get("ready")) if _ready(deployment) else None
    if alias.get("toDeploymentId") == deployment_id and alias.get("jobStatus") == "succeeded":
        promoted = epoch_ms(alias.get("requestedAt")) or promoted
    if deployment_id == current:
        state = "current"
    elif deployment_id == previous:
        state = "previous"
    elif _ready(deployment):
        state = "superseded"
    else:
        state = str(deployment.get("readyState", deployment.get("state", "unknown"))).lower()
    meta = deployment.get("meta") if isinstance(deployment.get("meta"), dict) else {}
    sha = str(meta.get("githubCommitSha", "") if meta else "")
    version = sha[:7] if sha else str(deployment.get("url") or deployment_id)
    return Release(id=deployment_id, version=version, created_at=created, promoted_at=promoted, state=state)
