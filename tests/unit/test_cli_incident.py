"""`remediate incident show ID`: one incident's findings, actions (with approvals and undo) and timeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remediation.cli import app
from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    Approval,
    ApprovalAnswer,
    EnableMaintenance,
    Mode,
    Phase,
    Severity,
    TimelineEntry,
    Verdict,
)
from remediation.store import Store

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    store = Store(url)
    store.migrate()
    store.open_incident(incident_id="inc-7", runbook="elevated-error-rate", service="kamkmserve",
                        severity=Severity.SEV2, mode=Mode.APPROVE,
                        alert=Alert(name="HighErrorRate", service="kamkmserve"),
                        flow_run_id="0b5e3c1e-8a4f-4a57-9d0a-2c6f7c1f9a11", opened_at=datetime.now(UTC))
    plan = EnableMaintenance(service="kamkmserve", path_prefixes=("/api/cart",), reason="5xx on the cart")
    store.record_action("inc-7", ActionRecord(phase=Phase.CONTAIN, plan=plan, decision=Verdict.ALLOW,
                                              state=ActionState.APPLIED, started_at=datetime.now(UTC)))
    store.record_approval("inc-7", Approval(answer=ApprovalAnswer.REFUSED, approver="mallory", reason="not listed"))
    store.add_timeline("inc-7", TimelineEntry(at=datetime.now(UTC), phase=Phase.CONTAIN, event="applied maintenance",
                                              detail="/api/cart"))
    return store


def test_an_open_incident_shows_its_actions_with_undo_its_answers_and_its_timeline(store: Store) -> None:
    result = runner.invoke(app, ["incident", "show", "inc-7"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "inc-7 elevated-error-rate on kamkmserve · SEV2 · open" in out
    assert "still open: its findings are in the timeline" in out
    assert "contain: enable_maintenance /api/cart (reversible) · allow · applied" in out
    assert "undo: disable_maintenance /api/cart" in out
    assert "refused by mallory: not listed" in out
    assert "applied maintenance" in out


def test_the_json_has_the_incident_actions_answers_and_timeline(store: Store) -> None:
    body = json.loads(runner.invoke(app, ["incident", "show", "inc-7", "--json"]).output)
    assert body["incident"]["id"] == "inc-7" and body["findings"] is None
    assert [a["state"] for a in body["actions"]] == ["applied"]
    assert [a["answer"] for a in body["approvals"]] == ["refused"]
    assert [t["event"] for t in body["timeline"]] == ["applied maintenance"]


def test_an_unknown_incident_exits_1_and_says_where_to_look(store: Store) -> None:
    result = runner.invoke(app, ["incident", "show", "inc-nope"])
    assert result.exit_code == 1 and "remediate incidents" in result.output
