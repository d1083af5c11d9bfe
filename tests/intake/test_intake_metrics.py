"""``GET /metrics``: what the service says about itself, read back with Prometheus' own parser."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from remediation.intake import create_app
from remediation.intake.metrics import IntakeMetrics, metrics_endpoint
from remediation.intake.store_metrics import LABEL_MAX, OTHER, store_families
from remediation.models import ActionState, Outcome, Phase, ScaleUp
from remediation.providers.clock import VirtualClock
from remediation.store import PendingStep, Store
from remediation.store.figures import GroupCounts, StoreFigures
from tests.intake.intakekit import T0, FakeStarter, TestClient, bearer, serve_app, settings
from tests.store.store_factories import action, full_report, open_incident

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
GENERIC = {"name": "HighErrorRate", "service": "kamkmserve"}


def parse(text: str) -> Samples:
    """Every sample as {(name, labels): value}; the parser rejects anything that is not valid exposition text."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def pending(incident_id: str, requested_ago: timedelta) -> PendingStep:
    return PendingStep(
        action_id="act-waiting", incident_id=incident_id, flow_run_id=None, step="contain:1", runbook="elevated_5xx",
        service="web", severity="sev2", phase="contain", summary="scale up", risk="reversible", why="5xx",
        evidence=(), undo="scale down", statement=None, needed=1, requested_at=T0 - requested_ago,
        deadline=T0 + timedelta(minutes=10),
    )


