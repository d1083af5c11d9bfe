"""PagerDuty Events v2: trigger / acknowledge / resolve with dedup_key = incident id, per ladder tier."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from remediation.models import ApprovalAnswer, Outcome, Phase, Severity
from remediation.notify import EventKind, IncidentEvent, PagerDutyEvents, Tier
from remediation.notify.http import NotifyError
from tests.helpers.fake_notify import FakePagerDuty
from tests.notify.conftest import MANAGER_KEY, PRIMARY_KEY, RUN_URL, SECONDARY_KEY

Event = Callable[..., IncidentEvent]


def pager(fake: FakePagerDuty, *, secondary: str | None = SECONDARY_KEY) -> PagerDutyEvents:
    return PagerDutyEvents({Tier.PRIMARY: PRIMARY_KEY, Tier.SECONDARY: secondary, Tier.DUTY_MANAGER: MANAGER_KEY},
                           events_url=fake.events_url, timeout_s=2.0)


async def test_approval_triggers_the_primary_and_a_human_answer_acknowledges_it(pagerduty: FakePagerDuty,
                                                                               event: Event) -> None:
    channel = pager(pagerduty)
    await channel.send(event(EventKind.APPROVAL_REQUESTED, phase=Phase.REMEDIATE, summary="rollback to v1.4.2",
                             severity=Severity.SEV1))
    trigger = pagerduty.events[0]
    assert trigger["routing_key"] == PRIMARY_KEY and trigger["dedup_key"] == "inc-42"
    assert trigger["payload"]["severity"] == "critical"
    assert "approval needed: rollback to v1.4.2" in trigger["payload"]["summary"]
    assert trigger["links"] == [{"href": RUN_URL, "text": "Prefect flow run (approve or deny here)"}]
    await channel.send(event(EventKind.APPROVAL_ANSWERED, answer=ApprovalAnswer.DENIED, approver="bob"))
    alert = pagerduty.open_alert(PRIMARY_KEY, "inc-42")
    assert alert is not None and alert.status == "acknowledged"


async def test_refused_and_timed_out_answers_do_not_acknowledge(pagerduty: FakePagerDuty, event: Event) -> None:
    channel = pager(pagerduty)
    await channel.send(event(EventKind.APPROVAL_REQUESTED))
    await channel.send(event(EventKind.APPROVAL_ANSWERED, answer=ApprovalAnswer.REFUSED, approver="mallory"))
    await channel.send(event(EventKind.APPROVAL_ANSWERED, answer=ApprovalAnswer.TIMEOUT))
    assert [a for _, a in pagerduty.actions()] == ["trigger"]


async def test_ladder_pages_go_to_each_tier_and_recovery_resolves_every_one(pagerduty: FakePagerDuty,
                                                                           event: Event) -> None:
    channel = pager(pagerduty)
    await channel.send(event(EventKind.APPROVAL_REQUESTED))
    await channel.send(event(EventKind.PAGE, tier=Tier.SECONDARY, summary="approval waiting"))
    await channel.send(event(EventKind.PAGE, tier=Tier.DUTY_MANAGER, summary="approval waiting"))
    assert channel.paged("inc-42") == {Tier.PRIMARY, Tier.SECONDARY, Tier.DUTY_MANAGER}
    await channel.send(event(EventKind.FINISHED, phase=Phase.CLOSE, outcome=Outcome.RECOVERED))
    assert sorted(pagerduty.actions()[3:]) == sorted([(MANAGER_KEY, "resolve"), (PRIMARY_KEY, "resolve"),
                                                      (SECONDARY_KEY, "resolve")])
    assert all(alert.status == "resolved" and alert.dedup_key == "inc-42" for alert in pagerduty.alerts)


async def test_escalation_triggers_and_a_repeat_lands_on_the_same_alert(pagerduty: FakePagerDuty,
                                                                       event: Event) -> None:
    channel = pager(pagerduty)
    await channel.send(event(EventKind.ESCALATED, summary="5xx unknown"))
    await channel.send(event(EventKind.ESCALATED, summary="still unknown"))
    assert len(pagerduty.alerts) == 1 and len(pagerduty.alerts[0].events) == 2
    await channel.send(event(EventKind.FINISHED, phase=Phase.CLOSE, outcome=Outcome.ESCALATED))
    assert pagerduty.alerts[0].status == "triggered", "only recovery resolves: people own an escalated incident"


async def test_a_tier_without_a_key_is_a_recorded_failure_not_a_silent_skip(pagerduty: FakePagerDuty,
                                                                           event: Event) -> None:
    with pytest.raises(NotifyError, match=r"no routing key.*SECONDARY_ROUTING_KEY"):
        await pager(pagerduty, secondary=None).send(event(EventKind.PAGE, tier=Tier.SECONDARY))


async def test_invalid_events_are_not_retried_and_server_errors_are(pagerduty: FakePagerDuty, event: Event) -> None:
    bad = PagerDutyEvents({Tier.PRIMARY: "short-key-SECRET"}, events_url=pagerduty.events_url, timeout_s=2.0)
    with pytest.raises(NotifyError, match="HTTP 400") as raised:
        await bad.send(event(EventKind.ESCALATED))
    assert "short-key-SECRET" not in str(raised.value)
    assert len(pagerduty.requests) == 1
    pagerduty.fail_next(500, {"status": "error"})
    await pager(pagerduty).send(event(EventKind.ESCALATED))
    assert len(pagerduty.requests) == 3 and len(pagerduty.events) == 1


async def test_probe_sends_no_event(pagerduty: FakePagerDuty) -> None:
    result = await pager(pagerduty, secondary=None).probe()
    assert result.reachable is True and result.authorised is None
    assert "secondary on-call" in result.detail
    missing = await PagerDutyEvents({}, events_url=pagerduty.events_url).probe()
    assert missing.missing
    assert pagerduty.events == []
