"""Nothing stays stuck: a remediation slot whose holder is gone is taken over, and an interrupted holder frees it.

Real processes against a real Prefect API: a holder subprocess (the demo's shape: the runbook in a thread, the main
thread waiting) is SIGINTed or SIGKILLed while it holds the slot, and the next taker gets it well before the 60 s
lease would have lapsed. The lease Prefect's temporary API forgets when its process dies is simulated by taking a
slot without a lease and recording a holder whose process is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict

import pytest

from remediation.orchestration import slot_holder
from remediation.orchestration.limits import LEASE_S, ensure_service_limit, service_lock
from tests.orchestration.orchkit import wait_for
from tests.orchestration.stackkit import REPO

pytestmark = pytest.mark.prefect_server


def _limit(name: str) -> tuple[int, bool]:
    """(active slots, whether a holder is recorded) of ``name``."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        active = client.read_global_concurrency_limit_by_name(name).active_slots
        recorded = client.read_variable_by_name(slot_holder.variable_name(name)) is not None
    return active, recorded


@pytest.fixture
def holder(prefect_api: None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A subprocess holding a new service's slot: (service, process)."""
    from prefect.settings import get_current_settings

    service = f"takeover-{uuid.uuid4().hex[:8]}"
    ensure_service_limit(service)
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "tests.orchestration.slot_holder_main", service], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the slot is held (or the process died)
        assert first.strip() == "HELD", first + process.stdout.read()
        yield service, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_holder_interrupted_with_ctrl_c_releases_its_slot_and_record(
    holder: tuple[str, subprocess.Popen[str]]
) -> None:
    service, process = holder
    name = f"remediate-{service}"
    assert _limit(name) == (1, True)
    process.send_signal(signal.SIGINT)
    process.wait(30)
    assert _limit(name) == (0, False)


def test_a_killed_holders_slot_is_taken_over_before_its_lease_lapses(
    holder: tuple[str, subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    service, process = holder
    process.send_signal(signal.SIGKILL)  # no release, no exit handler: only the record says who held it
    process.wait(10)
    started = time.monotonic()

    async def take() -> None:
        async with service_lock(service, timeout_s=LEASE_S / 2):
            pass

    asyncio.run(take())
    assert time.monotonic() - started < LEASE_S / 2
    said = capsys.readouterr().out
    assert f"took over the remediation slot of {service} from pid {process.pid}" in said
    assert f"its process {process.pid} has exited" in said
    assert _limit(f"remediate-{service}") == (0, False)


def test_a_slot_whose_lease_prefect_forgot_is_taken_over_from_a_dead_holder(
    prefect_api: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect import get_client

    service = f"forgotten-{uuid.uuid4().hex[:8]}"
    name = ensure_service_limit(service)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    async def strand() -> None:
        # What an interrupted demo leaves on Prefect's temporary API: the count, and no lease anywhere.
        async with get_client() as client:
            await client.increment_concurrency_slots(names=[name], slots=1, mode="concurrency")
            limit = await client.read_global_concurrency_limit_by_name(name)
            stranded = slot_holder.Holder(limit=name, lease_id=str(uuid.uuid4()), pid=dead.pid,
                                          host=os.uname().nodename, flow_run_id=None, acquired_at="earlier",
                                          limit_updated=limit.updated.isoformat() if limit.updated else None)
            from prefect.client.schemas.actions import VariableCreate

            await client.create_variable(VariableCreate(name=slot_holder.variable_name(name), value=asdict(stranded)))

    async def take() -> None:
        async with service_lock(service, timeout_s=20):
            assert _limit(name) == (1, True)

    asyncio.run(strand())
    assert _limit(name) == (1, True)
    asyncio.run(take())
    assert f"took over the remediation slot of {service} from pid {dead.pid}" in capsys.readouterr().out
    assert _limit(name) == (0, False)


def test_a_live_holder_keeps_its_slot(holder: tuple[str, subprocess.Popen[str]]) -> None:
    from remediation.orchestration.limits import ServiceBusy

    service, _ = holder

    async def take() -> None:
        async with service_lock(service, timeout_s=3):
            pass

    with pytest.raises(ServiceBusy):
        asyncio.run(take())
    assert wait_for(lambda: _limit(f"remediate-{service}") == (1, True), timeout_s=5)