def test_metrics_over_http_count_alerts_and_read_incidents_actions_and_approvals_from_the_store(
    store: Store, starter: FakeStarter, clock: VirtualClock
) -> None:
    # What the flows would have written: one incident closed recovered, contained 2 min after opening.
    opened = T0 - timedelta(hours=1)
    done = open_incident(store, service="web", opened_at=opened)
    scale = ScaleUp(service="web", from_replicas=2, to_replicas=4, ttl_s=900)
    store.record_action(done, action(scale, state=ActionState.APPLIED, phase=Phase.CONTAIN, started_at=opened,
                                     completed_at=opened + timedelta(minutes=2)))
    report = full_report(done, "web").model_copy(update={"outcome": Outcome.RECOVERED,
                                                          "finished_at": opened + timedelta(minutes=40)})
    store.close_incident(done, report)
    waiting = open_incident(store, service="web", opened_at=T0)
    store.open_pending(pending(waiting, requested_ago=timedelta(minutes=5)))

    app = create_app(settings(), store, starter, clock=clock)
    with serve_app(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        assert http.post("/alerts/generic", json=GENERIC, headers=bearer()).json()["alerts"][0]["outcome"] == "created"
        assert http.post("/alerts/generic", json=GENERIC, headers=bearer()).json()["alerts"][0]["outcome"] == "attached"
        unknown = {"name": "DiskFull", "service": "kamkmserve", "runbook": "disk-cleanup"}
        assert http.post("/alerts/generic", json=unknown, headers=bearer()).json()["alerts"][0]["outcome"] == "unrouted"
        reply = http.get("/metrics")

    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse(reply.text)
    received = "remediate_alerts_received_total"
    assert value(samples, received, source="generic", outcome="created") == 1
    assert value(samples, received, source="generic", outcome="attached") == 1
    assert value(samples, received, source="generic", outcome="unrouted") == 1
    assert value(samples, received, source="alertmanager", outcome="created") == 0
    assert value(samples, "remediate_run_starts_total", state="started") == 1
    assert value(samples, "remediate_store_up") == 1
    # The receiver's incident (runbook of the default route) and the one seeded above, still waiting for approval.
    assert value(samples, "remediate_open_incidents", runbook="elevated_5xx", service="web") == 1
    assert value(samples, "remediate_open_incidents", runbook="elevated-error-rate", service="kamkmserve") == 1
    assert value(samples, "remediate_runs_total", runbook="elevated_5xx", outcome="recovered") == 1
    assert value(samples, "remediate_runs_total", runbook="elevated_5xx", outcome="escalated") == 0
    assert value(samples, "remediate_actions", kind="scale_up", decision="allow", state="applied") == 1
    assert value(samples, "remediate_approvals_waiting") == 1
    assert value(samples, "remediate_approval_oldest_wait_seconds") == 300
    assert value(samples, "remediate_approval_overdue_seconds") == 0
    assert value(samples, "remediate_approval_answers_total", answer="timeout") == 0
    contain = "remediate_time_to_contain_seconds_bucket"
    assert value(samples, contain, runbook="elevated_5xx", le="60.0") == 0
    assert value(samples, contain, runbook="elevated_5xx", le="120.0") == 1
    assert value(samples, "remediate_time_to_contain_seconds_gsum", runbook="elevated_5xx") == 120
    recover = "remediate_time_to_recover_seconds_bucket"
    assert value(samples, recover, runbook="elevated_5xx", le="1800.0") == 0
    assert value(samples, recover, runbook="elevated_5xx", le="3600.0") == 1
    assert "process_resident_memory_bytes" in names(samples)


def test_no_label_carries_an_incident_id_an_alert_name_or_a_person(client: TestClient, store: Store) -> None:
    incident = open_incident(store, service="web", opened_at=T0)
    closed = open_incident(store, service="web", opened_at=T0)
    store.close_incident(closed, full_report(closed, "web"))  # approved by alice; a postmortem mentioning r42
    client.post("/alerts/generic", json=GENERIC | {"summary": "secret-ish text"}, headers=bearer())

    text = client.get("/metrics").text

    for detail in (incident, closed, "HighErrorRate", "secret-ish", "alice", "Elevated5xx", "r42"):
        assert detail not in text


@contextmanager
def unreadable_store(tmp_path: Path) -> Iterator[Store]:
    # A SQLite file in a directory that does not exist: every statement fails to connect.
    broken = Store(f"sqlite:///{tmp_path / 'missing' / 'remediate.db'}")
    yield broken
    broken.dispose()


def test_a_broken_store_answers_200_with_store_up_0_and_counts_the_alert_it_could_not_store(
    tmp_path: Path, starter: FakeStarter, clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with unreadable_store(tmp_path) as broken:
        client = TestClient(create_app(settings(), broken, starter, clock=clock))
        assert client.post("/alerts/generic", json=GENERIC, headers=bearer()).status_code == 503
        with caplog.at_level(logging.WARNING, logger="remediation.intake"):
            reply = client.get("/metrics")

    assert reply.status_code == 200
    samples = parse(reply.text)
    assert value(samples, "remediate_store_up") == 0
    assert value(samples, "remediate_alerts_received_total", source="generic", outcome="failed") == 1
    assert not any(name.startswith(("remediate_open", "remediate_runs", "remediate_approval")) for name in
                   names(samples))
    [line] = [r.getMessage() for r in caplog.records if "/metrics" in r.getMessage()]
    assert "remediate_store_up 0" in line and "OperationalError" in line


class HangingStore:
    """A store whose reads wait until released: a database that accepts the connection and never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()

    @contextmanager
    def _read(self) -> Iterator[Any]:
        self.release.wait(30)
        raise TimeoutError("released")
        yield  # pragma: no cover


def test_a_store_that_does_not_answer_within_the_deadline_gives_store_up_0() -> None:
    hanging = HangingStore()
    endpoint = metrics_endpoint(IntakeMetrics(process=False), hanging, lambda: T0,  # type: ignore[arg-type]
                                store_timeout_s=0.2)
    try:
        reply = TestClient(Starlette(routes=[Route("/metrics", endpoint)])).get("/metrics")
    finally:
        hanging.release.set()

    assert reply.status_code == 200 and value(parse(reply.text), "remediate_store_up") == 0


def test_a_failed_run_start_is_counted(make_client: Any) -> None:
    client = make_client(starter=FakeStarter(fail=True))
    assert client.post("/alerts/generic", json=GENERIC, headers=bearer()).status_code == 503

    samples = parse(client.get("/metrics").text)

    assert value(samples, "remediate_run_starts_total", state="failed") == 1
    assert value(samples, "remediate_run_starts_total", state="started") == 0


def test_each_app_counts_on_its_own_registry(make_client: Any) -> None:
    first, second = make_client(), make_client()
    first.post("/alerts/generic", json=GENERIC, headers=bearer())

    created = {"source": "generic", "outcome": "created"}
    assert value(parse(first.get("/metrics").text), "remediate_alerts_received_total", **created) == 1
    assert value(parse(second.get("/metrics").text), "remediate_alerts_received_total", **created) == 0


class Fixed:
    """A collector of given metric families."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Any:
        return self.families


def figures(open_incidents: GroupCounts) -> StoreFigures:
    empty = GroupCounts(groups={}, total=0)
    return StoreFigures(open_incidents=open_incidents, runs=empty, actions=empty, approval_answers=empty,
                        approvals_waiting=0, oldest_waiting_since=None, approvals_overdue_since=None, recent_closed=())


def exposed(store_figures: StoreFigures) -> Samples:
    """What /metrics would show for these figures at T0, parsed back."""
    return parse(generate_latest(Fixed(store_families(store_figures, T0, 10))).decode())


def test_service_labels_from_the_store_are_cleaned_truncated_and_merged_and_the_rest_is_one_other_series() -> None:
    hostile = 'web"} 1\nfake_metric{a="b'
    groups = {("elevated_5xx", hostile): 2, ("elevated_5xx", "x" * 300): 1, ("elevated_5xx", "a b"): 1,
              ("elevated_5xx", "a_b"): 1}

    samples = exposed(figures(GroupCounts(groups=groups, total=9)))

    assert value(samples, "remediate_open_incidents", runbook="elevated_5xx", service="web___1_fake_metric_a__b") == 2
    assert value(samples, "remediate_open_incidents", runbook="elevated_5xx", service="x" * LABEL_MAX) == 1
    assert value(samples, "remediate_open_incidents", runbook="elevated_5xx", service="a_b") == 2
    assert value(samples, "remediate_open_incidents", runbook=OTHER, service=OTHER) == 4
    assert "fake_metric" not in names(samples)


def test_approval_wait_and_overdue_are_seconds_before_now() -> None:
    waiting = replace(figures(GroupCounts(groups={}, total=0)), approvals_waiting=2,
                      oldest_waiting_since=T0 - timedelta(minutes=20),
                      approvals_overdue_since=T0 - timedelta(minutes=7))

    samples = exposed(waiting)

    assert value(samples, "remediate_approvals_waiting") == 2
    assert value(samples, "remediate_approval_oldest_wait_seconds") == 1200
    assert value(samples, "remediate_approval_overdue_seconds") == 420
