"""Blocking an actor: never inside the never-block ranges, never a broad network, never without an expiry cap."""

from __future__ import annotations

import pytest

from remediation.models import BlockActor, Mode, SetAuthSetting, Verdict
from remediation.policy import DEFAULT_NEVER_BLOCK, PolicyContext, evaluate


def block(value: str, kind: str = "ip", ttl_s: int = 3600) -> BlockActor:
    return BlockActor(service="svc", actor_kind=kind, value=value, ttl_s=ttl_s)  # type: ignore[arg-type]


AUTO = PolicyContext(mode=Mode.AUTO)


@pytest.mark.parametrize("value", ["203.0.113.7", "198.51.100.0/24", "2001:db8::1", "2001:db8:1::/64"])
def test_a_single_public_address_or_a_narrow_network_is_blocked_in_auto_mode(value: str) -> None:
    assert evaluate(block(value), AUTO).verdict is Verdict.ALLOW


@pytest.mark.parametrize(("value", "reason"), [
    ("10.0.0.5", "never-block range 10.0.0.0/8"),
    ("127.0.0.1", "never-block range 127.0.0.0/8"),
    ("192.168.1.0/24", "never-block range 192.168.0.0/16"),
    ("::1", "never-block range ::1/128"),
    ("fd00::7", "never-block range fc00::/7"),
    ("198.51.0.0/16", "broader than /24"),
    ("2001:db8::/32", "broader than /64"),
    ("0.0.0.0/0", "broader than /24"),
    ("not-an-ip", "not an IP address"),
    ("203.0.113.7, 10.0.0.1", "not an IP address"),  # a raw XFF chain is never a block target
])
def test_protected_broad_or_malformed_targets_are_denied(value: str, reason: str) -> None:
    decision = evaluate(block(value), AUTO)
    assert decision.verdict is Verdict.DENY
    assert any(reason in r for r in decision.reasons), decision.reasons


def test_a_network_that_merely_contains_a_protected_address_is_denied() -> None:
    ctx = PolicyContext(mode=Mode.AUTO, never_block=("203.0.113.10/32",), min_block_prefix_v4=16)
    assert evaluate(block("203.0.113.0/24"), ctx).verdict is Verdict.DENY
    assert evaluate(block("203.0.114.0/24"), ctx).verdict is Verdict.ALLOW


def test_block_ttl_is_capped() -> None:
    decision = evaluate(block("203.0.113.7", ttl_s=7 * 86_400), AUTO)
    assert decision.verdict is Verdict.DENY and "exceeds the cap" in decision.reasons[0]


def test_user_and_session_blocks_are_not_subject_to_address_rules() -> None:
    assert evaluate(block("user_2abc", kind="user"), AUTO).verdict is Verdict.ALLOW


def test_the_default_never_block_list_covers_private_and_loopback_ranges() -> None:
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128"} <= set(DEFAULT_NEVER_BLOCK)


def test_changing_an_auth_setting_is_destructive_and_needs_a_human_even_in_auto_mode() -> None:
    plan = SetAuthSetting(service="svc", setting="role_claim", value="publicMetadata.role", previous="role")
    assert evaluate(plan, AUTO).verdict is Verdict.NEEDS_APPROVAL
    assert plan.undo() == SetAuthSetting(service="svc", setting="role_claim", value="role",
                                         previous="publicMetadata.role", reason="undo")
