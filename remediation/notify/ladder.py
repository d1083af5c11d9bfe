"""The SEV-1..4 escalation ladder (docs/reference/kamkmserve.md §10, ``docs/people/on-call-escalation.md``).

=========  ===================  ======================================================================
severity   ack time (default)   ladder while an approval waits
=========  ===================  ======================================================================
SEV-1      5 min                primary paged at once; no answer in 5 min -> secondary; 5 more -> duty
SEV-2      10 min               manager and the incident bridge. Same rungs for every severity, the ack
SEV-3/4    30 min               time differs (``REMEDIATE_ACK_SEV1_S`` ... ``_SEV4_S``).
=========  ===================  ======================================================================

The primary is paged by the approval request itself (PagerDuty trigger on the primary's key). While the run
waits, :func:`climb` pages each next tier when the ack time passes without an answer; the run cancels it the
moment anyone answers. An unanswered approval still ends as a deny at the run's own approval timeout: the ladder
makes sure a person *could* answer, it never answers for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from remediation.models import Severity
from remediation.notify.notifier import Tier
from remediation.providers.clock import Clock
from remediation.settings import Settings


@dataclass(frozen=True)
class Rung:
    tier: Tier
    after_s: float  # since the approval was requested
    note: str


def ack_s(settings: Settings, severity: Severity) -> float:
    return {Severity.SEV1: settings.ack_sev1_s, Severity.SEV2: settings.ack_sev2_s,
            Severity.SEV3: settings.ack_sev3_s, Severity.SEV4: settings.ack_sev4_s}[severity]


def rungs(ack: float) -> tuple[Rung, ...]:
    """The pages after the primary's: each tier gets the same ack time as the one before it."""
    return (
        Rung(Tier.SECONDARY, ack, "primary did not answer"),
        Rung(Tier.DUTY_MANAGER, 2 * ack, "secondary did not answer: open the incident bridge"),
    )


def due(ack: float, elapsed_s: float) -> list[Tier]:
    """Tiers that must have been paged ``elapsed_s`` after the request (the primary always is)."""
    return [Tier.PRIMARY, *(r.tier for r in rungs(ack) if elapsed_s >= r.after_s)]


Page = Callable[[Tier, str], Awaitable[None]]


async def climb(page: Page, *, ack: float, clock: Clock, timeout_s: float | None = None) -> list[Tier]:
    """Page each next tier when its time comes; returns the tiers paged. Cancel it when someone answers.

    A rung after the approval's own timeout is never reached: by then the request has ended as a deny and the
    run escalates (which pages the primary again through the escalation)."""
    paged: list[Tier] = []
    waited = 0.0
    for rung in rungs(ack):
        if timeout_s is not None and rung.after_s >= timeout_s:
            break
        await clock.sleep(rung.after_s - waited)
        waited = rung.after_s
        await page(rung.tier, f"{rung.note} within {ack:g}s (approval waiting {waited:g}s)")
        paged.append(rung.tier)
    return paged
