"""Actor-blocks contract: an IP block lands at the edge with its expiry, repeats move the expiry instead of adding
a second entry, unblocking removes it once, and an expired block is gone and refuses nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediation.providers.platform import PlatformError
from tests.contracts.implementations import BLOCKS, BlocksHarness, params


@pytest.fixture(params=params(BLOCKS))
def blocks(request: pytest.FixtureRequest) -> BlocksHarness:
    harness: BlocksHarness = request.param.build(request)
    return harness


@pytest.fixture(params=params(BLOCKS, needs="actor-blocks"))
def actor_blocks(request: pytest.FixtureRequest) -> BlocksHarness:
    harness: BlocksHarness = request.param.build(request)
    return harness


def near(moment: datetime | None, expected: datetime, slack_s: float = 30.0) -> bool:
    return moment is not None and abs((moment - expected).total_seconds()) <= slack_s


async def test_an_ip_block_lands_at_the_edge_with_its_expiry(blocks: BlocksHarness) -> None:
    block = await blocks.adapter.block("ip", "203.0.113.7", 600, "malware uploads")
    assert (block.kind, block.value, block.reason) == ("ip", "203.0.113.7", "malware uploads")
    assert near(block.expires_at, datetime.now(UTC) + timedelta(seconds=600))
    assert [(b.kind, b.value, b.reason) for b in await blocks.adapter.blocks()] == [
        ("ip", "203.0.113.7", "malware uploads")]
    assert blocks.refuses("203.0.113.7") and not blocks.refuses("203.0.113.8")


async def test_blocking_again_moves_the_expiry_and_keeps_one_entry(blocks: BlocksHarness) -> None:
    first = await blocks.adapter.block("ip", "203.0.113.7", 600, "malware uploads")
    again = await blocks.adapter.block("ip", "203.0.113.7/32", 1200, "")
    assert again.value == "203.0.113.7" and again.reason == "malware uploads"
    assert again.expires_at is not None and first.expires_at is not None and again.expires_at > first.expires_at
    (listed,) = await blocks.adapter.blocks()
    assert listed.expires_at == again.expires_at


async def test_a_network_block_refuses_every_address_inside_it(blocks: BlocksHarness) -> None:
    block = await blocks.adapter.block("ip", "198.51.100.0/24", 600, "scanner")
    assert block.value == "198.51.100.0/24"
    assert blocks.refuses("198.51.100.77") and not blocks.refuses("198.51.101.1")


async def test_unblock_removes_the_block_once(blocks: BlocksHarness) -> None:
    await blocks.adapter.block("ip", "203.0.113.7", 600, "malware uploads")
    assert await blocks.adapter.unblock("ip", "203.0.113.7") is True
    assert await blocks.adapter.unblock("ip", "203.0.113.7") is False
    assert await blocks.adapter.blocks() == []
    assert not blocks.refuses("203.0.113.7")


async def test_an_expired_block_is_gone_and_refuses_nobody(blocks: BlocksHarness) -> None:
    await blocks.adapter.block("ip", "203.0.113.7", 60, "short")
    await blocks.adapter.block("ip", "203.0.113.9", 3600, "long")
    blocks.advance(61)
    assert [b.value for b in await blocks.adapter.blocks()] == ["203.0.113.9"]
    assert not blocks.refuses("203.0.113.7") and blocks.refuses("203.0.113.9")
    assert await blocks.adapter.unblock("ip", "203.0.113.7") is False


async def test_a_value_that_is_not_an_address_is_refused(blocks: BlocksHarness) -> None:
    with pytest.raises(PlatformError):
        await blocks.adapter.block("ip", "not-an-ip", 600, "typo")
    assert await blocks.adapter.blocks() == []


async def test_user_and_session_blocks_where_the_edge_holds_them(actor_blocks: BlocksHarness) -> None:
    user = await actor_blocks.adapter.block("user", "user_2abc", 600, "abuse")
    assert (user.kind, user.value) == ("user", "user_2abc")
    assert await actor_blocks.adapter.unblock("user", "user_2abc") is True
