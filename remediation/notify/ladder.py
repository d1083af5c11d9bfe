"""The SEV-1..4 escalation ladder (docs/reference/kamkmserve.md §10, ``docs/people/on-call-escalation.md``).

Who hears about an approval request, and about each ack time that passes without an answer:

=========  ==========  =========================  ==============================  ============================
severity   ack time    approval requested         each ack time without answer    the run escalates
=========  ==========  =========================  ==============================  ============================
SEV-1/2    5 / 10 min  PagerDuty primary + Slack  PagerDuty next tier + Slack:    PagerDuty primary + Slack
                                                  secondary, then duty manager
                                                  and the incident bridge
SEV-3/4    30 min      Slack only                 Slack only: "still no answer"   PagerDuty primary (severity
                                                  reminder on the same rungs;     warning / info) + Slack
                                                  nobody is paged
=========  ==========  =========================  ==============================  ============================

Ack times are ``REMEDIATE_ACK_SEV1_S`` ... ``_SEV4_S``. SEV-3/4 are business-hours incidents: a decision can wait
for someone reading Slack, so asking for one pages nobody (:func:`pages_on_call`), and the ladder keeps its rungs
as reminders in the channel instead of pages. Nobody answering is still covered: the request ends as a deny at the
run's approval timeout and the run escalates, and an escalation pages the primary at every severity (the automation
has stopped; PagerDuty's urgency rules can treat a ``warning``/``info`` alert as low urgency).

The primary is paged by the approval request itself (SEV-1/2). While the run waits, :func:`climb` takes each next
rung when the ack time passes without an answer; the run cancels it the moment anyone answers. An unanswered
approval still ends as a deny at the run's own approval timeout: the ladder makes sure a person *could* answer, it
never answers for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from remediation.models import Severity
from remediation.notify.notifier import Tier
from remediation.providers.capabilities import Clock
from remediation.settings import Settings

#: Severities whose approval requests (and the ladder's rungs) page people through PagerDuty.
PAGED_SEVERITIES = frozenset({Severity.SEV1, Severity.SEV2})


def pages_on_call(severity: Severity) -> bool:
    """Whether an approval request of this severity pages PagerDuty (SEV-1/2) or only posts to Slack (SEV-3/4)."""
    return severity in PAGED_SEVERITIES


def rung_event(tier: Tier, severity: Severity) -> str:
    """The timeline entry of a rung: who is paged, or (SEV-3/4) that only a reminder goes out."""
    if pages_on_call(severity):
        return f"paging the {tier.label}"
    return "approval still waiting: reminding Slack (nobody paged)"


@dataclass(frozen=True)
class Rung:
    tier: Tier  # paged at SEV-1/2
    after_s: float  # since the approval was requested
    note: str  # why, when it pages


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


async def climb(page: Page, *, ack: float, clock: Clock, timeout_s: float | None = None,
                paging: bool = True) -> list[Tier]:
    """Take each next rung when its time comes; returns the rungs' tiers. Cancel it when someone answers.

    ``paging`` False (SEV-3/4, see :func:`pages_on_call`): the same rungs, but ``page`` is told it is a reminder
    (nobody was paged, so no tier "did not answer"); the channels then remind Slack and page nobody.

    A rung after the approval's own timeout is never reached: by then the request has ended as a deny and the
    run escalates (which pages the primary again through the escalation)."""
    taken: list[Tier] = []
    waited = 0.0
    for rung in rungs(ack):
        if timeout_s is not None and rung.after_s >= timeout_s:
            break
        await clock.sleep(rung.after_s - waited)
        waited = rung.after_s
        if paging:
            await page(rung.tier, f"{rung.note} within {ack:g}s (approval waiting {waited:g}s)")
        else:
            await page(rung.tier, f"no answer within {waited:g}s; SEV-3/4 approvals page nobody: answer it, or it "
                                  "ends as a deny at the approval timeout and the run escalates")
        taken.append(rung.tier)
    return taken
