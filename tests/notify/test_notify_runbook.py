"""Notifications in a real run: the elevated-5xx runbook on the simulator, a real Prefect API, and the fakes.

Also the ladder inside a run (virtual time: the approval waits while the next tiers are paged) and the rule that
a notification outage is recorded on the timeline and never breaks the run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kamkmserve_sim import SimConfig, SimServer

from flows.elevated_error_rate import elevated_error_rate
from remediation import composition, runtime
from remediation.incident import RunningIncident
from remediation.models import Alert, Approval, ApprovalAnswer, Mode, Outcome, Phase, Rollback, Severity
from remediation.providers.approvals import ApprovalRequest, Scripted, ScriptedApprovals
from remediation.providers.capabilities import Ballot
from remediation.providers.clock import VirtualClock
from remediation.providers.platform import Release
from remediation.settings import Settings
from tests.flows.flowkit import FAST, sim_state, wait_for_bad_release
from tests.helpers.fake_notify import FakePagerDuty, FakeSlack, FakeStatuspage
from tests.notify.conftest import MANAGER_KEY, PRIMARY_KEY, SECONDARY_KEY, SLACK_TOKEN, STATUSPAGE_KEY

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def bad_release() -> Iterator[SimServer]:
    server = SimServer(SimConfig(scenario="bad-release", rps=200.0, onset_s=0.2, seed=7)).start()
    try:
        wait_for_bad_release(server)
        yield server
    finally:
        server.stop()


def settings(tmp_path: Path, app_url: str, slack: FakeSlack, statuspage: FakeStatuspage, pagerduty: FakePagerDuty,
             **overrides: Any) -> Settings:
    return Settings(**{
        "app_url": app_url, "platform": "sim",
        "sim_url": app_url, "home": tmp_path, "mode": Mode.AUTO, "approvers": ["alice", "bob"],
        "approval_timeout_s": 30, "approval_poll_s": 1, "verify_interval_s": 0.3, "verify_consecutive": 3,
        "verify_deadline_s": 20.0, "metrics_budget_per_min": 100,
        "slack_webhook_url": slack.webhook_url(SLACK_TOKEN),
        "statuspage_api_key": STATUSPAGE_KEY, "statuspage_page_id": statuspage.page_id,
        "statuspage_component_ids": ["cmp_web"], "statuspage_api_url": f"{statuspage.url}/v1",
        "pagerduty_routing_key": PRIMARY_KEY, "pagerduty_secondary_routing_key": SECONDARY_KEY,
        "pagerduty_duty_manager_routing_key": MANAGER_KEY, "pagerduty_events_url": pagerduty.events_url,
        "notify_timeout_s": 3.0, **overrides,
    })


async def test_a_recovered_run_tells_slack_statuspage_and_pagerduty_each_step(
    tmp_path: Path, bad_release: SimServer, slack: FakeSlack, statuspage: FakeStatuspage, pagerduty: FakePagerDuty
) -> None:
    providers = composition.connect(settings(tmp_path, bad_release.url, slack, statuspage, pagerduty))
    providers = providers.with_(approvals=ScriptedApprovals([Scripted(approve=True, approver="alice", reason="ok")]))
    with runtime.use(providers):
        report = await elevated_error_rate(**FAST)
    assert report["outcome"] == "recovered", report["escalation"]
    incident_id, run_id = report["incident_id"], report["flow_run_id"]

    texts = slack.texts()
    approval = next(m for m in slack.messages if m["text"].startswith("Approval needed"))
    assert "rollback" in approval["text"] and f"/runs/flow-run/{run_id}" in approval["text"]
    assert any("[contain] applied" in t and "enable_maintenance" in t for t in texts)
    assert any("approved by alice" in t for t in texts)
    assert "outcome *recovered*" in texts[-1]

    (public,) = statuspage.incidents.values()
    assert [u["status"] for u in reversed(public["incident_updates"])] == ["identified", "monitoring", "resolved"]
    assert public["metadata"]["remediator"]["incident_id"] == incident_id
    assert statuspage.components == {"cmp_web": "operational", "cmp_api": "operational"}

    assert pagerduty.actions() == [(PRIMARY_KEY, "trigger"), (PRIMARY_KEY, "acknowledge"), (PRIMARY_KEY, "resolve")]
    assert {e["dedup_key"] for e in pagerduty.events} == {incident_id}
    assert not any(e["event"].startswith("notification failed") for e in report["timeline"])


async def test_notification_outages_are_recorded_and_the_run_still_recovers(
    tmp_path: Path, bad_release: SimServer, slack: FakeSlack, statuspage: FakeStatuspage, pagerduty: FakePagerDuty
) -> None:
    broken = settings(tmp_path, bad_release.url, slack, statuspage, pagerduty,
                      slack_webhook_url=slack.webhook_url("revokedTokenSECRETxxxxxx"),
                      pagerduty_events_url="http://127.0.0.1:9/v2/enqueue", notify_timeout_s=1.0)
    providers = composition.connect(broken).with_(
        approvals=ScriptedApprovals([Scripted(approve=True, approver="alice")]))
    statuspage.fail_next(500, {"error": "down"}, times=50)
    with runtime.use(providers):
        report = await elevated_error_rate(**FAST)
    assert report["outcome"] == "recovered"
    assert sim_state(bad_release)["current_release"]["version"] == "v1.4.2"
    failed = [(e["event"], e["detail"]) for e in report["timeline"] if e["event"].startswith("notification failed")]
    assert {event for event, _ in failed} >= {"notification failed: slack", "notification failed: pagerduty",
                                              "notification failed: statuspage"}
    assert not any("revokedTokenSECRET" in detail for _, detail in failed)
    stored = providers.store.get_report(report["incident_id"])
    assert stored is not None and any(t.event == "notification failed: slack" for t in stored.timeline)


async def test_a_dry_run_notifies_nobody(
    tmp_path: Path, bad_release: SimServer, slack: FakeSlack, statuspage: FakeStatuspage, pagerduty: FakePagerDuty
) -> None:
    providers = composition.connect(settings(tmp_path, bad_release.url, slack, statuspage, pagerduty))
    with runtime.use(providers.with_(approvals=ScriptedApprovals([]))):
        report = await elevated_error_rate(**FAST, mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert slack.requests == [] and statuspage.requests == [] and pagerduty.requests == []


class AnswersAfterPages:
    """An approver who answers only once PagerDuty has seen ``pages`` triggers (the ladder had to climb)."""

    def __init__(self, pagerduty: FakePagerDuty, pages: int, answer: Scripted) -> None:
        self.pagerduty = pagerduty
        self.pages = pages
        self.answer = answer

    async def request(self, req: ApprovalRequest, ballot: Ballot) -> Approval:
        while sum(1 for _, action in self.pagerduty.actions() if action == "trigger") < self.pages:
            await asyncio.sleep(0.01)
        return await ScriptedApprovals([self.answer]).request(req, ballot)


class Answering:
    """A deploys lever that answers its read-only check (the rollback's lever must work before anyone is asked)."""

    async def releases(self) -> list[Release]:
        return []

    async def rollback(self, to_release: str) -> Release:
        raise AssertionError("these tests deny the rollback")


async def test_an_unanswered_approval_climbs_the_ladder_and_the_answer_acknowledges_every_tier(
    tmp_path: Path, slack: FakeSlack, statuspage: FakeStatuspage, pagerduty: FakePagerDuty
) -> None:
    clock = VirtualClock()
    base = settings(tmp_path, "http://127.0.0.1:9", slack, statuspage, pagerduty, approval_timeout_s=3600)
    providers = composition.connect(base).with_(
        clock=clock, approvals=AnswersAfterPages(pagerduty, 3, Scripted(approve=False, approver="bob", reason="no")),
        deploys=Answering())
    incident = RunningIncident(providers, runbook="elevated-error-rate", mode=Mode.AUTO,
                               alert=Alert(name="HighErrorRate", service="kamkmserve", severity=Severity.SEV1))
    plan = Rollback(service="kamkmserve", from_release="r2", to_release="r1", reason="5xx after deploy")
    record = await incident.act(Phase.REMEDIATE, plan, evidence_confirmed=True)

    assert record.approval is not None and record.approval.answer is ApprovalAnswer.DENIED
    triggers = [key for key, action in pagerduty.actions() if action == "trigger"]
    assert triggers == [PRIMARY_KEY, SECONDARY_KEY, MANAGER_KEY]
    assert sorted(key for key, action in pagerduty.actions() if action == "acknowledge") == sorted(
        [PRIMARY_KEY, SECONDARY_KEY, MANAGER_KEY])
    events = [t.event for t in incident.report.timeline]
    assert "paging the secondary on-call" in events and "paging the duty manager" in events
    pages = [json.dumps(m) for m in slack.messages if "paging the" in json.dumps(m)]
    assert len(pages) == 2 and "incident bridge" in pages[1]
    assert clock.slept[:2] == [300.0, 300.0]  # SEV-1: 5 minutes per rung


async def test_a_prompt_answer_cancels_the_ladder(
    tmp_path: Path, slack: FakeSlack, statuspage: FakeStatuspage, pagerduty: FakePagerDuty
) -> None:
    base = settings(tmp_path, "http://127.0.0.1:9", slack, statuspage, pagerduty)
    providers = composition.connect(base).with_(
        clock=VirtualClock(), approvals=ScriptedApprovals([Scripted(approve=False, approver="alice")]),
        deploys=Answering())
    incident = RunningIncident(providers, runbook="elevated-error-rate", mode=Mode.AUTO,
                               alert=Alert(name="HighErrorRate", service="kamkmserve", severity=Severity.SEV2))
    plan = Rollback(service="kamkmserve", from_release="r2", to_release="r1", reason="5xx after deploy")
    await incident.act(Phase.REMEDIATE, plan, evidence_confirmed=True)
    await asyncio.sleep(0.05)
    assert pagerduty.actions() == [(PRIMARY_KEY, "trigger"), (PRIMARY_KEY, "acknowledge")]


async def test_escalation_pages_the_primary_and_a_failed_closing_notice_is_in_the_stored_report(
    tmp_path: Path, slack: FakeSlack, statuspage: FakeStatuspage, pagerduty: FakePagerDuty
) -> None:
    base = settings(tmp_path, "http://127.0.0.1:9", slack, statuspage, pagerduty)
    providers = composition.connect(base).with_(clock=VirtualClock())
    incident = RunningIncident(providers, runbook="elevated-error-rate", mode=Mode.AUTO,
                               alert=Alert(name="HighErrorRate", service="kamkmserve", severity=Severity.SEV2))
    incident.escalate(Phase.IDENTIFY, "5xx error rate is unknown")
    assert pagerduty.actions() == [(PRIMARY_KEY, "trigger")]
    assert "escalated: 5xx error rate is unknown" in pagerduty.events[0]["payload"]["summary"]
    assert "*escalated* [identify]" in slack.texts()[0]
    assert statuspage.incidents == {}, "never contained: nothing public to update"

    slack.fail_next(500, "internal_error", times=10)  # Slack is down when the run ends
    report = incident.finish(Outcome.ESCALATED)
    stored = providers.store.get_report(report.incident_id)
    assert stored is not None and stored.outcome is Outcome.ESCALATED
    failed = [t for t in stored.timeline if t.event == "notification failed: slack"]
    assert len(failed) == 1 and "HTTP 500" in failed[0].detail
    assert pagerduty.alerts[0].status == "triggered", "an escalated incident stays open for people"
