"""A local fake of the Sentry REST API parts we read, following docs.sentry.io/api
(docs/reference/integrations.md §2.2).

- ``GET /api/0/projects/{org}/{project}/`` → ``{id, slug, name}``;
- ``GET /api/0/organizations/{org}/issues/`` with ``project`` (numeric ids), ``query`` (default
  ``is:unresolved``), ``statsPeriod`` or ``start``/``end``, ``limit`` and ``cursor``; newest ``lastSeen`` first;
  ``count`` is a string;
- ``GET /api/0/projects/{org}/{project}/stats/?stat=received&since=&until=&resolution=`` → ``[[ts, n], ...]``;
- ``GET /api/0/projects/{org}/{project}/releases/`` (newest first) and
  ``GET /api/0/organizations/{org}/releases/{version}/deploys/``.

Lists paginate with Sentry's cursors (``<offset-ish>:<offset>:<is_prev>``) and the ``Link`` header, both entries
always present, ``results="true"|"false"``. Errors are ``{"detail": "..."}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from tests.helpers.fake_saas import Answer, FakeApi, one


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


class FakeSentryApi(FakeApi):
    def __init__(self, token: str = "sntrys_fake_token_0123456789abcdef", *, org: str = "kamkm",
                 project: str = "javascript-nextjs", project_id: str = "4506", page_size: int = 100,
                 now_ms: Callable[[], int] | None = None) -> None:
        super().__init__(token)
        self.org = org
        self.project = project
        self.project_id = project_id
        self.page_size = page_size  # the most Sentry returns per page, whatever ``limit`` asks
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.issues: list[dict[str, Any]] = []
        self.stats: list[tuple[int, int]] = []  # (epoch seconds, count)
        self.releases: list[dict[str, Any]] = []
        self.deploys: dict[str, list[dict[str, Any]]] = {}

    def unauthorized(self) -> Answer:
        return Answer(401, {"detail": "Invalid token"})

    # -- seeding --------------------------------------------------------------------------------------------------

    def add_issue(self, title: str, *, last_seen_ms: int, count: int = 1, status: str = "unresolved",
                  culprit: str = "GET /api/services", first_seen_ms: int | None = None) -> dict[str, Any]:
        with self.lock:
            number = len(self.issues) + 1
            issue = {"id": str(4_500_000 + number), "shortId": f"JAVASCRIPT-NEXTJS-{number}", "title": title,
                     "culprit": culprit, "level": "error", "status": status, "substatus": "ongoing",
                     "count": str(count), "userCount": 1, "firstSeen": _iso(first_seen_ms or last_seen_ms),
                     "lastSeen": _iso(last_seen_ms), "project": {"id": self.project_id, "slug": self.project},
                     "permalink": f"https://{self.org}.sentry.io/issues/{4_500_000 + number}/", "isUnhandled": True}
            self.issues.append(issue)
            return issue

    def add_release(self, version: str, *, created_ms: int, deploys_ms: tuple[int, ...] = (),
                    environment: str = "production", released_ms: int | None = None) -> None:
        with self.lock:
            deploys = [{"id": str(len(self.deploys) * 10 + i + 1), "environment": environment, "name": None,
                        "url": None, "dateStarted": _iso(at - 30_000), "dateFinished": _iso(at)}
                       for i, at in enumerate(deploys_ms)]
            self.deploys[version] = deploys
            self.releases.append({
                "version": version, "shortVersion": version, "dateCreated": _iso(created_ms),
                "dateReleased": _iso(released_ms) if released_ms else None, "newGroups": 0,
                "deployCount": len(deploys), "lastDeploy": deploys[-1] if deploys else None,
                "firstEvent": None, "lastEvent": None, "projects": [{"slug": self.project}]})

    # -- dispatch -------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        parts = path.strip("/").split("/")
        if method != "GET" or parts[:2] != ["api", "0"]:
            return Answer(405, {"detail": "Method not allowed"})
        rest = parts[2:]
        project_path = ["projects", self.org, self.project]
        if rest == project_path:
            return Answer(200, {"id": self.project_id, "slug": self.project, "name": self.project})
        if rest == ["organizations", self.org, "issues"]:
            return self._issues(path, query)
        if rest == [*project_path, "stats"]:
            since, until = float(one(query, "since", "0") or 0), float(one(query, "until", "1e12") or 1e12)
            return Answer(200, [[ts, n] for ts, n in self.stats if since <= ts <= until])
        if rest == [*project_path, "releases"]:
            ordered = sorted(self.releases, key=lambda r: r["dateCreated"], reverse=True)
            return self._page(path, query, ordered)
        if rest[:3] == ["organizations", self.org, "releases"] and len(rest) == 5 and rest[4] == "deploys":
            if rest[3] not in self.deploys:
                return Answer(404, {"detail": "The requested resource does not exist"})
            return self._page(path, query, list(reversed(self.deploys[rest[3]])))
        return Answer(404, {"detail": "The requested resource does not exist"})

    def _issues(self, path: str, query: dict[str, list[str]]) -> Answer:
        projects = set(query.get("project", []))
        if projects and "-1" not in projects and self.project_id not in projects:
            return Answer(403, {"detail": "You do not have permission to perform this action."})
        rows = list(self.issues)
        search = one(query, "query", "is:unresolved")
        if search and "is:unresolved" in search:
            rows = [r for r in rows if r["status"] == "unresolved"]
        start, end = _parse(one(query, "start")), _parse(one(query, "end"))
        if one(query, "statsPeriod") is None and start is not None:
            rows = [r for r in rows if _parse(r["lastSeen"]) >= start]  # type: ignore[operator]
        if end is not None:
            rows = [r for r in rows if _parse(r["firstSeen"]) <= end]  # type: ignore[operator]
        rows.sort(key=lambda r: r["lastSeen"], reverse=True)
        return self._page(path, query, rows)

    def _page(self, path: str, query: dict[str, list[str]], rows: list[dict[str, Any]]) -> Answer:
        size = min(int(one(query, "limit", one(query, "per_page", "100")) or 100), self.page_size)
        cursor = one(query, "cursor", "0:0:0") or "0:0:0"
        offset = int(cursor.split(":")[1])
        page = rows[offset:offset + size]
        more = offset + size < len(rows)
        base = {k: v for k, v in query.items() if k != "cursor"}

        def link(rel: str, at: int, results: bool, is_prev: int) -> str:
            cur = f"0:{max(at, 0)}:{is_prev}"
            url = f"{self.url}{path}?{urlencode({**base, 'cursor': [cur]}, doseq=True)}"
            return f'<{url}>; rel="{rel}"; results="{str(results).lower()}"; cursor="{cur}"'

        header = ", ".join([link("previous", offset - size, offset > 0, 1), link("next", offset + size, more, 0)])
        return Answer(200, page, {"Link": header})
