"""Persistence for incidents, alerts, the action ledger, approvals and timelines (SQLite or PostgreSQL).

``Store`` is the API; ``upgrade`` runs the packaged Alembic migrations. Importing this package creates
no engine and opens no file.
"""

from remediation.store.alerts import AlertIn, UnroutedIn
from remediation.store.approvals import PendingStep
from remediation.store.errors import (
    ActionConflict,
    ActionNotFound,
    IncidentExists,
    IncidentNotFound,
    StoreError,
)
from remediation.store.migrate import downgrade, upgrade
from remediation.store.repository import Store
from remediation.store.rows import ActionRow, AlertRow, AlertStatus, IncidentStatus, IncidentSummary, IngestResult

__all__ = [
    "ActionConflict",
    "ActionNotFound",
    "ActionRow",
    "AlertIn",
    "AlertRow",
    "AlertStatus",
    "IncidentExists",
    "IncidentNotFound",
    "IncidentStatus",
    "IncidentSummary",
    "IngestResult",
    "PendingStep",
    "Store",
    "StoreError",
    "UnroutedIn",
    "downgrade",
    "upgrade",
]
