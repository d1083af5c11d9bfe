"""What the notification channels did per incident (``notify_pages``, ``notify_statuspage_incidents``), on SQLite and
PostgreSQL: written by one ``Store``, read back by another (a restarted process), upserts never duplicate."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from remediation.store import Store
from tests.store.store_factories import T0


def test_paged_tiers_written_by_one_store_are_read_by_a_restarted_one(store: Store,
                                                                     make_store: Callable[[], Store]) -> None:
    store.record_page("inc-1", "primary", T0)
    store.record_page("inc-1", "secondary", T0 + timedelta(minutes=5))
    store.record_page("inc-2", "primary", T0)
    assert make_store().paged_tiers("inc-1") == {"primary", "secondary"}
    assert make_store().paged_tiers("inc-unknown") == set()


def test_resolving_closes_only_the_named_tiers_and_a_later_page_reopens_one(store: Store) -> None:
    for tier in ("primary", "secondary", "duty_manager"):
        store.record_page("inc-1", tier, T0)
    store.resolve_pages("inc-1", ["primary", "secondary"], T0 + timedelta(hours=1))
    assert store.paged_tiers("inc-1") == {"duty_manager"}
    store.resolve_pages("inc-1", [], T0 + timedelta(hours=1))  # nothing to resolve is not an error
    store.record_page("inc-1", "primary", T0 + timedelta(hours=2))
    assert store.paged_tiers("inc-1") == {"primary", "duty_manager"}


def test_the_same_page_recorded_twice_or_by_racing_processes_is_one_row(store: Store,
                                                                       make_store: Callable[[], Store]) -> None:
    others = [make_store() for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda s: s.record_page("inc-1", "primary", T0), others))
    store.record_page("inc-1", "primary", T0 + timedelta(minutes=1))
    store.resolve_pages("inc-1", ["primary"], T0 + timedelta(minutes=2))
    assert store.paged_tiers("inc-1") == set(), "one row, so one resolve closes it"


def test_a_statuspage_incident_is_remembered_per_page_and_updated_in_place(store: Store,
                                                                          make_store: Callable[[], Store]) -> None:
    assert store.statuspage_incident("inc-1", "pg1") is None
    store.record_statuspage_incident("inc-1", "pg1", "sp-abc", "identified", T0)
    store.record_statuspage_incident("inc-1", "pg1", "sp-abc", "monitoring", T0 + timedelta(minutes=3))
    row = make_store().statuspage_incident("inc-1", "pg1")
    assert row is not None
    assert (row.statuspage_id, row.status) == ("sp-abc", "monitoring")
    assert row.opened_at == T0 and row.updated_at == T0 + timedelta(minutes=3)
    assert store.statuspage_incident("inc-1", "another-page") is None, "a changed page id starts afresh"


def test_naive_timestamps_are_refused_before_anything_is_written(store: Store) -> None:
    naive = datetime(2026, 3, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record_page("inc-1", "primary", naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record_statuspage_incident("inc-1", "pg1", "sp-abc", "identified", naive)
    assert store.paged_tiers("inc-1") == set() and store.statuspage_incident("inc-1", "pg1") is None
