"""The store's token buckets (``rate_budgets``): atomic takes and app-imposed blocks, on SQLite and PostgreSQL.

Every test passes the time explicitly (epoch seconds), so refill and blocks are checked without waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from remediation.store import Store

T0 = 1_800_000_000.0
KEY = "app:http://127.0.0.1:3000"


def test_a_fresh_budget_grants_its_capacity_then_refuses_with_the_time_to_the_next_token(store: Store) -> None:
    granted = [store.take_request(KEY, per_minute=6, now=T0).granted for _ in range(8)]
    assert granted == [True] * 6 + [False] * 2
    refused = store.take_request(KEY, per_minute=6, now=T0)
    assert not refused.blocked and refused.block_reason is None
    assert refused.retry_in_s == pytest.approx(10.0)  # 6/min refills one token every 10 s


def test_tokens_come_back_at_per_minute_over_60_per_second_and_never_beyond_capacity(store: Store) -> None:
    for _ in range(6):
        assert store.take_request(KEY, per_minute=6, now=T0).granted
    assert not store.take_request(KEY, per_minute=6, now=T0 + 9.9).granted
    assert store.take_request(KEY, per_minute=6, now=T0 + 10.0).granted
    assert not store.take_request(KEY, per_minute=6, now=T0 + 10.0).granted
    # An hour idle refills to capacity, not to 360.
    later = T0 + 3600.0
    assert [store.take_request(KEY, per_minute=6, now=later).granted for _ in range(7)] == [True] * 6 + [False]


def test_budgets_of_different_keys_are_independent(store: Store) -> None:
    assert store.take_request(KEY, per_minute=1, now=T0).granted
    assert not store.take_request(KEY, per_minute=1, now=T0).granted
    assert store.take_request("app:https://other.example", per_minute=1, now=T0).granted


def test_a_block_refuses_every_take_until_it_ends_and_then_refills_from_its_end(store: Store) -> None:
    store.take_request(KEY, per_minute=6, now=T0)
    store.block_requests(KEY, until=T0 + 30.0, reason="the app answered 429", per_minute=6, now=T0)
    refused = store.take_request(KEY, per_minute=6, now=T0 + 29.0)
    assert refused.blocked and refused.block_reason == "the app answered 429"
    assert refused.retry_in_s == pytest.approx(1.0)
    # After the block the bucket starts empty: a full burst right after a 429 would just earn another.
    assert not store.take_request(KEY, per_minute=6, now=T0 + 30.0).granted
    assert store.take_request(KEY, per_minute=6, now=T0 + 40.0).granted


def test_a_later_shorter_block_never_shortens_an_earlier_one(store: Store) -> None:
    store.block_requests(KEY, until=T0 + 60.0, reason="429 with Retry-After 60", per_minute=6, now=T0)
    store.block_requests(KEY, until=T0 + 5.0, reason="0 remaining", per_minute=6, now=T0)
    state = store.request_budget(KEY)
    assert state is not None
    assert (state.blocked_until, state.block_reason) == (T0 + 60.0, "429 with Retry-After 60")
    assert store.take_request(KEY, per_minute=6, now=T0 + 59.0).blocked


def test_a_lagging_clock_earns_no_tokens_from_time_another_taker_already_counted(store: Store) -> None:
    for _ in range(6):
        assert store.take_request(KEY, per_minute=6, now=T0 + 100.0).granted
    # Another host whose clock is 100 s behind must not see 100 s of refill.
    assert not store.take_request(KEY, per_minute=6, now=T0).granted
    assert not store.take_request(KEY, per_minute=6, now=T0 + 105.0).granted
    assert store.take_request(KEY, per_minute=6, now=T0 + 110.0).granted


def test_racing_takers_on_separate_store_instances_never_spend_more_than_the_capacity(
        store: Store, make_store: Callable[[], Store]) -> None:
    """Six engines (each its own connection pool, as separate processes have) take 10 each from a budget of 15."""
    stores = [store, *(make_store() for _ in range(5))]
    barrier = Barrier(len(stores))

    def take_ten(s: Store) -> int:
        barrier.wait()
        return sum(s.take_request(KEY, per_minute=15, now=T0).granted for _ in range(10))

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        granted = list(pool.map(take_ten, stores))
    assert sum(granted) == 15
    state = store.request_budget(KEY)
    assert state is not None and state.tokens == pytest.approx(0.0)


def test_the_first_takes_of_a_new_key_racing_create_one_row_and_one_bucket(
        store: Store, make_store: Callable[[], Store]) -> None:
    stores = [store, *(make_store() for _ in range(3))]
    barrier = Barrier(len(stores))

    def first_take(s: Store) -> bool:
        barrier.wait()
        return s.take_request("app:http://new.example", per_minute=2, now=T0).granted

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        results = list(pool.map(first_take, stores))
    assert sorted(results) == [False, False, True, True]


def test_per_minute_below_one_is_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="per_minute"):
        store.take_request(KEY, per_minute=0, now=T0)
