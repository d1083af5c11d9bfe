"""A trivial async flow for orchestration tests: it records when it ran, can sleep, can take a service lock, and can
hold it until the test says so (``hold_until``: a file the test creates), so ordering is asserted on conditions.

Each execution appends one JSON line to ``record_to`` (works from served child processes too), so a test can
count executions and check overlaps without reading Prefect's logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from prefect import flow

from remediation.orchestration.limits import service_lock

FLOW_NAME = "orch-tiny"


def _record(record_to: str | None, **fields: Any) -> None:
    if record_to:
        with Path(record_to).open("a") as out:
            out.write(json.dumps({**fields, "pid": os.getpid()}) + "\n")


@flow(name=FLOW_NAME, log_prints=True)
async def tiny(label: str = "x", sleep_s: float = 0.0, record_to: str | None = None,
               lock_service: str | None = None, lock_timeout_s: float | None = None,
               hold_until: str | None = None) -> dict[str, Any]:
    started = time.time()
    _record(record_to, label=label, event="start", at=started)
    if lock_service:
        async with service_lock(lock_service, timeout_s=lock_timeout_s):
            _record(record_to, label=label, event="locked", at=time.time())
            await asyncio.sleep(sleep_s)
            await _wait_for_file(hold_until)
            _record(record_to, label=label, event="unlocking", at=time.time())
    else:
        await asyncio.sleep(sleep_s)
        await _wait_for_file(hold_until)
    _record(record_to, label=label, event="end", at=time.time())
    return {"label": label, "started": started}


async def _wait_for_file(path: str | None, limit_s: float = 120.0) -> None:
    """Until ``path`` exists; bounded, so a test that fails before releasing cannot leave the run holding forever."""
    deadline = time.monotonic() + limit_s
    while path and not Path(path).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
