"""Identity contract: a sound configuration has no problems and shows no secret; keys of two different instances
and a revoked secret key are named as problems; user roles are read from the provider; a setting change returns
the previous value so the undo restores it. The simulated Clerk configuration and Clerk's Backend API must agree."""

from __future__ import annotations

import pytest

from tests.contracts.implementations import IDENTITY, params
from tests.contracts.saaskit import IdentityHarness


@pytest.fixture(params=params(IDENTITY))
def identity(request: pytest.FixtureRequest) -> IdentityHarness:
    harness: IdentityHarness = request.param.build(request)
    return harness


async def test_a_sound_configuration_has_no_problems_and_no_secret_in_it(identity: IdentityHarness) -> None:
    check = await identity.adapter.check()
    assert check.available and check.jwks_reachable is True
    problems = [p for p in check.problems if "role" not in p]  # the role claim is judged only where readable
    assert problems == []
    dumped = check.model_dump_json()
    assert identity.secrets and all(secret not in dumped for secret in identity.secrets)


async def test_keys_of_two_instances_are_a_problem(identity: IdentityHarness) -> None:
    identity.mismatch()
    check = await identity.adapter.check()
    assert check.available
    assert any("different instances" in p for p in check.problems), check.problems


async def test_a_revoked_secret_key_is_a_problem_not_an_outage(identity: IdentityHarness) -> None:
    identity.revoke()
    check = await identity.adapter.check()
    assert check.available
    assert any("revoked" in p for p in check.problems), check.problems
    assert all(secret not in check.model_dump_json() for secret in identity.secrets)


async def test_user_roles_come_from_the_provider_and_unknown_users_have_none(identity: IdentityHarness) -> None:
    wanted = [*identity.roles, "user_nobody"]
    assert await identity.adapter.user_roles(wanted) == {**identity.roles, "user_nobody": None}


async def test_a_setting_change_returns_the_previous_value_and_the_undo_restores_it(
        identity: IdentityHarness) -> None:
    name, value = identity.setting
    before = identity.observe_setting()
    previous = await identity.adapter.set_setting(name, value)
    assert previous == before and identity.observe_setting() == value
    assert previous is not None
    assert await identity.adapter.set_setting(name, previous) == value
    assert identity.observe_setting() == before
