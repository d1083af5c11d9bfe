"""The upload runbook against real components: the simulator writes its audit rows into a throwaway PostgreSQL with
kamkmserve's exact ``kamkmserve_audit_log`` (read back by ``PostgresAuditLog``), and Debian's real clamd scans the
uploads (the app's hook) and answers our antivirus calls (``ClamdAntivirus``)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kamkmserve_sim import SimServer
from sqlalchemy import create_engine, text

from flows.suspicious_upload import suspicious_upload
from remediation import runtime
from remediation.providers.audit import PostgresAuditLog
from remediation.providers.clamd import ClamdAntivirus
from tests.flows.uploadkit import ATTACKER, DEFAULT_EXT, UPLOAD_FAST, allowlist, blocks, wait_for_burst, wait_until
from tests.helpers.clamd import EICAR, MARKER, Clamd, running_clamd
from tests.helpers.services import postgres_url_fixture

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    with running_clamd(tmp_path_factory.mktemp("clamd-upload")) as daemon:
        yield daemon


#: A fresh database per test for the app: the simulator creates (or, told so, leaves out) the audit table.
app_db = postgres_url_fixture("app_db", "remediate_uploads", scope="function")


def audit_rows(url: str, event: str = "upload.validation_failed") -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('kamkmserve_audit_log') IS NOT NULL")).scalar()
            if not exists:
                return []
            rows = conn.execute(text("SELECT * FROM kamkmserve_audit_log WHERE event = :e ORDER BY created_at"),
                                {"e": event}).mappings().all()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await suspicious_upload(**{**UPLOAD_FAST, **params})


def evidence(report: dict[str, Any], source: str) -> dict[str, Any]:
    return next(e for e in report["evidence"] if e["source"] == source)


async def test_real_audit_rows_and_clamd_block_the_uploader_and_verify_recovery(
        sim: Sim, providers: Build, app_db: str, clamd: Clamd) -> None:
    server = sim("malware-burst", rps=60, database_url=app_db, clamd_host=clamd.host, clamd_port=clamd.port)
    wait_for_burst(server, detections=4)

    def attack_rows() -> list[dict[str, Any]]:
        return [r for r in audit_rows(app_db) if str(r["ip"]).endswith(f"{ATTACKER}, 10.0.0.1")]

    wait_until("the attacker's rows in kamkmserve_audit_log", lambda: len(attack_rows()) >= 4)
    row = attack_rows()[0]
    assert row["actor_user_id"] is None and row["user_agent"] == "python-requests/2.32.3" and row["allowed"] is False
    assert str(row["metadata"]).startswith('{"error":"Malware scan failed: Test.')  # clamd's own signature names

    p = providers(server.url, app_database_url=app_db, clamd_host=clamd.host, clamd_port=clamd.port)
    assert isinstance(p.audit, PostgresAuditLog) and isinstance(p.antivirus, ClamdAntivirus)
    report = await run(p)

    assert report["outcome"] == "recovered", report["escalation"]
    assert [a["kind"] for a in report["actions"] if a["applied"]] == [
        "block_actor", "set_upload_allowlist", "reload_signatures", "set_upload_allowlist"]
    audit = evidence(report, "audit")
    actor = next(i for i in audit["items"] if i.get("kind") == "actor")
    assert actor["address"] == ATTACKER and actor["malware"] >= 4
    # clamd's own names for our local signatures (it marks them UNOFFICIAL).
    assert set(actor["reasons"]) <= {"Test.EICAR.HDB.UNOFFICIAL", "Test.Remediator.Marker.UNOFFICIAL"}
    rows = [i for i in audit["items"] if "event" in i]
    assert rows and all(len(r["id"]) == 36 and len(r["sha256"]) == 64 for r in rows)  # real gen_random_uuid() ids
    samples = {s["sha256"]: s for s in evidence(report, "samples")["items"]}
    eicar = samples[hashlib.sha256(EICAR).hexdigest()]
    assert eicar["rescan"] == {"status": "found", "signature": "Test.EICAR.HDB.UNOFFICIAL",
                               "detail": "stream: Test.EICAR.HDB.UNOFFICIAL FOUND"}
    marked = next(s for s in samples.values() if s["signature"].startswith("Test.Remediator.Marker"))
    assert marked["rescan"]["status"] == "found" and MARKER in base64.b64decode(marked["data_b64"])
    verification = report["verification"]
    assert verification["healthy"] is True
    assert "antivirus ok" in verification["detail"]  # clamd: the benign PNG is OK
    assert [b["value"] for b in blocks(server)] == [ATTACKER] and allowlist(server)["extensions"] == DEFAULT_EXT


async def test_clamd_down_is_unknown_and_nothing_is_lifted_on_missing_evidence(
        sim: Sim, providers: Build, app_db: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    server = sim("malware-burst", rps=60, database_url=app_db)  # the app's hook: the simulator's signatures
    wait_for_burst(server)
    wait_until("malware rows in kamkmserve_audit_log", lambda: len(audit_rows(app_db)) >= 3)
    with running_clamd(tmp_path_factory.mktemp("clamd-down")) as daemon:
        host, port = daemon.host, daemon.port
        daemon.stop()  # our clamd goes down before the run
        report = await run(providers(server.url, app_database_url=app_db, clamd_host=host, clamd_port=port))

    assert report["outcome"] == "escalated"
    verification = report["verification"]
    assert verification["healthy"] is False
    assert all(s["value"] is None for s in verification["samples"])  # unknown, never ok
    assert "unavailable" in verification["detail"]
    assert "nothing is lifted on missing evidence" in str(report["escalation"])
    kinds = {a["kind"]: a["state"] for a in report["actions"]}
    # clamd fails its PING, so the reload is denied before anyone is asked (never applied, never "ok").
    assert kinds == {"block_actor": "applied", "set_upload_allowlist": "applied", "reload_signatures": "planned"}
    assert "unblock_actor" not in kinds
    samples = evidence(report, "samples")["items"]
    assert samples and all(s["rescan"]["status"] == "unavailable" for s in samples)
    assert [b["value"] for b in blocks(server)] == [ATTACKER] and ".pdf" not in allowlist(server)["extensions"]


async def test_a_missing_audit_table_in_postgres_is_a_finding_and_nothing_crashes(
        sim: Sim, providers: Build, app_db: str) -> None:
    server = sim("malware-burst", rps=60, database_url=app_db, audit_table_missing=True)
    wait_for_burst(server)
    report = await run(providers(server.url, app_database_url=app_db))
    findings = {f["check"]: f for f in report["findings"]}
    audit = findings["upload_audit"]
    assert audit["status"] == "unknown"
    assert 'relation "kamkmserve_audit_log" does not exist' in audit["detail"]
    assert "audit writes are failing" in audit["detail"]
    writes = findings["audit_writes"]
    assert writes["status"] == "breach" and 'relation "kamkmserve_audit_log" does not exist' in writes["detail"]
    assert findings["upload_log_malware"]["status"] == "breach"
    assert report["outcome"] == "escalated"
    assert all(a["kind"] != "block_actor" for a in report["actions"])
    assert blocks(server) == [] and audit_rows(app_db) == []
