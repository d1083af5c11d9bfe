"""An escalation says who was really paged, or that nobody was and why: never "Page primary on-call" by rote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remediation import composition
from remediation.incident import RunningIncident
from remediation.models import Alert, Mode, Phase, Severity
from remediation.notify.notifier import Delivery
from remediation.notify.told import escalation_notice
from remediation.providers.clock import VirtualClock
from remediation.settings import Settings
from tests.helpers.fake_notify import FakePagerDuty, FakeSlack
from tests.notify.conftest import PRIMARY_KEY, SLACK_TOKEN

ACK = "SEV-2, ack within 10 min"


def test_no_channel_means_nobody_was_paged_and_says_what_to_set() -> None:
    for none in (None, []):
        told = escalation_notice(none, ack=ACK)
        assert told.startswith("Nobody was paged: no notification channel is configured")
        assert "REMEDIATE_PAGERDUTY_ROUTING_KEY" in told and ACK not in told


def test_only_a_delivered_pagerduty_trigger_counts_as_a_page() -> None:
    delivered = [Delivery(channel="pagerduty", ok=True), Delivery(channel="slack", ok=True),
                 Delivery(channel="statuspage", ok=True)]
    assert escalation_notice(delivered, ack=ACK) == \
        "Paged the primary on-call through PagerDuty (SEV-2, ack within 10 min); posted to Slack."
    failed = [Delivery(channel="pagerduty", ok=False, error="HTTP 400 invalid routing key"),
              Delivery(channel="slack", ok=False, error="HTTP 500")]
    assert escalation_notice(failed, ack=ACK) == ("Nobody was paged: the PagerDuty page to the primary on-call failed "
                                                  "(HTTP 400 invalid routing key); the Slack post failed (HTTP 500).")
    slack_only = escalation_notice([Delivery(channel="slack", ok=True)], ack=ACK)
    assert slack_only == ("Nobody was paged: PagerDuty is not configured (set REMEDIATE_PAGERDUTY_ROUTING_KEY); "
                          "posted to Slack.")
    assert escalation_notice(delivered, ack=ACK, dry_run=True) == "Nobody was paged: a dry run notifies nobody."


def incident_for(tmp_path: Path, mode: Mode = Mode.AUTO, **settings: Any) -> RunningIncident:
    providers = composition.connect(Settings(**{"app_url": "http://127.0.0.1:9", "home": tmp_path, "mode": mode,
                                                "notify_timeout_s": 3.0, **settings})).with_(clock=VirtualClock())
    return RunningIncident(providers, runbook="auth-access", mode=mode,
                           alert=Alert(name="manual", service="kamkmserve", severity=Severity.SEV2))


def test_an_escalation_with_no_channel_configured_says_nobody_was_paged(tmp_path: Path) -> None:
    incident = incident_for(tmp_path)
    assert incident.providers.notifier is None
    incident.escalate(Phase.IDENTIFY, "the admin denial rate is unknown")
    text = incident.report.escalation or ""
    assert text.startswith("the admin denial rate is unknown. Nobody was paged: no notification channel is configured")
    assert "Page primary on-call" not in text
    assert incident.report.timeline[-1].event == "escalated" and incident.report.timeline[-1].detail == text


def test_an_escalation_names_the_channels_that_took_it(tmp_path: Path) -> None:
    with FakePagerDuty(routing_keys=(PRIMARY_KEY,)) as pagerduty, FakeSlack(tokens=(SLACK_TOKEN,)) as slack:
        incident = incident_for(tmp_path, pagerduty_routing_key=PRIMARY_KEY,
                                pagerduty_events_url=pagerduty.events_url, slack_webhook_url=slack.webhook_url())
        incident.escalate(Phase.IDENTIFY, "an admin route answers without a check")
        assert pagerduty.actions() == [(PRIMARY_KEY, "trigger")] and len(slack.messages) == 1
    assert incident.report.escalation == (
        "an admin route answers without a check. Paged the primary on-call through PagerDuty (SEV-2, ack within "
        "10 min); posted to Slack.")


def test_a_refused_page_is_reported_as_nobody_paged(tmp_path: Path) -> None:
    with FakePagerDuty(routing_keys=(PRIMARY_KEY,)) as pagerduty:
        pagerduty.fail_next(400, {"status": "invalid event", "message": "Event object is invalid"})
        incident = incident_for(tmp_path, pagerduty_routing_key=PRIMARY_KEY, pagerduty_events_url=pagerduty.events_url)
        incident.escalate(Phase.REMEDIATE, "no automatic fix is indicated")
        assert pagerduty.actions() == []
    text = incident.report.escalation or ""
    assert "Nobody was paged: the PagerDuty page to the primary on-call failed (" in text
    assert any(t.event == "notification failed: pagerduty" for t in incident.report.timeline)


def test_a_dry_run_escalation_says_it_paged_nobody_and_sends_nothing(tmp_path: Path) -> None:
    with FakePagerDuty(routing_keys=(PRIMARY_KEY,)) as pagerduty:
        incident = incident_for(tmp_path, Mode.DRY_RUN, pagerduty_routing_key=PRIMARY_KEY,
                                pagerduty_events_url=pagerduty.events_url)
        incident.escalate(Phase.IDENTIFY, "latency is unknown")
        assert pagerduty.requests == []
    assert incident.report.escalation == "latency is unknown. Nobody was paged: a dry run notifies nobody."
