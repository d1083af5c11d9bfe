"""What a run tells people, and the fan-out that makes sure telling them never breaks the run.

A run publishes :class:`IncidentEvent` s (an action's outcome, an approval asked for and answered, a page of the
next on-call tier, an escalation, the end). Each channel (Slack, Statuspage, PagerDuty) is a :class:`Notifier`
that decides what, if anything, an event means to it. :class:`FanOut` sends one event to every channel at once,
each bounded by a timeout, and turns every failure into a :class:`Delivery` (redacted) instead of an exception:
the runbook records failures on its timeline and carries on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import ActionState, ApprovalAnswer, Outcome, Phase, Severity, utcnow
from remediation.notify.redact import protect, redact


class EventKind(StrEnum):
    ACTION = "action"  # an action was applied, failed or not applied
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_ANSWERED = "approval_answered"
    PAGE = "page"  # the escalation ladder pages the next tier
    ESCALATED = "escalated"
    FINISHED = "finished"


class Tier(StrEnum):
    """The on-call ladder (docs/reference/kamkmserve.md §10): no ack -> secondary -> duty manager (+ bridge)."""

    PRIMARY = "primary"
    SECONDARY = "secondary"
    DUTY_MANAGER = "duty_manager"

    @property
    def label(self) -> str:
        return {"primary": "primary on-call", "secondary": "secondary on-call",
                "duty_manager": "duty manager"}[self.value]


class IncidentEvent(BaseModel):
    """One thing that happened in a run, with enough context for a human to act on it without opening anything."""

    model_config = ConfigDict(frozen=True)

    kind: EventKind
    incident_id: str
    runbook: str
    service: str
    severity: Severity
    phase: Phase
    summary: str  # one line: what happened (a plan summary, an escalation reason, ...)
    detail: str = ""
    at: datetime = Field(default_factory=utcnow)
    flow_run_id: str | None = None
    run_url: str | None = None  # the Prefect UI's flow-run page: where a person approves or denies
    state: ActionState | None = None  # ACTION
    risk: str | None = None  # ACTION / APPROVAL_REQUESTED: observe, reversible, destructive
    answer: ApprovalAnswer | None = None  # APPROVAL_ANSWERED
    approver: str | None = None
    tier: Tier | None = None  # PAGE
    outcome: Outcome | None = None  # FINISHED
    actions_applied: int = 0  # FINISHED: whether anything happened that people were told about
    timeout_s: float | None = None  # APPROVAL_REQUESTED: unanswered after this long counts as deny
    step: str | None = None  # APPROVAL_REQUESTED: what an answer names to count (remediation.approvers.step_binding)
    needed: int = 1  # APPROVAL_REQUESTED: distinct approvers the step needs

    @property
    def severity_label(self) -> str:
        return self.severity.value.upper().replace("SEV", "SEV-")


class Notifier(Protocol):
    """One channel. ``send`` may raise anything: the fan-out contains it."""

    name: str

    async def send(self, event: IncidentEvent) -> None: ...

    def secrets(self) -> Iterable[str]:
        """The channel's credentials, so that no failure message or log line can carry them."""
        ...


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: str
    ok: bool
    error: str = ""


class Notifications(Protocol):
    """What a run holds (``Providers.notifier``): publish an event, get back what failed. Never raises."""

    channels: Sequence[Notifier]

    async def publish(self, event: IncidentEvent) -> list[Delivery]: ...

    def publish_blocking(self, event: IncidentEvent) -> list[Delivery]:
        """For synchronous callers (``escalate``, ``finish``): delivered before returning, within the bound."""
        ...


class FanOut:
    """Every channel at once, each within ``timeout_s``; failures come back redacted, never raised."""

    def __init__(self, channels: Sequence[Notifier], *, timeout_s: float = 5.0) -> None:
        self.channels = list(channels)
        self.timeout_s = timeout_s
        for channel in self.channels:
            protect(channel.secrets())  # also keeps them out of httpx's request log lines

    async def publish(self, event: IncidentEvent) -> list[Delivery]:
        if not self.channels:
            return []
        return list(await asyncio.gather(*(self._one(channel, event) for channel in self.channels)))

    async def _one(self, channel: Notifier, event: IncidentEvent) -> Delivery:
        try:
            await asyncio.wait_for(channel.send(event), timeout=self.timeout_s)
        except TimeoutError:
            return Delivery(channel=channel.name, ok=False, error=f"no answer within {self.timeout_s:g}s")
        except Exception as exc:  # a notification must never break the run: the caller records it
            return Delivery(channel=channel.name, ok=False, error=redact(f"{type(exc).__name__}: {exc}")[:500])
        return Delivery(channel=channel.name, ok=True)

    def publish_blocking(self, event: IncidentEvent) -> list[Delivery]:
        """Deliver from synchronous code that may sit inside a running event loop (a flow's): on a helper thread
        with its own loop, joined within the bound. Each channel is already bounded; the join is a backstop."""
        if not self.channels:
            return []
        result: list[list[Delivery]] = []

        def deliver() -> None:
            result.append(asyncio.run(self.publish(event)))

        worker = threading.Thread(target=deliver, name="remediate-notify", daemon=True)
        worker.start()
        worker.join(self.timeout_s + 5.0)
        if not result:
            return [Delivery(channel=c.name, ok=False, error=f"no answer within {self.timeout_s:g}s")
                    for c in self.channels]
        return result[0]


def failures(deliveries: Iterable[Delivery]) -> list[Delivery]:
    return [d for d in deliveries if not d.ok]
