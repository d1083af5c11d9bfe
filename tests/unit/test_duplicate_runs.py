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


def test_adopting_an_incident_is_compare_and_set_so_of_two_simultaneous_starts_one_wins(store: Store) -> None:
    """Two runs that both read the incident as intake left it (no run yet) adopt it at once: the store hands it to
    the first and refuses the second, which then reads the winner back instead of taking it over."""
    store.open_incident(incident_id="inc-2", runbook="elevated-error-rate", service="api", severity=Severity.SEV2,
                        mode=Mode.AUTO, alert=Alert(name="HighErrorRate", service="api"))
    assert store.adopt_incident("inc-2", "run-a", previous=None) is True
    assert store.adopt_incident("inc-2", "run-b", previous=None) is False
    assert store.get_incident("inc-2").flow_run_id == "run-a"  # type: ignore[union-attr]
    # The reconciler's hand-over from a dead run is the same compare-and-set, from that run.
    assert store.adopt_incident("inc-2", "run-c", previous="run-b") is False
    assert store.adopt_incident("inc-2", "run-c", previous="run-a") is True


def test_a_run_that_loses_the_adoption_race_to_a_leased_run_does_nothing(store: Store) -> None:
    """The loser of the race finds the winner's lease held (runs lease themselves before adopting) and stops."""
    from remediation.incident import RunningIncident

    store.open_incident(incident_id="inc-3", runbook="elevated-error-rate", service="api", severity=Severity.SEV2,
                        mode=Mode.AUTO, alert=Alert(name="HighErrorRate", service="api"))
    store.take_run_lease("run-a", holder="host:1", ttl_s=60, api_url="http://api", api_id=None, now=utcnow())
    stale_read = store.get_incident("inc-3")
    assert stale_read is not None and stale_read.flow_run_id is None
    assert store.adopt_incident("inc-3", "run-a", previous=None)
    original = store.get_incident
    reads = iter([stale_read])

    def first_read_is_stale(incident_id: str):  # type: ignore[no-untyped-def]
        # The loser read the incident before the winner adopted it; every later read sees the truth.
        return next(reads, None) or original(incident_id)

    store.get_incident = first_read_is_stale  # type: ignore[method-assign]
    providers = _providers(store)
    with pytest.raises(DuplicateRun, match="handled by run run-a"):
        RunningIncident(providers, runbook="elevated-error-rate", alert=Alert(name="HighErrorRate", service="api"),
                        mode=Mode.AUTO, incident_id="inc-3", flow_run_id="run-b")
    store.get_incident = original  # type: ignore[method-assign]
    assert store.get_incident("inc-3").flow_run_id == "run-a"  # type: ignore[union-attr]
    assert store.timeline("inc-3") == []


def _providers(store: Store):  # type: ignore[no-untyped-def]
    from remediation.runtime import Providers
    from remediation.settings import Settings

    return Providers(settings=Settings(), metrics=None, deploys=None, edge=None, logs=None,  # type: ignore[arg-type]
                     errors=None, approvals=None, store=store)  # type: ignore[arg-type]


def test_a_run_that_intake_records_while_it_adopts_its_incident_goes_on(store: Store) -> None:
    """Intake writes the run it started onto the incident while that run adopts it: not a duplicate."""
    from remediation.incident import RunningIncident

    store.open_incident(incident_id="inc-4", runbook="elevated-error-rate", service="api", severity=Severity.SEV2,
                        mode=Mode.AUTO, alert=Alert(name="HighErrorRate", service="api"))
    stale_read = store.get_incident("inc-4")
    store.set_flow_run("inc-4", "run-a")  # intake, between the run's read and its adoption
    original = store.get_incident
    reads = iter([stale_read])
    store.get_incident = lambda incident_id: next(reads, None) or original(incident_id)  # type: ignore[method-assign]
    RunningIncident(_providers(store), runbook="elevated-error-rate", alert=Alert(name="HighErrorRate", service="api"),
                    mode=Mode.AUTO, incident_id="inc-4", flow_run_id="run-a")
    store.get_incident = original  # type: ignore[method-assign]
    assert store.get_incident("inc-4").flow_run_id == "run-a"  # type: ignore[union-attr]
