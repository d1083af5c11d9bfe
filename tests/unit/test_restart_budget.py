"""The rolling restart's up-front budget: one operation under the hourly action cap, every instance under the
hourly instance cap. Read from a real store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from remediation.models import ActionState, EnableMaintenance, FindingStatus, RestartInstance
from remediation.settings import Settings
from remediation.store import Store
from tasks.rolling_restart.identify import budget_finding
from tests.store.store_factories import T0, action, open_incident


def budget(tmp_path: Path, instances: int, changes: int = 0, restarts: int = 0, **caps: int) -> tuple[str, int, str]:
    store = Store(f"sqlite:///{tmp_path / f'{instances}-{changes}-{restarts}.db'}")
    store.migrate()
    incident = open_incident(store, service="web")
    for i in range(changes):
        store.record_action(incident, action(EnableMaintenance(service="web", path_prefixes=(f"/p{i}",)),
                                             state=ActionState.APPLIED, completed_at=T0))
    for i in range(restarts):
        store.record_action(incident, action(RestartInstance(service="web", instance_id=f"i-{i}"),
                                             state=ActionState.APPLIED, completed_at=T0))
    clock = SimpleNamespace(now=lambda: T0 + timedelta(minutes=5))
    providers = SimpleNamespace(settings=Settings(**caps), store=store, clock=clock)
    found = budget_finding(providers, "web", instances)  # type: ignore[arg-type]
    store.dispose()
    return found.status.value, int(found.threshold or 0), found.detail


def test_six_instances_need_one_action_not_eighteen(tmp_path: Path) -> None:
    status, left, detail = budget(tmp_path, 6, changes=9, max_actions_per_service_per_hour=10)
    assert (status, left) == (FindingStatus.OK.value, 20)
    assert "9 of 10 operations" in detail and "0 of 20 instance restarts" in detail


def test_no_room_for_one_more_operation_leaves_room_for_no_instance(tmp_path: Path) -> None:
    assert budget(tmp_path, 2, changes=10)[:2] == (FindingStatus.BREACH.value, 0)


def test_instances_restarted_earlier_in_the_hour_use_up_the_instance_cap(tmp_path: Path) -> None:
    assert budget(tmp_path, 3, restarts=18)[:2] == (FindingStatus.BREACH.value, 2)
    assert budget(tmp_path, 2, restarts=18)[:2] == (FindingStatus.OK.value, 2)
