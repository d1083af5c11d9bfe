"""The simulated platform's control plane (``/_sim/``), standing in for Vercel/AWS in demo and tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from remediation.providers.logparse import parse_lines
from remediation.providers.platform import ErrorIssue, FlagChange, LogLine, PlatformError, Release
from remediation.providers.tls import shared_ssl_context


class NotASimulator(PlatformError):
    """The control plane URL answers, but not as the simulator: a 404 or an HTML page (e.g. the real app)."""


class ControlPlane:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._transport = transport

    async def send(self, method: str, path: str, *, json_body: Any = None, params: dict[str, str] | None = None,
                   content: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        """One request; any status is returned, a transport failure raises PlatformError."""
        url = f"{self.base_url}/_sim{path}"
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout_s, transport=self._transport, verify=shared_ssl_context()
            ) as client:
                return await client.request(method, url, json=json_body, params=params, content=content,
                                            headers=headers)
        except httpx.HTTPError as exc:
            raise PlatformError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: dict[str, str] | None = None) -> httpx.Response:
        response = await self.send(method, path, json_body=json_body, params=params)
        url = f"{self.base_url}/_sim{path}"
        html = "html" in response.headers.get("content-type", "").lower()
        if response.status_code == 404 or html:
            # Not a simulator at all (the real app answers its 404 page): say so, never hide it behind a False.
            raise NotASimulator(f"{method} {url}: HTTP {response.status_code}"
                                f"{' (an HTML page)' if html else ''}: no simulator control plane answers at "
                                f"{self.base_url} (check REMEDIATE_SIM_URL)")
        if response.status_code >= 400:
            raise PlatformError(f"{method} {url}: HTTP {response.status_code}: {response.text[:200]}",
                                status=response.status_code)
        return response

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise PlatformError(f"{method} {path}: not JSON: {response.text[:200]}") from exc


class SimDeploys:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def releases(self) -> list[Release]:
        body = await self.plane.json("GET", "/releases")
        return [Release.model_validate(item) for item in body["releases"]]

    async def rollback(self, to_release: str) -> Release:
        body = await self.plane.json("POST", "/releases/rollback", json_body={"to": to_release})
        return Release.model_validate(body["current"])


class SimEdge:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def maintenance_prefixes(self) -> list[str]:
        body = await self.plane.json("GET", "/maintenance")
        return list(body["prefixes"])

    async def set_maintenance(self, prefix: str, enabled: bool) -> bool:
        body = await self.plane.json("POST", "/maintenance", json_body={"prefix": prefix, "enabled": enabled})
        return bool(body.get("changed", True))

    async def flag_history(self) -> list[FlagChange]:
        body = await self.plane.json("GET", "/flags")
        return [FlagChange.model_validate(item) for item in body.get("history", [])]

    async def flag(self, name: str) -> bool | None:
        body = await self.plane.json("GET", "/flags")
        state = body.get("flags", {}).get(name) if isinstance(body, dict) else None
        if state is None:
            return None
        if not isinstance(state, dict) or not isinstance(state.get("enabled"), bool):
            raise PlatformError(f"GET /flags: flag {name!r} has no true/false value: {str(state)[:200]}")
        return bool(state["enabled"])

    async def set_flag(self, name: str, enabled: bool) -> bool:
        body = await self.plane.json("POST", "/flags", json_body={"name": name, "enabled": enabled})
        return bool(body.get("changed", True))


class SimLogs:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def lines(self, since: datetime | None = None, limit: int = 500) -> list[LogLine]:
        params = {"limit": str(limit)}
        if since is not None:
            params["since"] = since.isoformat().replace("+00:00", "Z")
        response = await self.plane.request("GET", "/logs", params=params)
        return parse_lines(response.text.splitlines())


class SimErrors:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def issues(self, since: datetime | None = None) -> list[ErrorIssue]:
        body = await self.plane.json("GET", "/errors")
        issues = [
            ErrorIssue.model_validate(
                {**item, "count": int(item.get("count", 0)),
                 "first_seen": item.get("firstSeen"), "last_seen": item.get("lastSeen")}
            )
            for item in body
        ]
        if since is not None:
            issues = [i for i in issues if i.last_seen is None or i.last_seen >= since]
        return issues
