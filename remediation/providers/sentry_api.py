"""Sentry REST API (httpx): the app's unresolved issues, its event counts, and its releases and deploys.

kamkmserve reports to Sentry as org ``kamkm`` / project ``javascript-nextjs`` (docs/reference/kamkmserve.md §9).
Endpoints (docs.sentry.io/api, docs/reference/integrations.md §2.2), all under ``<base>/api/0/`` with
``Authorization: Bearer <token>``:

- ``GET /projects/{org}/{project}/`` once, for the numeric project id the issues endpoint filters on;
- ``GET /organizations/{org}/issues/?project=<id>&query=is:unresolved&start=&end=`` (``count`` is a string);
- ``GET /projects/{org}/{project}/stats/?stat=received&since=&until=&resolution=`` (``[[epoch_s, n], ...]``);
- ``GET /projects/{org}/{project}/releases/`` (newest first; ``lastDeploy``, ``deployCount``) and
  ``GET /organizations/{org}/releases/{version}/deploys/``.

**Pagination.** Lists carry ``Link: <url>; rel="next"; results="true"|"false"; cursor="..."``; we follow ``next``
only while ``results="true"``, at most ``max_pages`` pages, and only to the same API origin (the token must never
follow a link elsewhere). **Rate limits.** A ``429`` is waited out per ``Retry-After`` within the client's bound
(``saas_client``), then the read is ``unavailable``: :meth:`SentryApi.issues` raises (the Errors Protocol's callers
turn that into an ``unknown`` finding), the other reads return a report with ``available=False`` and the reason.

Deploy correlation (``sentry_deploys``) answers the investigate phase's question "was a release deployed N minutes
before the spike?" from these releases and deploys.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.providers.platform import ErrorIssue, PlatformError
from remediation.providers.saas_client import NotConfigured, RestClient, iso_time

DEFAULT_API_URL = "https://sentry.io"


class SentryDeploy(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = ""
    environment: str = ""
    name: str | None = None
    url: str | None = None
    date_started: datetime | None = None
    date_finished: datetime | None = None

    @property
    def at(self) -> datetime | None:
        """When the deploy took effect: its finish, else its start."""
        return self.date_finished or self.date_started


class SentryRelease(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    date_created: datetime | None = None
    date_released: datetime | None = None
    last_deploy: SentryDeploy | None = None
    deploy_count: int = 0
    new_groups: int = 0


class EventCounts(BaseModel):
    """Events Sentry received per bucket. Reads never raise: unavailable is ``available=False`` with the reason."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    resolution: str = ""
    points: tuple[tuple[datetime, int], ...] = ()

    @property
    def total(self) -> int:
        return sum(n for _, n in self.points)


