"""ClerkIdentity.check and set_setting against a local fake of Clerk's Backend API (and its public JWKS)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from remediation.providers.clerk import ClerkIdentity, frontend_jwks_url, parse_publishable_key
from remediation.providers.platform import PlatformError
from tests.helpers.fake_clerk import FakeClerk


@pytest.fixture
def fake() -> Iterator[FakeClerk]:
    with FakeClerk() as server:
        yield server


def identity(fake: FakeClerk, *, secret: str | None = "default", publishable: str | None = "default") -> ClerkIdentity:
    return ClerkIdentity(fake.token if secret == "default" else secret,
                         publishable_key=fake.publishable_key if publishable == "default" else publishable,
                         base_url=fake.url)


def test_a_publishable_key_encodes_its_frontend_api_host() -> None:
    key = "pk_live_" + base64.b64encode(b"clerk.kamkmserve.example$").decode().rstrip("=")
    assert parse_publishable_key(key) == ("live", "clerk.kamkmserve.example")
    assert frontend_jwks_url("clerk.kamkmserve.example") == "https://clerk.kamkmserve.example/.well-known/jwks.json"
    assert frontend_jwks_url("127.0.0.1:4010") == "http://127.0.0.1:4010/.well-known/jwks.json"
    with pytest.raises(ValueError, match="not a Clerk publishable key"):
        parse_publishable_key("sk_live_abc")


async def test_a_sound_configuration_has_no_problems_and_shows_no_secret(fake: FakeClerk) -> None:
    check = await identity(fake).check()
    assert check.available and check.jwks_reachable is True and check.problems == ()
    assert check.settings["instance_id"] == "ins_kamkm"
    assert check.settings["environment_type"] == "development"
    assert check.settings["frontend_api"] == f"127.0.0.1:{fake.port}"
    assert check.settings["secret_key"] == "sk_test_[redacted]"
    assert fake.token not in repr(check)
    jwks = fake.calls("GET", "/.well-known/jwks.json")
    assert len(jwks) == 1 and jwks[0].authorization is None  # the secret key never goes to the frontend API


async def test_keys_of_two_instances_are_found_through_their_signing_keys(fake: FakeClerk) -> None:
    fake.frontend_kids = ["ins_other_key9"]
    check = await identity(fake).check()
    assert check.available and check.jwks_reachable is True
    assert len(check.problems) == 1
    assert "keys belong to different instances" in check.problems[0]


async def test_a_test_publishable_key_with_a_live_secret_key_is_a_problem(fake: FakeClerk) -> None:
    live_secret = "sk_live_AnotherSecret0123456789"
    fake.token = live_secret
    check = await identity(fake, secret=live_secret).check()
    assert any("publishable key is a test key but the secret key a live key" in p for p in check.problems)
    assert any("secret key is a live key but its instance is development" in p for p in check.problems)
    assert live_secret not in repr(check)


async def test_a_secret_key_clerk_refuses_is_a_finding_not_an_outage(fake: FakeClerk) -> None:
    check = await identity(fake, secret="sk_test_RevokedKey0000000000").check()
    assert check.available
    assert any("not a key Clerk accepts" in p and "HTTP 401" in p for p in check.problems)
    assert "RevokedKey" not in repr(check)


async def test_an_unreachable_backend_api_makes_the_check_unavailable(fake: FakeClerk) -> None:
    fake.fail_next(503, {"errors": [{"message": "unavailable", "code": "service_unavailable"}]})
    check = await identity(fake).check()
    assert not check.available and "HTTP 503" in check.reason


async def test_missing_keys_are_named(fake: FakeClerk) -> None:
    check = await identity(fake, secret=None, publishable=None).check()
    assert not check.available
    assert any("REMEDIATE_CLERK_PUBLISHABLE_KEY" in p for p in check.problems)
    assert any("REMEDIATE_CLERK_SECRET_KEY" in p for p in check.problems)
    assert fake.calls() == []


async def test_an_unreachable_frontend_jwks_is_reported(fake: FakeClerk) -> None:
    fake.frontend_status = 404
    check = await identity(fake).check()
    assert check.jwks_reachable is False
    assert any("frontend API JWKS" in p and "HTTP 404" in p for p in check.problems)


async def test_allowed_origins_change_returns_the_previous_value_and_is_idempotent(fake: FakeClerk) -> None:
    clerk = identity(fake)
    previous = await clerk.set_setting("allowed_origins", "https://kamkmserve.example, https://admin.example")
    assert previous == "https://kamkmserve.example"
    assert fake.instance["allowed_origins"] == ["https://kamkmserve.example", "https://admin.example"]
    assert await clerk.set_setting("allowed_origins", "https://kamkmserve.example,https://admin.example") == \
        "https://kamkmserve.example,https://admin.example"
    assert len(fake.calls("PATCH", "/v1/instance")) == 1


async def test_a_users_role_is_the_public_metadata_the_admin_gate_reads(fake: FakeClerk) -> None:
    fake.add_user("user_admin1", role="ADMIN")
    fake.add_user("user_plain")
    clerk = identity(fake)
    assert await clerk.set_setting("user:user_admin1:role", "USER") == "ADMIN"
    assert fake.users["user_admin1"]["public_metadata"] == {"role": "USER"}
    assert await clerk.set_setting("user:user_plain:role", "") is None
    assert await clerk.user_roles(["user_admin1", "user_plain", "user_gone"]) == {
        "user_admin1": "USER", "user_plain": None, "user_gone": None}


async def test_a_setting_we_cannot_read_back_is_refused_not_changed_blind(fake: FakeClerk) -> None:
    with pytest.raises(PlatformError, match="not one we can read back"):
        await identity(fake).set_setting("role_claim", "role")
    assert fake.calls("PATCH") == []
