"""One careful HTTP GET against the application: budgeted, time-limited, and never raising.

Every failure mode (refused, timed out, 429, 5xx, wrong content type) comes back as a ``Fetched`` with
``error`` set, so callers turn it into an ``unknown`` finding with a clear message instead of a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from remediation.providers.budget import RequestBudget
from remediation.providers.tls import shared_ssl_context


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    error: str | None = None
    rate_limited: bool = False  # the app's rate limit (not our own budget) stopped this read

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class AppHttp:
    """GETs against one base URL, sharing one request budget (the app rate-limits per egress IP)."""

    def __init__(self, base_url: str, budget: RequestBudget, *, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None, max_body_bytes: int = 5_000_000) -> None:
        self.base_url = base_url.rstrip("/")
        self.budget = budget
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._transport = transport

    async def get(self, path: str, params: dict[str, str] | None = None) -> Fetched:
        return await self.send("GET", path, params=params)

    async def send(self, method: str, path: str, *, params: dict[str, str] | None = None,
                   cookies: dict[str, str] | None = None, json_body: object = None) -> Fetched:
        """Any method, from the same budget as the reads (the access probe presents a session cookie)."""
        url = f"{self.base_url}{path}"
        refused = self.budget.try_acquire()
        if refused:
            return Fetched(url=url, error=f"not sent: {refused}", rate_limited=self.budget.blocked_by_app())
        try:
            # A client per call: flows run on several event loops and a pooled client is bound to one.
            async with httpx.AsyncClient(
                timeout=self.timeout_s, transport=self._transport, verify=shared_ssl_context(), cookies=cookies
            ) as client:
                if json_body is None:
                    response = await client.request(method, url, params=params)
                else:
                    response = await client.request(method, url, params=params, json=json_body)
        except httpx.TimeoutException:
            return Fetched(url=url, error=f"timed out after {self.timeout_s:g}s")
        except httpx.HTTPError as exc:
            return Fetched(url=url, error=f"unreachable: {type(exc).__name__}: {exc}")
        headers = {k.lower(): v for k, v in response.headers.items()}
        self.budget.observe(response.status_code, headers)
        body = response.content[: self.max_body_bytes].decode("utf-8", errors="replace")
        if response.status_code == 429:
            retry = headers.get("retry-after", "?")
            return Fetched(url=url, status=429, headers=headers, text=body, rate_limited=True,
                           error=f"rate limited by the app (429, Retry-After {retry}s)")
        if response.status_code >= 400:
            return Fetched(url=url, status=response.status_code, headers=headers, text=body,
                           error=f"HTTP {response.status_code}")
        return Fetched(url=url, status=response.status_code, headers=headers, text=body)
