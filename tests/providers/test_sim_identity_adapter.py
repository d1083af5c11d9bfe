"""SimIdentity and SimStatusPage over a real simulator: the judged configuration, one setting at a time, users."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kamkmserve_sim import SimConfig, SimServer
from kamkmserve_sim.identity import PUBLISHABLE_KEY, SECRET_KEY, STAGING_PUBLISHABLE_KEY

from remediation.providers.platform import PlatformError
from remediation.providers.security import IdentityCheck, expected_jwks_url, frontend_api
from remediation.providers.sim_identity import SimIdentity, SimStatusPage, judge
from remediation.providers.sim_platform import ControlPlane
from tests.helpers import local_http


@pytest.fixture
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(scenario="healthy", rps=0, seed=7)).start() as sim:
        yield sim


@pytest.fixture
def identity(server: SimServer) -> SimIdentity:
    return SimIdentity(ControlPlane(server.url))


async def test_a_sound_configuration_has_no_problems_and_no_secret_in_it(identity: SimIdentity) -> None:
    check = await identity.check()
    assert check.available and check.problems == () and check.jwks_reachable is True
    assert check.settings["role_claim"] == "role"
    assert SECRET_KEY not in check.model_dump_json() and check.settings["secret_key"].startswith("sk_live_…")


async def test_set_setting_returns_the_previous_value_and_the_check_names_the_problem(identity: SimIdentity) -> None:
    assert await identity.set_setting("role_claim", "userRole") == "role"
    check = await identity.check()
    [problem] = check.problems
    assert "'userRole'" in problem and "the app reads role" in problem
    assert check.changes[-1]["name"] == "role_claim" and check.changes[-1]["value"] == "userRole"
    assert await identity.set_setting("role_claim", "role") == "userRole"
    assert (await identity.check()).problems == ()


async def test_keys_of_two_instances_and_a_dead_jwks_url_are_problems(identity: SimIdentity) -> None:
    await identity.set_setting("publishable_key", STAGING_PUBLISHABLE_KEY)
    await identity.set_setting("jwks_url", "https://gone.example/jwks.json")
    check = await identity.check()
    assert check.jwks_reachable is False
    assert any("keys of two different instances" in p for p in check.problems)
    assert any("https://gone.example/jwks.json does not answer" in p for p in check.problems)


async def test_unknown_setting_is_a_platform_error_and_a_dead_console_is_unavailable(identity: SimIdentity) -> None:
    with pytest.raises(PlatformError, match="404"):
        await identity.set_setting("no_such_setting", "x")
    dead = await SimIdentity(ControlPlane("http://127.0.0.1:9", timeout_s=0.5)).check()
    assert dead == IdentityCheck(available=False, reason=dead.reason) and "127.0.0.1:9" in dead.reason


async def test_user_roles_are_the_identity_providers(identity: SimIdentity) -> None:
    assert await identity.user_roles(["user_probe_admin", "user_probe_member", "user_nobody"]) == {
        "user_probe_admin": "ADMIN", "user_probe_member": "USER", "user_nobody": None}
    assert await identity.user_roles([]) == {}


async def test_status_page_posts_and_updates(server: SimServer) -> None:
    page = SimStatusPage(ControlPlane(server.url))
    incident_id = await page.post("Admin area access issue", "looking into it", "investigating")
    await page.update(incident_id, "all good", "resolved")
    [incident] = local_http.get(f"{server.url}/_sim/status", timeout=5).json()["incidents"]
    assert incident["id"] == incident_id and incident["status"] == "resolved"
    with pytest.raises(PlatformError, match="422"):
        await page.update(incident_id, "x", "on fire")


def test_publishable_keys_encode_their_frontend_api_and_jwks_url() -> None:
    assert frontend_api(PUBLISHABLE_KEY) == "clerk.kamkm.example"
    assert expected_jwks_url(PUBLISHABLE_KEY) == "https://clerk.kamkm.example/.well-known/jwks.json"
    assert frontend_api("pk_live_!!!") is None and frontend_api("sk_live_abc") is None


def test_judge_names_every_problem_in_words() -> None:
    problems = judge({"publishable_key": "", "secret_key": "", "role_claim": "roles"}, {"jwks_reachable": None})
    assert problems == (
        "the publishable key (NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY) is not set",
        "the secret key (CLERK_SECRET_KEY) is not set",
        "the session token carries the role in claim 'roles', but the app reads role, publicMetadata.role, "
        "privateMetadata.role: every admin check falls back to the database role",
    )
    revoked = judge({"publishable_key": PUBLISHABLE_KEY, "secret_key": "sk_live_…abcd", "role_claim": "role"},
                    {"secret_key_status": "revoked", "jwks_reachable": True})
    assert len(revoked) == 1 and "revoked" in revoked[0]
