"""VercelFirewallBlocks: IP deny rules in the Vercel Firewall with our own expiry bookkeeping in the notes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from remediation.providers.clock import VirtualClock
from remediation.providers.platform import PlatformError
from remediation.providers.vercel import VercelApi
from remediation.providers.vercel_firewall import VercelFirewallBlocks
from tests.helpers.fake_vercel import FakeVercel, clock_ms

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[FakeVercel]:
    with FakeVercel(now_ms=clock_ms(clock)) as server:
        yield server


@pytest.fixture
def blocks(fake: FakeVercel, clock: VirtualClock) -> VercelFirewallBlocks:
    return VercelFirewallBlocks(VercelApi(fake.token, project_id=fake.project_id, base_url=fake.url, clock=clock))


async def test_a_project_that_never_saved_a_firewall_config_blocks_nothing(blocks: VercelFirewallBlocks) -> None:
    assert await blocks.blocks() == []


async def test_a_block_is_a_deny_rule_with_its_expiry_and_reason_in_the_notes(
        fake: FakeVercel, blocks: VercelFirewallBlocks) -> None:
    block = await blocks.block("ip", "203.0.113.7", 600, "malware burst from this client")
    assert block.expires_at == START + timedelta(seconds=600)
    assert fake.firewall is not None and len(fake.firewall) == 1
    rule = fake.firewall[0]
    assert (rule["ip"], rule["action"], rule["hostname"]) == ("203.0.113.7", "deny", "*")
    assert rule["notes"] == "remediate; expires=2026-03-01T12:10:00Z; malware burst from this client"
    assert await blocks.blocks() == [block]


async def test_blocking_again_moves_the_expiry_instead_of_adding_a_rule(
        fake: FakeVercel, clock: VirtualClock, blocks: VercelFirewallBlocks) -> None:
    await blocks.block("ip", "203.0.113.7", 600, "first")
    clock.advance(300)
    again = await blocks.block("ip", "203.0.113.7/32", 600, "second")
    assert again.expires_at == START + timedelta(seconds=900)
    assert fake.firewall is not None and len(fake.firewall) == 1
    assert [c.body["action"] for c in fake.calls("PATCH")] == ["ip.insert", "ip.update"]


async def test_networks_are_normalised_and_bad_addresses_never_reach_the_firewall(
        fake: FakeVercel, blocks: VercelFirewallBlocks) -> None:
    block = await blocks.block("ip", "198.51.100.77/24", 600, "scanner network")
    assert block.value == "198.51.100.0/24"
    with pytest.raises(PlatformError, match="not an IP address or network"):
        await blocks.block("ip", "203.0.113.300", 600, "typo")
    assert len(fake.calls("PATCH")) == 1


async def test_an_expired_block_is_removed_on_the_next_call(fake: FakeVercel, clock: VirtualClock,
                                                            blocks: VercelFirewallBlocks) -> None:
    await blocks.block("ip", "203.0.113.7", 600, "burst")
    await blocks.block("ip", "203.0.113.8", 3600, "burst")
    clock.advance(601)
    assert [b.value for b in await blocks.blocks()] == ["203.0.113.8"]
    assert fake.firewall is not None and [r["ip"] for r in fake.firewall] == ["203.0.113.8"]
    clock.advance(3600)
    assert await blocks.expire_due() == ["203.0.113.8"]
    assert fake.firewall == []


async def test_unblock_removes_our_rule_once_and_then_answers_false(fake: FakeVercel,
                                                                    blocks: VercelFirewallBlocks) -> None:
    await blocks.block("ip", "203.0.113.7", 600, "burst")
    assert await blocks.unblock("ip", "203.0.113.7") is True
    assert await blocks.unblock("ip", "203.0.113.7") is False
    assert fake.firewall == []


async def test_someone_elses_permanent_rule_is_never_changed_nor_removed(fake: FakeVercel,
                                                                         blocks: VercelFirewallBlocks) -> None:
    fake.firewall = [{"id": "ip_human", "hostname": "*", "ip": "192.0.2.10", "notes": "abuse report #12",
                      "action": "deny"}]
    block = await blocks.block("ip", "192.0.2.10", 600, "burst")
    assert block.expires_at is None and block.reason == "abuse report #12"
    assert await blocks.unblock("ip", "192.0.2.10") is False
    assert fake.firewall[0]["notes"] == "abuse report #12"
    assert fake.calls("PATCH") == []


async def test_users_and_sessions_are_not_the_firewalls_to_block(blocks: VercelFirewallBlocks) -> None:
    with pytest.raises(PlatformError, match="user and session blocks are Clerk's"):
        await blocks.block("user", "user_123", 600, "abuse")
    assert await blocks.unblock("session", "sess_1") is False
