"""A k6-like smoke probe: N GETs to safe public pages of the app, client-side p95 and error share.

kamkmserve's own load-test gate is ``p(95) < 500 ms`` and ``rate < 0.01`` failed requests
(docs/reference/kamkmserve.md §11); this is that check, small enough to run as a recovery verification. It goes through
the app HTTP client, so it spends the same :class:`~remediation.providers.budget.RequestBudget` as every other reader of
the app (the real app allows 100 requests/min per IP): a request the budget refuses is not sent, and a 429 means *we*
were rate limited, not that the app failed. Both count as unanswered; too few answers make the probe *unknown*, never
healthy. Only GETs of public, read-only paths: a probe must never change anything.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from remediation.models import Sample, Verification, utcnow
from remediation.providers.http import AppHttp, Fetched
from remediation.stats import percentile

# Public, read-only, and cheap: the pages a visitor opens and the static liveness probe.
DEFAULT_PATHS = ("/", "/services", "/pricing", "/blog", "/monitoring/health")


class ProbeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    requested: int
    answered: int = 0  # the app answered (any status but 429)
    errors: int = 0  # answered >= 400, or the request failed on the way (refused, timed out)
    unanswered: int = 0  # 429 from the app, or not sent because our budget was spent
    p95_ms: float | None = None
    error_pct: float | None = None
    samples: tuple[Sample, ...] = ()
    problems: tuple[str, ...] = ()  # the first few failures, for the report


class LoadProbe:
    def __init__(self, http: AppHttp, paths: Sequence[str] = DEFAULT_PATHS, *, concurrency: int = 4,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        if not paths:
            raise ValueError("a probe needs at least one path")
        self.http = http
        self.paths = tuple(paths)
        self.concurrency = max(1, concurrency)
        self._timer = timer

    async def measure(self, requests: int) -> ProbeResult:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(index: int) -> tuple[Fetched, float]:
            async with gate:
                started = self._timer()
                fetched = await self.http.get(self.paths[index % len(self.paths)])
                return fetched, (self._timer() - started) * 1000

        results = await asyncio.gather(*(one(i) for i in range(requests)))
        samples: list[Sample] = []
        durations: list[float] = []
        problems: list[str] = []
        answered = errors = unanswered = 0
        for fetched, ms in results:
            if fetched.status == 429 or (fetched.status is None and (fetched.error or "").startswith("not sent")):
                unanswered += 1
                samples.append(Sample(at=utcnow(), value=None, healthy=False))
                continue
            failed = fetched.status is None or fetched.status >= 400
            answered += fetched.status is not None
            errors += failed
            durations.append(ms)
            samples.append(Sample(at=utcnow(), value=round(ms, 1), healthy=not failed))
            if failed and len(problems) < 5:
                problems.append(f"{fetched.url}: {fetched.error}")
        sent = len(durations)
        return ProbeResult(
            requested=requests, answered=answered, errors=errors, unanswered=unanswered,
            p95_ms=round(percentile(durations, 95), 1) if durations else None,
            error_pct=round(100.0 * errors / sent, 2) if sent else None,
            samples=tuple(samples), problems=tuple(problems))

    async def verify(self, *, requests: int, p95_ms: float, error_pct: float) -> Verification:
        """Healthy when enough requests were answered, p95 < ``p95_ms`` and errors < ``error_pct`` %."""
        result = await self.measure(requests)
        check = f"probe: {requests} GETs, p95 < {p95_ms:g} ms and errors < {error_pct:g}%"
        needed = max(1, math.ceil(requests / 2))
        if result.answered < needed or result.p95_ms is None or result.error_pct is None:
            why = (f"unknown: only {result.answered} of {requests} requests answered "
                   f"({result.unanswered} rate limited or not sent, {result.errors} failed)")
            if result.problems:
                why += f"; {result.problems[0]}"
            return Verification(check=check, healthy=False, samples=result.samples, required_consecutive=needed,
                                detail=why)
        healthy = result.p95_ms < p95_ms and result.error_pct < error_pct
        detail = (f"p95 {result.p95_ms:g} ms, {result.error_pct:g}% errors, {result.answered}/{requests} answered"
                  + (f", {result.unanswered} rate limited" if result.unanswered else "")
                  + (f"; {'; '.join(result.problems[:2])}" if result.problems else ""))
        return Verification(check=check, healthy=healthy, samples=result.samples, required_consecutive=needed,
                            detail=detail)
