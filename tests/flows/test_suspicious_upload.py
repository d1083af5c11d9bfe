"""Scenario tests for the upload/malware runbook: the simulator in-process on virtual time, a real Prefect API, a
real store, scripted approvals. The runbook's waits are what move the simulator (tests.flows.timekit), so no test
waits on the wall clock. The runbook against a real simulator server over HTTP on the wall clock is covered by
test_suspicious_upload_real.py (real PostgreSQL and clamd) and test_aws_end_to_end.py (AWS levers)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kamkmserve_sim.security import EICAR

from flows.suspicious_upload import suspicious_upload
from remediation import gate, runtime
from remediation.models import ActionRecord, Mode, Phase, UnblockActor, Verdict
from remediation.providers.security import AuditEvent, AuditReport
from remediation.providers.sim_platform import ControlPlane, SimLogs
from remediation.providers.sim_security import SimAntivirus
from remediation.runbooks.suspicious_upload import group_actors
from tests.flows.timekit import VirtualWorld
from tests.flows.uploadkit import (
    ATTACKER,
    DEFAULT_EXT,
    UPLOAD_FAST,
    allowlist_in,
    blocks_in,
    burst_in,
    plane_in,
    upload_in,
)

NEVER_BLOCK = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "::1/128",
               "fc00::/7", "fe80::/10")


async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await suspicious_upload(**{**UPLOAD_FAST, **params})


def kinds(report: dict[str, Any], state: str | None = None) -> list[str]:
    return [a["kind"] for a in report["actions"] if state is None or a["state"] == state]


def finding(report: dict[str, Any], check: str) -> dict[str, Any]:
    return next(f for f in report["findings"] if f["check"] == check)


def evidence(report: dict[str, Any], source: str) -> dict[str, Any]:
    return next(e for e in report["evidence"] if e["source"] == source)



class FailingAfterReload(SimAntivirus):
    """Our antivirus reloads fine, and right after it the platform's scanner goes down: the app's upload hook then
    fails closed (``Malware scan failed: scan-error``) and our scans are unavailable."""

    async def reload(self) -> bool:
        reloaded = await super().reload()
        await self.plane.json("POST", "/antivirus", json_body={"available": False})
        return reloaded


@pytest.mark.usefixtures("prefect_api")
async def test_stands_down_when_uploads_are_clean(world: VirtualWorld) -> None:
    """Before the burst every signal is readable and shows no malware: stand down, change nothing."""
    world.start("malware-burst", rps=60, onset_s=3600)
    await world.advance(1.0)
    report = await run(world.providers())
    assert report["outcome"] == "stood_down", report["escalation"]
    assert finding(report, "suspicious_uploads")["status"] == "ok"
    assert finding(report, "upload_audit")["status"] == "ok"  # rows there, none a malware rejection
    assert report["actions"] == []
    assert await blocks_in(world) == [] and (await allowlist_in(world))["extensions"] == DEFAULT_EXT


@pytest.mark.usefixtures("prefect_api")
async def test_blocks_the_uploader_tightens_the_allowlist_verifies_and_recovers(world: VirtualWorld) -> None:
    world.start("malware-burst", rps=60)
    await burst_in(world)
    report = await run(world.providers())

    assert report["outcome"] == "recovered", report["escalation"]
    assert finding(report, "suspicious_uploads")["status"] == "breach"
    assert finding(report, "upload_audit")["status"] == "breach"
    assert finding(report, "upload_log_malware")["status"] == "breach"
    assert kinds(report, "applied") == ["block_actor", "set_upload_allowlist", "reload_signatures",
                                        "set_upload_allowlist"]
    block = report["actions"][0]
    assert block["target"] == f"ip {ATTACKER} for 3600s" and block["risk"] == "reversible"
    assert block["undo"] == {"kind": "unblock_actor", "actor_kind": "ip", "value": ATTACKER, "service": "kamkmserve",
                             "reason": "undo"}
    tightened = report["actions"][1]
    assert tightened["target"] == "uploads: .png,.jpg,.jpeg,.webp / image/png,image/jpeg,image/webp"
    assert report["verification"]["healthy"] is True and len(report["verification"]["samples"]) >= 2

    # The block is in force with its TTL and left to expire; the allowlist is back; the attacker's uploads stop
    # reaching the app (edge 403s).
    (edge,) = await blocks_in(world)
    assert edge["kind"] == "ip" and edge["value"] == ATTACKER
    ttl = datetime.fromisoformat(edge["expires_at"]) - datetime.fromisoformat(edge["created_at"])
    assert abs(ttl.total_seconds() - 3600) < 2
    assert (await allowlist_in(world))["extensions"] == DEFAULT_EXT
    assert (await plane_in(world, "/blocks"))["refused"] > 0
    assert any(t["event"].startswith(f"block left to expire: ip {ATTACKER}") for t in report["timeline"])

    # Evidence preserved: the actor's rows with their sha256, the samples re-scanned, with bytes and sha256.
    audit = evidence(report, "audit")
    actor = next(i for i in audit["items"] if i.get("kind") == "actor")
    assert actor["address"] == ATTACKER and actor["user_agents"] == ["python-requests/2.32.3"]
    assert len(actor["chains"]) > 1  # spoofed left entries: same client, several chains
    rows = [i for i in audit["items"] if "event" in i]
    assert rows and all(len(r["sha256"]) == 64 for r in rows)
    assert any(r["metadata"].startswith('{"error":"Malware scan failed: ') for r in rows)
    samples = evidence(report, "samples")["items"]
    eicar = next(s for s in samples if s["sha256"] == hashlib.sha256(EICAR).hexdigest())
    assert base64.b64decode(eicar["data_b64"]) == EICAR and eicar["sha256_verified"] is True
    assert eicar["rescan"]["status"] == "found" and eicar["ext"] == ".pdf"
    assert (await plane_in(world, "/antivirus"))["reloads"] == 1


@pytest.mark.usefixtures("prefect_api")
async def test_approve_mode_block_denied_changes_nothing_and_is_denied(world: VirtualWorld) -> None:
    from remediation.providers.approvals import Scripted

    world.start("malware-burst", rps=60)
    await burst_in(world)
    p = world.providers(answers=[Scripted(approve=False, approver="bob", reason="shared NAT of a customer")])
    report = await run(p, mode=Mode.APPROVE)
    assert report["outcome"] == "denied"
    assert "not approved (denied by bob)" in report["escalation"]
    assert kinds(report) == ["block_actor"] and kinds(report, "applied") == []
    assert report["actions"][0]["approval"] == "denied"
    assert await blocks_in(world) == [] and (await allowlist_in(world))["extensions"] == DEFAULT_EXT
    assert (await plane_in(world, "/antivirus"))["reloads"] == 0


@pytest.mark.usefixtures("prefect_api")
async def test_antivirus_unavailable_is_unknown_escalates_and_keeps_the_blocks(world: VirtualWorld) -> None:
    world.start("malware-burst", rps=60)
    await burst_in(world)
    down = SimAntivirus(ControlPlane("http://127.0.0.1:9", timeout_s=1))
    report = await run(world.providers().with_(antivirus=down))
    assert report["outcome"] == "escalated"
    verification = report["verification"]
    assert verification["healthy"] is False and "unavailable" in verification["detail"]
    assert all(s["value"] is None for s in verification["samples"])  # unknown, never healthy
    assert "blocks kept" in report["escalation"] and "nothing is lifted on missing evidence" in report["escalation"]
    assert "unblock_actor" not in kinds(report)
    assert kinds(report, "applied") == ["block_actor", "set_upload_allowlist"]
    # The scanner fails its read-only check, so the reload is denied before anyone is asked, with the reason.
    reload = next(a for a in report["actions"] if a["kind"] == "reload_signatures")
    assert reload["state"] != "applied" and reload["approval"] is None
    assert any("antivirus lever fails its read-only check" in r for r in reload["reasons"]), reload["reasons"]
    assert [b["value"] for b in await blocks_in(world)] == [ATTACKER]
    assert ".pdf" not in (await allowlist_in(world))["extensions"]  # containment kept


@pytest.mark.usefixtures("prefect_api")
async def test_benign_probe_rejected_escalates_and_keeps_containment(world: VirtualWorld) -> None:
    world.start("malware-burst", rps=60)
    await burst_in(world)
    p = world.providers()
    assert isinstance(p.antivirus, SimAntivirus)
    report = await run(p.with_(antivirus=FailingAfterReload(p.antivirus.plane)))
    assert report["outcome"] == "escalated"
    detail = report["verification"]["detail"]
    assert "remediation-probe.png answered 400" in detail and "scan-error" in detail
    assert [b["value"] for b in await blocks_in(world)] == [ATTACKER]
    assert "unblock_actor" not in kinds(report) and kinds(report, "applied")[-1] == "reload_signatures"


@pytest.mark.usefixtures("prefect_api")
async def test_as_is_mode_reports_the_missing_audit_table_and_takes_no_destructive_action(
    world: VirtualWorld,
) -> None:
    """Request metrics dead and no audit table (production today): nobody can be named, so nobody is blocked."""
    world.start("malware-burst", rps=60, request_metrics=False, audit_table_missing=True)
    await burst_in(world)
    report = await run(world.providers())
    audit = finding(report, "upload_audit")
    assert audit["status"] == "unknown"
    assert 'relation "kamkmserve_audit_log" does not exist' in audit["detail"]
    assert "audit writes are failing" in audit["detail"]
    writes = finding(report, "audit_writes")
    assert writes["status"] == "breach" and "Failed to write audit log" in writes["detail"]
    assert finding(report, "error_rate_5xx")["status"] == "unknown"
    assert finding(report, "upload_log_malware")["status"] == "breach"  # the logs still show the malware
    assert finding(report, "upload_rejected_validation")["status"] != "unknown"  # upload counters are real
    assert "block_actor" not in kinds(report)
    assert all(a["risk"] != "destructive" for a in report["actions"])
    assert await blocks_in(world) == []
    assert report["outcome"] == "escalated" and "source of the malware is not blocked" in report["escalation"]
    # the reversible containment stays until a human acts
    assert ".pdf" not in (await allowlist_in(world))["extensions"]


@pytest.mark.usefixtures("prefect_api")
async def test_every_signal_dead_is_unknown_escalates_and_changes_nothing(world: VirtualWorld) -> None:
    """No audit table, the metrics function down and the log drain unreachable: nothing can show malware."""
    world.start("malware-burst", rps=60, audit_table_missing=True)
    await burst_in(world)
    await world.request("POST", "/_sim/faults", json={"metrics": "down"})
    p = world.providers().with_(logs=SimLogs(ControlPlane("http://127.0.0.1:9", timeout_s=1)))
    report = await run(p)
    assert report["outcome"] == "escalated" and "no upload signal can be read" in report["escalation"]
    statuses = {f["check"]: f["status"] for f in report["findings"]}
    assert {statuses[c] for c in ("suspicious_uploads", "upload_audit", "upload_log_malware",
                                  "upload_rejected_validation")} == {"unknown"}
    assert report["actions"] == []
    assert await blocks_in(world) == [] and (await allowlist_in(world))["extensions"] == DEFAULT_EXT


@pytest.mark.usefixtures("prefect_api")
async def test_spoofed_or_malformed_chains_never_lead_to_a_never_block_address(world: VirtualWorld) -> None:
    """Malware from chains that name only our own network, garbage, or (with a narrow proxy list) a private address:
    those rows name nobody we may block; only the real public client is blocked."""
    world.start("malware-burst", rps=60)
    chains = ("10.0.0.9, 10.0.0.1", "garbage, 10.0.0.1", "192.168.7.7, 10.0.0.1", "127.0.0.1")
    for chain in chains:
        for _ in range(3):
            assert (await upload_in(world, "x.pdf", "application/pdf", EICAR, chain)).status_code == 400
    await burst_in(world, detections=3 * len(chains) + 6)  # ours count too: wait for the attacker's own burst
    report = await run(world.providers(trusted_proxy_cidrs=["10.0.0.1/32"]))
    targets = [a["target"] for a in report["actions"] if a["kind"] == "block_actor"]
    assert targets == [f"ip {ATTACKER} for 3600s"]
    detail = finding(report, "upload_audit")["detail"]
    assert "name no client we may block" in detail and "never-block" in detail
    assert [b["value"] for b in await blocks_in(world)] == [ATTACKER]
    assert report["outcome"] == "escalated"  # some malware came from sources nobody may block: a human looks


@pytest.mark.usefixtures("prefect_api")
async def test_blocks_carry_their_ttl_and_their_undo_lifts_them(world: VirtualWorld) -> None:
    world.start("malware-burst", rps=60)
    await burst_in(world)
    p = world.providers()
    report = await run(p, block_ttl_s=120)
    assert report["outcome"] == "recovered", report["escalation"]
    (edge,) = await blocks_in(world)
    assert (datetime.fromisoformat(edge["expires_at"]) - datetime.fromisoformat(edge["created_at"])) == \
        timedelta(seconds=120)
    assert (await upload_in(world, "a.png", "image/png", b"x", f"{ATTACKER}, 10.0.0.1")).status_code == 403

    undo = UnblockActor.model_validate(report["actions"][0]["undo"])
    record = await gate.apply(ActionRecord(phase=Phase.RECOVER, plan=undo, decision=Verdict.ALLOW),
                              report["incident_id"], p)
    assert record.applied and await blocks_in(world) == []
    again = await upload_in(world, "a.png", "image/png", b"x", f"{ATTACKER}, 10.0.0.1")
    assert again.status_code == 200  # the app again


@pytest.mark.usefixtures("prefect_api")
async def test_dry_run_plans_the_containment_and_touches_nothing(world: VirtualWorld) -> None:
    world.start("malware-burst", rps=60)
    await burst_in(world)
    report = await run(world.providers(), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert kinds(report) == ["block_actor", "set_upload_allowlist", "reload_signatures"]
    assert all(a["decision"] == "deny" and not a["applied"] for a in report["actions"])
    assert await blocks_in(world) == [] and (await allowlist_in(world))["extensions"] == DEFAULT_EXT


def _row(ip: str | None, error: str = "Malware scan failed: Win.Test.EICAR_HDB-1") -> AuditEvent:
    return AuditEvent(id=ip or "none", event="upload.validation_failed", action="upload", resource="/api/uploads",
                      allowed=False, ip=ip, user_agent="curl/8.5.0", metadata=f'{{"error":"{error}"}}',
                      created_at=datetime.now(UTC))


@pytest.mark.parametrize(("chain", "named"), [
    ("203.0.113.66, 10.0.0.1", "203.0.113.66"),
    ("10.0.3.7, 203.0.113.66, 10.0.0.1", "203.0.113.66"),  # spoofed private left entry: ignored
    ("127.0.0.1, 203.0.113.66, 10.0.0.1", "203.0.113.66"),
    ("not-an-ip, 203.0.113.66, 10.0.0.1", "203.0.113.66"),  # garbage left of the client: never reached
    ("10.0.0.9, 10.0.0.1", None),  # only our own network
    ("203.0.113.66, garbage, 10.0.0.1", None),  # garbage in the trusted part: names nobody
    ("192.168.7.7", None),
    ("", None),
    (None, None),
    ("fe80::1, 10.0.0.1", None),
])  # fmt: skip
def test_a_chain_names_its_client_or_nobody_never_a_never_block_address(chain: str | None, named: str | None) -> None:
    reading = group_actors(AuditReport(available=True, events=(_row(chain),) * 3), NEVER_BLOCK, NEVER_BLOCK)
    assert [a.address for a in reading.actors] == ([named] if named else [])
    assert reading.unattributed == (0 if named else 3)


def test_a_narrow_proxy_list_still_never_names_a_never_block_address() -> None:
    """With only the LB trusted, ``192.168.7.7, 10.0.0.1`` names 192.168.7.7: a never-block address is refused."""
    reading = group_actors(AuditReport(available=True, events=(_row("192.168.7.7, 10.0.0.1"),) * 4),
                           ["10.0.0.1/32"], NEVER_BLOCK)
    assert reading.actors == () and reading.unattributed == 4
    assert "never-block" in reading.unattributed_why[0]


def test_scanner_failures_are_not_counted_as_malware() -> None:
    reading = group_actors(AuditReport(available=True, events=(_row("203.0.113.5", "Malware scan failed: scan-error"),
                                                                ) * 5), NEVER_BLOCK, NEVER_BLOCK)
    assert reading.malware == 0 and reading.scanner_errors == 5 and reading.offenders(1) == []

