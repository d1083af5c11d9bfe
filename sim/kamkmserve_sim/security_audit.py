"""Where the simulated app's ``writeAuditLog()`` inserts go: ``kamkmserve_audit_log`` in memory, or the real table.

The app's writer (``src/lib/audit.ts``, docs/reference/kamkmserve.md §5.1) is fire-and-forget: the HTTP answer never
waits for it, and only afterwards does it log ``Security event: Audit: <event>`` (insert succeeded) or
``Failed to write audit log`` with the insert's error (docs/reference/kamkmserve.md §3.2). So a sink takes the row and a
callback that receives the insert's error message (None: written); the in-memory sink calls back at once, the PostgreSQL
one from its writer thread once the INSERT has really run.

With ``missing`` the table was never migrated (no migration creates it): in memory every insert fails with
PostgreSQL's message; on a real database the table is simply not created, so the real INSERT fails. A table that
already exists in that database is never dropped: the database, not the flag, has the last word.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python

from kamkmserve_sim.clock import Clock
from kamkmserve_sim.jsfmt import js_json

TABLE_MISSING_ERROR = 'relation "kamkmserve_audit_log" does not exist'
_COLUMNS = ("id", "event", "action", "resource", "allowed", "actor_user_id", "ip", "user_agent", "metadata",
            "created_at")
# Rows oldest first, filtered by an event-name prefix taken literally (LIKE's wildcards escaped).
_SELECT = f"""
SELECT {", ".join(_COLUMNS)}
FROM kamkmserve_audit_log
WHERE created_at >= :since AND event LIKE :pattern ESCAPE '\\'
ORDER BY created_at, id
LIMIT :limit
"""
MEMORY_ROWS = 20_000


@dataclass(frozen=True)
class AuditRow:
    """One ``writeAuditLog()`` call as the uploads route makes it (``actor_user_id`` is always NULL there)."""

    event: str
    allowed: bool = False
    ip: str | None = None
    user_agent: str | None = None
    metadata: dict[str, object] | None = None
    action: str = "upload"
    resource: str = "/api/uploads"
    actor_user_id: str | None = None

    def metadata_text(self) -> str | None:
        # JSON.stringify(metadata): the column is text holding a JSON string, not jsonb.
        return js_json(self.metadata) if self.metadata is not None else None


AuditDone = Callable[[str | None], None]


class MemoryAudit:
    """The table in memory: rows in insertion order, ``created_at`` from the simulator's clock."""

    kind = "memory"

    def __init__(self, clock: Clock, *, missing: bool) -> None:
        self.clock = clock
        self.missing = missing
        self._rows: deque[dict[str, Any]] = deque(maxlen=MEMORY_ROWS)
        self.written = 0
        self.failed = 0

    def write(self, row: AuditRow, done: AuditDone) -> None:
        if self.missing:
            self.failed += 1
            done(TABLE_MISSING_ERROR)
            return
        self._rows.append({
            "id": str(uuid.uuid4()), "event": row.event, "action": row.action, "resource": row.resource,
            "allowed": row.allowed, "actor_user_id": row.actor_user_id, "ip": row.ip, "user_agent": row.user_agent,
            "metadata": row.metadata_text(),
            "created_at": datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC).isoformat(),
        })
        self.written += 1
        done(None)

    async def report(self, since: datetime, event_prefix: str, limit: int) -> dict[str, Any]:
        """An ``AuditReport`` as JSON (``remediation.providers.security``), read like the real reader reads."""
        if self.missing:
            return {"available": False, "table_missing": True, "reason": TABLE_MISSING_ERROR, "events": []}
        events = [r for r in self._rows
                  if r["event"].startswith(event_prefix) and datetime.fromisoformat(r["created_at"]) >= since]
        return {"available": True, "events": events[:limit]}

    def public(self) -> dict[str, object]:
        return {"backend": self.kind, "table_missing": self.missing, "written": self.written, "failed": self.failed}

    def close(self) -> None:
        return None


