"""The auth runbook's pure decisions (remediation.runbooks.auth_access): which admin surfaces to switch off and which
identity setting to fix, from what was read; without Prefect or a simulator."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from remediation.providers.access_probe import DenialStats, SurfaceDenials
from remediation.providers.platform import FlagChange
from remediation.providers.security import IdentityCheck
from remediation.runbooks.auth_access import FEATURES, affected_features, disable_plans, fix_plans

AT = datetime(2026, 12, 7, tzinfo=UTC)


def publishable_key(host: str) -> str:
    return "pk_test_" + base64.b64encode(f"{host}$".encode()).decode()


def test_only_the_surface_whose_denials_breach_is_switched_off_and_both_when_none_can_be_pinned() -> None:
    api_only = DenialStats(available=True, records=100, pages=SurfaceDenials(total=50, forbidden=1),
                           api=SurfaceDenials(total=50, forbidden=30))
    assert affected_features(api_only, events_breach=False, threshold_pct=10.0) == ["admin-api"]
    assert affected_features(api_only, events_breach=True, threshold_pct=10.0) == ["admin-console", "admin-api"]
    quiet = DenialStats(available=True, records=100)
    assert affected_features(quiet, events_breach=False, threshold_pct=10.0) == list(FEATURES)


def test_a_feature_already_off_needs_no_plan_and_one_never_set_counts_as_on() -> None:
    history = [FlagChange(name="admin-api", enabled=True, at=AT), FlagChange(name="admin-api", enabled=False, at=AT)]
    plans = disable_plans("kamkmserve", ["admin-console", "admin-api"], history, "403 storm")
    assert [(p.flag, p.enabled, p.previous) for p in plans] == [("admin-console", False, True)]
    assert "403 storm" in plans[0].reason


def test_a_wrong_role_claim_is_fixed_and_a_missing_secret_is_left_to_a_human() -> None:
    check = IdentityCheck(available=True, settings={"role_claim": "metadata.role"},
                          problems=("role claim metadata.role is not read by the app", "CLERK_SECRET_KEY is missing"))
    plans, left = fix_plans("kamkmserve", check)
    assert [(p.setting, p.value, p.previous) for p in plans] == [("role_claim", "role", "metadata.role")]
    assert left == ["CLERK_SECRET_KEY is missing"]


def test_an_unreachable_jwks_url_is_pointed_at_the_publishable_key_s_instance_only_when_it_differs() -> None:
    key = publishable_key("clerk.kamkm.example")
    expected = "https://clerk.kamkm.example/.well-known/jwks.json"
    broken = IdentityCheck(available=True, jwks_reachable=False, problems=("the JWKS URL does not answer",),
                           settings={"publishable_key": key, "jwks_url": "https://old.example/jwks.json"})
    plans, left = fix_plans("kamkmserve", broken)
    assert [(p.setting, p.value) for p in plans] == [("jwks_url", expected)] and left == []
    already = broken.model_copy(update={"settings": {"publishable_key": key, "jwks_url": expected}})
    assert fix_plans("kamkmserve", already) == ([], ["the JWKS URL does not answer"])


def test_an_unreadable_identity_configuration_proposes_nothing() -> None:
    assert fix_plans("kamkmserve", IdentityCheck(available=False, reason="no identity reader")) == ([], [])
