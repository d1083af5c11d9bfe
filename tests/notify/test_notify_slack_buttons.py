"""The approval message's Approve/Deny buttons: there when the Slack app can send clicks back (signing secret set),
each naming the run and the step it answers; absent otherwise, with the link button and the CLI line kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from remediation import slack_proof
from remediation.models import Phase
from remediation.notify import EventKind, IncidentEvent, SlackWebhook, channel
from remediation.settings import Settings
from tests.helpers.fake_notify import FakeSlack
from tests.notify.conftest import RUN_URL, SLACK_TOKEN

Event = Callable[..., IncidentEvent]
RUN_ID = "00000000-0000-0000-0000-000000000001"  # the conftest event's flow run
STEP = "inc-42/act-7/0123456789abcdef"


def approval_request(event: Event, **fields: Any) -> IncidentEvent:
    return event(EventKind.APPROVAL_REQUESTED, phase=Phase.REMEDIATE, summary="rollback to v1.4.2",
                 risk="destructive", timeout_s=900, step=STEP, **fields)


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's buttons by action id."""
    return {element["action_id"]: element for block in message["blocks"] if block["type"] == "actions"
            for element in block["elements"]}


def hook_from_settings(slack: FakeSlack, **overrides: Any) -> SlackWebhook:
    """The Slack channel exactly as a run builds it from its settings."""
    built = channel("slack", Settings(slack_webhook_url=SecretStr(slack.webhook_url(SLACK_TOKEN)), **overrides))
    assert isinstance(built, SlackWebhook)
    return built


async def test_with_the_signing_secret_the_approval_message_has_approve_and_deny_buttons_for_the_waiting_step(
        slack: FakeSlack, event: Event) -> None:
    hook = hook_from_settings(slack, slack_signing_secret=SecretStr("signing-secret"))
    await hook.send(approval_request(event))
    [message] = slack.messages
    found = buttons(message)
    approve, deny = found[slack_proof.APPROVE_ACTION], found[slack_proof.DENY_ACTION]
    assert approve["value"] == deny["value"] == slack_proof.button_value(RUN_ID, STEP)
    assert json.loads(approve["value"]) == {"run": RUN_ID, "step": STEP} and len(approve["value"]) <= 2000
    assert (approve["style"], deny["style"]) == ("primary", "danger")
    assert approve["confirm"]["confirm"]["text"] == "Approve" and "rollback to v1.4.2" in \
        approve["confirm"]["text"]["text"]
    assert "confirm" not in deny  # a deny only stops the step: nothing to double-check
    assert found["open-run"]["url"] == RUN_URL  # the Prefect UI stays one click away
    assert f"remediate approve {RUN_ID} --as <name> --code <code>" in json.dumps(message)


async def test_without_the_signing_secret_there_are_no_answer_buttons_only_the_link(
        slack: FakeSlack, event: Event) -> None:
    hook = hook_from_settings(slack, slack_signing_secret=None)  # explicit: the environment cannot supply one
    await hook.send(approval_request(event))
    [message] = slack.messages
    found = buttons(message)
    assert set(found) == {"open-run"} and found["open-run"]["url"] == RUN_URL
    assert f"remediate approve {RUN_ID} --as <name> --code <code>" in json.dumps(message)


async def test_an_approval_request_without_a_step_gets_no_answer_buttons(slack: FakeSlack, event: Event) -> None:
    hook = SlackWebhook(slack.webhook_url(SLACK_TOKEN), approve_buttons=True)
    await hook.send(event(EventKind.APPROVAL_REQUESTED, summary="rollback to v1.4.2"))
    assert set(buttons(slack.messages[0])) == {"open-run"}


async def test_the_message_says_how_many_approvals_a_step_needs_when_more_than_one(
        slack: FakeSlack, event: Event) -> None:
    hook = SlackWebhook(slack.webhook_url(SLACK_TOKEN), approve_buttons=True)
    await hook.send(approval_request(event, needed=2))
    await hook.send(approval_request(event, needed=1))
    two, one = (json.dumps(m) for m in slack.messages)
    assert "needs *2 approvals* from different people" in two and "2 approvals needed" in slack.messages[0]["text"]
    assert "approvals*" not in one
