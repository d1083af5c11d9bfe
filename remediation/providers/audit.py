"""Reading kamkmserve's ``kamkmserve_audit_log`` (docs/reference/kamkmserve.md §5.1) with SQLAlchemy, read-only.

No migration creates the table, so in production it may simply not exist: that is a reading with
``table_missing=True`` and a reason that says what it means (every audit write is failing), never an exception.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from remediation.providers.security import AuditEvent, AuditReport

TABLE = "kamkmserve_audit_log"
TABLE_MISSING = (f'relation "{TABLE}" does not exist: no migration creates it '
                 "(docs/reference/kamkmserve.md §5.1), so the app's audit writes are failing "
                 "(it logs \"Failed to write audit log\") and there is no audit trail")

_SELECT = f"""
SELECT id, event, action, resource, allowed, actor_user_id, ip, user_agent, metadata, created_at
FROM {TABLE}
WHERE created_at >= :since AND event LIKE :pattern ESCAPE '\\'
ORDER BY created_at, id
LIMIT :limit
"""


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class PostgresAuditLog:
    """:class:`remediation.providers.capabilities.AuditLog` over the app's PostgreSQL."""

    def __init__(self, url: str, *, statement_timeout_s: float = 5.0, connect_timeout_s: int = 3) -> None:
        self.url = url
        self.statement_timeout_s = statement_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._engine: Any = None

    def _get_engine(self) -> Any:
        if self._engine is None:
            from sqlalchemy import create_engine

            from remediation.store.engine import normalize_url

            url = normalize_url(self.url)
            self._engine = create_engine(url, pool_pre_ping=True, pool_size=1, max_overflow=1, connect_args={
                "connect_timeout": self.connect_timeout_s, "application_name": "remediation-audit-reader",
                "options": f"-c statement_timeout={max(1, int(self.statement_timeout_s * 1000))} "
                           "-c default_transaction_read_only=on",
            })
        return self._engine

    async def events(self, since: datetime, event_prefix: str = "upload.", limit: int = 5000) -> AuditReport:
        def read() -> AuditReport:
            from sqlalchemy import text

            with self._get_engine().connect() as conn:
                rows = conn.execute(text(_SELECT), {"since": since, "pattern": _like_prefix(event_prefix),
                                                    "limit": limit}).mappings().all()
            return AuditReport(available=True, events=tuple(AuditEvent.model_validate(dict(r)) for r in rows))

        try:
            return await asyncio.to_thread(read)
        except Exception as exc:
            from remediation.providers.database import describe_error

            if getattr(getattr(exc, "orig", None), "sqlstate", None) == "42P01":
                return AuditReport(available=False, table_missing=True, reason=TABLE_MISSING)
            return AuditReport(available=False, reason=f"audit log unreadable: {describe_error(exc)}")

    async def aclose(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.dispose)
