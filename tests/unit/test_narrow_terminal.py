"""At 80 columns nothing a person copies is cut or split: every incident id and flow run id is whole on one line,
no word is split across lines, and no line passes 80 columns (a command to copy is the one exception; see also
tests/unit/test_cli_approvals.py for the approvals inbox)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from remediation import cli, cli_incident
from remediation.check import CheckReport, CheckRow, render
from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    Approval,
    ApprovalAnswer,
    EnableMaintenance,
    Finding,
    FindingStatus,
    IncidentReport,
    Mode,
    Outcome,
    Phase,
    Rollback,
    Severity,
    TimelineEntry,
    Verdict,
)
from remediation.report_view import print_report
from remediation.store import Store

WIDTH = 80
NOW = datetime(2025, 6, 1, 2, 14, tzinfo=UTC)
INCIDENTS = [f"inc-{n:012x}{'ab' * 4}" for n in range(3)]  # longer than new_id's: still whole
RUNS = [f"0b5e3c1e-8a4f-4a57-9d0a-2c6f7c1f9a1{n}" for n in range(3)]
LONG = ("the 5xx rate rose from 0.2% to 7.9% within four minutes of release r42 going live on "
        "/api/checkout and /api/cart, and it stays above the configured threshold")
runner = CliRunner()


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def assert_within(text: str) -> None:
    too_wide = [line for line in lines_of(text) if len(line) > WIDTH]
    assert not too_wide, too_wide


def assert_whole(text: str, *ids: str) -> None:
    for one in ids:
        assert any(one in line for line in lines_of(text)), f"{one} is cut or split:\n{text}"
    assert "…" not in text


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    url = f"sqlite:///{tmp_path / 'narrow.db'}"
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.chdir(tmp_path)
    # The modules' consoles were made at import: new ones read COLUMNS now.
    monkeypatch.setattr(cli, "console", Console())
    monkeypatch.setattr(cli_incident, "console", Console(highlight=False))
    store = Store(url)
    store.migrate()
    for n, (incident, run) in enumerate(zip(INCIDENTS, RUNS, strict=True)):
        store.open_incident(incident_id=incident, runbook="database-errors", service="kamkmserve-worker",
                            severity=Severity.SEV1, mode=Mode.APPROVE, flow_run_id=run,
                            alert=Alert(name="PostgresLockWaits", service="kamkmserve-worker"),
                            opened_at=NOW + timedelta(minutes=n))
    return store


def test_incidents_at_80_columns_show_every_incident_and_run_id_whole(store: Store) -> None:
    result = runner.invoke(cli.app, ["incidents"])
    assert result.exit_code == 0, result.output
    assert_whole(result.output, *INCIDENTS, *RUNS)
    assert_within(result.output)


def test_incidents_on_a_wide_terminal_are_still_a_table(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=200))
    result = runner.invoke(cli.app, ["incidents"])
    assert_whole(result.output, *INCIDENTS, *RUNS)
    assert any(INCIDENTS[0] in line and RUNS[0] in line for line in lines_of(result.output))  # one row each


def test_incident_show_at_80_columns_wraps_at_spaces_and_keeps_ids_whole(store: Store) -> None:
    incident = INCIDENTS[0]
    plan = EnableMaintenance(service="kamkmserve-worker", path_prefixes=("/api/cart", "/api/checkout/confirm"),
                             reason=LONG)
    store.record_action(incident, ActionRecord(phase=Phase.CONTAIN, plan=plan, decision=Verdict.ALLOW,
                                               state=ActionState.APPLIED, started_at=NOW))
    store.record_approval(incident, Approval(answer=ApprovalAnswer.REFUSED, approver="mallory", reason=LONG))
    store.add_timeline(incident, TimelineEntry(at=NOW, phase=Phase.IDENTIFY, event="finding error_rate_5xx: breach",
                                               detail=LONG))
    result = runner.invoke(cli.app, ["incident", "show", incident])
    assert result.exit_code == 0, result.output
    assert_whole(result.output, incident, RUNS[0])
    assert_within(result.output)
    assert " ".join(result.output.split()).count(LONG) == 2  # the answer and the timeline detail, word for word


def report(incident: str) -> IncidentReport:
    alert = Alert(name="HighErrorRate", service="kamkmserve")
    unread = Finding(check="error_rate_5xx", status=FindingStatus.UNKNOWN, threshold=None, unit="%", detail=LONG)
    seen = Finding(check="deploy_correlation", status=FindingStatus.BREACH, observed=7.9, threshold=2.0, unit="%")
    rollback = Rollback(service="kamkmserve", from_release="dpl_8f3kXcQm2vR7", to_release="dpl_1aB2c3D4e5F6")
    action = ActionRecord(phase=Phase.REMEDIATE, plan=rollback, decision=Verdict.NEEDS_APPROVAL,
                          state=ActionState.APPLIED, started_at=NOW,
                          approval=Approval(answer=ApprovalAnswer.APPROVED, approver="demo.oncall", reason="go"))
    return IncidentReport(incident_id=incident, runbook="elevated-error-rate", service="kamkmserve",
                          mode=Mode.AUTO, severity=Severity.SEV2, outcome=Outcome.ESCALATED, alert=alert,
                          started_at=NOW, findings=[unread, seen], actions=[action], escalation=LONG)


def test_the_demo_summary_at_80_columns_cuts_no_release_id_and_shows_no_python_none() -> None:
    console = Console(width=WIDTH, record=True)
    print_report(report(INCIDENTS[0]), console)
    text = console.export_text()
    assert_whole(text, "dpl_8f3kXcQm2vR7", "dpl_1aB2c3D4e5F6", "approved by demo.oncall", "deploy_correlation")
    assert_within(text)
    assert "None" not in text and "no threshold" in text


def test_check_at_80_columns_splits_no_capability_name_and_no_word() -> None:
    rows = (CheckRow(capability="configuration", implementation="file", status="ok",
                     detail="/etc/remediate/remediate.toml: 14 setting(s), 3 secret reference(s) (3 resolved)"),
            CheckRow(capability="notify:statuspage", implementation="statuspage", status="failing", reachable=True,
                     authorised=False, detail="HTTP 401 from api.statuspage.io: the API key was refused",
                     missing=("REMEDIATE_STATUSPAGE_API_KEY",)),
            CheckRow(capability="instance_metrics", implementation="aws", status="degraded", reachable=True,
                     authorised=True, detail=LONG))
    console = Console(width=WIDTH, record=True)
    render(CheckReport(config_file=None, platform="aws", rows=rows), console)
    text = console.export_text()
    assert_within(text)
    words = set(re.findall(r"[\w:./-]+", text))
    for row in rows:
        assert f"{row.capability}:" in words and row.implementation.strip("()") in text
        assert set(re.findall(r"[\w:./-]+", row.detail)) <= words  # no word of the detail split
    assert "REMEDIATE_STATUSPAGE_API_KEY" in words and "notify:statuspage: FAILING (statuspage)" in text