class PostgresAudit:
    """Real INSERTs into ``kamkmserve_audit_log`` on ``SimConfig.database_url``, from one writer thread."""

    kind = "postgres"

    def __init__(self, url: str, *, missing: bool) -> None:
        self.url = url
        self.missing = missing
        self.written = 0
        self.failed = 0
        self.last_error: str | None = None
        self._queue: queue.Queue[tuple[AuditRow, AuditDone] | None] = queue.Queue()
        self._engine: Any = None
        self._reader: Any = None
        self._thread = threading.Thread(target=self._run, name=f"sim-audit-{next(_threads)}", daemon=True)
        self._thread.start()

    def write(self, row: AuditRow, done: AuditDone) -> None:
        self._queue.put((row, done))

    def _run(self) -> None:
        error = self._prepare()
        while (job := self._queue.get()) is not None:
            row, done = job
            outcome = error or self._insert(row)
            if outcome is None:
                self.written += 1
            else:
                self.failed += 1
                self.last_error = outcome
            with contextlib.suppress(Exception):  # a callback must never kill the writer
                done(outcome)

    def _get_engine(self) -> Any:
        if self._engine is None:
            # One writer thread: one connection, kept (the app's driver reuses its HTTP connection too).
            self._engine = self._engine_for("kamkmserve-audit", pool_size=1)
        return self._engine

    def _engine_for(self, application: str, *, pool_size: int, options: str = "") -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        url = make_url(self.url)
        if url.drivername in {"postgresql", "postgres"}:
            url = url.set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {"connect_timeout": 3, "application_name": application}
        if options:
            connect_args["options"] = options
        return create_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, connect_args=connect_args)

    def _prepare(self) -> str | None:
        """The schema as the app declares it (unless the table is to be missing); an error string if unreachable."""
        if self.missing:
            return None
        from sqlalchemy import text

        from kamkmserve_sim.appschema import AUDIT_SCHEMA

        try:
            with self._get_engine().begin() as conn:
                for statement in AUDIT_SCHEMA:
                    conn.execute(text(statement))
        except Exception as exc:
            return _message(exc)
        return None

    def _insert(self, row: AuditRow) -> str | None:
        from sqlalchemy import text

        try:
            with self._get_engine().begin() as conn:
                conn.execute(text(
                    "INSERT INTO kamkmserve_audit_log (event, action, resource, allowed, actor_user_id, ip, "
                    "user_agent, metadata) VALUES (:event, :action, :resource, :allowed, :actor, :ip, :agent, "
                    ":metadata)"),
                    {"event": row.event, "action": row.action, "resource": row.resource, "allowed": row.allowed,
                     "actor": row.actor_user_id, "ip": row.ip, "agent": row.user_agent,
                     "metadata": row.metadata_text()})
        except Exception as exc:
            return _message(exc)
        return None

    async def report(self, since: datetime, event_prefix: str, limit: int) -> dict[str, Any]:
        """What a reader of the real table gets: the rows, or the database's reason it cannot read them."""
        return await asyncio.to_thread(self._select, since, event_prefix, limit)

    def _select(self, since: datetime, event_prefix: str, limit: int) -> dict[str, Any]:
        from sqlalchemy import text

        if self._reader is None:
            # Its own engine, read-only, apart from the writer thread's single connection.
            self._reader = self._engine_for("kamkmserve-audit-reader", pool_size=1,
                                            options="-c statement_timeout=5000 -c default_transaction_read_only=on")
        try:
            with self._reader.connect() as conn:
                rows = conn.execute(text(_SELECT), {"since": since, "pattern": _like_prefix(event_prefix),
                                                    "limit": limit}).mappings().all()
        except Exception as exc:
            if getattr(getattr(exc, "orig", None), "sqlstate", None) == "42P01":  # undefined_table
                return {"available": False, "reason": TABLE_MISSING_ERROR, "table_missing": True, "events": []}
            return {"available": False, "reason": f"audit log unreadable: {_message(exc)}", "table_missing": False,
                    "events": []}
        events = [{key: to_jsonable_python(row[key]) for key in _COLUMNS} for row in rows]
        return {"available": True, "reason": "", "table_missing": False, "events": events}

    def public(self) -> dict[str, object]:
        return {"backend": self.kind, "table_missing": self.missing, "written": self.written, "failed": self.failed,
                "last_error": self.last_error}

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        if self._engine is not None:
            self._engine.dispose()
        if self._reader is not None:
            self._reader.dispose()


def _message(exc: Exception) -> str:
    """The error's own message, as ``error.message`` reads in the app (PostgreSQL's primary message)."""
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    primary = getattr(diag, "message_primary", None)
    if isinstance(primary, str) and primary:
        return primary
    return str(getattr(exc, "orig", None) or exc).split("\n", 1)[0]


_threads = itertools.count(1)


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
