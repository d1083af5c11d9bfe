"""Plans are a discriminated union that knows its risk and its undo."""

from __future__ import annotations

from remediation.models import (
    DisableMaintenance,
    EnableMaintenance,
    PlanEnvelope,
    Risk,
    Rollback,
    SetFeatureFlag,
)


def test_plans_round_trip_through_json_by_kind() -> None:
    plans = [
        EnableMaintenance(service="s", path_prefixes=("/a",)),
        Rollback(service="s", from_release="r2", to_release="r1", from_version="v2", to_version="v1"),
        SetFeatureFlag(service="s", flag="x", enabled=False, previous=True),
    ]
    for plan in plans:
        again = PlanEnvelope.model_validate({"plan": plan.model_dump(mode="json")}).plan
        assert again == plan and type(again) is type(plan)


def test_undo_reverses_each_plan() -> None:
    maint = EnableMaintenance(service="s", path_prefixes=("/a", "/b"))
    assert maint.undo() == DisableMaintenance(service="s", path_prefixes=("/a", "/b"), reason="undo")
    rollback = Rollback(service="s", from_release="r2", to_release="r1")
    undo = rollback.undo()
    assert isinstance(undo, Rollback) and (undo.from_release, undo.to_release) == ("r1", "r2")
    assert SetFeatureFlag(service="s", flag="x", enabled=False).undo() is None  # unknown prior state


def test_risk_classes() -> None:
    assert Rollback(service="s", from_release="b", to_release="a").risk is Risk.DESTRUCTIVE
    assert EnableMaintenance(service="s", path_prefixes=("/api/x",)).risk is Risk.REVERSIBLE
    assert EnableMaintenance(service="s", path_prefixes=("/",)).risk is Risk.DESTRUCTIVE
