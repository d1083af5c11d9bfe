"""VercelEdge and VercelUploadPolicy: maintenance prefixes, flags and the upload allowlist as Edge Config items."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from remediation.providers.clock import VirtualClock
from remediation.providers.platform import PlatformError
from remediation.providers.saas_client import NotConfigured
from remediation.providers.security import UploadAllowlist
from remediation.providers.vercel import VercelApi
from remediation.providers.vercel_edge import APP_DEFAULT_UPLOADS, EdgeConfig, VercelEdge, VercelUploadPolicy
from tests.helpers.fake_vercel import FakeVercel, clock_ms

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[FakeVercel]:
    with FakeVercel(now_ms=clock_ms(clock)) as server:
        yield server


def config(fake: FakeVercel, clock: VirtualClock, edge_config_id: str | None = "default") -> EdgeConfig:
    api = VercelApi(fake.token, project_id=fake.project_id, base_url=fake.url, clock=clock)
    return EdgeConfig(api, fake.edge_config_id if edge_config_id == "default" else edge_config_id)


async def test_maintenance_prefixes_round_trip_through_one_edge_config_item(fake: FakeVercel,
                                                                            clock: VirtualClock) -> None:
    edge = VercelEdge(config(fake, clock))
    assert await edge.maintenance_prefixes() == []
    assert await edge.set_maintenance("/api/uploads", True) is True
    assert await edge.set_maintenance("/admin", True) is True
    assert await edge.maintenance_prefixes() == ["/api/uploads", "/admin"]
    assert fake.items["maintenance_prefixes"]["value"] == ["/api/uploads", "/admin"]
    assert await edge.set_maintenance("/api/uploads", False) is True
    assert fake.items["maintenance_prefixes"]["value"] == ["/admin"]


async def test_writes_are_idempotent_and_send_nothing_when_nothing_changes(fake: FakeVercel,
                                                                           clock: VirtualClock) -> None:
    edge = VercelEdge(config(fake, clock))
    assert await edge.set_maintenance("/api/uploads", True) is True
    assert await edge.set_maintenance("/api/uploads", True) is False
    assert await edge.set_maintenance("/checkout", False) is False
    assert await edge.set_flag("new_checkout", True) is True
    assert await edge.set_flag("new_checkout", True) is False
    patches = fake.calls("PATCH", "/items")
    assert len(patches) == 2
    assert patches[1].body == {"items": [{"operation": "upsert", "key": "flag_new_checkout", "value": True}]}


async def test_flags_are_one_item_each_and_names_that_cannot_be_keys_are_refused(fake: FakeVercel,
                                                                                 clock: VirtualClock) -> None:
    edge = VercelEdge(config(fake, clock))
    await edge.set_flag("new_checkout", True)
    await edge.set_flag("bulk-export", False)
    assert await edge.flags() == {"new_checkout": True, "bulk-export": False}
    with pytest.raises(PlatformError, match="cannot be an Edge Config key"):
        await edge.set_flag("admin/export", False)


async def test_flag_history_comes_from_backups_and_each_flags_latest_update(fake: FakeVercel,
                                                                           clock: VirtualClock) -> None:
    edge = VercelEdge(config(fake, clock))
    await edge.set_flag("new_checkout", True)
    clock.advance(60)
    await edge.set_maintenance("/admin", True)  # a write that changes no flag: no flag change appears
    clock.advance(60)
    await edge.set_flag("new_checkout", False)
    clock.advance(60)
    await edge.set_flag("bulk-export", True)
    history = await edge.flag_history()
    assert [(c.name, c.enabled, c.at) for c in history] == [
        ("new_checkout", True, START),
        ("new_checkout", False, START + timedelta(seconds=120)),
        ("bulk-export", True, START + timedelta(seconds=180)),
    ]


async def test_flag_history_reaches_only_as_far_back_as_the_backups_read(fake: FakeVercel,
                                                                         clock: VirtualClock) -> None:
    edge = VercelEdge(config(fake, clock), max_backups=2)
    for step in range(4):
        clock.advance(60)
        await edge.set_flag("new_checkout", step % 2 == 0)
    history = await edge.flag_history()
    # Four flips; the two newest backups hold only the last two writes: the older flips are out of reach.
    assert [(c.enabled, c.at) for c in history] == [(True, START + timedelta(seconds=180)),
                                                    (False, START + timedelta(seconds=240))]


async def test_the_allowlist_is_validated_and_deduplicated_before_anything_is_written(
        fake: FakeVercel, clock: VirtualClock) -> None:
    uploads = VercelUploadPolicy(config(fake, clock))
    with pytest.raises(PlatformError, match="must be lower case and start with a dot"):
        await uploads.set_allowlist(UploadAllowlist(extensions=("PNG",), mime_types=("image/png",)))
    with pytest.raises(PlatformError, match="type/subtype"):
        await uploads.set_allowlist(UploadAllowlist(extensions=(".png",), mime_types=("image",)))
    assert fake.calls("PATCH") == []
    await uploads.set_allowlist(UploadAllowlist(extensions=(".png", ".png"), mime_types=("image/png",)))
    assert fake.items["upload_allowlist"]["value"]["extensions"] == [".png"]


async def test_upload_allowlist_defaults_to_the_apps_own_and_a_change_returns_the_previous(
        fake: FakeVercel, clock: VirtualClock) -> None:
    uploads = VercelUploadPolicy(config(fake, clock))
    assert await uploads.allowlist() == APP_DEFAULT_UPLOADS
    tighter = UploadAllowlist(extensions=(".png", ".jpg"), mime_types=("image/png", "image/jpeg"))
    assert await uploads.set_allowlist(tighter) == APP_DEFAULT_UPLOADS
    assert fake.items["upload_allowlist"]["value"] == {"extensions": [".png", ".jpg"],
                                                       "mime_types": ["image/png", "image/jpeg"]}
    assert await uploads.allowlist() == tighter
    assert await uploads.set_allowlist(tighter) == tighter
    assert len(fake.calls("PATCH")) == 1


async def test_an_item_that_is_not_what_we_wrote_is_a_platform_error_not_a_guess(fake: FakeVercel,
                                                                                 clock: VirtualClock) -> None:
    fake.items["maintenance_prefixes"] = {"value": "/admin", "createdAt": 0, "updatedAt": 0}
    fake.items["upload_allowlist"] = {"value": {"ext": [".png"]}, "createdAt": 0, "updatedAt": 0}
    with pytest.raises(PlatformError, match="not a list of path prefixes"):
        await VercelEdge(config(fake, clock)).maintenance_prefixes()
    with pytest.raises(PlatformError, match="is not an allowlist"):
        await VercelUploadPolicy(config(fake, clock)).allowlist()


async def test_without_an_edge_config_the_lever_says_which_setting_is_missing(fake: FakeVercel,
                                                                             clock: VirtualClock) -> None:
    with pytest.raises(NotConfigured, match="REMEDIATE_VERCEL_EDGE_CONFIG_ID"):
        await VercelEdge(config(fake, clock, edge_config_id=None)).set_maintenance("/admin", True)
    with pytest.raises(PlatformError, match="HTTP 404: not_found: Edge Config not found"):
        await VercelEdge(config(fake, clock, edge_config_id="ecfg_other")).maintenance_prefixes()
