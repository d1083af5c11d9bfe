"""REMEDIATE_PLATFORM=vercel: the live bundle (Vercel + Sentry + Clerk fakes), plans through the gate, and secrets.

The secrets test seeds all three credentials, drives failures whose vendor answers even echo the token back, and
proves no secret reaches an exception, a log record (httpx/httpcore at DEBUG included), the ledger or a report.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediation import composition, gate, runtime
from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    BlockActor,
    EnableMaintenance,
    Mode,
    Phase,
    Plan,
    Rollback,
    ScaleUp,
    Severity,
    UnblockActor,
    Verdict,
)
from remediation.providers.clerk import ClerkIdentity
from remediation.providers.clerk_blocks import ClerkBlocks
from remediation.providers.platform import PlatformError
from remediation.providers.sentry_api import SentryApi
from remediation.providers.vercel import VercelDeploys
from remediation.providers.vercel_bundle import RoutedBlocks
from remediation.providers.vercel_edge import VercelUploadPolicy
from remediation.settings import Settings
from tests.helpers.fake_clerk import FakeClerk
from tests.helpers.fake_sentry_api import FakeSentryApi
from tests.helpers.fake_vercel import FakeVercel

NOW_MS = int(datetime.now(UTC).timestamp() * 1000)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeVercel, FakeSentryApi, FakeClerk]]:
    with FakeVercel(token="vcp_SEEDED_vercel_secret_1") as vercel, \
            FakeSentryApi(token="sntrys_SEEDED_sentry_secret_2") as sentry, \
            FakeClerk(secret_key="sk_test_SEEDED_clerk_secret_3") as clerk:
        vercel.deploy("1.4.2", at_ms=NOW_MS - 7_200_000)
        vercel.deploy("1.5.0", at_ms=NOW_MS - 600_000)
        clerk.add_user("user_attacker")
        yield vercel, sentry, clerk


def vercel_settings(tmp_path: Path, vercel: FakeVercel, sentry: FakeSentryApi, clerk: FakeClerk,
                    **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        platform="vercel", home=tmp_path, vercel_token=vercel.token, vercel_project_id=vercel.project_id,
        vercel_edge_config_id=vercel.edge_config_id, vercel_api_url=vercel.url,
        sentry_api_token=sentry.token, sentry_org=sentry.org, sentry_project=sentry.project,
        sentry_api_url=sentry.url, clerk_secret_key=clerk.token, clerk_publishable_key=clerk.publishable_key,
        clerk_api_url=clerk.url)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def open_incident(providers: runtime.Providers) -> None:
    providers.store.open_incident(incident_id="inc-v", runbook="rb", service="kamkmserve", severity=Severity.SEV2,
                                  mode=Mode.AUTO, alert=Alert(name="a", service="kamkmserve"))


async def applied(plan: Plan, providers: runtime.Providers) -> ActionRecord:
    return await gate.apply(ActionRecord(phase=Phase.CONTAIN, plan=plan, decision=Verdict.ALLOW), "inc-v", providers)


def test_connect_builds_the_vercel_bundle_with_sentry_and_clerk_and_no_capacity_lever(
        tmp_path: Path, fakes: tuple[FakeVercel, FakeSentryApi, FakeClerk]) -> None:
    providers = composition.connect(vercel_settings(tmp_path, *fakes))
    assert isinstance(providers.deploys, VercelDeploys)
    assert isinstance(providers.errors, SentryApi)
    assert isinstance(providers.identity, ClerkIdentity)
    assert isinstance(providers.blocks, RoutedBlocks) and isinstance(providers.blocks.people, ClerkBlocks)
    assert isinstance(providers.uploads, VercelUploadPolicy)
    assert providers.capacity is None and providers.jobs is None  # Vercel autoscales; kamkmserve has no jobs
    assert fakes[0].calls() == fakes[1].calls() == fakes[2].calls() == []  # nothing connects when built


async def test_without_sentry_or_a_log_drain_those_reads_fail_with_the_reason(
        tmp_path: Path, fakes: tuple[FakeVercel, FakeSentryApi, FakeClerk]) -> None:
    providers = composition.connect(vercel_settings(tmp_path, *fakes, sentry_api_token=None, clerk_secret_key=None,
                                                vercel_edge_config_id=None), migrate=False)
    with pytest.raises(PlatformError, match="REMEDIATE_SENTRY_API_TOKEN"):
        await providers.errors.issues()
    with pytest.raises(PlatformError, match="REMEDIATE_VERCEL_DRAIN_SECRET"):
        await providers.logs.lines()
    assert providers.identity is None and providers.uploads is None
    with pytest.raises(PlatformError, match="REMEDIATE_CLERK_SECRET_KEY"):
        await providers.blocks.block("user", "user_attacker", 600, "x")  # type: ignore[union-attr]


async def test_plans_reach_vercel_and_clerk_through_the_gate(
        tmp_path: Path, fakes: tuple[FakeVercel, FakeSentryApi, FakeClerk]) -> None:
    vercel, _, clerk = fakes
    providers = composition.connect(vercel_settings(tmp_path, *fakes))
    open_incident(providers)
    releases = await providers.deploys.releases()
    current, previous = releases[0], releases[1]
    plans: list[Plan] = [
        Rollback(service="kamkmserve", from_release=current.id, to_release=previous.id),
        EnableMaintenance(service="kamkmserve", path_prefixes=("/api/uploads",)),
        BlockActor(service="kamkmserve", actor_kind="ip", value="203.0.113.7", ttl_s=600),
        BlockActor(service="kamkmserve", actor_kind="user", value="user_attacker", ttl_s=600),
    ]
    for plan in plans:
        record = await applied(plan, providers)
        assert record.state is ActionState.APPLIED, record.error
    assert vercel.production == previous.id
    assert vercel.items["maintenance_prefixes"]["value"] == ["/api/uploads"]
    assert vercel.firewall is not None and vercel.firewall[0]["ip"] == "203.0.113.7"
    assert clerk.users["user_attacker"]["banned"] is True
    assert {(b.kind, b.value) for b in await providers.blocks.blocks()} == {("ip", "203.0.113.7"),  # type: ignore[union-attr]
                                                                            ("user", "user_attacker")}
    undo = await applied(UnblockActor(service="kamkmserve", actor_kind="user", value="user_attacker"), providers)
    assert undo.state is ActionState.APPLIED and clerk.users["user_attacker"]["banned"] is False
    scale = await applied(ScaleUp(service="kamkmserve", from_replicas=1, to_replicas=2), providers)
    assert scale.state is ActionState.FAILED and "NoLever" in (scale.error or "")


async def test_seeded_secrets_never_reach_exceptions_logs_the_ledger_or_reports(
        tmp_path: Path, fakes: tuple[FakeVercel, FakeSentryApi, FakeClerk], caplog: pytest.LogCaptureFixture) -> None:
    vercel, sentry, clerk = fakes
    secrets = [vercel.token, sentry.token, clerk.token]
    caplog.set_level(logging.DEBUG)
    providers = composition.connect(vercel_settings(tmp_path, *fakes))
    open_incident(providers)
    # Vendors that echo the credential back in their error bodies.
    vercel.fail_next(400, {"error": {"code": "bad_token", "message": f"token {vercel.token} is malformed"}})
    sentry.fail_next(403, {"detail": f"Bearer {sentry.token} lacks project:read"})
    clerk.fail_next(422, {"errors": [{"message": "bad", "long_message": f"key {clerk.token} rejected",
                                      "code": "x"}]})
    texts: list[str] = []
    for call in (providers.deploys.releases(), providers.errors.issues(),
                 providers.blocks.block("user", "user_attacker", 600, "x")):  # type: ignore[union-attr]
        with pytest.raises(PlatformError) as raised:
            await call
        texts.append(str(raised.value))
    assert all("[redacted]" in text for text in texts)
    record = await applied(Rollback(service="kamkmserve", from_release="dpl_a", to_release="dpl_missing"), providers)
    check = await providers.identity.check()  # type: ignore[union-attr]
    texts += [record.error or "", check.model_dump_json(), providers.settings.model_dump_json(),
              repr(providers.settings), caplog.text]
    texts += [a.model_dump_json() for a in providers.store.actions("inc-v")]
    assert caplog.records, "the HTTP clients logged nothing at DEBUG: the log check would prove nothing"
    for secret in secrets:
        assert all(secret not in text for text in texts), f"a seeded secret leaked: {secret[:8]}..."


def test_blocks_route_by_kind_and_a_kind_without_a_backend_is_refused() -> None:
    routed = RoutedBlocks(ip=None, people=None)
    with pytest.raises(PlatformError, match="edge firewall"):
        routed._for("ip")
    with pytest.raises(PlatformError, match="Clerk"):
        routed._for("session")

