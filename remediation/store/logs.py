"""The app's log lines as a log drain delivered them (table ``app_log_lines``): add, read back, prune.

:class:`LogMethods` is mixed into :class:`~remediation.store.Store`; each method is one short transaction,
committed before it returns. Rows are read newest first in ``(logged_at, id)``
order, so a reader can page backwards with ``before`` and stop as soon as it has what it needs; the
``logged_at`` index serves both that and the pruning.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from remediation.store.coltypes import require_aware
from remediation.store.tables import AppLogLineORM


@dataclass(frozen=True)
class LogEntryIn:
    """One drained entry to keep: when the app logged it, its stream if known, its text, the drain's whole entry."""

    logged_at: datetime
    message: str
    stream: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class StoredLogLine:
    id: int
    source: str
    logged_at: datetime
    received_at: datetime
    stream: str | None
    message: str
    raw: dict[str, Any]


class LogMethods:
    """The drained-log half of ``Store``; relies on the store's ``_write``/``_read`` transactions."""

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def add_log_lines(self, source: str, entries: Sequence[LogEntryIn], received_at: datetime) -> int:
        """Store ``entries`` in one transaction; returns how many."""
        require_aware(received_at, "received_at")
        rows = [AppLogLineORM(source=source, logged_at=require_aware(e.logged_at, "logged_at"), received_at=received_at,
                              stream=e.stream, message=e.message, raw=e.raw) for e in entries]
        if rows:
            with self._write() as session:
                session.add_all(rows)
        return len(rows)


    def log_lines(self, source: str, since: datetime | None = None, limit: int = 500, *,
                  before: tuple[datetime, int] | None = None) -> list[StoredLogLine]:
        """The newest ``limit`` rows of ``source`` logged at or after ``since`` and, when ``before`` is a
        ``(logged_at, id)`` of an earlier answer, strictly older than that row; oldest first."""
        if limit <= 0:
            return []
        query = select(AppLogLineORM).where(AppLogLineORM.source == source)
        if since is not None:
            query = query.where(AppLogLineORM.logged_at >= require_aware(since, "since"))
        if before is not None:
            at, row_id = before
            query = query.where(or_(AppLogLineORM.logged_at < require_aware(at, "before"),
                                    and_(AppLogLineORM.logged_at == at, AppLogLineORM.id < row_id)))
        query = query.order_by(AppLogLineORM.logged_at.desc(), AppLogLineORM.id.desc()).limit(limit)
        with self._read() as session:
            rows = [_row(r) for r in session.scalars(query)]
        rows.reverse()
        return rows


    def newest_received_at(self, source: str) -> datetime | None:
        """When ``source`` last delivered a line that is still kept, or None."""
        with self._read() as session:
            newest: datetime | None = session.scalar(
                select(func.max(AppLogLineORM.received_at)).where(AppLogLineORM.source == source))
        return newest


    def prune_log_lines(self, older_than: datetime) -> int:
        """Delete every row logged before ``older_than`` (any source); returns how many."""
        cutoff = require_aware(older_than, "older_than")
        with self._write() as session:
            doomed = delete(AppLogLineORM).where(AppLogLineORM.logged_at < cutoff)
            result = cast(CursorResult[Any], session.execute(doomed))
            return int(result.rowcount or 0)


def _row(orm: AppLogLineORM) -> StoredLogLine:
    return StoredLogLine(id=orm.id, source=orm.source, logged_at=orm.logged_at, received_at=orm.received_at,
                         stream=orm.stream, message=orm.message, raw=dict(orm.raw or {}))
