"""How intake starts a runbook run for a new incident.

Every implementation must be idempotent on ``idempotency_key`` (the incident id): a retry after a crash or a
duplicate delivery returns the run that already exists instead of starting a second one.
"""

from __future__ import annotations

from typing import Any, Protocol


class RunStarter(Protocol):
    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        """Create (and, for an executor, begin) the run of ``flow-name/deployment-name``; return its id."""
        ...


class StartFailed(RuntimeError):
    """The run could not be created; the incident stays open without a run and the start is retried."""
