"""Platform capabilities: deploys, edge controls, capacity, background jobs, logs and error tracking.

kamkmserve itself has no rollback script, maintenance mode or feature flags (docs/reference/kamkmserve.md §13); these
levers come from the platform it runs on. Each capability is one Protocol; the simulated platform implements them
in ``sim_platform``, AWS and Vercel later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


class PlatformError(RuntimeError):
    """A platform call failed; the message says which call and why.

    ``status`` is the HTTP status of the answer that carried the failure, when there was one: a gateway timeout (the
    request may have landed) is told apart from a refusal by it, never by the message (``remediation.call_outcome``).
    """

    def __init__(self, *args: object, status: int | None = None) -> None:
        super().__init__(*args)
        self.status = status


class Release(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    version: str
    created_at: datetime
    promoted_at: datetime | None = None
    state: str = ""


class FlagChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    enabled: bool
    at: datetime


class LogLine(BaseModel):
    """One line of the app's JSON logs; ``raw`` keeps the line exactly as printed."""

    model_config = ConfigDict(frozen=True)

    timestamp: datetime | None
    level: str
    message: str
    context: dict[str, Any] | None = None
    request: dict[str, str] = {}
    raw: str


class ErrorIssue(BaseModel):
    """An error-tracker issue (Sentry's issue list shape)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    title: str
    culprit: str = ""
    level: str = "error"
    status: str = "unresolved"
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    release: str | None = None


class Job(BaseModel):
    """A background worker pool of the service: how many workers it runs and whether it is a heavy one."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    workers: int
    heavy: bool = False
    description: str = ""


class Deploys(Protocol):
    async def releases(self) -> list[Release]:
        """Newest first; the current one has ``state == "current"``."""
        ...

    async def rollback(self, to_release: str) -> Release:
        """Promote ``to_release``; idempotent when it is already current."""
        ...


class EdgeControls(Protocol):
    async def maintenance_prefixes(self) -> list[str]: ...

    async def set_maintenance(self, prefix: str, enabled: bool) -> bool:
        """Returns whether anything changed (idempotent)."""
        ...

    async def flag_history(self) -> list[FlagChange]: ...

    async def flag(self, name: str) -> bool | None:
        """The flag's value now; None when the platform holds no value for it (never set)."""
        ...

    async def set_flag(self, name: str, enabled: bool) -> bool: ...


class Capacity(Protocol):
    """How many replicas (instances, tasks) serve the service. Platforms that autoscale with no knob have none."""

    async def replicas(self, service: str) -> int: ...

    async def scale(self, service: str, replicas: int) -> int:
        """Set the desired replica count (idempotent); returns the count now desired."""
        ...


class Jobs(Protocol):
    """The service's background job pools. Pausing one is ``set_workers(name, 0)``; the caller remembers the
    previous count (returned) so that resuming restores exactly what ran before."""

    async def jobs(self, service: str) -> list[Job]: ...

    async def set_workers(self, service: str, job: str, workers: int) -> int:
        """Set the pool's worker count (idempotent); returns the count it had before."""
        ...


class Logs(Protocol):
    async def lines(self, since: datetime | None = None, limit: int = 500) -> list[LogLine]: ...


class Errors(Protocol):
    async def issues(self, since: datetime | None = None) -> list[ErrorIssue]: ...


class Instance(BaseModel):
    """One instance (VM or task) behind the service's load balancer, as the balancer sees it. ``state`` is the
    balancer's word (ELBv2: initial, healthy, unhealthy, draining, unused, unavailable); ``detail`` its reason."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    state: str
    detail: str = ""

    @property
    def serving(self) -> bool:
        return self.state in ("initial", "healthy", "unhealthy", "draining")


class Instances(Protocol):
    """Rolling restarts: take one instance out of rotation, restart it, put it back. Waits are bounded: a wait that
    runs out raises PlatformError with what was seen, it never hangs."""

    async def instances(self, service: str) -> list[Instance]: ...

    async def drain(self, service: str, instance: str, timeout_s: float) -> Instance:
        """Take it out of rotation and wait until it serves nothing (idempotent)."""
        ...

    async def restore(self, service: str, instance: str, timeout_s: float) -> Instance:
        """Put it back into rotation and wait until it is healthy (idempotent)."""
        ...

    async def restart(self, service: str, instance: str) -> None:
        """Restart it once; never retried automatically (a second restart is a second action)."""
        ...
