"""The `remediate` command's refusals and errors are clear and never tracebacks."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from remediation.cli import app
from remediation.models import Alert, Mode, Severity
from remediation.store import Store

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", url)
    monkeypatch.setenv("REMEDIATE_APPROVERS", "alice, bob")
    store = Store(url)
    store.migrate()
    return store


def test_approve_for_a_run_that_waits_for_nothing_says_so_and_judges_nobody(env: Store) -> None:
    """The CLI does not judge names with the caller's list: with nothing waiting it delivers nothing (exit 2)."""
    run_id = "0b5e3c1e-8a4f-4a57-9d0a-2c6f7c1f9a11"
    env.open_incident(incident_id="inc-9", runbook="elevated-error-rate", service="svc", severity=Severity.SEV2,
                      mode=Mode.APPROVE, alert=Alert(name="x", service="svc"), flow_run_id=run_id)
    result = runner.invoke(app, ["approve", run_id, "--as", "mallory", "--reason", "trust me"])
    assert result.exit_code == 2
    assert "is not waiting for an approval" in result.output
    assert env.approvals("inc-9") == []


def test_approve_with_a_malformed_run_id_says_so(env: Store) -> None:
    result = runner.invoke(app, ["approve", "not-a-run", "--as", "alice"])
    assert result.exit_code == 2
    assert "not a flow run id" in result.output


def test_run_of_an_unknown_runbook_lists_the_known_ones(env: Store) -> None:
    result = runner.invoke(app, ["run", "no-such-runbook"])
    assert result.exit_code == 2
    assert "elevated-error-rate" in result.output


def test_run_rejects_a_malformed_parameter(env: Store) -> None:
    result = runner.invoke(app, ["run", "elevated-error-rate", "--param", "novalue"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


def test_sim_rejects_an_unknown_scenario(simulator: ModuleType) -> None:
    result = runner.invoke(app, ["sim", "--scenario", "nope"])
    assert result.exit_code == 2
    assert "bad-release" in result.output


def test_sim_help_lists_every_scenario_the_simulator_has(simulator: ModuleType) -> None:
    from remediation.cli import SIM_SCENARIOS

    assert sorted(SIM_SCENARIOS) == sorted(simulator.SCENARIOS)  # the help's list is the simulator's
    result = runner.invoke(app, ["sim", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    words = set(result.output.replace("│", " ").replace(",", " ").split())
    assert not set(simulator.SCENARIOS) - words, result.output
