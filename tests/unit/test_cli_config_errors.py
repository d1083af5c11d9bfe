"""A wrong configuration is one clear line and exit 2 in every command, never a traceback (a real process each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli_process import python, remediate

COMMANDS = [
    ["run", "elevated-error-rate"], ["incidents"], ["reconcile", "--dry-run"], ["drill", "--all"],
    ["approve", "0b5e3c1e-8a4f-4a57-9d0a-2c6f7c1f9a11", "--as", "alice"], ["paused"], ["approvals"], ["check"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_a_typo_in_remediate_toml_is_one_line_naming_the_key_and_exit_2(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "remediate.toml").write_text('platfrom = "sim"\n')
    done = remediate(args, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines == ["configuration error: remediate.toml: unknown setting 'platfrom'"], lines


def test_an_invalid_environment_value_names_the_setting_in_one_line(tmp_path: Path) -> None:
    done = remediate(["incidents"], tmp_path, REMEDIATE_MAX_REPLICAS="abc")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("configuration error: max_replicas:"), done.stderr


@pytest.mark.parametrize("command", ["incidents", "check"])
def test_an_invalid_vendor_value_names_the_setting_by_its_flat_name_in_one_line(command: str, tmp_path: Path) -> None:
    """settings.aws.max_attempts is said as aws_max_attempts, the name in REMEDIATE_AWS_MAX_ATTEMPTS; ``check``
    says it as every other command does (it used to print pydantic's multi-line block)."""
    done = remediate([command], tmp_path, REMEDIATE_AWS_MAX_ATTEMPTS="0")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, lines
    assert len(lines) == 1 and lines[0].startswith("configuration error: aws_max_attempts: Input should be greater"), \
        lines


@pytest.mark.parametrize("args", [["run", "elevated-error-rate"], ["approve", "r1", "--as", "alice"], ["check"]],
                         ids=lambda a: a[0])
def test_a_typo_is_said_before_prefect_is_imported(args: list[str], tmp_path: Path) -> None:
    """The configuration is read before any command loads Prefect (~1.5 s of CPU): the answer comes at once."""
    (tmp_path / "remediate.toml").write_text('platfrom = "sim"\n')
    code = ("import sys\nfrom remediation.cli import app\n"
            f"try:\n    app({args!r}, prog_name='remediate')\n"
            "except SystemExit as exc:\n    print(exc.code, 'prefect' in sys.modules)\n")
    done = python(["-c", code], tmp_path)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr[-2000:]
    assert done.stderr.strip() == "configuration error: remediate.toml: unknown setting 'platfrom'"
