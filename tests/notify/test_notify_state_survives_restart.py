"""A restarted ``serve`` carries on where the last one stopped: the channels keep what they did per incident in the
store, so a new channel on the same store acknowledges and resolves the PagerDuty tiers paged before the restart and
updates the Statuspage incident opened before it (no second one, no second "monitoring"). Real HTTP fakes on
127.0.0.1, a SQLite store; each "process" is a new ``Store`` object and new channels on the same database file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from remediation import composition
from remediation.models import ActionState, ApprovalAnswer, Outcome, Phase, Severity
from remediation.notify import EventKind, IncidentEvent, PagerDutyEvents, StatuspageClient, StatuspageNotifier, Tier
from remediation.notify.state import NotifyState
from remediation.settings import Settings
from remediation.store import Store
from tests.helpers.fake_notify import FakePagerDuty, FakeSlack, FakeStatuspage
from tests.notify.conftest import MANAGER_KEY, PRIMARY_KEY, SECONDARY_KEY, SLACK_TOKEN, STATUSPAGE_KEY

Event = Callable[..., IncidentEvent]
KEYS = {Tier.PRIMARY: PRIMARY_KEY, Tier.SECONDARY: SECONDARY_KEY, Tier.DUTY_MANAGER: MANAGER_KEY}


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """A new ``Store`` on the same SQLite file each call: what a restarted process opens."""
    url = f"sqlite:///{tmp_path / 'state' / 'remediate.db'}"
    stores: list[Store] = []

    def _open() -> Store:
        store = Store(url)
        store.migrate()
        stores.append(store)
        return store

    yield _open
    for store in stores:
        store.dispose()


def pager(fake: FakePagerDuty, state: NotifyState | None) -> PagerDutyEvents:
    return PagerDutyEvents(KEYS, events_url=fake.events_url, timeout_s=2.0, state=state)


def public_page(fake: FakeStatuspage, state: NotifyState | None) -> StatuspageNotifier:
    client = StatuspageClient(STATUSPAGE_KEY, fake.page_id, base_url=f"{fake.url}/v1", timeout_s=2.0)
    return StatuspageNotifier(client, ("cmp_web", "cmp_api"), state=state)


async def test_a_restarted_pagerduty_channel_acknowledges_then_resolves_every_tier_paged_before_the_restart(
    open_store: Callable[[], Store], pagerduty: FakePagerDuty, event: Event
) -> None:
    before = open_store()
    first = pager(pagerduty, before)
    await first.send(event(EventKind.APPROVAL_REQUESTED, severity=Severity.SEV1))
    await first.send(event(EventKind.PAGE, severity=Severity.SEV1, tier=Tier.SECONDARY))
    await first.send(event(EventKind.PAGE, severity=Severity.SEV1, tier=Tier.DUTY_MANAGER))
    before.dispose()

    restarted = pager(pagerduty, open_store())
    assert restarted.paged("inc-42") == {Tier.PRIMARY, Tier.SECONDARY, Tier.DUTY_MANAGER}
    await restarted.send(event(EventKind.APPROVAL_ANSWERED, severity=Severity.SEV1, answer=ApprovalAnswer.APPROVED,
                               approver="alice"))
    for key in (PRIMARY_KEY, SECONDARY_KEY, MANAGER_KEY):
        alert = pagerduty.open_alert(key, "inc-42")
        assert alert is not None and alert.status == "acknowledged", key

    await restarted.send(event(EventKind.FINISHED, severity=Severity.SEV1, phase=Phase.CLOSE,
                               outcome=Outcome.RECOVERED))
    assert len(pagerduty.alerts) == 3 and all(alert.status == "resolved" for alert in pagerduty.alerts)
    assert pager(pagerduty, open_store()).paged("inc-42") == set(), "resolved pages are not resolved again"


async def test_without_a_store_a_new_channel_knows_of_no_earlier_page(pagerduty: FakePagerDuty,
                                                                       event: Event) -> None:
    await pager(pagerduty, None).send(event(EventKind.APPROVAL_REQUESTED, severity=Severity.SEV1))
    await pager(pagerduty, None).send(event(EventKind.APPROVAL_ANSWERED, severity=Severity.SEV1,
                                            answer=ApprovalAnswer.DENIED, approver="bob"))
    assert pagerduty.actions() == [(PRIMARY_KEY, "trigger")], "the in-memory fallback lives and dies with a process"


async def test_a_restarted_statuspage_channel_updates_the_incident_opened_before_the_restart(
    open_store: Callable[[], Store], statuspage: FakeStatuspage, event: Event
) -> None:
    before = open_store()
    first = public_page(statuspage, before)
    await first.send(event(EventKind.ACTION, state=ActionState.APPLIED))
    await first.send(event(EventKind.ACTION, phase=Phase.RECOVER, state=ActionState.APPLIED))
    before.dispose()
    (incident,) = statuspage.incidents.values()
    assert incident["status"] == "monitoring"
    seen = len(statuspage.requests)

    restarted = public_page(statuspage, open_store())
    await restarted.send(event(EventKind.ACTION, phase=Phase.CONTAIN, state=ActionState.APPLIED, summary="again"))
    await restarted.send(event(EventKind.ACTION, phase=Phase.RECOVER, state=ActionState.APPLIED, summary="more"))
    await restarted.send(event(EventKind.FINISHED, phase=Phase.CLOSE, outcome=Outcome.RECOVERED))

    assert list(statuspage.incidents.values()) == [incident], "updated, not duplicated"
    assert [u["status"] for u in reversed(incident["incident_updates"])] == ["identified", "monitoring", "resolved"]
    after = [(r.method, r.path.rsplit("/", 1)[-1]) for r in statuspage.requests[seen:]]
    assert after == [("PATCH", incident["id"])], "found through the store: no listing, no create, one update"


async def test_a_second_connect_on_the_same_store_carries_on_where_the_first_left_off(
    tmp_path: Path, slack: FakeSlack, statuspage: FakeStatuspage, pagerduty: FakePagerDuty, event: Event
) -> None:
    settings = Settings(
        app_url="http://127.0.0.1:9", home=tmp_path, notify_timeout_s=3.0,
        slack_webhook_url=slack.webhook_url(SLACK_TOKEN), statuspage_api_key=STATUSPAGE_KEY,
        statuspage_page_id=statuspage.page_id, statuspage_component_ids=["cmp_web"],
        statuspage_api_url=f"{statuspage.url}/v1", pagerduty_routing_key=PRIMARY_KEY,
        pagerduty_secondary_routing_key=SECONDARY_KEY, pagerduty_duty_manager_routing_key=MANAGER_KEY,
        pagerduty_events_url=pagerduty.events_url)
    first = composition.connect(settings)
    assert first.notifier is not None
    for sent in (event(EventKind.ACTION, state=ActionState.APPLIED), event(EventKind.APPROVAL_REQUESTED),
                 event(EventKind.PAGE, tier=Tier.SECONDARY)):
        assert all(d.ok for d in await first.notifier.publish(sent))
    first.store.dispose()

    restarted = composition.connect(settings)
    assert restarted.store is not first.store and restarted.notifier is not None
    for sent in (event(EventKind.APPROVAL_ANSWERED, answer=ApprovalAnswer.APPROVED, approver="alice"),
                 event(EventKind.FINISHED, phase=Phase.CLOSE, outcome=Outcome.RECOVERED)):
        assert all(d.ok for d in await restarted.notifier.publish(sent))
    restarted.store.dispose()

    assert sorted(pagerduty.actions()) == sorted([
        (PRIMARY_KEY, "trigger"), (SECONDARY_KEY, "trigger"), (PRIMARY_KEY, "acknowledge"),
        (SECONDARY_KEY, "acknowledge"), (PRIMARY_KEY, "resolve"), (SECONDARY_KEY, "resolve")])
    (public,) = statuspage.incidents.values()
    assert public["status"] == "resolved"
