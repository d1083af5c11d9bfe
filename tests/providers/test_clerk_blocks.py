"""ClerkBlocks: a user block is a Clerk ban with our expiry in private metadata; a session block is a revoke."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from remediation.providers.clerk import ClerkIdentity
from remediation.providers.clerk_blocks import NOTE_KEY, ClerkBlocks
from remediation.providers.clock import VirtualClock
from remediation.providers.platform import PlatformError
from tests.helpers.fake_clerk import FakeClerk
from tests.helpers.fake_vercel import clock_ms

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[FakeClerk]:
    with FakeClerk(now_ms=clock_ms(clock)) as server:
        server.add_user("user_attacker")
        server.add_session("sess_a1", "user_attacker")
        server.add_session("sess_a2", "user_attacker")
        yield server


@pytest.fixture
def blocks(fake: FakeClerk, clock: VirtualClock) -> ClerkBlocks:
    return ClerkBlocks(ClerkIdentity(fake.token, publishable_key=fake.publishable_key, base_url=fake.url,
                                     clock=clock))


async def test_a_user_block_bans_with_the_expiry_recorded_first(fake: FakeClerk, blocks: ClerkBlocks) -> None:
    block = await blocks.block("user", "user_attacker", 3600, "admin API abuse")
    assert block.expires_at == START + timedelta(hours=1)
    user = fake.users["user_attacker"]
    assert user["banned"] is True
    assert user["private_metadata"][NOTE_KEY] == {"expires_at": "2026-03-01T13:00:00Z", "reason": "admin API abuse"}
    assert {s["status"] for s in fake.sessions.values()} == {"revoked"}  # a ban signs every session out
    writes = [(c.method, c.path.rsplit("/", 1)[-1]) for c in fake.calls() if c.method != "GET"]
    assert writes == [("PATCH", "metadata"), ("POST", "ban")]
    assert await blocks.blocks() == [block]


async def test_blocking_a_user_again_moves_the_expiry_without_a_second_ban(
        fake: FakeClerk, clock: VirtualClock, blocks: ClerkBlocks) -> None:
    await blocks.block("user", "user_attacker", 3600, "abuse")
    clock.advance(600)
    again = await blocks.block("user", "user_attacker", 3600, "abuse again")
    assert again.expires_at == START + timedelta(seconds=4200)
    assert len(fake.calls("POST", "/ban")) == 1


async def test_unblock_is_the_undo_unban_and_then_answers_false(fake: FakeClerk, blocks: ClerkBlocks) -> None:
    await blocks.block("user", "user_attacker", 3600, "abuse")
    assert await blocks.unblock("user", "user_attacker") is True
    assert fake.users["user_attacker"]["banned"] is False
    assert NOTE_KEY not in fake.users["user_attacker"]["private_metadata"]
    assert await blocks.unblock("user", "user_attacker") is False
    assert await blocks.blocks() == []


async def test_our_bans_are_lifted_once_their_expiry_passes(fake: FakeClerk, clock: VirtualClock,
                                                            blocks: ClerkBlocks) -> None:
    await blocks.block("user", "user_attacker", 600, "abuse")
    clock.advance(601)
    assert await blocks.blocks() == []
    assert fake.users["user_attacker"]["banned"] is False
    assert await blocks.expire_due() == []


async def test_a_ban_someone_else_made_is_listed_and_never_lifted_by_us(fake: FakeClerk, blocks: ClerkBlocks) -> None:
    fake.add_user("user_fraud", banned=True)
    listed = await blocks.blocks()
    assert [(b.value, b.expires_at, b.reason) for b in listed] == [("user_fraud", None, "banned outside remediation")]
    block = await blocks.block("user", "user_fraud", 600, "abuse")
    assert block.expires_at is None
    assert await blocks.unblock("user", "user_fraud") is False
    assert fake.users["user_fraud"]["banned"] is True and fake.users["user_fraud"]["private_metadata"] == {}


async def test_a_session_block_revokes_it_at_once_and_has_no_undo(fake: FakeClerk, blocks: ClerkBlocks) -> None:
    block = await blocks.block("session", "sess_a1", 3600, "stolen session")
    assert block.expires_at == START  # done at once: nothing stays in force to expire
    assert fake.sessions["sess_a1"]["status"] == "revoked" and fake.sessions["sess_a2"]["status"] == "active"
    assert await blocks.block("session", "sess_a1", 3600, "again") == block.model_copy(update={"reason": "again"})
    assert len(fake.calls("POST", "/revoke")) == 1  # revoking a revoked session is a no-op
    assert await blocks.unblock("session", "sess_a1") is False
    assert await blocks.blocks() == []


async def test_ips_are_not_clerks_and_unknown_ids_are_platform_errors(fake: FakeClerk, blocks: ClerkBlocks) -> None:
    with pytest.raises(PlatformError, match="IP blocks are the edge firewall's"):
        await blocks.block("ip", "203.0.113.7", 600, "x")
    with pytest.raises(PlatformError, match="HTTP 404: User user_nobody not found"):
        await blocks.block("user", "user_nobody", 600, "x")
    with pytest.raises(PlatformError, match="is not a Clerk id"):
        await blocks.block("user", "../instance", 600, "x")
