"""ORM tables: the shape of the store, and the metadata Alembic compares the migrations against.

Enumerations (severity, mode, state, ...) are stored as plain strings, not native database enums: the
Python ``StrEnum`` is the source of truth, adding a value must not need an ALTER TYPE on PostgreSQL (or a
table rebuild on SQLite), and values are re-validated through the enums when rows are read back.

Child rows reference ``incidents`` without ``ON DELETE CASCADE``: the ledger is an audit trail and must
not vanish as a side effect of deleting an incident; a future purge deletes children explicitly.

Changing anything here needs a new hand-written revision in ``migrations/versions``;
``tests/store/test_migrations.py`` fails while the two disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, MetaData, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from remediation.store.coltypes import JSONDoc, UTCDateTime

#: Deterministic constraint/index names, so migrations can refer to them by name on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(64)  # "inc-…", "act-…", Prefect flow-run UUIDs
NAME = String(128)  # runbook, service, plan kind
ENUM = String(32)  # StrEnum values
WHO = String(255)  # approver identities


#: Predicate of the partial unique index on open incidents (same text in the migration).
OPEN_ONLY = "status = 'open'"
#: Predicate of the one-open-per-(runbook, service) index: only alert-opened incidents (a key) count, so a
#: manual or drill run (no key) never blocks intake nor is blocked by it (same text in migration 0008).
OPEN_FROM_ALERTS = "status = 'open' AND incident_key IS NOT NULL"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IncidentORM(Base):
    """One remediation run against one service, from open to close."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    runbook: Mapped[str] = mapped_column(NAME)
    service: Mapped[str] = mapped_column(NAME)
    severity: Mapped[str] = mapped_column(ENUM)
    mode: Mapped[str] = mapped_column(ENUM)
    status: Mapped[str] = mapped_column(ENUM)  # "open" | "closed"
    outcome: Mapped[str | None] = mapped_column(ENUM)  # set on close
    incident_key: Mapped[str | None] = mapped_column(String(255))  # alert dedupe key
    flow_run_id: Mapped[str | None] = mapped_column(ID)
    alert: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Alerts attached by intake (rows in ``alerts``); maintained in the same transaction as the insert.
    alert_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index(None, "service", "status"),
        Index(None, "incident_key"),
        # At most one *open* incident per dedupe key, enforced by the database so that racing intake
        # processes cannot both open one (the loser gets an IntegrityError and attaches instead).
        Index(
            "uq_incidents_open_incident_key",
            "incident_key",
            unique=True,
            sqlite_where=text(OPEN_ONLY),
            postgresql_where=text(OPEN_ONLY),
        ),
        # At most one open alert-opened incident per (runbook, service): an outage seen by Alertmanager and
        # by Sentry (two keys) is one incident, and two replicas racing on the two deliveries cannot both
        # open one (the loser's IntegrityError makes it retry and attach).
        Index(
            "uq_incidents_open_runbook_service",
            "runbook",
            "service",
            unique=True,
            sqlite_where=text(OPEN_FROM_ALERTS),
            postgresql_where=text(OPEN_FROM_ALERTS),
        ),
    )


class ActionORM(Base):
    """The action ledger: one row per planned or attempted mutation.

    ``service`` is the plan's service (the thing mutated), which is what a per-service rate cap counts.
    """

    __tablename__ = "actions"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    incident_id: Mapped[str] = mapped_column(ID, ForeignKey("incidents.id"))
    phase: Mapped[str] = mapped_column(ENUM)
    kind: Mapped[str] = mapped_column(NAME)
    risk: Mapped[str] = mapped_column(ENUM)
    service: Mapped[str] = mapped_column(NAME)
    target: Mapped[str] = mapped_column(Text)
    plan: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    decision: Mapped[str] = mapped_column(ENUM)
    reasons: Mapped[list[str]] = mapped_column(JSONDoc)
    state: Mapped[str] = mapped_column(ENUM)
    error: Mapped[str | None] = mapped_column(Text)
    read_back: Mapped[str | None] = mapped_column(Text)  # what the platform showed when the lever's answer was lost
    approver: Mapped[str | None] = mapped_column(WHO)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The incident's rows numbered as first written: breaks ties of started_at (a clock that did not move between
    # two actions); NULL on rows written before migration 0009.
    seq: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index(None, "incident_id"),
        Index(None, "state"),
        Index(None, "service", "state"),
    )


