"""Platform capabilities: deploys, edge controls, capacity, background jobs, logs and error tracking.

kamkmserve itself has no rollback script, maintenance mode or feature flags (docs/reference/kamkmserve.md §13); these
levers come from the platform it runs on. Each capability is one Protocol; the simulated platform implements them
in ``sim_platform``, AWS and Vercel later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


