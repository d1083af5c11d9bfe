"""A client-side request budget for an application that rate-limits us.

kamkmserve allows 100 requests per minute per IP on ``/api/*``, scrapes included, and every reader of the
app from one egress IP shares that. The budget keeps our own pollers well under it, honours ``Retry-After``
and the ``ratelimit-remaining``/``ratelimit-reset`` headers, and says *why* it refused, so a caller can
report the signal as ``unknown`` instead of waiting or hammering.

:class:`RequestBudget` is private to one process. The app's limit is per IP, so every process of a
deployment must spend *one* budget: :class:`SharedRequestBudget` keeps it in the store (a token bucket per
app, ``remediation.store.budgets``), and :func:`app_budget` is the one every reader of the app gets.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from remediation.settings import Settings
    from remediation.store.budgets import BudgetState, BudgetTake

log = logging.getLogger("remediation.budget")


class Budget(Protocol):
    """What ``AppHttp`` needs from a request budget, private to a process or shared through the store."""

    def try_acquire(self) -> str | None:
        """Take one request. None when allowed, else the reason it is not (the request must not be sent)."""
        ...

    def blocked_by_app(self) -> bool:
        """True while the app itself (429 or 0 remaining) has told us to wait, as opposed to our own budget."""
        ...

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response (a 429's Retry-After, or ``ratelimit-remaining: 0``)."""
        ...


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
        told = app_wait(status, headers, self._wall())
        if told is None:
            return
        wait, reason = told
        with self._lock:
            self._block(self._monotonic() + wait, reason)

    def _block(self, until: float, reason: str) -> None:
        if until > self._blocked_until:
            self._blocked_until = until
            self._block_reason = reason


class BudgetStore(Protocol):
    """The store operations a shared budget needs (``remediation.store.Store`` has them)."""

    def take_request(self, key: str, *, per_minute: int, now: float) -> BudgetTake: ...

    def block_requests(self, key: str, *, until: float, reason: str, per_minute: int,
                       now: float) -> BudgetState: ...


class SharedRequestBudget:
    """A :class:`Budget` whose tokens and app-imposed blocks live in the store, shared by every process on it.

    Capacity is ``per_minute`` tokens, refilled at ``per_minute``/60 per second; a 429 or
    ``ratelimit-remaining: 0`` seen by any process stops every process until the app's reset. Times are
    the wall clock (``wall``, epoch seconds), because processes share no monotonic clock. A bucket is not a
    sliding window: after an idle spell one minute can see the full bucket plus a minute of refill, just under
    2 x ``per_minute`` (59 at the default 30, under the app's 100 per sliding minute).

    The local state only ever *refuses* without asking the store: while a block this process has learned
    is running, or until the next token can exist in a bucket it found empty (tokens only come back with
    time, and other processes only take). So it saves round trips and can never exceed the shared budget.
    When the store cannot be reached the request is refused: a private fallback budget per process is
    exactly the over-spending this class exists to prevent.
    """

    def __init__(self, store: BudgetStore, key: str, per_minute: int, *,
                 wall: Callable[[], float] = time.time) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.store = store
        self.key = key
        self.per_minute = per_minute
        self._wall = wall
        self._lock = threading.Lock()
        self._blocked_until = 0.0
        self._block_reason = ""
        self._empty_until = 0.0

    def __repr__(self) -> str:
        return f"SharedRequestBudget({self.key!r}, {self.per_minute}/min)"

    def try_acquire(self) -> str | None:
        now = self._wall()
        with self._lock:
            if now < self._blocked_until:
                return f"{self._block_reason}; {self._blocked_until - now:.0f}s left"
            if now < self._empty_until:
                return self._spent(self._empty_until - now)
        try:
            taken = self.store.take_request(self.key, per_minute=self.per_minute, now=now)
        except SQLAlchemyError as exc:
            return f"the shared request budget is unreadable ({type(exc).__name__}), so nothing is sent"
        with self._lock:
            if taken.blocked_until > self._blocked_until:
                self._blocked_until = taken.blocked_until
                self._block_reason = taken.block_reason or "the app asked us to wait"
            if taken.granted:
                return None
            if taken.blocked:
                return f"{taken.block_reason}; {taken.retry_in_s:.0f}s left"
            self._empty_until = max(self._empty_until, now + taken.retry_in_s)
            return self._spent(taken.retry_in_s)

    def blocked_by_app(self) -> bool:
        """What this process last learned (every take and observe refreshes it): right after a refusal, current."""
        with self._lock:
            return self._wall() < self._blocked_until

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        now = self._wall()
        told = app_wait(status, headers, now)
        if told is None:
            return
        wait, reason = told
        until = now + wait
        with self._lock:
            if until > self._blocked_until:
                self._blocked_until, self._block_reason = until, reason
        try:
            self.store.block_requests(self.key, until=until, reason=reason, per_minute=self.per_minute, now=now)
        except SQLAlchemyError as exc:
            # This process still honours the block; the others learn it from their own next 429.
            log.warning("could not share the app's rate-limit block for %s: %s", self.key, exc)

    def _spent(self, wait_s: float) -> str:
        return (f"shared budget of {self.per_minute} requests/min for {self.key} spent; "
                f"next slot in {max(wait_s, 0.0):.0f}s")


def budget_key(app_url: str) -> str:
    """The store key of an app's budget: its origin (scheme, host, port), normalised.

    The app limits per client IP across all of ``/api/*``, so two spellings of one origin (case, a default
    port, a trailing path) must land on one budget.
    """
    parts = urlsplit(app_url.strip())
    scheme = (parts.scheme or "http").lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    port = parts.port
    origin = f"{scheme}://{host}" if port in (None, {"http": 80, "https": 443}.get(scheme)) else \
        f"{scheme}://{host}:{port}"
    key = f"app:{origin}"
    if len(key) > 255:  # the column's width; an absurdly long host still gets one stable key
        key = "app:sha256:" + hashlib.sha256(origin.encode()).hexdigest()
    return key


def app_budget(settings: Settings, store: BudgetStore, *,
               wall: Callable[[], float] = time.time) -> SharedRequestBudget:
    """The request budget every reader of ``settings.app_url`` must use: one per app per store, so all the
    processes of a deployment (runs, ``serve``, workers) together stay within ``metrics_budget_per_min``."""
    return SharedRequestBudget(store, budget_key(settings.app_url), settings.metrics_budget_per_min, wall=wall)


def app_wait(status: int, headers: Mapping[str, str], wall_now: float) -> tuple[float, str] | None:
    """How long the app told us to wait, and why; None when the response asks for no wait.

    ``headers`` keys are lower-case. A 429 without a usable Retry-After waits a whole window (60 s).
    """
    if status == 429:
        retry_after = _seconds(headers.get("retry-after"))
        wait = retry_after if retry_after is not None else 60.0
        return wait, f"the app answered 429 Too Many Requests (Retry-After {wait:g}s)"
    remaining = headers.get("ratelimit-remaining")
    reset = _seconds(headers.get("ratelimit-reset"))
    if remaining is not None and remaining.strip() == "0" and reset is not None:
        # ratelimit-reset is an epoch second, not a delta.
        return max(reset - wall_now, 1.0), "the app's rate limit has 0 remaining"
    return None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = float(value.strip())
    except ValueError:
        return None
    return parsed if parsed >= 0 else None
