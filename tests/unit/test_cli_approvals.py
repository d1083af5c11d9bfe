"""`remediate approvals` (the inbox, text and JSON), `remediate approvals show RUN`, `remediate approvers enroll NAME`
and `remediate approvers list`, against a real SQLite store holding one waiting step, in an 80-column terminal."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from remediation import approvers, cli_approvals
from remediation.cli import app
from remediation.models import Alert, Approval, ApprovalAnswer, Mode, Severity
from remediation.store import PendingStep, Store

runner = CliRunner()

WIDTH = 80
LABEL = 12  # "  evidence  ": where a wrapped value continues
RUN_ID = "0b5e3c1e-8a4f-4a57-9d0a-2c6f7c1f9a11"
INCIDENT = "inc-0b5e3c1e-8a4f-4a57"
SUMMARY = "roll back kamkmserve from release r42 (v1.4.3) to r41 (v1.4.2)"
WHY = ("the 5xx rate rose from 0.2% to 7.9% within four minutes of release [r42] going live, and it stays above "
       "the 2% threshold [/]")  # brackets that look like Rich markup are shown as they are
TRACE = "https://sentry.example/organizations/kamkm/issues/4711/events/0123456789abcdef0123456789abcdef/"
EVIDENCE = ("error_rate: breach, 7.9 % (threshold 2 %)",
            "p95_latency: breach, 2400 ms (threshold 800 ms), measured over the last five minutes on every route",
            f"trace {TRACE}")
UNDO = "roll forward to r42 (v1.4.3)"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """An empty store; approvers alice and bob (names only); an 80-column terminal."""
    for name in [n for n in os.environ if n.startswith("REMEDIATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ./remediate.toml, no ./.remediate
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", url)
    monkeypatch.setenv("REMEDIATE_APPROVERS", "alice, bob")
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    # The module's consoles were made at import: new ones read COLUMNS now, whatever the environment was then.
    monkeypatch.setattr(cli_approvals, "console", Console(highlight=False))
    monkeypatch.setattr(cli_approvals, "err", Console(stderr=True, highlight=False))
    store = Store(url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def waiting(env: Store) -> PendingStep:
    """Run RUN_ID waits for a second approval (alice gave the first) of a destructive SEV-1 step."""
    now = datetime.now(UTC)
    env.open_incident(incident_id=INCIDENT, runbook="elevated-error-rate", service="kamkmserve",
                      severity=Severity.SEV1, mode=Mode.APPROVE, flow_run_id=RUN_ID,
                      alert=Alert(name="HighErrorRate", service="kamkmserve"), opened_at=now - timedelta(minutes=5))
    step = PendingStep(
        action_id="act-1", incident_id=INCIDENT, flow_run_id=RUN_ID,
        step=approvers.step_binding(INCIDENT, "act-1", "0123456789abcdef0123"), runbook="elevated-error-rate",
        service="kamkmserve", severity="sev1", phase="remediate", summary=SUMMARY, risk="destructive", why=WHY,
        evidence=EVIDENCE, undo=UNDO, statement=None, needed=2, requested_at=now - timedelta(minutes=1),
        deadline=now + timedelta(minutes=14), approved_by=("alice",))
    env.open_pending(step)
    return step


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def flat(text: str) -> str:
    """The output with wrapping undone: shell continuations joined, every run of whitespace one space."""
    return " ".join(re.sub(r" \\\n\s*", " ", text).split())


def assert_fits(output: str, width: int = WIDTH) -> None:
    """Every line fits in ``width`` columns, unless it holds one word longer than a wrapped line could hold."""
    for line in output.splitlines():
        if len(line) > width:
            longest = max(line.split(), key=len)
            assert len(longest) > width - LABEL and len(line) - len(longest) <= LABEL, f"too wide: {line!r}"


# -- the inbox ------------------------------------------------------------------------------------------------


def test_the_inbox_shows_everything_an_approver_needs_about_the_waiting_step(waiting: PendingStep) -> None:
    result = invoke("approvals")
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert result.output.splitlines()[0] == RUN_ID
    assert f"runbook elevated-error-rate · incident {INCIDENT} · SEV1" in out
    assert f"step {SUMMARY} (destructive)" in out
    assert f"why {WHY}" in out
    for line in EVIDENCE:
        assert f"evidence {line}" in out
    assert f"undo {UNDO}" in out
    assert "needs 1 more of 2 (approved: alice)" in out
    assert re.search(rf"deadline {waiting.deadline:%H:%M:%S} UTC, in 1[34]m\d\ds; then it counts as deny", out)
    assert f"answer remediate approve {RUN_ID} --as NAME --code CODE [--deny]" in out


COMMAND = f"remediate approve {RUN_ID} --as NAME --code CODE [--deny]"


def test_every_inbox_line_fits_80_columns_but_the_command_and_an_unbreakable_word(waiting: PendingStep) -> None:
    result = invoke("approvals")
    assert result.exit_code == 0
    overflow = [line.strip() for line in result.output.splitlines() if len(line) > WIDTH]
    assert overflow == [TRACE, COMMAND]  # the 97-character URL alone on its continuation line; the command to copy


def test_the_approve_command_in_the_inbox_is_whole_on_a_line_of_its_own(waiting: PendingStep) -> None:
    lines = invoke("approvals").output.splitlines()
    start = lines.index("  answer")
    assert lines[start + 1] == f"    {COMMAND}"  # Rich inserted no newline: it pastes as one command


def test_the_inbox_as_json_has_every_field_of_the_waiting_step(waiting: PendingStep) -> None:
    result = invoke("approvals", "--json")
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.output)
    assert entry["flow_run_id"] == RUN_ID and entry["incident_id"] == INCIDENT and entry["action_id"] == "act-1"
    assert (entry["runbook"], entry["service"], entry["severity"], entry["phase"]) == (
        "elevated-error-rate", "kamkmserve", "sev1", "remediate")
    assert (entry["step"], entry["risk"], entry["why"], entry["undo"]) == (SUMMARY, "destructive", WHY, UNDO)
    assert entry["binding"] == waiting.step and entry["evidence"] == list(EVIDENCE)
    assert (entry["needed"], entry["approved_by"], entry["still_needed"]) == (2, ["alice"], 1)
    assert datetime.fromisoformat(entry["deadline"]) == waiting.deadline
    assert datetime.fromisoformat(entry["requested_at"]) == waiting.requested_at


def test_an_empty_inbox_says_nothing_is_waiting_and_its_json_is_an_empty_list(env: Store) -> None:
    result = invoke("approvals")
    assert result.exit_code == 0 and result.output.strip() == "nothing is waiting for approval"
    as_json = invoke("approvals", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.output) == []


# -- one waiting step -------------------------------------------------------------------------------------------


def record(store: Store, answer: ApprovalAnswer, approver: str, reason: str, at: datetime) -> None:
    store.record_approval(INCIDENT, Approval(answer=answer, approver=approver, reason=reason, at=at, via="form"),
                          action_id="act-1")


def test_show_prints_the_question_and_the_answers_since_the_step_was_asked(env: Store, waiting: PendingStep) -> None:
    record(env, ApprovalAnswer.DENIED, "bob", "an older step's answer", waiting.requested_at - timedelta(minutes=2))
    record(env, ApprovalAnswer.REFUSED, "mallory", "'mallory' is not on the approver list; [/] trust me",
           waiting.requested_at + timedelta(seconds=5))
    record(env, ApprovalAnswer.APPROVED, "alice", "1 of 2: 1 more approval needed; INC-7",
           waiting.requested_at + timedelta(seconds=20))
    result = invoke("approvals", "show", RUN_ID)
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert f"elevated-error-rate: approve {SUMMARY} on kamkmserve?" in out
    assert f"Incident {INCIDENT}, severity SEV1, phase remediate" in out
    assert "- Risk: destructive -" in out  # no reasons were kept with the step: no empty "()"
    assert f"Why: {WHY}" in out and f"Undo: {UNDO}" in out
    assert "Approvals needed: 2 distinct approvers" in out and "Approvers: alice, bob" in out
    assert f"  {COMMAND} --reason TEXT" in result.output.splitlines()  # whole, alone on its line
    overflow = [line.strip() for line in result.output.splitlines() if len(line) > WIDTH]
    assert overflow == [TRACE, f"{COMMAND} --reason TEXT"]  # an unbreakable URL, and the command to copy
    # One answer per line, wrapped within the width: a continuation is indented further.
    answers = re.sub(r"\n {4}", " ", result.output[result.output.index("Answers so far:"):]).splitlines()[1:]
    assert [line.split(" ", 3)[3] for line in answers] == [
        "refused by mallory: 'mallory' is not on the approver list; [/] trust me",
        "approved by alice: 1 of 2: 1 more approval needed; INC-7",
    ]
    assert "older step" not in result.output


def test_show_without_answers_says_so(waiting: PendingStep) -> None:
    result = invoke("approvals", "show", RUN_ID)
    assert result.exit_code == 0 and "No answers yet." in result.output


def test_show_as_json_has_the_step_and_its_answers(env: Store, waiting: PendingStep) -> None:
    record(env, ApprovalAnswer.APPROVED, "alice", "INC-7", waiting.requested_at + timedelta(seconds=20))
    result = invoke("approvals", "show", RUN_ID, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["flow_run_id"] == RUN_ID and body["step"] == SUMMARY and body["still_needed"] == 1
    [answer] = body["answers"]
    assert (answer["answer"], answer["approver"], answer["reason"], answer["via"]) == (
        "approved", "alice", "INC-7", "form")


@pytest.mark.parametrize("run", ["6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f", "[/]not-a-run"])
def test_show_for_a_run_that_waits_for_nothing_exits_1_and_says_so(waiting: PendingStep, run: str) -> None:
    result = invoke("approvals", "show", run)
    assert result.exit_code == 1
    assert flat(result.output) == (f"run {run} is not waiting for an approval (`remediate approvals` lists those "
                                   "that are)")


# -- enrolment --------------------------------------------------------------------------------------------------


QR_CHARS = set("█▀▄ \xa0")  # qrcode draws with cp437 blocks and no-break spaces


@pytest.mark.parametrize(("name", "env_var"), [("alice", "REMEDIATE_TOTP_ALICE"),
                                               ("alice.smith@kamkm", "REMEDIATE_TOTP_ALICE_SMITH_KAMKM")])
def test_enroll_prints_a_qr_code_the_otpauth_uri_the_secret_variable_the_toml_and_the_current_code(
        env: Store, name: str, env_var: str) -> None:
    before = datetime.now(UTC)
    result = invoke("approvers", "enroll", name)
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    qr = [line for line in lines if line and set(line) <= QR_CHARS and "█" in line]
    assert len(qr) >= 10 and len({len(line) for line in qr}) == 1, "a square block of QR modules"
    assert max(len(line) for line in qr) <= WIDTH

    [uri] = [line for line in lines if line.startswith("otpauth://")]
    parts = urlsplit(uri)
    assert parts.netloc == "totp" and parse_qs(parts.query)["issuer"] == ["remediate"]
    [secret] = parse_qs(parts.query)["secret"]
    assert f"  {env_var}={secret}" in lines
    assert f"  [approvers.{name}]" in lines and f'  totp = {{ env = "{env_var}" }}' in lines

    printed = re.search(r"the code now is (\d{6});", result.output)
    assert printed is not None
    totp = pyotp.TOTP(secret)
    assert printed.group(1) in {totp.at(before), totp.at(after)}  # the test may straddle a 30 s step


def test_enroll_makes_a_new_secret_each_time(env: Store) -> None:
    def secret() -> str:
        uri = next(line for line in invoke("approvers", "enroll", "alice").output.splitlines()
                   if line.startswith("otpauth://"))
        return parse_qs(urlsplit(uri).query)["secret"][0]

    assert secret() != secret()


@pytest.mark.parametrize("name", ["alice smith", "a" * 65, ".alice", "alice\n", "alice/bob", "[bold]x"])
def test_enroll_refuses_an_invalid_name_with_exit_2_and_makes_no_secret(env: Store, name: str) -> None:
    result = invoke("approvers", "enroll", name)
    assert result.exit_code == 2
    assert "is not a valid approver name" in flat(result.output)
    assert "otpauth://" not in result.output and "REMEDIATE_TOTP_" not in result.output


# -- who can approve --------------------------------------------------------------------------------------------


FACTORS = {"alice": {"totp_env": "KAMKM_TEST_TOTP_ALICE", "slack_user": "U0ALICE"},
           "bob": {"totp_env": "KAMKM_TEST_TOTP_BOB"},
           "carol": {"slack_user": "U0CAROL"}}


def rows(output: str) -> dict[str, tuple[str, str]]:
    """name -> (status, detail), from the fixed-width columns of `remediate approvers list`."""
    return {line[:20].strip(): (line[21:29].strip(), line[30:]) for line in output.splitlines() if line.strip()}


@pytest.mark.parametrize(("platform", "bare"), [("sim", "sim only"), ("aws", "refused"), ("vercel", "refused")])
def test_approvers_list_shows_each_approvers_status_from_the_env_configured_factors(
        env: Store, monkeypatch: pytest.MonkeyPatch, platform: str, bare: str) -> None:
    monkeypatch.setenv("REMEDIATE_PLATFORM", platform)
    monkeypatch.setenv("REMEDIATE_SIM_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("REMEDIATE_APPROVERS", "alice,bob,carol,dave")
    monkeypatch.setenv("REMEDIATE_APPROVER_FACTORS", json.dumps(FACTORS))
    monkeypatch.setenv("KAMKM_TEST_TOTP_ALICE", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    monkeypatch.delenv("KAMKM_TEST_TOTP_BOB", raising=False)
    result = invoke("approvers", "list")
    assert result.exit_code == 0, result.output
    listed = rows(result.output)
    assert list(listed) == ["alice", "bob", "carol", "dave"]
    assert listed["alice"] == ("ok", "TOTP (env KAMKM_TEST_TOTP_ALICE); Slack user U0ALICE")
    assert listed["bob"][0] == "failing" and "environment variable KAMKM_TEST_TOTP_BOB is not set" in listed["bob"][1]
    assert listed["carol"] == ("ok", "Slack user U0CAROL only (no TOTP: the form is refused)")
    assert listed["dave"][0] == bare
    assert "JBSWY3DP" not in result.output, "a secret is never printed"


def test_approvers_list_reads_the_approver_tables_of_remediate_toml(
        env: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "remediate.toml"
    config.write_text('platform = "aws"\n[approvers.alice]\ntotp = { env = "KAMKM_TEST_TOTP_ALICE" }\n'
                      '[approvers.bob]\n')
    monkeypatch.setenv("REMEDIATE_CONFIG", str(config))
    monkeypatch.delenv("REMEDIATE_APPROVERS")
    monkeypatch.setenv("KAMKM_TEST_TOTP_ALICE", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    listed = rows(invoke("approvers", "list").output)
    assert {name: status for name, (status, _) in listed.items()} == {"alice": "ok", "bob": "refused"}
    assert "remediate approvers enroll bob" in listed["bob"][1]


def test_a_step_past_its_deadline_is_shown_as_possibly_orphaned_not_as_due_in_zero_minutes(
        waiting: PendingStep) -> None:
    from remediation.cli_approvals import inbox_entry

    later = waiting.deadline + timedelta(minutes=5)
    text = flat(inbox_entry(waiting, later))
    assert "is its process alive?" in text and "in 0m00s" not in text
    assert "then it counts as deny" in flat(inbox_entry(waiting, waiting.requested_at))
