"""Slack incoming webhook: what each event posts, how refusals surface, and the read-only probe."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from remediation.models import ActionState, ApprovalAnswer, Outcome, Phase
from remediation.notify import EventKind, IncidentEvent, SlackWebhook
from remediation.notify.http import NotifyError
from remediation.notify.slack import escape, render
from tests.helpers.fake_notify import FakeSlack
from tests.notify.conftest import RUN_URL, SLACK_TOKEN

Event = Callable[..., IncidentEvent]


async def test_approval_request_carries_the_plan_and_a_link_to_the_prefect_run(slack: FakeSlack, event: Event) -> None:
    hook = SlackWebhook(slack.webhook_url(SLACK_TOKEN))
    await hook.send(event(EventKind.APPROVAL_REQUESTED, phase=Phase.REMEDIATE, summary="rollback to v1.4.2",
                          risk="destructive", detail="Why: 5xx after deploy. Undo: rollback to v1.4.3.",
                          timeout_s=900))
    assert len(slack.messages) == 1
    message = slack.messages[0]
    assert "rollback to v1.4.2" in message["text"] and RUN_URL in message["text"]
    button = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"] == RUN_URL and button["type"] == "button"
    flat = json.dumps(message)
    assert "remediate approve 00000000-0000-0000-0000-000000000001" in flat
    assert "destructive" in flat and "counts as *deny*" in flat


async def test_timeline_updates_name_the_phase_the_outcome_and_the_incident(slack: FakeSlack, event: Event) -> None:
    hook = SlackWebhook(slack.webhook_url(SLACK_TOKEN))
    await hook.send(event(EventKind.ACTION, state=ActionState.APPLIED, risk="reversible"))
    await hook.send(event(EventKind.APPROVAL_ANSWERED, answer=ApprovalAnswer.APPROVED, approver="alice",
                          summary="rollback to v1.4.2"))
    await hook.send(event(EventKind.FINISHED, phase=Phase.CLOSE, outcome=Outcome.RECOVERED, actions_applied=2,
                          summary="error_rate_5xx: healthy"))
    texts = slack.texts()
    assert "[contain] applied" in texts[0] and "enable maintenance on /api/orders" in texts[0] and "inc-42" in texts[0]
    assert "approved by alice" in texts[1]
    assert "outcome *recovered*" in texts[2]


async def test_a_stood_down_run_that_did_nothing_posts_nothing(slack: FakeSlack, event: Event) -> None:
    hook = SlackWebhook(slack.webhook_url(SLACK_TOKEN))
    await hook.send(event(EventKind.FINISHED, phase=Phase.CLOSE, outcome=Outcome.STOOD_DOWN, actions_applied=0))
    assert slack.messages == []


def test_text_from_the_run_cannot_inject_links_or_mentions(event: Event) -> None:
    message = render(event(EventKind.ESCALATED, summary="<!channel> see <http://evil|here> & more"))
    assert message is not None
    flat = json.dumps(message)
    assert "<!channel>" not in flat and "&lt;!channel&gt;" in flat
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


async def test_a_refused_post_raises_without_the_webhook_url_in_the_message(slack: FakeSlack, event: Event) -> None:
    hook = SlackWebhook(slack.webhook_url("wrongTokenSECRETbbbbbbbbb"))
    with pytest.raises(NotifyError) as raised:
        await hook.send(event(EventKind.ESCALATED, summary="x"))
    assert "HTTP 403" in str(raised.value) and "invalid_token" in str(raised.value)
    assert "wrongTokenSECRET" not in str(raised.value)


async def test_server_errors_are_retried_within_the_call(slack: FakeSlack, event: Event) -> None:
    slack.fail_next(503, "service_unavailable")
    hook = SlackWebhook(slack.webhook_url(SLACK_TOKEN))
    await hook.send(event(EventKind.ESCALATED, summary="x"))
    assert len(slack.messages) == 1 and len(slack.requests) == 2


async def test_probe_posts_nothing_and_tells_a_valid_webhook_from_a_dead_one(slack: FakeSlack) -> None:
    good = await SlackWebhook(slack.webhook_url(SLACK_TOKEN)).probe()
    assert good.reachable and good.authorised and "no_text" in good.detail
    bad = await SlackWebhook(slack.webhook_url("deadTokenSECRETccccccccc")).probe()
    assert bad.reachable is True and bad.authorised is False
    missing = await SlackWebhook(None).probe()
    assert missing.missing and "REMEDIATE_SLACK_WEBHOOK_URL" in missing.missing[0]
    assert slack.messages == []


async def test_probe_reports_an_unreachable_webhook() -> None:
    result = await SlackWebhook("http://127.0.0.1:9/services/T/B/unreachableSECRET", timeout_s=0.5).probe()
    assert result.reachable is False and "unreachableSECRET" not in result.detail
