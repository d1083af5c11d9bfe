"""The request budget keeps our pollers under the app's 100/min limit and honours its 429s."""

from __future__ import annotations

from remediation.providers.budget import RequestBudget


class FakeTime:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_800_000_000.0


def budget(per_minute: int) -> tuple[RequestBudget, FakeTime]:
    t = FakeTime()
    return RequestBudget(per_minute, monotonic=lambda: t.mono, wall=lambda: t.wall), t


def test_budget_allows_n_per_minute_then_refuses_until_the_window_slides() -> None:
    b, t = budget(3)
    assert [b.try_acquire() for _ in range(3)] == [None, None, None]
    refused = b.try_acquire()
    assert refused is not None and "budget of 3" in refused
    t.mono += 60.0
    assert b.try_acquire() is None


def test_429_blocks_for_retry_after_seconds() -> None:
    b, t = budget(30)
    b.observe(429, {"retry-after": "20"})
    refused = b.try_acquire()
    assert refused is not None and "429" in refused
    t.mono += 19.0
    assert b.try_acquire() is not None
    t.mono += 1.5
    assert b.try_acquire() is None


def test_zero_remaining_blocks_until_the_epoch_reset() -> None:
    b, t = budget(30)
    b.observe(200, {"ratelimit-remaining": "0", "ratelimit-reset": str(int(t.wall + 30))})
    assert b.try_acquire() is not None
    t.mono += 31.0
    assert b.try_acquire() is None


def test_garbage_rate_limit_headers_are_ignored() -> None:
    b, _ = budget(5)
    b.observe(200, {"ratelimit-remaining": "zero", "ratelimit-reset": "soon", "retry-after": "-3"})
    assert b.try_acquire() is None
