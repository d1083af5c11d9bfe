"""The audit reader against a real PostgreSQL with kamkmserve's exact audit schema, and without the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from kamkmserve_sim.appschema import AUDIT_SCHEMA
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from remediation.providers.audit import PostgresAuditLog
from tests.helpers.services import postgres_url_fixture

empty_db = postgres_url_fixture("empty_db", "remediate_audit", scope="function")


@pytest.fixture
def audit_db(empty_db: str) -> str:
    engine = create_engine(empty_db)
    now = datetime.now(UTC)
    malware = {"error": "Malware scan failed: simulated-detection"}
    chain, agent = "203.0.113.7, 10.0.0.1", "curl/8.5"
    rows = [
        ("upload.validation_failed", False, chain, agent, malware, now - timedelta(seconds=30)),
        ("upload.validation_failed", False, chain, agent, malware, now - timedelta(seconds=20)),
        ("upload.validated", True, "198.51.100.4", "Mozilla/5.0", {"mime": "image/png", "ext": ".png", "bytes": 68},
         now - timedelta(seconds=10)),
        ("upload.validation_failed", False, "203.0.113.7", agent, {"error": "File extension not allowed: .exe"},
         now - timedelta(hours=3)),
        ("admin.something", False, None, None, None, now),
    ]
    with engine.begin() as conn:
        for statement in AUDIT_SCHEMA:
            conn.execute(text(statement))
        for event, allowed, ip, agent, metadata, at in rows:
            conn.execute(text(
                "INSERT INTO kamkmserve_audit_log (event, action, resource, allowed, ip, user_agent, metadata, "
                "created_at) VALUES (:event, 'upload', '/api/uploads', :allowed, :ip, :agent, :metadata, :at)"),
                {"event": event, "allowed": allowed, "ip": ip, "agent": agent,
                 "metadata": json.dumps(metadata) if metadata is not None else None, "at": at})
    engine.dispose()
    return empty_db


async def test_recent_upload_events_are_read_in_order_with_the_raw_columns(audit_db: str) -> None:
    reader = PostgresAuditLog(audit_db)
    report = await reader.events(datetime.now(UTC) - timedelta(minutes=5))
    await reader.aclose()
    assert report.available and not report.table_missing
    assert [e.event for e in report.events] == ["upload.validation_failed", "upload.validation_failed",
                                                "upload.validated"]
    first = report.events[0]
    assert first.ip == "203.0.113.7, 10.0.0.1"  # the raw XFF chain, as the app stores it
    assert first.resource == "/api/uploads" and first.allowed is False and first.actor_user_id is None
    assert json.loads(first.metadata or "{}") == {"error": "Malware scan failed: simulated-detection"}
    assert len(first.id) == 36  # gen_random_uuid()::text


async def test_the_event_prefix_is_matched_literally(audit_db: str) -> None:
    reader = PostgresAuditLog(audit_db)
    report = await reader.events(datetime.now(UTC) - timedelta(days=1), event_prefix="upload_")
    await reader.aclose()
    assert report.available and report.events == ()  # "_" is not a wildcard


async def test_a_missing_audit_table_is_reported_as_such_not_raised(empty_db: str) -> None:
    reader = PostgresAuditLog(empty_db)
    report = await reader.events(datetime.now(UTC) - timedelta(minutes=5))
    await reader.aclose()
    assert not report.available and report.table_missing
    assert "does not exist" in report.reason and "audit writes are failing" in report.reason


async def test_an_unreachable_database_is_unavailable_with_a_reason() -> None:
    reader = PostgresAuditLog("postgresql://nobody@127.0.0.1:1/none", connect_timeout_s=1)
    report = await reader.events(datetime.now(UTC))
    assert not report.available and not report.table_missing and "unreadable" in report.reason


async def test_the_reader_cannot_write(audit_db: str) -> None:
    reader = PostgresAuditLog(audit_db)
    engine = reader._get_engine()
    with engine.connect() as conn, pytest.raises(DBAPIError, match="read-only"):
        conn.execute(text("DELETE FROM kamkmserve_audit_log"))
    await reader.aclose()
