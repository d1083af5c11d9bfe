"""Drill records: time-to-contain / time-to-recover from a run's report, the JSON-lines log under REMEDIATE_HOME, the
stale flags, and the game-day loop (with a stand-in for the simulator run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remediation import drills
from remediation.cli import app
from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    DrainInstance,
    EnableMaintenance,
    IncidentReport,
    Mode,
    Outcome,
    Phase,
    Rollback,
    Verdict,
)

T0 = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


def report(outcome: Outcome = Outcome.RECOVERED, *, runbook: str = "elevated-error-rate",
           actions: list[ActionRecord] | None = None, finished_after_s: float = 90.0) -> IncidentReport:
    return IncidentReport(incident_id="inc-1", runbook=runbook, service="kamkmserve", mode=Mode.AUTO,
                          severity="sev2", outcome=outcome, alert=Alert(name="HighErrorRate", service="kamkmserve"),
                          actions=actions or [], started_at=T0,
                          finished_at=T0 + timedelta(seconds=finished_after_s), escalation=None)


def applied(phase: Phase, plan: object, after_s: float) -> ActionRecord:
    return ActionRecord(phase=phase, plan=plan, decision=Verdict.ALLOW, state=ActionState.APPLIED,
                        started_at=T0, completed_at=T0 + timedelta(seconds=after_s))


MAINTENANCE = EnableMaintenance(service="kamkmserve", path_prefixes=("/api/cart",))
ROLLBACK = Rollback(service="kamkmserve", from_release="b", to_release="a")


def test_time_to_contain_is_the_first_applied_containment_and_time_to_recover_the_whole_run() -> None:
    record = drills.from_report(report(actions=[applied(Phase.REMEDIATE, ROLLBACK, 40.0),
                                                applied(Phase.CONTAIN, MAINTENANCE, 12.5)]), trigger="game-day",
                                scenario="bad-release")
    assert record.time_to_contain_s == 12.5, "containment counts, not the earlier-listed fix"
    assert record.time_to_recover_s == 90.0 and record.success
    assert (record.runbook, record.scenario, record.trigger) == ("elevated-error-rate", "bad-release", "game-day")


def test_without_a_containment_the_first_applied_fix_contains_and_nothing_applied_is_none() -> None:
    drain = DrainInstance(service="kamkmserve", instance_id="i-01")
    assert drills.from_report(report(actions=[applied(Phase.REMEDIATE, drain, 3.0)]),
                              trigger="flow").time_to_contain_s == 3.0
    planned = ActionRecord(phase=Phase.CONTAIN, plan=MAINTENANCE, decision=Verdict.DENY)
    assert drills.from_report(report(actions=[planned]), trigger="flow").time_to_contain_s is None


def test_a_run_that_did_not_recover_has_no_time_to_recover_and_is_not_a_success() -> None:
    record = drills.from_report(report(Outcome.ESCALATED), trigger="flow")
    assert record.time_to_recover_s is None and not record.success


def test_records_are_appended_as_json_lines_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    drills.record_report(tmp_path, report(), trigger="game-day", scenario="bad-release")
    with drills.path(tmp_path).open("a") as handle:
        handle.write('{"runbook": "half a li\n')
    second = report(Outcome.ESCALATED, finished_after_s=200).model_copy(update={"incident_id": "inc-2"})
    drills.record_report(tmp_path, second, trigger="flow")
    loaded = drills.load(tmp_path)
    assert [r.outcome for r in loaded] == ["recovered", "escalated"]
    assert len(drills.path(tmp_path).read_text().splitlines()) == 3


def test_a_run_recorded_by_itself_and_by_the_game_day_counts_once_with_the_game_days_details(tmp_path: Path) -> None:
    drills.record_report(tmp_path, report(), trigger="flow")
    drills.record_report(tmp_path, report(), trigger="game-day", scenario="bad-release")
    (only,) = drills.load(tmp_path)
    assert (only.trigger, only.scenario) == ("game-day", "bad-release")


def test_status_flags_runbooks_never_drilled_or_whose_last_success_is_too_old() -> None:
    now = T0 + timedelta(days=20)
    old_win = drills.from_report(report(), trigger="game-day")
    recent_win = drills.from_report(report(runbook="high-latency"), trigger="game-day").model_copy(
        update={"finished_at": now - timedelta(days=1)})
    recent_fail = drills.from_report(report(Outcome.ESCALATED, runbook="elevated-error-rate"),
                                     trigger="flow").model_copy(update={"finished_at": now - timedelta(hours=2)})
    board = {s.runbook: s for s in drills.status(
        ["elevated-error-rate", "high-latency", "rolling-restart"], [old_win, recent_win, recent_fail],
        timedelta(days=14), now=now)}
    assert board["elevated-error-rate"].stale, "a recent failure does not refresh an old success"
    assert board["elevated-error-rate"].last is recent_fail and board["elevated-error-rate"].last_success is old_win
    assert "older than 14.0d" in board["elevated-error-rate"].why
    assert not board["high-latency"].stale
    assert board["rolling-restart"].stale and board["rolling-restart"].why == "never drilled"


def test_game_day_drills_every_scenario_of_a_runbook_and_records_a_crash_as_a_failed_drill(tmp_path: Path) -> None:
    assert drills.scenarios_for("database-errors") == ["slow-query", "lock-contention"]
    seen: list[str] = []

    def run(scenario: str) -> IncidentReport:
        seen.append(scenario)
        if scenario == "lock-contention":
            raise RuntimeError("the simulator did not start")
        return report(runbook="database-errors")

    missing: list[str] = []
    ran = drills.game_day(["database-errors", "no-such-runbook"], tmp_path, run, on_missing=missing.append)
    assert seen == ["slow-query", "lock-contention"] and missing == ["no-such-runbook"]
    assert [(r.scenario, r.success) for r in ran] == [("slow-query", True), ("lock-contention", False)]
    assert "the drill itself failed: RuntimeError" in ran[1].detail
    assert drills.load(tmp_path) == ran


def test_every_catalogued_runbook_has_a_scenario_to_drill_it() -> None:
    from remediation import catalog

    assert [name for name in catalog.RUNBOOKS if not drills.scenarios_for(name)] == []


def test_remediate_drill_without_a_runbook_prints_the_status_warns_of_staleness_and_fails_on_it_only_when_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_HOME", str(tmp_path))
    assert CliRunner().invoke(app, ["drill"]).exit_code == 0
    result = CliRunner().invoke(app, ["drill", "--json", "--strict"])
    assert result.exit_code == 1, result.output
    assert '"ran": []' in result.output and '"why": "never drilled"' in result.output
    assert CliRunner().invoke(app, ["drill", "--runbook", "nope"]).exit_code == 2


def test_the_weekly_drill_is_scheduled_in_prefect_yaml_and_kept_by_the_served_deployment() -> None:
    from deployments.serve import build_deployments, runbook_specs

    (served,) = [d for d in build_deployments(runbook_specs()) if d.name == "rolling-restart"]
    (weekly,) = served.schedules
    assert weekly.schedule.cron == "0 3 * * 1" and weekly.schedule.timezone == "UTC" and weekly.active
    assert weekly.parameters == {"drill": True, "mode": "auto", "severity": "sev4", "alert_name": "weekly-drill"}
    assert served.parameters == {"service": "kamkmserve", "severity": "sev3", "max_unavailable": 1}


def test_drilling_one_runbook_exits_by_that_runbook_alone_while_the_others_stale_rows_are_still_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from remediation import drills_cli

    def recovered(console: object) -> drills.Runner:
        now = datetime.now(UTC)
        return lambda scenario: report(runbook="elevated-error-rate").model_copy(
            update={"started_at": now - timedelta(seconds=60), "finished_at": now})

    monkeypatch.setenv("REMEDIATE_HOME", str(tmp_path))
    monkeypatch.setattr(drills_cli, "_run_scenario", recovered)
    result = CliRunner().invoke(app, ["drill", "--runbook", "elevated-error-rate", "--json"])
    assert result.exit_code == 0, result.output
    assert '"why": "never drilled"' in result.output  # the other five are shown as stale, not counted
