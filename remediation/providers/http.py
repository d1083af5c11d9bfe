"""One careful HTTP GET against the application: budgeted, time-limited, and never raising.

Every failure mode (refused, timed out, 429, 5xx, wrong content type) comes back as a ``Fetched`` with
``error`` set, so callers turn it into an ``unknown`` finding with a clear message instead of a crash.

``AppHttp`` also counts what happened to its requests (:class:`AppReadTally`): one client serves many runs
in a process, so a run takes a snapshot when it starts and reports the difference, which is how a 429 met
mid-run reaches the run's report even when its last reading succeeded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx

from remediation.providers.budget import Budget
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


@dataclass(frozen=True)
class AppReadTally:
    """What became of an ``AppHttp``'s requests since it was built; ``later.since(earlier)`` is one run's share."""

    answered: int = 0  # an HTTP answer came back (any status, 429 included)
    too_many: int = 0  # answered 429
    # Answered 5xx: a gateway or a crashed app said it; whatever rate limit the app has was not what answered.
    server_errors: int = 0
    held_back: int = 0  # not sent: the app's rate limit was in force (a 429 or 0 remaining, seen by any process)
    over_budget: int = 0  # not sent: our own request budget was spent (or unreadable)
    unreachable: int = 0  # sent, but no answer (refused, reset, timed out)
    last_retry_after: str | None = None  # Retry-After of the latest 429, as the app sent it
    last_hold: str | None = None  # why the latest held-back request was not sent

    @property
    def rate_limited(self) -> int:
        """Requests the app's rate limit stopped: answered 429, or not sent because of one."""
        return self.too_many + self.held_back

    @property
    def attempted(self) -> int:
        return self.answered + self.held_back + self.over_budget + self.unreachable

    def since(self, earlier: AppReadTally) -> AppReadTally:
        return AppReadTally(
            answered=self.answered - earlier.answered,
            too_many=self.too_many - earlier.too_many,
            server_errors=self.server_errors - earlier.server_errors,
            held_back=self.held_back - earlier.held_back,
            over_budget=self.over_budget - earlier.over_budget,
            unreachable=self.unreachable - earlier.unreachable,
            last_retry_after=self.last_retry_after if self.too_many > earlier.too_many else None,
            last_hold=self.last_hold if self.held_back > earlier.held_back else None,
        )


class AppHttp:
    """GETs against one base URL, sharing one request budget (the app rate-limits per egress IP)."""

    def __init__(self, base_url: str, budget: Budget, *, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None, max_body_bytes: int = 5_000_000) -> None:
        self.base_url = base_url.rstrip("/")
        self.budget = budget
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._transport = transport
        # Runs on several threads and event loops share this client, so the tally has its own lock.
        self._tally = AppReadTally()
        self._tally_lock = threading.Lock()

    def reads(self) -> AppReadTally:
        """A snapshot of the counters; keep it and call :meth:`AppReadTally.since` on a later one."""
        with self._tally_lock:
            return self._tally

    def _count(self, bump: Callable[[AppReadTally], AppReadTally]) -> None:
        with self._tally_lock:
            self._tally = bump(self._tally)

    async def get(self, path: str, params: dict[str, str] | None = None) -> Fetched:
        return await self.send("GET", path, params=params)

    async def send(self, method: str, path: str, *, params: dict[str, str] | None = None,
                   cookies: dict[str, str] | None = None, json_body: object = None,
                   files: dict[str, tuple[str, bytes, str]] | None = None) -> Fetched:
        """Any method, from the same budget as the reads (the access probe presents a session cookie, the upload
        probe a multipart file)."""
        url = f"{self.base_url}{path}"
        refused = self.budget.try_acquire()
        if refused:
            by_app = self.budget.blocked_by_app()
            if by_app:
                self._count(lambda t: replace(t, held_back=t.held_back + 1, last_hold=refused))
            else:
                self._count(lambda t: replace(t, over_budget=t.over_budget + 1))
            return Fetched(url=url, error=f"not sent: {refused}", rate_limited=by_app)
        try:
            # A client per call: flows run on several event loops and a pooled client is bound to one.
            async with httpx.AsyncClient(
                timeout=self.timeout_s, transport=self._transport, verify=shared_ssl_context(), cookies=cookies
            ) as client:
                if files is not None:
                    response = await client.request(method, url, params=params, files=files)
                elif json_body is None:
                    response = await client.request(method, url, params=params)
                else:
                    response = await client.request(method, url, params=params, json=json_body)
        except httpx.TimeoutException:
            self._count(_unreachable)
            return Fetched(url=url, error=f"timed out after {self.timeout_s:g}s")
        except httpx.HTTPError as exc:
            self._count(_unreachable)
            return Fetched(url=url, error=f"unreachable: {type(exc).__name__}: {exc}")
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code == 429:
            retry_after = headers.get("retry-after", "?")
            self._count(lambda t: replace(t, answered=t.answered + 1, too_many=t.too_many + 1,
                                          last_retry_after=retry_after))
        elif response.status_code >= 500:
            self._count(lambda t: replace(t, answered=t.answered + 1, server_errors=t.server_errors + 1))
        else:
            self._count(lambda t: replace(t, answered=t.answered + 1))
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


def _unreachable(tally: AppReadTally) -> AppReadTally:
    return replace(tally, unreachable=tally.unreachable + 1)