class ApprovalORM(Base):
    """Every answer to an approval request, including timeouts and refusals.

    ``action_id`` is deliberately not a foreign key: the approval is asked for (and recorded) before
    the action's ledger row exists.
    """

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ID, ForeignKey("incidents.id"))
    action_id: Mapped[str | None] = mapped_column(ID)
    answer: Mapped[str] = mapped_column(ENUM)
    approver: Mapped[str] = mapped_column(WHO)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    answer_id: Mapped[str | None] = mapped_column(ID)  # the answerer's correlation id (the CLI waits on it)
    via: Mapped[str | None] = mapped_column(ENUM)

    __table_args__ = (Index(None, "incident_id"), Index(None, "answer_id"))


class ApprovalProofORM(Base):
    """A proof of identity already spent: a TOTP time step or a signed Slack click, once per approver.

    The primary key is the guard: a second insert of the same (approver, proof) fails, on every backend and
    across processes, so a replayed answer can never count twice.
    """

    __tablename__ = "approval_proofs"

    approver: Mapped[str] = mapped_column(WHO, primary_key=True)
    proof: Mapped[str] = mapped_column(String(128), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ID)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PendingApprovalORM(Base):
    """A step waiting for people: what the approvals inbox lists, and what an answer must name to count."""

    __tablename__ = "pending_approvals"

    action_id: Mapped[str] = mapped_column(ID, primary_key=True)
    incident_id: Mapped[str] = mapped_column(ID, ForeignKey("incidents.id"))
    flow_run_id: Mapped[str | None] = mapped_column(ID)
    step: Mapped[str] = mapped_column(String(255))  # remediation.approvers.step_binding
    runbook: Mapped[str] = mapped_column(NAME)
    service: Mapped[str] = mapped_column(NAME)
    severity: Mapped[str] = mapped_column(ENUM)
    phase: Mapped[str] = mapped_column(ENUM)
    summary: Mapped[str] = mapped_column(Text)
    risk: Mapped[str] = mapped_column(ENUM)
    why: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(JSONDoc)
    undo: Mapped[str] = mapped_column(Text)
    statement: Mapped[str | None] = mapped_column(Text)
    needed: Mapped[int] = mapped_column(Integer)
    approved_by: Mapped[list[str]] = mapped_column(JSONDoc)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "flow_run_id"), Index(None, "incident_id"))


class TimelineORM(Base):
    """What happened when, in the order it happened (``at``, then insertion order)."""

    __tablename__ = "timeline"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ID, ForeignKey("incidents.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    phase: Mapped[str] = mapped_column(ENUM)
    event: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index(None, "incident_id"),)


class AlertORM(Base):
    """Every alert notification intake received, routed or not: nothing is dropped silently.

    ``incident_id`` is NULL for an alert that matched no route (``routed`` false, ``reason`` says why) and
    for a resolution whose incident key never had an incident. ``fingerprint`` identifies the alert at its
    source (Alertmanager's label hash, Sentry's event/issue id); ``payload`` is what the source sent.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str | None] = mapped_column(ID, ForeignKey("incidents.id"))
    source: Mapped[str] = mapped_column(ENUM)  # "alertmanager" | "sentry" | "generic"
    name: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(ENUM)  # "firing" | "resolved"
    routed: Mapped[bool] = mapped_column(Boolean)
    runbook: Mapped[str | None] = mapped_column(NAME)
    service: Mapped[str | None] = mapped_column(NAME)
    severity: Mapped[str | None] = mapped_column(ENUM)
    reason: Mapped[str | None] = mapped_column(Text)  # why it was not routed
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    # The alert's own dedupe key: with cross-source dedupe it may differ from its incident's, and the
    # cooldown and a later resolution must still find the incident this key's alerts went to.
    incident_key: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index(None, "incident_id"),
        Index(None, "received_at"),
        Index(None, "incident_key"),
    )


class RateBudgetORM(Base):
    """One token bucket per budget key (the app URL): every process reading that app shares it.

    Times are epoch seconds (float) so the refill arithmetic is the same on both backends.
    """

    __tablename__ = "rate_budgets"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[float] = mapped_column(Float)
    blocked_until: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    block_reason: Mapped[str | None] = mapped_column(Text)


class AppLogLineORM(Base):
    """A line of the app's own output as a log drain delivered it (``source`` "vercel-drain")."""

    __tablename__ = "app_log_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    logged_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stream: Mapped[str | None] = mapped_column(String(32))  # stdout | stderr | None when the drain does not say
    message: Mapped[str] = mapped_column(Text)  # the app's own line (its JSON text), as it printed it
    raw: Mapped[dict[str, Any]] = mapped_column(JSONDoc)  # the drain's whole entry

    __table_args__ = (Index(None, "logged_at"),)
