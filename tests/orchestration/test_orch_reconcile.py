"""The reconciler reads run states from a real Prefect API: a crashed run's incident is closed, a paused one's not."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from prefect import flow, get_client
from prefect.states import Crashed, Paused

from remediation.models import Alert, Mode, Outcome, Severity
from remediation.reconcile import prefect_run_states, reconcile
from remediation.store import Store

pytestmark = [pytest.mark.prefect_server, pytest.mark.usefixtures("prefect_api")]


@flow(name="reconcile-probe")
def probe() -> None:
    """Never executed: only its runs' states matter."""


def test_run_states_come_from_the_api_and_a_missing_run_is_none(tmp_path: Path) -> None:
    with get_client(sync_client=True) as client:
        crashed = client.create_flow_run(probe, state=Crashed(message="No heartbeat for 90s"))
        paused = client.create_flow_run(probe, state=Paused())
    ghost = str(uuid.uuid4())
    states = prefect_run_states([str(crashed.id), str(paused.id), ghost])
    assert states[str(crashed.id)] is not None and states[str(crashed.id)].type == "CRASHED"  # type: ignore[union-attr]
    assert states[str(paused.id)] is not None and states[str(paused.id)].type == "PAUSED"  # type: ignore[union-attr]
    assert states[ghost] is None

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    for incident_id, run in (("inc-crashed", crashed), ("inc-paused", paused)):
        store.open_incident(incident_id=incident_id, runbook="elevated-error-rate", service=incident_id,
                            severity=Severity.SEV2, mode=Mode.AUTO, alert=Alert(name="a", service=incident_id))
        store.set_flow_run(incident_id, str(run.id))
    found = reconcile(store)
    assert [r.incident_id for r in found] == ["inc-crashed"]
    assert store.get_incident("inc-crashed").outcome is Outcome.ESCALATED  # type: ignore[union-attr]
    assert store.get_incident("inc-paused").is_open  # type: ignore[union-attr]
