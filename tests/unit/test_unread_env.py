"""A ``REMEDIATE_*`` variable that no setting reads is named, with the setting it most resembles; every variable that
something does read is left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediation.approvers import ApproverFactor
from remediation.forms import RunOptions
from remediation.models import Phase
from remediation.settings import Settings
from remediation.unread_env import UnreadVariable, setting_variables, unread_variables
from tests.helpers.cli_process import remediate


def test_a_misspelt_setting_is_named_with_the_setting_it_resembles() -> None:
    found = unread_variables(Settings(), {"REMEDIATE_PLATFROM": "aws", "REMEDIATE_NEVER_BLOCK_CIRDS": "10.0.0.0/8",
                                          "PATH": "/bin"})
    assert found == [UnreadVariable("REMEDIATE_NEVER_BLOCK_CIRDS", "REMEDIATE_NEVER_BLOCK_CIDRS"),
                     UnreadVariable("REMEDIATE_PLATFROM", "REMEDIATE_PLATFORM")]
    assert found[1].describe() == "REMEDIATE_PLATFROM is not a setting (did you mean REMEDIATE_PLATFORM?): ignored"


def test_a_variable_like_no_setting_is_named_without_a_guess() -> None:
    (found,) = unread_variables(Settings(), {"REMEDIATE_COLOUR": "blue"})
    assert found == UnreadVariable("REMEDIATE_COLOUR", None)
    assert found.describe() == "REMEDIATE_COLOUR is not a setting: ignored"


def test_every_variable_something_reads_is_left_alone() -> None:
    """Settings (vendor groups and the state directory's second name included), the configuration file's path, the
    test suite's switches, approvers' TOTP secrets by convention and by enrolment, and the file's secret references."""
    settings = Settings(approver_factors={"carol": ApproverFactor(totp_env="REMEDIATE_CAROLS_CODE")})
    environ = {name: "x" for name in ["REMEDIATE_PLATFORM", "REMEDIATE_AWS_REGION", "REMEDIATE_SENTRY_DSN",
                                      "REMEDIATE_HOME", "REMEDIATE_STATE_DIR", "REMEDIATE_CONFIG",
                                      "REMEDIATE_REQUIRE_SERVICES", "REMEDIATE_TOTP_ALICE", "REMEDIATE_CAROLS_CODE",
                                      "REMEDIATE_VERCEL_TOKEN_FROM_VAULT"]}
    assert unread_variables(settings, environ, secret_variables=frozenset({"REMEDIATE_VERCEL_TOKEN_FROM_VAULT"})) == []
    assert unread_variables(Settings(), environ) == [UnreadVariable("REMEDIATE_CAROLS_CODE", None),
                                                     UnreadVariable("REMEDIATE_VERCEL_TOKEN_FROM_VAULT",
                                                                    "REMEDIATE_VERCEL_TOKEN")]


def test_each_setting_is_read_from_the_variable_its_flat_name_gives() -> None:
    names = setting_variables()
    assert {"REMEDIATE_APP_URL", "REMEDIATE_AWS_MAX_ATTEMPTS", "REMEDIATE_CLAMD_PORT", "REMEDIATE_STATE_DIR"} <= names
    assert "REMEDIATE_AWS" not in names, "a vendor group is not a variable of its own"


def test_every_command_warns_on_stderr_and_goes_on(tmp_path: Path) -> None:
    done = remediate(["incidents"], tmp_path, REMEDIATE_PLATFROM="sim")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.splitlines()[0] == ("warning: REMEDIATE_PLATFROM is not a setting (did you mean "
                                           "REMEDIATE_PLATFORM?): ignored")


def test_check_shows_it_in_the_configuration_row_as_degraded_and_only_there(tmp_path: Path) -> None:
    done = remediate(["check", "--json"], tmp_path, REMEDIATE_APROVERS="alice")
    assert "warning:" not in done.stderr, "check says it once, in its row"
    (row,) = [row for row in json.loads(done.stdout)["rows"] if row["capability"] == "configuration"]
    assert row["status"] == "degraded"
    assert "REMEDIATE_APROVERS is not a setting (did you mean REMEDIATE_APPROVERS?): ignored" in row["detail"]


def test_check_names_nothing_when_every_variable_is_read(tmp_path: Path) -> None:
    done = remediate(["check", "--json"], tmp_path, REMEDIATE_APPROVERS="alice", REMEDIATE_REQUIRE_SERVICES="1")
    (row,) = [row for row in json.loads(done.stdout)["rows"] if row["capability"] == "configuration"]
    assert row["status"] == "ok" and "not a setting" not in row["detail"], row


def test_variables_the_configuration_file_names_are_read_so_never_named(tmp_path: Path) -> None:
    (tmp_path / "remediate.toml").write_text('[approvers.carol]\n'
                                             'totp = { env = "REMEDIATE_CAROLS_CODE" }\n\n'
                                             '[secrets]\nvercel_token = { env = "REMEDIATE_VT_FROM_VAULT" }\n')
    done = remediate(["incidents"], tmp_path, REMEDIATE_CAROLS_CODE="JBSWY3DPEHPK3PXP", REMEDIATE_VT_FROM_VAULT="t",
                     REMEDIATE_VERCEL_TOKN="t")
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: REMEDIATE_VERCEL_TOKN is not a setting (did you mean REMEDIATE_VERCEL_TOKEN?): ignored"]


def test_a_run_built_from_its_environment_notes_each_unread_variable_in_its_timeline(
        clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker's run (no bound bundle, no CLI to warn): the warning is in the incident, where a responder looks."""
    from remediation.run import start_incident

    clean_env.setenv("REMEDIATE_HOME", str(tmp_path / "state"))  # its own store: current() caches by settings
    clean_env.setenv("REMEDIATE_PLATFROM", "sim")
    incident = start_incident("elevated-error-rate", RunOptions())
    timeline = incident.providers.store.timeline(incident.id)
    assert [(e.phase, e.event, e.detail) for e in timeline if e.event == "configuration warning"] == [
        (Phase.IDENTIFY, "configuration warning",
         "REMEDIATE_PLATFROM is not a setting (did you mean REMEDIATE_PLATFORM?): ignored")]


def test_a_run_on_a_bound_bundle_notes_nothing(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """serve's warm runs, the demo and tests bind their bundle: the process that built it already warned."""
    from remediation import composition, runtime
    from remediation.run import start_incident

    clean_env.setenv("REMEDIATE_HOME", str(tmp_path / "state"))  # its own store: current() caches by settings
    clean_env.setenv("REMEDIATE_PLATFROM", "sim")
    providers = composition.connect(Settings())
    with runtime.use(providers):
        incident = start_incident("elevated-error-rate", RunOptions())
    assert [e for e in providers.store.timeline(incident.id) if e.event == "configuration warning"] == []
