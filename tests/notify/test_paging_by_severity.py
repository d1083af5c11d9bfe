"""Who hears about an approval request, by severity (remediation.notify.ladder): SEV-1/2 page the on-call through
PagerDuty and post to Slack; SEV-3/4 post to Slack only, and the ladder's rungs become Slack reminders. Escalations
page the primary at every severity. Real HTTP fakes of Slack and PagerDuty on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from remediation import composition
from remediation.incident import RunningIncident
from remediation.models import Alert, Approval, ApprovalAnswer, Mode, Phase, Rollback, Severity
from remediation.notify import EventKind, FanOut, IncidentEvent, PagerDutyEvents, SlackWebhook, Tier
from remediation.notify.ladder import climb, pages_on_call
from remediation.providers.approvals import ApprovalRequest
from remediation.providers.capabilities import Ballot
from remediation.providers.clock import VirtualClock
from remediation.providers.platform import Release
from remediation.settings import Settings
from tests.helpers.fake_notify import FakePagerDuty, FakeSlack
from tests.notify.conftest import MANAGER_KEY, PRIMARY_KEY, SECONDARY_KEY, SLACK_TOKEN

Event = Callable[..., IncidentEvent]
PAGING = [Severity.SEV1, Severity.SEV2]
SLACK_ONLY = [Severity.SEV3, Severity.SEV4]


def fan_out(slack: FakeSlack, pagerduty: FakePagerDuty) -> FanOut:
    keys = {Tier.PRIMARY: PRIMARY_KEY, Tier.SECONDARY: SECONDARY_KEY, Tier.DUTY_MANAGER: MANAGER_KEY}
    return FanOut([SlackWebhook(slack.webhook_url(SLACK_TOKEN), timeout_s=2.0),
                   PagerDutyEvents(keys, events_url=pagerduty.events_url, timeout_s=2.0)], timeout_s=5.0)


@pytest.mark.parametrize(("severity", "paged"), [(Severity.SEV1, True), (Severity.SEV2, True),
                                                 (Severity.SEV3, False), (Severity.SEV4, False)])
def test_only_sev1_and_sev2_approvals_page_the_on_call(severity: Severity, paged: bool) -> None:
    assert pages_on_call(severity) is paged


@pytest.mark.parametrize("severity", PAGING)
async def test_a_sev1_or_sev2_approval_request_triggers_the_primary_and_posts_to_slack(
    severity: Severity, slack: FakeSlack, pagerduty: FakePagerDuty, event: Event
) -> None:
    deliveries = await fan_out(slack, pagerduty).publish(event(EventKind.APPROVAL_REQUESTED, severity=severity,
                                                               timeout_s=900))
    assert all(d.ok for d in deliveries), deliveries
    assert pagerduty.actions() == [(PRIMARY_KEY, "trigger")]
    (message,) = slack.messages
    assert message["text"].startswith("Approval needed") and "the on-call ladder pages the next tier" in json.dumps(
        message)


@pytest.mark.parametrize("severity", SLACK_ONLY)
async def test_a_sev3_or_sev4_approval_request_posts_to_slack_and_sends_pagerduty_nothing(
    severity: Severity, slack: FakeSlack, pagerduty: FakePagerDuty, event: Event
) -> None:
    channels = fan_out(slack, pagerduty)
    await channels.publish(event(EventKind.APPROVAL_REQUESTED, severity=severity, timeout_s=900))
    await channels.publish(event(EventKind.APPROVAL_ANSWERED, severity=severity, answer=ApprovalAnswer.APPROVED,
                                 approver="alice"))
    assert pagerduty.requests == [], "no trigger for the request, and nothing to acknowledge for the answer"
    request, answer = slack.texts()
    label = severity.value.upper().replace("SEV", "SEV-")
    assert "Approval needed" in request and f"nobody is paged for a {label} approval" in request
    assert "approved by alice" in answer


@pytest.mark.parametrize("severity", SLACK_ONLY)
async def test_sev3_and_sev4_ladder_rungs_remind_slack_and_page_no_tier(
    severity: Severity, slack: FakeSlack, pagerduty: FakePagerDuty, event: Event
) -> None:
    channels = fan_out(slack, pagerduty)
    for tier in (Tier.SECONDARY, Tier.DUTY_MANAGER):
        await channels.publish(event(EventKind.PAGE, severity=severity, tier=tier, summary="approval waiting",
                                     detail="no answer within 1800s"))
    assert pagerduty.requests == []
    assert len(slack.messages) == 2
    assert all("still no answer" in text and "paging the" not in text for text in slack.texts())


@pytest.mark.parametrize("severity", PAGING)
async def test_sev1_and_sev2_ladder_rungs_page_their_tier(
    severity: Severity, slack: FakeSlack, pagerduty: FakePagerDuty, event: Event
) -> None:
    await fan_out(slack, pagerduty).publish(event(EventKind.PAGE, severity=severity, tier=Tier.SECONDARY,
                                                  summary="approval waiting"))
    assert pagerduty.actions() == [(SECONDARY_KEY, "trigger")]
    assert "paging the *secondary on-call*" in slack.texts()[0]


@pytest.mark.parametrize("severity", [*PAGING, *SLACK_ONLY])
async def test_an_escalation_pages_the_primary_at_every_severity(
    severity: Severity, slack: FakeSlack, pagerduty: FakePagerDuty, event: Event
) -> None:
    await fan_out(slack, pagerduty).publish(event(EventKind.ESCALATED, severity=severity, summary="5xx unknown"))
    assert pagerduty.actions() == [(PRIMARY_KEY, "trigger")]
    expected = {Severity.SEV1: "critical", Severity.SEV2: "error", Severity.SEV3: "warning", Severity.SEV4: "info"}
    assert pagerduty.events[0]["payload"]["severity"] == expected[severity]


async def test_a_reminder_rung_says_nobody_was_paged_instead_of_blaming_a_tier() -> None:
    clock = VirtualClock()
    reasons: list[str] = []

    async def page(tier: Tier, why: str) -> None:
        reasons.append(why)

    assert await climb(page, ack=1800, clock=clock, paging=False) == [Tier.SECONDARY, Tier.DUTY_MANAGER]
    assert clock.slept == [1800, 1800]
    assert all("page nobody" in why and "did not answer" not in why for why in reasons)


class DeniesAfterReminders:
    """Nobody answers: once Slack has shown ``reminders`` "still no answer" posts, the request times out (deny)."""

    def __init__(self, slack: FakeSlack, reminders: int) -> None:
        self.slack = slack
        self.reminders = reminders

    async def request(self, req: ApprovalRequest, ballot: Ballot) -> Approval:
        deadline = time.monotonic() + 10.0
        while sum("still no answer" in text for text in self.slack.texts()) < self.reminders:
            assert time.monotonic() < deadline, "the ladder never reminded Slack"
            await asyncio.sleep(0.01)
        return ballot.timed_out()


class Answering:
    """A deploys lever that answers its read-only check (the rollback's lever must work before anyone is asked)."""

    async def releases(self) -> list[Release]:
        return []

    async def rollback(self, to_release: str) -> Release:
        raise AssertionError("nobody approves the rollback in this test")


async def test_an_unanswered_sev3_approval_in_a_run_reminds_slack_on_each_rung_and_pages_nobody(
    tmp_path: Path, slack: FakeSlack, pagerduty: FakePagerDuty
) -> None:
    settings = Settings(app_url="http://127.0.0.1:9", home=tmp_path, mode=Mode.AUTO, approvers=["alice"],
                        approval_timeout_s=7200, notify_timeout_s=3.0, slack_webhook_url=slack.webhook_url(SLACK_TOKEN),
                        pagerduty_routing_key=PRIMARY_KEY, pagerduty_secondary_routing_key=SECONDARY_KEY,
                        pagerduty_duty_manager_routing_key=MANAGER_KEY, pagerduty_events_url=pagerduty.events_url)
    providers = composition.connect(settings).with_(clock=VirtualClock(), approvals=DeniesAfterReminders(slack, 2),
                                                    deploys=Answering())
    incident = RunningIncident(providers, runbook="elevated-error-rate", mode=Mode.AUTO,
                               alert=Alert(name="HighErrorRate", service="kamkmserve", severity=Severity.SEV3))
    plan = Rollback(service="kamkmserve", from_release="r2", to_release="r1", reason="5xx after deploy")
    record = await incident.act(Phase.REMEDIATE, plan, evidence_confirmed=True)

    assert record.approval is not None and record.approval.answer is ApprovalAnswer.TIMEOUT
    assert pagerduty.requests == []
    events = [t.event for t in incident.report.timeline]
    assert events.count("approval still waiting: reminding Slack (nobody paged)") == 2
    assert not any(e.startswith("paging the") for e in events)
