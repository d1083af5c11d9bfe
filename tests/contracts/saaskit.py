"""Vercel, Sentry and Clerk under the contract suites, each against its local fake (real HTTP on 127.0.0.1).

Every builder is listed in ``implementations.py`` with the others. The Errors and Identity suites
(``test_contract_errors_saas.py``, ``test_contract_identity_saas.py``) are new, so their harnesses (and the
simulated side's builders) live here. Harness classes of ``implementations`` are imported inside the builders:
that module imports this one.

Observers read each fake's own state, not the adapter under test.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from kamkmserve_sim import SimServer
from kamkmserve_sim.identity import SECRET_KEY, STAGING_SECRET_KEY

from remediation.providers.capabilities import Errors, Identity
from remediation.providers.clerk import ClerkIdentity
from remediation.providers.clerk_blocks import ClerkBlocks
from remediation.providers.security import UploadAllowlist
from remediation.providers.sentry_api import SentryApi
from remediation.providers.sim_identity import PROBE_ADMIN_ID, PROBE_USER_ID, SimIdentity
from remediation.providers.sim_platform import ControlPlane, SimErrors
from remediation.providers.vercel import VercelApi, VercelDeploys
from remediation.providers.vercel_bundle import RoutedBlocks
from remediation.providers.vercel_edge import APP_DEFAULT_UPLOADS, EdgeConfig, VercelEdge, VercelUploadPolicy
from remediation.providers.vercel_firewall import VercelFirewallBlocks
from tests.helpers.fake_clerk import FakeClerk
from tests.helpers.fake_saas import FakeApi
from tests.helpers.fake_sentry_api import FakeSentryApi
from tests.helpers.fake_vercel import FakeVercel

if TYPE_CHECKING:
    from tests.contracts.implementations import BlocksHarness, DeploysHarness, EdgeHarness, UploadsHarness

HOUR_MS = 3_600_000


class OffsetClock:
    """Real time plus a shift the harness moves (the platform's clock, for expiry)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def started(request: pytest.FixtureRequest, fake: FakeApi) -> Any:
    fake.start()
    request.addfinalizer(fake.stop)
    return fake


def _vercel(request: pytest.FixtureRequest, clock: OffsetClock | None = None) -> tuple[FakeVercel, VercelApi]:
    fake = started(request, FakeVercel(now_ms=lambda: int((clock or OffsetClock()).now().timestamp() * 1000)))
    return fake, VercelApi(fake.token, project_id=fake.project_id, base_url=fake.url, clock=clock)


# -- capabilities the suites in implementations.py already run ----------------------------------------------------
def vercel_deploys(request: pytest.FixtureRequest) -> DeploysHarness:
    from tests.contracts.implementations import DeploysHarness

    fake, api = _vercel(request)
    now = int(datetime.now(UTC).timestamp() * 1000)
    previous = fake.deploy("1.4.2", at_ms=now - 2 * HOUR_MS)
    current = fake.deploy("1.4.3", at_ms=now - HOUR_MS)
    return DeploysHarness(VercelDeploys(api), fake.version_of(current), fake.version_of(previous), "dpl_doesnotexist",
                          lambda: fake.version_of(fake.production or ""))


def vercel_edge(request: pytest.FixtureRequest) -> EdgeHarness:
    from tests.contracts.implementations import EdgeHarness

    fake, api = _vercel(request)

    def maintenance() -> set[str]:
        item = fake.items.get("maintenance_prefixes")
        return set(item["value"]) if item else set()

    def flag(name: str) -> bool | None:
        item = fake.items.get(f"flag_{name}")
        return None if item is None else bool(item["value"])

    return EdgeHarness(VercelEdge(EdgeConfig(api, fake.edge_config_id)), maintenance, flag)


def _firewall_refuses(fake: FakeVercel, address: str) -> bool:
    client = ipaddress.ip_address(address)
    return any(rule["action"] == "deny" and client in ipaddress.ip_network(rule["ip"], strict=False)
               for rule in fake.firewall or [])


def vercel_blocks(request: pytest.FixtureRequest) -> BlocksHarness:
    from tests.contracts.implementations import BlocksHarness

    clock = OffsetClock()
    fake, api = _vercel(request, clock)

    def advance(seconds: float) -> None:
        clock.offset += seconds

    return BlocksHarness(VercelFirewallBlocks(api), advance, lambda address: _firewall_refuses(fake, address))


def vercel_clerk_blocks(request: pytest.FixtureRequest) -> BlocksHarness:
    """The Vercel bundle's block list: IPs at the firewall, users and sessions through Clerk."""
    from tests.contracts.implementations import BlocksHarness

    clock = OffsetClock()
    fake, api = _vercel(request, clock)
    clerk: FakeClerk = started(request, FakeClerk())
    clerk.add_user("user_2abc")
    identity = ClerkIdentity(clerk.token, publishable_key=clerk.publishable_key, base_url=clerk.url, clock=clock)

    def advance(seconds: float) -> None:
        clock.offset += seconds

    adapter = RoutedBlocks(VercelFirewallBlocks(api), ClerkBlocks(identity))
    return BlocksHarness(adapter, advance, lambda address: _firewall_refuses(fake, address))


def vercel_uploads(request: pytest.FixtureRequest) -> UploadsHarness:
    from tests.contracts.implementations import UploadsHarness

    fake, api = _vercel(request)

    def stored() -> UploadAllowlist:
        item = fake.items.get("upload_allowlist")
        return APP_DEFAULT_UPLOADS if item is None else UploadAllowlist.model_validate(item["value"])

    return UploadsHarness(VercelUploadPolicy(EdgeConfig(api, fake.edge_config_id)), stored)


# -- Errors: the simulated tracker and Sentry's REST API -----------------------------------------------------------
@dataclass
class ErrorsHarness:
    adapter: Errors
    seed: Callable[[str, int, datetime], None]  # (title, events, last seen): one unresolved issue on the tracker
    broken: Errors  # the same adapter kind, unable to read its tracker


def sim_errors(request: pytest.FixtureRequest) -> ErrorsHarness:
    server: SimServer = request.getfixturevalue("contract_sim")
    assert server.state is not None
    tracker = server.state.errors

    def seed(title: str, events: int, last_seen: datetime) -> None:
        for _ in range(events):
            tracker.capture(title, "GET /api/services", None, "203.0.113.9", int(last_seen.timestamp() * 1000))

    return ErrorsHarness(SimErrors(ControlPlane(server.url)), seed, SimErrors(ControlPlane("http://127.0.0.1:9")))


def sentry_errors(request: pytest.FixtureRequest) -> ErrorsHarness:
    fake: FakeSentryApi = started(request, FakeSentryApi(page_size=2))  # small pages: every list spans pages

    def seed(title: str, events: int, last_seen: datetime) -> None:
        fake.add_issue(title, last_seen_ms=int(last_seen.timestamp() * 1000), count=events)

    adapter = SentryApi(fake.token, org=fake.org, project=fake.project, base_url=fake.url)
    broken = SentryApi("sntrys_revoked", org=fake.org, project=fake.project, base_url=fake.url)
    return ErrorsHarness(adapter, seed, broken)


# -- Identity: the simulated Clerk configuration and Clerk's Backend API -------------------------------------------
@dataclass
class IdentityHarness:
    adapter: Identity
    mismatch: Callable[[], None]  # make the keys belong to two different instances
    revoke: Callable[[], None]  # revoke the configured secret key at the provider
    roles: dict[str, str]  # users the provider knows, with their roles
    setting: tuple[str, str]  # a setting the adapter can change, and a new value for it
    observe_setting: Callable[[], str | None]
    secrets: tuple[str, ...] = field(default=())  # secret values in the world: never in a check


def sim_identity(request: pytest.FixtureRequest) -> IdentityHarness:
    server: SimServer = request.getfixturevalue("contract_sim")
    assert server.state is not None
    world = server.state.identity
    return IdentityHarness(
        SimIdentity(ControlPlane(server.url)), lambda: world.set("secret_key", STAGING_SECRET_KEY),
        world.rotate_secret_key, {PROBE_ADMIN_ID: "ADMIN", PROBE_USER_ID: "USER"},
        ("role_claim", "publicMetadata.role"), lambda: world.settings["role_claim"],
        (SECRET_KEY, world.settings["role_cache_secret"]))


def clerk_identity(request: pytest.FixtureRequest) -> IdentityHarness:
    fake: FakeClerk = started(request, FakeClerk())
    fake.add_user("user_admin", role="ADMIN")
    fake.add_user("user_member", role="USER")
    secret = fake.token

    def mismatch() -> None:
        fake.frontend_kids = ["ins_other_key9"]  # the publishable key's instance signs with other keys

    def revoke() -> None:
        fake.token = "sk_test_RotatedAtClerk000000000"  # Clerk now accepts only the new key

    return IdentityHarness(
        ClerkIdentity(secret, publishable_key=fake.publishable_key, base_url=fake.url), mismatch, revoke,
        {"user_admin": "ADMIN", "user_member": "USER"},
        ("allowed_origins", "https://kamkmserve.example,https://admin.kamkmserve.example"),
        lambda: ",".join(fake.instance["allowed_origins"]) or None, (secret,))

