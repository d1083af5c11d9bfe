"""Fakes of Slack, Statuspage and PagerDuty for the notification tests, and an event factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from remediation.models import Phase, Severity
from remediation.notify import EventKind, IncidentEvent
from tests.helpers.fake_notify import FakePagerDuty, FakeSlack, FakeStatuspage

SLACK_TOKEN = "slackTokenSECRETaaaaaaaa1"
STATUSPAGE_KEY = "statuspage-key-SECRET-0001"
PRIMARY_KEY = "P" * 31 + "1"
SECONDARY_KEY = "S" * 31 + "2"
MANAGER_KEY = "M" * 31 + "3"
RUN_URL = "http://prefect.example/runs/flow-run/00000000-0000-0000-0000-000000000001"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(tokens=(SLACK_TOKEN,)) as fake:
        yield fake


@pytest.fixture
def statuspage() -> Iterator[FakeStatuspage]:
    with FakeStatuspage(STATUSPAGE_KEY, page_id="pg1", components=("cmp_web", "cmp_api")) as fake:
        yield fake


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(routing_keys=(PRIMARY_KEY, SECONDARY_KEY, MANAGER_KEY)) as fake:
        yield fake


@pytest.fixture
def event() -> Callable[..., IncidentEvent]:
    def build(kind: EventKind, **fields: Any) -> IncidentEvent:
        base: dict[str, Any] = {
            "kind": kind, "incident_id": "inc-42", "runbook": "elevated-error-rate", "service": "kamkmserve",
            "severity": Severity.SEV2, "phase": Phase.CONTAIN, "summary": "enable maintenance on /api/orders",
            "flow_run_id": "00000000-0000-0000-0000-000000000001", "run_url": RUN_URL,
        }
        return IncidentEvent.model_validate({**base, **fields})

    return build
