"""Upload-policy contract: the allowlist the edge enforces is read back as stored; replacing it returns the
previous one (the undo), a repeat changes nothing, and a malformed entry is refused before anything changes."""

from __future__ import annotations

import pytest

from remediation.providers.platform import PlatformError
from remediation.providers.security import UploadAllowlist
from tests.contracts.awskit import APP_ALLOWLIST
from tests.contracts.implementations import UPLOADS, UploadsHarness, params

APP = UploadAllowlist(extensions=tuple(APP_ALLOWLIST["extensions"]), mime_types=tuple(APP_ALLOWLIST["mime_types"]))
NARROW = UploadAllowlist(extensions=(".png", ".jpg"), mime_types=("image/png", "image/jpeg"))


@pytest.fixture(params=params(UPLOADS))
def uploads(request: pytest.FixtureRequest) -> UploadsHarness:
    harness: UploadsHarness = request.param.build(request)
    return harness


async def test_the_allowlist_is_the_apps_own_at_first(uploads: UploadsHarness) -> None:
    assert await uploads.adapter.allowlist() == APP == uploads.observe()


async def test_replacing_returns_the_previous_and_the_edge_enforces_the_new(uploads: UploadsHarness) -> None:
    assert await uploads.adapter.set_allowlist(NARROW) == APP
    assert uploads.observe() == NARROW == await uploads.adapter.allowlist()
    assert await uploads.adapter.set_allowlist(NARROW) == NARROW  # a repeat: nothing more changes
    assert await uploads.adapter.set_allowlist(APP) == NARROW  # the undo
    assert uploads.observe() == APP


async def test_duplicates_are_dropped(uploads: UploadsHarness) -> None:
    await uploads.adapter.set_allowlist(UploadAllowlist(extensions=(".png", ".png"), mime_types=("image/png",)))
    assert uploads.observe().extensions == (".png",)


@pytest.mark.parametrize("bad", [
    UploadAllowlist(extensions=("png",), mime_types=("image/png",)),
    UploadAllowlist(extensions=(".PNG",), mime_types=("image/png",)),
    UploadAllowlist(extensions=(".png",), mime_types=("image",)),
], ids=["no-dot", "upper-case", "no-subtype"])
async def test_a_malformed_entry_is_refused_and_nothing_changes(uploads: UploadsHarness, bad: UploadAllowlist) -> None:
    with pytest.raises(PlatformError):
        await uploads.adapter.set_allowlist(bad)
    assert uploads.observe() == APP
