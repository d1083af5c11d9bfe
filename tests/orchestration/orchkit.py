"""Helpers for orchestration tests: read runs back from the real Prefect API, wait for states, unique keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

TINY_DEPLOYMENT = "orch-tiny/tiny"


def key(prefix: str = "test") -> str:
    return f"{prefix}:{uuid.uuid4().hex}"


def read_run(run_id: str | UUID) -> Any:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(str(run_id)))


def history(run_id: str | UUID) -> list[str]:
    """State names oldest first, e.g. ['Scheduled', 'Pending', 'Running', 'Completed']."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(UUID(str(run_id)))
    return [s.name for s in sorted(states, key=lambda s: s.timestamp)]


def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.1,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


def wait_state(run_id: str | UUID, accept: Callable[[Any], bool], timeout_s: float = 30.0) -> Any:
    def check() -> Any:
        run = read_run(run_id)
        return run if run.state is not None and accept(run.state) else None

    return wait_for(check, timeout_s, 0.1, f"run {run_id} to reach the expected state")


def wait_final(run_id: str | UUID, timeout_s: float = 30.0) -> Any:
    return wait_state(run_id, lambda s: s.is_final(), timeout_s)


def runs_with_key(idempotency_key: str) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterIdempotencyKey

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=[idempotency_key])))
