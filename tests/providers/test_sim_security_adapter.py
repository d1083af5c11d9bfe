"""SimBlocks, SimUploadPolicy, SimAntivirus, SimQuarantine and SimAuditLog over a real simulator: the security
Protocols' semantics (idempotent levers, reads that never raise, unavailable is never clean), errors as our types."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kamkmserve_sim import SimConfig, SimServer
from kamkmserve_sim.security import EICAR

from remediation.providers.platform import PlatformError
from remediation.providers.security import UploadAllowlist
from remediation.providers.sim_platform import ControlPlane
from remediation.providers.sim_security import SimAntivirus, SimAuditLog, SimBlocks, SimQuarantine, SimUploadPolicy
from tests.helpers import local_http
from tests.sim.simkit import poll

DEAD = ControlPlane("http://127.0.0.1:9", timeout_s=2)
TINY_PNG = b"\x89PNG\r\n\x1a\n" + bytes(60)


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(scenario="malware-burst", rps=20, onset_s=0.0, seed=7)).start() as sim:
        poll(lambda: local_http.get(f"{sim.url}/_sim/antivirus", timeout=10).json()["detections"] >= 3,
             what="detections")
        yield sim


@pytest.fixture
def plane(server: SimServer) -> ControlPlane:
    return ControlPlane(server.url)


async def test_blocks_are_idempotent_carry_their_expiry_and_unblock_says_whether_one_was_there(
        plane: ControlPlane) -> None:
    blocks = SimBlocks(plane)
    first = await blocks.block("ip", "198.51.100.77", 120, "test")
    again = await blocks.block("ip", "198.51.100.77", 300, "test")
    assert first.kind == "ip" and first.value == "198.51.100.77" and first.reason == "test"
    assert first.expires_at is not None and again.expires_at is not None and again.expires_at > first.expires_at
    assert abs((again.expires_at - datetime.now(UTC)).total_seconds() - 300) < 5
    assert [b.value for b in await blocks.blocks() if b.value == "198.51.100.77"] == ["198.51.100.77"]
    assert await blocks.unblock("ip", "198.51.100.77") is True
    assert await blocks.unblock("ip", "198.51.100.77") is False  # already gone: the state we wanted
    assert all(b.value != "198.51.100.77" for b in await blocks.blocks())


async def test_a_refused_block_or_an_unreachable_edge_raises_platform_error(plane: ControlPlane) -> None:
    with pytest.raises(PlatformError, match="not an IP address"):
        await SimBlocks(plane).block("ip", "not-an-ip", 60, "")
    with pytest.raises(PlatformError, match=r"127\.0\.0\.1:9"):
        await SimBlocks(DEAD).block("ip", "198.51.100.7", 60, "")
    with pytest.raises(PlatformError):
        await SimBlocks(DEAD).unblock("ip", "198.51.100.7")


async def test_set_allowlist_returns_the_previous_lists(plane: ControlPlane) -> None:
    policy = SimUploadPolicy(plane)
    original = await policy.allowlist()
    assert original.extensions == (".png", ".jpg", ".jpeg", ".webp", ".pdf")
    previous = await policy.set_allowlist(UploadAllowlist(extensions=(".png",), mime_types=("image/png",)))
    assert previous == original
    assert (await policy.allowlist()).extensions == (".png",)
    assert await policy.set_allowlist(original) == UploadAllowlist(extensions=(".png",), mime_types=("image/png",))
    with pytest.raises(PlatformError, match="lower case"):
        await policy.set_allowlist(UploadAllowlist(extensions=(".PNG",), mime_types=()))


async def test_antivirus_finds_the_test_files_passes_clean_ones_and_reloads(plane: ControlPlane) -> None:
    antivirus = SimAntivirus(plane)
    assert await antivirus.ping() is True
    assert (await antivirus.version() or "").startswith("ClamAV")
    found = await antivirus.scan(EICAR)
    assert found.status == "found" and found.signature == "Win.Test.EICAR_HDB-1" and not found.clean
    assert (await antivirus.scan(TINY_PNG)).clean
    assert await antivirus.reload() is True


async def test_an_antivirus_that_is_down_or_unreachable_is_never_clean(server: SimServer, plane: ControlPlane) -> None:
    unreachable = SimAntivirus(DEAD)
    verdict = await unreachable.scan(TINY_PNG)
    assert verdict.status == "unavailable" and not verdict.clean and "127.0.0.1:9" in verdict.detail
    assert await unreachable.ping() is False
    with pytest.raises(PlatformError, match=r"127\.0\.0\.1:9"):  # a failed RELOAD says what failed, never a bare False
        await unreachable.reload()
    assert await unreachable.version() is None
    await plane.json("POST", "/antivirus", json_body={"available": False})
    try:
        down = SimAntivirus(plane)
        verdict = await down.scan(TINY_PNG)
        assert verdict.status == "unavailable" and "daemon down" in verdict.detail
        assert await down.ping() is False
        with pytest.raises(PlatformError, match="503"):
            await down.reload()
    finally:
        await plane.json("POST", "/antivirus", json_body={"available": True})


async def test_a_garbled_scan_answer_is_an_error_not_a_pass(server: SimServer) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "fine"}))
    verdict = await SimAntivirus(ControlPlane(server.url, transport=transport)).scan(TINY_PNG)
    assert verdict.status == "error" and not verdict.clean


async def test_quarantine_lists_the_attack_samples_and_never_raises(plane: ControlPlane) -> None:
    report = await SimQuarantine(plane).samples(datetime.now(UTC) - timedelta(minutes=5))
    assert report.available and report.samples
    eicar = next(s for s in report.samples if s.signature == "Win.Test.EICAR_HDB-1")
    assert eicar.data() == EICAR and eicar.sha256 == hashlib.sha256(EICAR).hexdigest() and eicar.ext == ".pdf"
    assert (await SimQuarantine(plane).samples(datetime.now(UTC) + timedelta(hours=1))).samples == ()
    dead = await SimQuarantine(DEAD).samples(datetime.now(UTC))
    assert dead.available is False and "127.0.0.1:9" in dead.reason


async def test_audit_reads_the_upload_rows_and_never_raises(plane: ControlPlane) -> None:
    report = await SimAuditLog(plane).events(datetime.now(UTC) - timedelta(minutes=5))
    assert report.available and not report.table_missing
    attack = [e for e in report.events if (e.ip or "").endswith("203.0.113.66, 10.0.0.1")]
    assert attack and attack[0].event == "upload.validation_failed" and attack[0].user_agent == "python-requests/2.32.3"
    assert (await SimAuditLog(plane).events(datetime.now(UTC) - timedelta(minutes=5), "upload.validated")).events \
        == tuple(e for e in report.events if e.event == "upload.validated")
    dead = await SimAuditLog(DEAD).events(datetime.now(UTC))
    assert dead.available is False and "audit log unreadable" in dead.reason


async def test_a_missing_audit_table_reads_as_missing_with_what_it_means() -> None:
    with SimServer(SimConfig(scenario="malware-burst", rps=0, onset_s=3600, audit_table_missing=True)).start() as sim:
        report = await SimAuditLog(ControlPlane(sim.url)).events(datetime.now(UTC) - timedelta(minutes=5))
    assert report.available is False and report.table_missing is True
    assert 'relation "kamkmserve_audit_log" does not exist' in report.reason
    assert "audit writes are failing" in report.reason
