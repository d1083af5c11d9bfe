"""The SEV-1..4 escalation ladder: who is paged when an approval goes unanswered (virtual time)."""

from __future__ import annotations

import pytest

from remediation.models import Severity
from remediation.notify import Tier
from remediation.notify.ladder import ack_s, climb, due
from remediation.providers.clock import VirtualClock
from remediation.settings import Settings


@pytest.mark.parametrize(("severity", "ack"), [(Severity.SEV1, 300), (Severity.SEV2, 600), (Severity.SEV3, 1800),
                                               (Severity.SEV4, 1800)])
def test_ack_times_are_the_on_call_policy(severity: Severity, ack: float) -> None:
    assert ack_s(Settings(), severity) == ack


def test_primary_at_once_secondary_after_one_ack_time_duty_manager_after_two() -> None:
    assert due(300, 0) == [Tier.PRIMARY]
    assert due(300, 299.9) == [Tier.PRIMARY]
    assert due(300, 300) == [Tier.PRIMARY, Tier.SECONDARY]
    assert due(300, 600) == [Tier.PRIMARY, Tier.SECONDARY, Tier.DUTY_MANAGER]


async def test_climb_pages_each_next_tier_when_its_time_comes() -> None:
    clock = VirtualClock()
    pages: list[tuple[Tier, float]] = []

    async def page(tier: Tier, why: str) -> None:
        pages.append((tier, clock.monotonic()))
        assert "did not answer" in why

    assert await climb(page, ack=300, clock=clock) == [Tier.SECONDARY, Tier.DUTY_MANAGER]
    assert pages == [(Tier.SECONDARY, 300), (Tier.DUTY_MANAGER, 600)]


async def test_no_rung_past_the_approval_timeout() -> None:
    clock = VirtualClock()
    pages: list[Tier] = []

    async def page(tier: Tier, why: str) -> None:
        pages.append(tier)

    await climb(page, ack=600, clock=clock, timeout_s=900)
    assert pages == [Tier.SECONDARY]
    await climb(page, ack=1800, clock=clock, timeout_s=900)
    assert pages == [Tier.SECONDARY], "a SEV-3 approval times out (a deny, then escalation) before its ack time"