class ReleaseList(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    releases: tuple[SentryRelease, ...] = ()


class SentryApi:
    """:class:`~remediation.providers.capabilities.Errors` for one Sentry project, plus stats, releases and deploys."""

    def __init__(self, token: SecretStr | str | None, *, org: str | None, project: str | None,
                 base_url: str = DEFAULT_API_URL, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None, clock: Clock | None = None,
                 max_wait_s: float = 10.0, max_pages: int = 10, page_size: int = 100) -> None:
        self.clock: Clock = clock or RealClock()
        root = base_url.rstrip("/").removesuffix("/api/0")
        self.rest = RestClient("sentry", f"{root}/api/0", token, timeout_s=timeout_s, transport=transport,
                               clock=self.clock, max_wait_s=max_wait_s, token_setting="REMEDIATE_SENTRY_API_TOKEN")
        self.org = org
        self.project = project
        self.max_pages = max_pages
        self.page_size = page_size
        self._project_id: str | None = None

    # -- the Errors Protocol ------------------------------------------------------------------------------------

    async def issues(self, since: datetime | None = None) -> list[ErrorIssue]:
        """Unresolved issues of the project seen since ``since`` (default: the last 14 days), every page."""
        project_id = await self.project_id()
        params: dict[str, Any] = {"project": project_id, "query": "is:unresolved", "limit": str(self.page_size)}
        if since is None:
            params["statsPeriod"] = "14d"
        else:
            params["start"] = _iso(since)
            params["end"] = _iso(self.clock.now())
        rows = await self.paged(f"/organizations/{_seg(self._org())}/issues/", params)
        issues = [_issue(row) for row in rows if isinstance(row, dict) and row.get("id") is not None]
        if since is not None:
            issues = [i for i in issues if i.last_seen is None or i.last_seen >= since]
        return issues

    # -- stats, releases, deploys -------------------------------------------------------------------------------

    async def event_counts(self, since: datetime, until: datetime | None = None,
                           resolution: str = "10s") -> EventCounts:
        """Events received per ``resolution`` bucket (``10s``, ``1h`` or ``1d``; Sentry's unstable stats API)."""
        until = until or self.clock.now()
        try:
            body = await self.rest.json("GET", f"/projects/{_seg(self._org())}/{_seg(self._project())}/stats/",
                                        params={"stat": "received", "since": str(int(since.timestamp())),
                                                "until": str(int(until.timestamp())), "resolution": resolution})
            points = tuple((_epoch(ts), int(n)) for ts, n in body)
        except PlatformError as exc:
            return EventCounts(available=False, reason=str(exc), resolution=resolution)
        except (TypeError, ValueError) as exc:
            return EventCounts(available=False, reason=f"sentry stats: not [[ts, count], ...] ({exc})",
                               resolution=resolution)
        return EventCounts(available=True, resolution=resolution, points=points)

    async def releases(self, limit: int = 20) -> ReleaseList:
        """The project's newest releases (one page, at most ``limit``)."""
        try:
            body = await self.rest.json("GET", f"/projects/{_seg(self._org())}/{_seg(self._project())}/releases/",
                                        params={"per_page": str(limit)})
            if not isinstance(body, list):
                raise PlatformError(f"sentry releases: not a list: {str(body)[:200]}")
            releases = tuple(_release(row) for row in body[:limit] if isinstance(row, dict) and row.get("version"))
        except PlatformError as exc:
            return ReleaseList(available=False, reason=str(exc))
        return ReleaseList(available=True, releases=releases)

    async def deploys(self, version: str) -> list[SentryDeploy]:
        """Every deploy of one release (raises PlatformError when unreadable)."""
        rows = await self.paged(f"/organizations/{_seg(self._org())}/releases/{_seg(version)}/deploys/", {})
        return [_deploy(row) for row in rows if isinstance(row, dict)]

    # -- plumbing -------------------------------------------------------------------------------------------------

    async def project_id(self) -> str:
        if self._project_id is None:
            body = await self.rest.json("GET", f"/projects/{_seg(self._org())}/{_seg(self._project())}/")
            if not isinstance(body, dict) or body.get("id") is None:
                raise PlatformError(f"sentry project {self._org()}/{self._project()}: no id in {str(body)[:200]}")
            self._project_id = str(body["id"])
        return self._project_id

    async def paged(self, path: str, params: dict[str, Any]) -> list[Any]:
        """Every row of a list endpoint, following ``Link: rel="next"`` while ``results="true"``."""
        rows: list[Any] = []
        url: str | None = path
        query: dict[str, Any] | None = params
        for _ in range(self.max_pages):
            assert url is not None
            response = await self.rest.request("GET", url, params=query)
            try:
                page = response.json()
            except ValueError as exc:
                raise self.rest.error(f"sentry GET {path}: not JSON: {response.text[:200]!r}") from exc
            if not isinstance(page, list):
                raise self.rest.error(f"sentry GET {path}: not a list: {str(page)[:200]}")
            rows.extend(page)
            url, query = self._next(response), None
            if url is None:
                break
        return rows

    def _next(self, response: httpx.Response) -> str | None:
        link = response.links.get("next")
        if not link or link.get("results") != "true" or not link.get("url"):
            return None
        target = httpx.URL(link["url"])
        base = httpx.URL(self.rest.base_url)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise self.rest.error(f"sentry: refusing to follow a next link to another origin ({target.host})")
        return str(target)

    def _org(self) -> str:
        if not self.org:
            raise self.rest.error("sentry: no organization configured (set REMEDIATE_SENTRY_ORG)", NotConfigured)
        return self.org

    def _project(self) -> str:
        if not self.project:
            raise self.rest.error("sentry: no project configured (set REMEDIATE_SENTRY_PROJECT)", NotConfigured)
        return self.project


def _seg(value: str) -> str:
    return quote(value, safe="")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _epoch(ts: object) -> datetime:
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise ValueError(f"timestamp {ts!r}")
    return datetime.fromtimestamp(ts, tz=UTC)


def _count(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _issue(row: dict[str, Any]) -> ErrorIssue:
    first_release = row.get("firstRelease")
    release = first_release.get("version") if isinstance(first_release, dict) else row.get("release")
    return ErrorIssue(id=str(row["id"]), title=str(row.get("title") or ""), culprit=str(row.get("culprit") or ""),
                      level=str(row.get("level") or "error"), status=str(row.get("status") or "unresolved"),
                      count=_count(row.get("count", 0)), first_seen=iso_time(row.get("firstSeen")),
                      last_seen=iso_time(row.get("lastSeen")), release=str(release) if release else None)


def _deploy(row: dict[str, Any]) -> SentryDeploy:
    return SentryDeploy(id=str(row.get("id") or ""), environment=str(row.get("environment") or ""),
                        name=row.get("name"), url=row.get("url"), date_started=iso_time(row.get("dateStarted")),
                        date_finished=iso_time(row.get("dateFinished")))


def _release(row: dict[str, Any]) -> SentryRelease:
    last = row.get("lastDeploy")
    return SentryRelease(version=str(row["version"]), date_created=iso_time(row.get("dateCreated")),
                         date_released=iso_time(row.get("dateReleased")),
                         last_deploy=_deploy(last) if isinstance(last, dict) else None,
                         deploy_count=_count(row.get("deployCount", 0)), new_groups=_count(row.get("newGroups", 0)))
