"""The middleware's API rate limit as it behaved in the observed run (per-instance fallback store).

The reference describes Upstash's sliding window, but without Upstash the app fell back to an in-memory
window anchored at an IP's first request: the captured ``ratelimit-reset`` stays constant across a window
(first request + 60 s, floored to a second) instead of moving with each request. We reproduce the capture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW_MS = 60_000


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int


@dataclass
class _Window:
    count: int
    reset_at_ms: int


class ApiRateLimiter:
    def __init__(self, limit: int, window_ms: int = WINDOW_MS) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._windows: dict[str, _Window] = {}

    def hit(self, identity: str, now_ms: int) -> RateDecision:
        window = self._windows.get(identity)
        if window is None or now_ms >= window.reset_at_ms:
            window = _Window(count=0, reset_at_ms=now_ms + self.window_ms)
            self._windows[identity] = window
        reset_s = window.reset_at_ms // 1000
        if window.count >= self.limit:
            retry = max(1, math.ceil((window.reset_at_ms - now_ms) / 1000))
            return RateDecision(False, self.limit, 0, reset_s, retry)
        window.count += 1
        return RateDecision(True, self.limit, self.limit - window.count, reset_s, 0)


def client_identity(forwarded_for: str | None, real_ip: str | None) -> str:
    """First X-Forwarded-For entry trimmed, else X-Real-IP, else ``unknown`` (src/middleware.ts)."""
    if forwarded_for:
        first = forwarded_for.split(",")[0].strip()
        if first:
            return first
    if real_ip:
        return real_ip
    return "unknown"
