"""Request budgets shared by every process that reads one app: a token bucket per key in ``rate_budgets``.

The app rate-limits per egress IP, so the limit belongs to the app, not to a process: four ``remediate run``
processes with a private budget each spent four budgets against one limit. Here each take is one write
transaction on the budget's row, so concurrent takers (threads, processes, hosts sharing the store) are
serialised by the database and can never spend the same token twice:

* PostgreSQL: the row is created with ``INSERT ... ON CONFLICT DO NOTHING`` (racing creators cannot both
  insert) and then read ``FOR UPDATE``, which holds the row lock until commit.
* SQLite: the store's writer transactions start with ``BEGIN IMMEDIATE`` (see ``engine.py``), so the read
  and the update happen under the database's single write lock.

Times are epoch seconds from the *caller's* clock (injected, so tests need no waiting). Clocks of
different hosts may disagree; ``refilled_at`` only ever moves forward, so a host whose clock lags sees
*fewer* tokens, never more.

The module-level functions take an open session and never commit; :class:`BudgetMethods` (mixed into
``Store``) wraps each in one transaction.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from remediation.store.engine import upsert_insert
from remediation.store.tables import RateBudgetORM

#: Tolerance for float refill arithmetic: 59 * (1/60) s of refill must count as one whole token.
_EPSILON = 1e-9


@dataclass(frozen=True)
class BudgetTake:
    """The answer to one take: granted, or why not and for how long at least."""

    granted: bool
    tokens: float  # left after this take
    blocked_until: float  # epoch s; the app told some reader to wait until then (0: no block)
    block_reason: str | None
    retry_in_s: float  # 0 when granted; else the earliest moment another take can succeed

    @property
    def blocked(self) -> bool:
        return not self.granted and self.block_reason is not None


@dataclass(frozen=True)
class BudgetState:
    key: str
    tokens: float
    refilled_at: float
    blocked_until: float
    block_reason: str | None


def _locked_row(session: Session, key: str, capacity: float, now: float) -> RateBudgetORM:
    """The budget's row, created full on first use, locked until the transaction ends."""
    values = {"key": key, "tokens": capacity, "refilled_at": now, "blocked_until": 0.0, "block_reason": None}
    session.execute(upsert_insert(session, RateBudgetORM).values(**values).on_conflict_do_nothing(
        index_elements=[RateBudgetORM.key]))
    row = session.scalars(
        select(RateBudgetORM).where(RateBudgetORM.key == key).with_for_update().execution_options(
            populate_existing=True)
    ).one()
    return row


def _refill(row: RateBudgetORM, capacity: float, per_second: float, now: float) -> None:
    elapsed = max(0.0, now - row.refilled_at)
    # min() also applies a smaller capacity at once when a caller's configured budget went down.
    row.tokens = min(capacity, row.tokens + elapsed * per_second)
    row.refilled_at = max(row.refilled_at, now)


def take(session: Session, key: str, *, per_minute: int, now: float) -> BudgetTake:
    """Take one token from ``key``'s bucket (capacity ``per_minute``, refilled ``per_minute``/60 per second)."""
    if per_minute < 1:
        raise ValueError("per_minute must be at least 1")
    capacity = float(per_minute)
    per_second = capacity / 60.0
    row = _locked_row(session, key, capacity, now)
    _refill(row, capacity, per_second, now)
    if row.blocked_until > now:
        return BudgetTake(granted=False, tokens=row.tokens, blocked_until=row.blocked_until,
                          block_reason=row.block_reason or "the app asked us to wait",
                          retry_in_s=row.blocked_until - now)
    if row.tokens + _EPSILON >= 1.0:
        row.tokens = max(0.0, row.tokens - 1.0)
        return BudgetTake(granted=True, tokens=row.tokens, blocked_until=row.blocked_until, block_reason=None,
                          retry_in_s=0.0)
    # The refill may start in the future (a block drained the bucket until it ends; see ``block``).
    retry_in = (1.0 - row.tokens) / per_second + max(0.0, row.refilled_at - now)
    return BudgetTake(granted=False, tokens=row.tokens, blocked_until=row.blocked_until, block_reason=None,
                      retry_in_s=retry_in)


def block(session: Session, key: str, *, until: float, reason: str, per_minute: int, now: float) -> BudgetState:
    """Stop every taker of ``key`` until ``until`` (the app answered 429 or said nothing is left).

    A later block never shortens an earlier one. The bucket is also emptied, refilling from ``until``: the app
    has just said this IP was too fast (maybe through readers we do not know about), so reading resumes at
    the steady rate rather than with a full burst the moment the block ends.
    """
    capacity = float(per_minute)
    row = _locked_row(session, key, capacity, now)
    _refill(row, capacity, capacity / 60.0, now)
    if until > row.blocked_until:
        row.blocked_until = until
        row.block_reason = reason
    row.tokens = 0.0
    row.refilled_at = max(row.refilled_at, until)
    return _state(row)


def state(session: Session, key: str) -> BudgetState | None:
    row = session.get(RateBudgetORM, key)
    return _state(row) if row is not None else None


def _state(row: RateBudgetORM) -> BudgetState:
    return BudgetState(key=row.key, tokens=row.tokens, refilled_at=row.refilled_at,
                       blocked_until=row.blocked_until, block_reason=row.block_reason)


class BudgetMethods:
    """The shared request budgets half of ``Store``; relies on the store's ``_write``/``_read`` transactions."""

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def take_request(self, key: str, *, per_minute: int, now: float) -> BudgetTake:
        """Atomically take one request from the budget ``key``, shared with every user of this store."""
        with self._write() as session:
            return take(session, key, per_minute=per_minute, now=now)

    def block_requests(self, key: str, *, until: float, reason: str, per_minute: int, now: float) -> BudgetState:
        """Refuse every take of ``key`` (in any process) until ``until`` epoch seconds."""
        with self._write() as session:
            return block(session, key, until=until, reason=reason, per_minute=per_minute, now=now)

    def request_budget(self, key: str) -> BudgetState | None:
        """The budget's row as last written (tokens are not refilled to now); None before its first use."""
        with self._read() as session:
            return state(session, key)
