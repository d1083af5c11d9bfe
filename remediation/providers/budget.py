"""A client-side request budget for an application that rate-limits us.

kamkmserve allows 100 requests per minute per IP on ``/api/*``, scrapes included, and every reader of the
app from one egress IP shares that. The budget keeps our own pollers well under it, honours ``Retry-After``
and the ``ratelimit-remaining``/``ratelimit-reset`` headers, and says *why* it refused, so a caller can
report the signal as ``unknown`` instead of waiting or hammering.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping


class RequestBudget:
    def __init__(self, per_minute: int, *, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._monotonic = monotonic
        self._wall = wall
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0
        self._block_reason = ""
        self._lock = threading.Lock()

    def try_acquire(self) -> str | None:
        """Take one request from the budget. Returns None when allowed, else the reason it is not."""
        with self._lock:
            now = self._monotonic()
            if now < self._blocked_until:
                return f"{self._block_reason}; {self._blocked_until - now:.0f}s left"
            while self._sent and now - self._sent[0] >= 60.0:
                self._sent.popleft()
            if len(self._sent) >= self.per_minute:
                wait = 60.0 - (now - self._sent[0])
                return f"local budget of {self.per_minute} requests/min spent; next slot in {wait:.0f}s"
            self._sent.append(now)
            return None

    def blocked_by_app(self) -> bool:
        """True while the app itself (429 or 0 remaining) has told us to wait, as opposed to our own budget."""
        with self._lock:
            return self._monotonic() < self._blocked_until

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response: a 429's Retry-After, or the server telling us nothing is left."""
        retry_after = _seconds(headers.get("retry-after"))
        remaining = headers.get("ratelimit-remaining")
        reset = _seconds(headers.get("ratelimit-reset"))
        with self._lock:
            now = self._monotonic()
            if status == 429:
                wait = retry_after if retry_after is not None else 60.0
                self._block(now + wait, "the app answered 429 Too Many Requests")
            elif remaining is not None and remaining.strip() == "0" and reset is not None:
                # ratelimit-reset is an epoch second, not a delta.
                self._block(now + max(reset - self._wall(), 1.0), "the app's rate limit has 0 remaining")

    def _block(self, until: float, reason: str) -> None:
        if until > self._blocked_until:
            self._blocked_until = until
            self._block_reason = reason


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = float(value.strip())
    except ValueError:
        return None
    return parsed if parsed >= 0 else None
