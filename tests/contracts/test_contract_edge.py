"""Edge-controls contract: maintenance prefixes and feature flags switch on the platform, say whether anything
changed, and repeat without acting twice; flag history records each change in order."""

from __future__ import annotations

import pytest

from remediation.providers.platform import PlatformError
from tests.contracts.implementations import EDGE, EdgeHarness, params


@pytest.fixture(params=params(EDGE))
def edge(request: pytest.FixtureRequest) -> EdgeHarness:
    harness: EdgeHarness = request.param.build(request)
    return harness


async def test_nothing_is_under_maintenance_at_first(edge: EdgeHarness) -> None:
    assert await edge.adapter.maintenance_prefixes() == []
    assert edge.observe_maintenance() == set()


async def test_maintenance_switches_on_once_and_off_once(edge: EdgeHarness) -> None:
    assert await edge.adapter.set_maintenance("/api/uploads", True) is True
    assert await edge.adapter.set_maintenance("/api/uploads", True) is False
    assert edge.observe_maintenance() == {"/api/uploads"}
    assert await edge.adapter.maintenance_prefixes() == ["/api/uploads"]
    assert await edge.adapter.set_maintenance("/api/uploads", False) is True
    assert await edge.adapter.set_maintenance("/api/uploads", False) is False
    assert edge.observe_maintenance() == set()
    assert await edge.adapter.maintenance_prefixes() == []


async def test_several_prefixes_are_kept_apart(edge: EdgeHarness) -> None:
    for prefix in ("/api/uploads", "/api/orders", "/"):
        await edge.adapter.set_maintenance(prefix, True)
    await edge.adapter.set_maintenance("/api/orders", False)
    assert set(await edge.adapter.maintenance_prefixes()) == {"/api/uploads", "/"} == edge.observe_maintenance()


async def test_a_prefix_that_is_not_a_path_is_refused(edge: EdgeHarness) -> None:
    with pytest.raises(PlatformError):
        await edge.adapter.set_maintenance("api/uploads", True)
    assert edge.observe_maintenance() == set()


async def test_flags_change_once_and_their_history_lists_each_change_in_order(edge: EdgeHarness) -> None:
    assert await edge.adapter.set_flag("checkout-v2", False) is True
    assert await edge.adapter.set_flag("checkout-v2", False) is False
    assert edge.observe_flag("checkout-v2") is False
    assert await edge.adapter.set_flag("checkout-v2", True) is True
    assert edge.observe_flag("checkout-v2") is True
    history = [c for c in await edge.adapter.flag_history() if c.name == "checkout-v2"]
    assert [c.enabled for c in history] == [False, True]
    assert history[0].at <= history[1].at and history[0].at.tzinfo is not None


async def test_an_unknown_flag_has_no_state_and_no_history(edge: EdgeHarness) -> None:
    assert edge.observe_flag("never-set") is None
    assert [c for c in await edge.adapter.flag_history() if c.name == "never-set"] == []


async def test_a_flag_reads_back_the_value_the_platform_holds_and_none_before_it_is_set(edge: EdgeHarness) -> None:
    """What the gate reads back after a flag switch whose answer was lost (remediation.read_back)."""
    assert await edge.adapter.flag("checkout-v2") is None is edge.observe_flag("checkout-v2")
    await edge.adapter.set_flag("checkout-v2", True)
    assert await edge.adapter.flag("checkout-v2") is True is edge.observe_flag("checkout-v2")
    await edge.adapter.set_flag("checkout-v2", False)
    assert await edge.adapter.flag("checkout-v2") is False is edge.observe_flag("checkout-v2")
