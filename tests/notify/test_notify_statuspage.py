"""Statuspage: opened on a SEV-1/2 containment, updated on recovery and escalation, resolved on recovery."""

from __future__ import annotations

from collections.abc import Callable

from remediation.models import ActionState, Outcome, Phase, Severity
from remediation.notify import EventKind, IncidentEvent, StatuspageClient, StatuspageNotifier
from remediation.notify.statuspage import StatuspageStatusUpdates
from tests.helpers.fake_notify import FakeStatuspage
from tests.notify.conftest import STATUSPAGE_KEY

Event = Callable[..., IncidentEvent]


def notifier(fake: FakeStatuspage, key: str = STATUSPAGE_KEY) -> StatuspageNotifier:
    client = StatuspageClient(key, fake.page_id, base_url=f"{fake.url}/v1", timeout_s=2.0)
    return StatuspageNotifier(client, ("cmp_web", "cmp_api"))


async def test_sev2_containment_opens_an_incident_with_components_then_monitoring_then_resolved(
    statuspage: FakeStatuspage, event: Event
) -> None:
    channel = notifier(statuspage)
    await channel.send(event(EventKind.ACTION, state=ActionState.APPLIED))
    (incident,) = statuspage.incidents.values()
    assert incident["status"] == "identified" and incident["impact"] == "major"
    assert incident["metadata"] == {"remediator": {"incident_id": "inc-42", "runbook": "elevated-error-rate"}}
    assert statuspage.components == {"cmp_web": "partial_outage", "cmp_api": "partial_outage"}
    create = next(r for r in statuspage.requests if r.method == "POST")
    assert create.headers["authorization"] == f"OAuth {STATUSPAGE_KEY}"

    await channel.send(event(EventKind.ACTION, phase=Phase.CONTAIN, state=ActionState.APPLIED, summary="again"))
    await channel.send(event(EventKind.ACTION, phase=Phase.RECOVER, state=ActionState.APPLIED))
    assert incident["status"] == "monitoring"
    await channel.send(event(EventKind.FINISHED, phase=Phase.CLOSE, outcome=Outcome.RECOVERED))
    assert incident["status"] == "resolved" and incident["resolved_at"]
    assert statuspage.components == {"cmp_web": "operational", "cmp_api": "operational"}
    assert len(statuspage.incidents) == 1


async def test_sev1_is_a_major_outage(statuspage: FakeStatuspage, event: Event) -> None:
    await notifier(statuspage).send(event(EventKind.ACTION, state=ActionState.APPLIED, severity=Severity.SEV1))
    (incident,) = statuspage.incidents.values()
    assert incident["impact"] == "critical" and statuspage.components["cmp_web"] == "major_outage"


async def test_sev3_and_unapplied_containment_stay_off_the_public_page(statuspage: FakeStatuspage,
                                                                      event: Event) -> None:
    channel = notifier(statuspage)
    await channel.send(event(EventKind.ACTION, state=ActionState.APPLIED, severity=Severity.SEV3))
    await channel.send(event(EventKind.ACTION, state=ActionState.PLANNED))
    await channel.send(event(EventKind.ESCALATED, summary="5xx unknown"))
    assert statuspage.incidents == {}
    assert all(r.method == "GET" for r in statuspage.requests)


async def test_public_updates_never_carry_internal_detail(statuspage: FakeStatuspage, event: Event) -> None:
    channel = notifier(statuspage)
    await channel.send(event(EventKind.ACTION, state=ActionState.APPLIED, detail="blocked 203.0.113.9"))
    await channel.send(event(EventKind.ESCALATED, phase=Phase.REMEDIATE,
                             summary="rollback denied by alice: user 203.0.113.9 is the attacker"))
    (incident,) = statuspage.incidents.values()
    bodies = [u["body"] for u in incident["incident_updates"]]
    assert incident["status"] == "identified" and len(bodies) == 2
    assert not any("203.0.113.9" in b or "alice" in b for b in bodies)


async def test_a_restarted_worker_finds_the_open_incident_by_its_metadata(statuspage: FakeStatuspage,
                                                                         event: Event) -> None:
    await notifier(statuspage).send(event(EventKind.ACTION, state=ActionState.APPLIED))
    fresh = notifier(statuspage)  # a new process: nothing remembered
    await fresh.send(event(EventKind.FINISHED, phase=Phase.CLOSE, outcome=Outcome.RECOVERED))
    (incident,) = statuspage.incidents.values()
    assert incident["status"] == "resolved"


async def test_rate_limit_answers_are_retried(statuspage: FakeStatuspage, event: Event) -> None:
    statuspage.fail_next(420, {"error": "rate limited"})
    await notifier(statuspage).send(event(EventKind.ACTION, state=ActionState.APPLIED))
    assert len(statuspage.incidents) == 1


async def test_probe_reads_the_page_and_spots_a_wrong_key(statuspage: FakeStatuspage) -> None:
    good = await notifier(statuspage).probe()
    assert good.ok and "kamkmserve status" in good.detail
    bad = await notifier(statuspage, key="wrong-key-SECRET-999").probe()
    assert bad.reachable is True and bad.authorised is False and "wrong-key-SECRET" not in bad.detail
    missing = await StatuspageNotifier(StatuspageClient(None, None)).probe()
    assert set(missing.missing) == {"REMEDIATE_STATUSPAGE_API_KEY (a secret)", "REMEDIATE_STATUSPAGE_PAGE_ID"}
    assert statuspage.incidents == {}


async def test_status_updates_capability_posts_and_updates(statuspage: FakeStatuspage) -> None:
    client = StatuspageClient(STATUSPAGE_KEY, statuspage.page_id, base_url=f"{statuspage.url}/v1")
    updates = StatuspageStatusUpdates(client, ("cmp_web",))
    incident_id = await updates.post("Sign-in problems", "We are investigating.", "investigating")
    await updates.update(incident_id, "Fixed.", "resolved")
    assert statuspage.incidents[incident_id]["status"] == "resolved"
