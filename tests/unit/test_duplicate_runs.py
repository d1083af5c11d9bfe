"""At most one run acts per incident: a second run started for an incident whose run holds its lease (a duplicated
Prefect event), or for a closed incident, stops before it notes or changes anything."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from remediation.incident import DuplicateRun, refuse_duplicate
from remediation.models import Alert, IncidentReport, Mode, Outcome, Severity, utcnow
from remediation.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'd.db'}")
    s.migrate()
    s.open_incident(incident_id="inc-1", runbook="elevated-error-rate", service="web", severity=Severity.SEV2,
                    mode=Mode.AUTO, alert=Alert(name="HighErrorRate", service="web"))
    s.set_flow_run("inc-1", "run-first")
    return s


def check(store: Store, flow_run_id: str) -> None:
    incident = store.get_incident("inc-1")
    assert incident is not None
    refuse_duplicate(incident, flow_run_id, store, utcnow())


def lease(store: Store, ttl_s: float, taken_ago_s: float = 0.0) -> None:
    store.take_run_lease("run-first", holder="host:1", ttl_s=ttl_s, api_url="http://api", api_id=None,
                         now=utcnow() - timedelta(seconds=taken_ago_s))


def test_a_second_run_of_an_incident_whose_run_holds_its_lease_does_nothing(store: Store) -> None:
    lease(store, ttl_s=60)
    with pytest.raises(DuplicateRun, match="handled by run run-first"):
        check(store, "run-second")
    assert store.get_incident("inc-1").flow_run_id == "run-first"  # type: ignore[union-attr]
    assert store.timeline("inc-1") == []


def test_the_incident_s_own_run_and_a_run_after_its_holder_died_may_go_on(store: Store) -> None:
    lease(store, ttl_s=60)
    check(store, "run-first")  # the run itself, e.g. resumed after a restart
    lease(store, ttl_s=5, taken_ago_s=60)  # lapsed: its holder is gone
    check(store, "run-continuation")


def test_a_run_started_for_a_closed_incident_does_nothing(store: Store) -> None:
    store.close_incident("inc-1", IncidentReport(
        incident_id="inc-1", runbook="elevated-error-rate", service="web", mode=Mode.AUTO, severity=Severity.SEV2,
        outcome=Outcome.RECOVERED, alert=Alert(name="HighErrorRate", service="web"), started_at=utcnow()))
    with pytest.raises(DuplicateRun, match="closed \\(recovered\\)"):
        check(store, "run-late")
