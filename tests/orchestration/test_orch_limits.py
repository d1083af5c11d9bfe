"""Server-side objects: per-service mutual exclusion, the zombie automation, the work pool; all idempotent."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from remediation.orchestration.limits import (
    ZOMBIE_AUTOMATION,
    ServiceBusy,
    ensure_service_limit,
    ensure_work_pool,
    ensure_zombie_automation,
    service_limit_name,
    service_lock,
)
from remediation.orchestration.warm import WarmExecutor
from tests.orchestration.orch_flows import records
from tests.orchestration.orchkit import key, read_run, wait_final, wait_for

pytestmark = pytest.mark.prefect_server


def _held(record: Path) -> dict[str, tuple[float, float]]:
    """label -> (slot acquired, slot released), from the tiny flow's records."""
    rows = records(record)
    locked = {r["label"]: r["at"] for r in rows if r["event"] == "locked"}
    unlocking = {r["label"]: r["at"] for r in rows if r["event"] == "unlocking"}
    return {label: (locked[label], unlocking[label]) for label in locked}


def test_limit_names_are_prefect_safe() -> None:
    assert service_limit_name("kamkmserve") == "remediate-kamkmserve"
    assert service_limit_name(" shop/eu & us ") == "remediate-shop-eu-us"


def test_ensure_service_limit_is_idempotent_and_race_safe(prefect_api: None) -> None:
    from prefect import get_client

    service = f"race-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(6) as pool:
        names = list(pool.map(lambda _: ensure_service_limit(service), range(6)))
    assert set(names) == {f"remediate-{service}"}
    with get_client(sync_client=True) as client:
        limits = [gcl for gcl in client.read_global_concurrency_limits(limit=200) if gcl.name == names[0]]
    assert len(limits) == 1
    assert limits[0].limit == 1


async def test_service_lock_serialises_one_service_and_not_another(executor: WarmExecutor, tmp_path: Path) -> None:
    """While a run holds service A's slot: a second run of A waits, and a run of service B locks and ends.

    Ordered on conditions, not on timing: the holder keeps the slot until the test creates its release file.
    """
    record, release = tmp_path / "runs.jsonl", tmp_path / "release-a1"
    svc_a, svc_b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"

    def params(label: str, service: str, **extra: Any) -> dict[str, Any]:
        return {"label": label, "record_to": str(record), "lock_service": service, **extra}

    def events(label: str) -> set[str]:
        return {r["event"] for r in records(record) if r["label"] == label}

    a1 = await executor.start("orch-tiny/tiny", params("a1", svc_a, hold_until=str(release)), key())
    wait_for(lambda: "locked" in events("a1"), 60, what="a1 to hold service A's slot")
    a2 = await executor.start("orch-tiny/tiny", params("a2", svc_a), key())
    wait_for(lambda: "start" in events("a2"), 60, what="a2 to start and ask for service A's slot")
    b1 = await executor.start("orch-tiny/tiny", params("b1", svc_b), key())
    assert wait_final(b1, timeout_s=60).state.is_completed()
    assert "unlocking" not in events("a1"), "the holder let go before the test released it"
    assert "locked" not in events("a2"), "two runs of one service held its slot at the same time"

    release.touch()
    assert all(wait_final(i, timeout_s=60).state.is_completed() for i in (a1, a2))
    held = _held(record)
    assert held["a2"][0] >= held["a1"][1], "the waiting run of service A locked before the holder let go"


async def test_waiting_too_long_for_the_slot_is_service_busy(executor: WarmExecutor, tmp_path: Path) -> None:
    record, service = tmp_path / "runs.jsonl", f"busy-{uuid.uuid4().hex[:8]}"
    holder = await executor.start("orch-tiny/tiny", {"label": "holder", "sleep_s": 4, "record_to": str(record),
                                                     "lock_service": service}, key())
    wait_for(lambda: any(r["event"] == "locked" for r in records(record)), 30, what="the holder to lock")
    assert await _try_lock(service) == "busy"  # from the test itself, outside any flow
    waiter = await executor.start("orch-tiny/tiny", {"label": "waiter", "record_to": str(record),
                                                     "lock_service": service, "lock_timeout_s": 1}, key())
    run = wait_final(waiter, timeout_s=30)
    assert run.state.is_failed() and run.state.name == "TimedOut"  # ServiceBusy is a TimeoutError
    assert wait_final(holder, timeout_s=30).state.is_completed()
    assert read_run(holder).state.is_completed()


async def _try_lock(service: str) -> str:
    try:
        async with service_lock(service, timeout_s=0.5):
            return "acquired"
    except ServiceBusy:
        return "busy"


def test_zombie_automation_is_created_once_with_a_safe_window(prefect_api: None) -> None:
    from datetime import timedelta

    from prefect import get_client

    first = ensure_zombie_automation(heartbeat_s=180)
    again = ensure_zombie_automation(heartbeat_s=180)
    try:
        assert first is not None and first == again
        with get_client(sync_client=True) as client:
            (automation,) = client.read_automations_by_name(ZOMBIE_AUTOMATION)
            assert automation.trigger.within == timedelta(seconds=360)  # twice the heartbeat, never below it
            assert ensure_zombie_automation(heartbeat_s=30) == first  # window changed: updated in place
            (automation,) = client.read_automations_by_name(ZOMBIE_AUTOMATION)
            assert automation.trigger.within == timedelta(seconds=60)
            assert [a.state.value for a in automation.actions] == ["CRASHED"]
    finally:
        with get_client(sync_client=True) as client:
            for automation in client.read_automations_by_name(ZOMBIE_AUTOMATION):
                client.delete_automation(automation.id)


def test_no_zombie_automation_without_heartbeats(prefect_api: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import get_client

    from remediation.orchestration import limits

    monkeypatch.setattr(limits, "heartbeat_seconds", lambda: None)
    assert ensure_zombie_automation() is None  # it would crash every run: no heartbeat ever arrives
    with get_client(sync_client=True) as client:
        assert client.read_automations_by_name(ZOMBIE_AUTOMATION) == []


def test_ensure_work_pool_creates_a_process_pool_once(prefect_api: None) -> None:
    from prefect import get_client

    name = f"pool-{uuid.uuid4().hex[:8]}"
    ensure_work_pool(name)
    ensure_work_pool(name)
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(name)
    assert pool.type == "process"
    assert "job_configuration" in pool.base_job_template
