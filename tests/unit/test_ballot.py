"""StepBallot, the run's judge of each answer to one waiting step, against a real SQLite store and a fixed clock.

Every answer is recorded through ``on_answer`` (here: into the store, as the run does, and into a list), counted or
refused; a refused answer never decides the step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from remediation import approvers, slack_proof
from remediation.approvers import ApproverFactor
from remediation.ballot import StepBallot
from remediation.models import Alert, Approval, ApprovalAnswer, Mode, Severity
from remediation.providers.approvals import TIMEOUT_APPROVER, Answer
from remediation.providers.clock import VirtualClock
from remediation.settings import Settings
from remediation.store import PendingStep, Store

T0 = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)  # 10 s into a 30 s TOTP step
INCIDENT = "inc-ballot"
RUN_ID = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
DIGEST = "0123456789abcdef0123456789abcdef"
ALICE_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
BOB_SECRET = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
ALICE_ENV = "KAMKM_TEST_TOTP_ALICE"
BOB_ENV = "KAMKM_TEST_TOTP_BOB"
ALICE_SLACK = "U024ALICE"
SLACK_SECRET = "slack-signing-secret-for-ballot-tests"
SIM_URL = "http://127.0.0.1:9"  # required with platform sim (Settings._simulator_named); never contacted here


def binding(action_id: str = "act-1") -> str:
    return approvers.step_binding(INCIDENT, action_id, DIGEST)


def settings(platform: str = "aws", **overrides: Any) -> Settings:
    """alice and bob enrolled with TOTP (alice also in Slack); carol listed without a factor."""
    values: dict[str, Any] = {
        "platform": platform,
        "approvers": ["alice", "bob", "carol"],
        "approver_factors": {"alice": ApproverFactor(totp_env=ALICE_ENV, slack_user=ALICE_SLACK),
                             "bob": ApproverFactor(totp_env=BOB_ENV)},
        "slack_signing_secret": SLACK_SECRET,
        **overrides,
    }
    if platform == "sim":
        values.setdefault("sim_url", SIM_URL)
    return Settings(**values)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No REMEDIATE_* variable or ./remediate.toml leaks into Settings; the TOTP secrets are in the environment."""
    for name in [n for n in os.environ if n.startswith("REMEDIATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ALICE_ENV, ALICE_SECRET)
    monkeypatch.setenv(BOB_ENV, BOB_SECRET)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'state' / 'remediate.db'}")
    s.migrate()
    s.open_incident(incident_id=INCIDENT, runbook="elevated-error-rate", service="kamkmserve",
                    severity=Severity.SEV1, mode=Mode.APPROVE, flow_run_id=RUN_ID,
                    alert=Alert(name="HighErrorRate", service="kamkmserve"))
    yield s
    s.dispose()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


class Judge:
    """A ballot for one step whose ``on_answer`` records into the store (as the run does) and into ``seen``."""

    def __init__(self, step: PendingStep, settings: Settings, store: Store, clock: VirtualClock) -> None:
        self.seen: list[Approval] = []
        self.store = store

        def on_answer(verdict: Approval) -> None:
            store.record_approval(step.incident_id, verdict, action_id=step.action_id)
            self.seen.append(verdict)

        self.ballot = StepBallot(step, settings=settings, store=store, clock=clock, on_answer=on_answer)

    def answer(self, approver: str, *, approve: bool = True, code: str = "", step: str | None = None,
               slack: str = "", reason: str = "") -> Approval:
        return self.ballot.judge(Answer(approve=approve, approver=approver, code=code, reason=reason,
                                        step=self.ballot.step.step if step is None else step, slack=slack,
                                        answer_id=f"ans-{len(self.seen) + 1}"))

    def refused(self, verdict: Approval, why: str) -> None:
        """Refused for ``why``, seen by on_answer and in the store, and the step is still undecided."""
        assert verdict.answer is ApprovalAnswer.REFUSED, verdict
        assert why in verdict.reason, verdict.reason
        assert self.seen[-1] == verdict, "on_answer saw the refusal"
        assert self.store.approvals(INCIDENT)[-1].answer is ApprovalAnswer.REFUSED
        assert self.ballot.decided is None


MakeJudge = Callable[..., Judge]


@pytest.fixture
def judge(store: Store, clock: VirtualClock) -> MakeJudge:
    """``judge(needed=1, platform="aws", action_id="act-1", **settings)``: a ballot for a step waiting in the store."""

    def make(*, needed: int = 1, platform: str = "aws", action_id: str = "act-1", **overrides: Any) -> Judge:
        step = PendingStep(
            action_id=action_id, incident_id=INCIDENT, flow_run_id=RUN_ID, step=binding(action_id),
            runbook="elevated-error-rate", service="kamkmserve", severity="sev1", phase="remediate",
            summary="roll back kamkmserve to r41", risk="destructive", why="5xx after deploy r42", evidence=(),
            undo="roll forward to r42", statement=None, needed=needed, requested_at=T0,
            deadline=T0 + timedelta(minutes=15))
        store.open_pending(step)
        return Judge(step, settings(platform, **overrides), store, clock)

    return make


def code(secret: str = ALICE_SECRET, offset_s: float = 0) -> str:
    return approvers.code_at(secret, T0 + timedelta(seconds=offset_s))


# -- names without a factor ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("platform", "counted"), [("sim", True), ("aws", False), ("vercel", False)])
def test_a_listed_name_without_a_factor_counts_on_the_simulator_platform_only(
        judge: MakeJudge, platform: str, counted: bool) -> None:
    j = judge(platform=platform)
    verdict = j.answer("carol")
    if counted:
        assert verdict.answer is ApprovalAnswer.APPROVED and verdict.approver == "carol"
        assert j.ballot.decided is not None and j.ballot.decided.approver == "carol"
        assert j.seen == [verdict]
    else:
        j.refused(verdict, "a bare name is believed only on the simulator platform")
        assert "remediate approvers enroll carol" in verdict.reason


def test_a_name_not_on_the_list_is_refused_even_on_the_simulator(judge: MakeJudge) -> None:
    j = judge(platform="sim")
    j.refused(j.answer("mallory"), "'mallory' is not on the approver list")


# -- TOTP ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "why"), [
    ("", "no code: 'alice' is enrolled"),
    (code(offset_s=-60), "wrong or expired code"),
    (code(offset_s=60), "wrong or expired code"),
    (code(BOB_SECRET), "wrong or expired code"),
], ids=["no-code", "two-steps-before", "two-steps-after", "someone-elses-code"])
def test_an_enrolled_approver_without_a_current_code_is_refused(judge: MakeJudge, given: str, why: str) -> None:
    assert given not in {code(offset_s=-30), code(), code(offset_s=30)}, "the fixture must not collide by chance"
    j = judge()
    j.refused(j.answer("alice", code=given), why)


@pytest.mark.parametrize("offset_s", [-30, 0, 30], ids=["one-step-before", "now", "one-step-after"])
def test_an_enrolled_approver_is_counted_with_the_code_of_now_or_one_step_either_side(
        judge: MakeJudge, offset_s: int) -> None:
    j = judge()
    verdict = j.answer("alice", code=code(offset_s=offset_s))
    assert verdict.answer is ApprovalAnswer.APPROVED and verdict.approver == "alice" and verdict.via == "form"
    assert j.ballot.decided is not None and j.ballot.decided.answer is ApprovalAnswer.APPROVED
    assert j.seen == [verdict]


def test_codes_are_checked_on_the_proof_clock_not_on_a_run_clock_that_stood_still(
        store: Store, clock: VirtualClock) -> None:
    """A run on virtual time sees its clock stand still while it is paused; the approver's authenticator keeps real
    time. Judged on the proof clock, the code of that clock's now counts, and one of the run's now is refused."""
    step = PendingStep(
        action_id="act-p", incident_id=INCIDENT, flow_run_id=RUN_ID, step=binding("act-p"),
        runbook="elevated-error-rate", service="kamkmserve", severity="sev1", phase="remediate",
        summary="roll back kamkmserve to r41", risk="destructive", why="5xx after deploy r42", evidence=(),
        undo="roll forward to r42", statement=None, needed=1, requested_at=T0, deadline=T0 + timedelta(minutes=15))
    store.open_pending(step)
    real_time = VirtualClock(T0 + timedelta(minutes=10))  # the wall clock, ten minutes after the run's clock stopped
    ballot = StepBallot(step, settings=settings("aws"), store=store, clock=clock, on_answer=lambda _: None,
                        proof_clock=real_time)

    def answer(when: datetime) -> Approval:
        return ballot.judge(Answer(approve=True, approver="alice", code=approvers.code_at(ALICE_SECRET, when),
                                   reason="", step=step.step, slack="", answer_id="ans-p"))

    stale = answer(clock.now())
    assert stale.answer is ApprovalAnswer.REFUSED and "wrong or expired code" in stale.reason, stale
    current = answer(real_time.now())
    assert current.answer is ApprovalAnswer.APPROVED and current.at == clock.now(), "dated on the run's clock"


def test_an_unreadable_totp_secret_refuses_the_answer_and_names_the_variable_not_a_value(
        judge: MakeJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALICE_ENV)
    j = judge()
    verdict = j.answer("alice", code=code())
    j.refused(verdict, f"the code cannot be checked (approvers.alice.totp: environment variable {ALICE_ENV}")


def test_a_code_counts_once_per_approver_and_is_refused_as_used_even_by_a_ballot_for_another_step(
        judge: MakeJudge) -> None:
    first = judge(needed=2)
    assert first.answer("alice", code=code()).answer is ApprovalAnswer.APPROVED
    first.refused(first.answer("alice", code=code()), "this code was already used")

    other = judge(needed=2, action_id="act-2")  # a new step, a new ballot: the proof is spent in the store
    other.refused(other.answer("alice", code=code()), "this code was already used")
    assert other.ballot.approved_by == []


def test_the_same_time_step_counts_once_for_each_of_two_different_approvers(judge: MakeJudge) -> None:
    j = judge(needed=2)
    assert approvers.matching_counter(ALICE_SECRET, code(), T0) == approvers.matching_counter(BOB_SECRET, code(
        BOB_SECRET), T0)
    assert j.answer("alice", code=code()).answer is ApprovalAnswer.APPROVED
    assert j.answer("bob", code=code(BOB_SECRET)).answer is ApprovalAnswer.APPROVED
    assert j.ballot.decided is not None and j.ballot.decided.approver == "alice, bob"


# -- what a name may be -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a" * 256, "alice" + "x" * 60, "é" * 256], ids=["256-chars", "65-chars", "unicode"])
def test_an_overlong_name_is_refused_and_recorded_shortened_so_the_store_can_hold_it(
        judge: MakeJudge, store: Store, name: str) -> None:
    j = judge(platform="sim")
    verdict = j.answer(name)
    j.refused(verdict, "is not a valid approver name")
    assert len(verdict.approver) <= 65 and verdict.approver == name[:64]
    assert f"({len(name)} characters)" in verdict.reason
    assert store.approvals(INCIDENT)[-1].approver == verdict.approver  # record_approval did not raise


@pytest.mark.parametrize("name", ["alice\nbob", "alice\rapproved by bob", "ali\x1b[31mce", "alice\u2028bob",
                                  "alice\x00"], ids=["newline", "carriage-return", "escape", "line-separator", "nul"])
def test_a_name_with_a_control_character_is_refused_and_recorded_without_it(judge: MakeJudge, name: str) -> None:
    j = judge(platform="sim")
    verdict = j.answer(name)
    j.refused(verdict, "is not a valid approver name")
    assert verdict.approver.isprintable() and "\n" not in verdict.approver
    assert "\n" not in verdict.reason


@pytest.mark.parametrize("name", ["", "   "], ids=["empty", "blank"])
def test_an_answer_without_a_name_is_refused_as_no_name(judge: MakeJudge, name: str) -> None:
    j = judge(platform="sim")
    verdict = j.answer(name)
    j.refused(verdict, "'(no name)' (0 characters) is not a valid approver name")


# -- the step an answer is for ------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [binding("act-other"), approvers.step_binding("inc-other", "act-1", DIGEST),
                                  approvers.step_binding(INCIDENT, "act-1", "f" * 32), ""],
                         ids=["other-action", "other-incident", "other-plan", "no-step"])
def test_an_answer_for_another_step_is_refused_even_with_a_valid_code(judge: MakeJudge, step: str) -> None:
    j = judge()
    j.refused(j.answer("alice", code=code(), step=step), "not the step waiting here")


# -- how many must agree ------------------------------------------------------------------------------------------


def test_two_distinct_approvals_are_needed_when_needed_is_two_and_the_final_answer_names_both(
        judge: MakeJudge, store: Store, clock: VirtualClock) -> None:
    j = judge(needed=2)
    first = j.answer("alice", code=code(), reason="INC-7")
    assert first.answer is ApprovalAnswer.APPROVED and first.reason == "1 of 2: 1 more approval needed; INC-7"
    assert j.ballot.decided is None
    assert store.pending_steps()[0].approved_by == ("alice",)

    clock.advance(30)  # a fresh code from alice: still the same person
    j.refused(j.answer("alice", code=code(offset_s=30)), "'alice' already approved this step; 1 more approval needed")

    last = j.answer("bob", code=code(BOB_SECRET, offset_s=30), reason="agreed")
    assert last.answer is ApprovalAnswer.APPROVED and last.approver == "bob" and last.reason == "2 of 2; agreed"
    decided = j.ballot.decided
    assert decided is not None and decided.answer is ApprovalAnswer.APPROVED and decided.approver == "alice, bob"
    assert store.pending_steps()[0].approved_by == ("alice", "bob")
    assert [(a.answer.value, a.approver) for a in store.approvals(INCIDENT)] == [
        ("approved", "alice"), ("refused", "alice"), ("approved", "bob")]


def test_the_same_approver_approving_twice_is_not_counted_twice(judge: MakeJudge) -> None:
    j = judge(needed=2, platform="sim")
    assert j.answer("carol").answer is ApprovalAnswer.APPROVED
    j.refused(j.answer("carol"), "'carol' already approved this step")
    assert j.ballot.approved_by == ["carol"]


def test_a_deny_is_final_even_after_an_approval_and_a_later_approval_does_not_reverse_it(judge: MakeJudge) -> None:
    j = judge(needed=2, platform="sim")
    assert j.answer("alice", code=code()).answer is ApprovalAnswer.APPROVED
    deny = j.answer("carol", approve=False, reason="not during the sale")
    assert deny.answer is ApprovalAnswer.DENIED and deny.approver == "carol"
    assert j.ballot.decided == deny

    late = j.answer("bob", code=code(BOB_SECRET))
    assert late.answer is ApprovalAnswer.REFUSED and "already decided" in late.reason
    assert j.ballot.decided == deny and j.seen[-1] == late


def test_an_approval_that_decided_the_step_is_not_reversed_by_a_later_deny(judge: MakeJudge) -> None:
    j = judge(platform="sim")
    approved = j.answer("carol")
    assert j.ballot.decided == approved
    late = j.answer("alice", approve=False, code=code())
    assert late.answer is ApprovalAnswer.REFUSED and late.reason == "this step was already decided (approved by carol)"
    assert j.ballot.decided == approved and j.seen == [approved, late]


def test_a_timeout_is_a_recorded_deny_that_says_how_many_approvals_came(judge: MakeJudge, store: Store) -> None:
    j = judge(needed=2)
    j.answer("alice", code=code())
    final = j.ballot.timed_out()
    assert final.answer is ApprovalAnswer.TIMEOUT and final.approver == TIMEOUT_APPROVER and final.at == T0
    assert final.reason == "no approval within 900s; 1 of 2 approvals came: treated as deny"
    assert j.ballot.decided == final and j.seen[-1] == final
    assert store.approvals(INCIDENT)[-1].answer is ApprovalAnswer.TIMEOUT


def test_a_timeout_without_any_approval_says_none_came(judge: MakeJudge) -> None:
    j = judge()
    assert j.ballot.timed_out().reason == "no approval within 900s: treated as deny"


# -- Slack ----------------------------------------------------------------------------------------------------------


def slack_click(*, user_id: str = ALICE_SLACK, step: str | None = None, run: str = RUN_ID,
                action_id: str = slack_proof.APPROVE_ACTION, at: float = T0.timestamp(),
                secret: str = SLACK_SECRET, action_ts: str = "1772366410.000100") -> str:
    """A signed Approve/Deny click as serve forwards it (SignedRequest.dumps)."""
    payload = {"type": "block_actions", "user": {"id": user_id, "username": "alice"}, "trigger_id": "8174.3012.5d3c",
               "actions": [{"type": "button", "action_id": action_id, "action_ts": action_ts,
                            "value": slack_proof.button_value(run, binding() if step is None else step)}]}
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(at))
    return slack_proof.SignedRequest(timestamp, slack_proof.sign(secret, timestamp, body), body).dumps()


def test_a_signed_click_from_an_enrolled_slack_user_counts_as_that_approver_whatever_the_name_field_says(
        judge: MakeJudge) -> None:
    j = judge()
    verdict = j.answer("bob", approve=False, slack=slack_click())  # the click's own action decides: Approve
    assert verdict.answer is ApprovalAnswer.APPROVED and verdict.approver == "alice" and verdict.via == "slack"
    assert "Slack alice" in verdict.reason
    assert j.ballot.decided is not None and j.ballot.decided.approver == "alice"


def test_a_signed_deny_click_is_a_final_deny(judge: MakeJudge) -> None:
    j = judge()
    verdict = j.answer("alice", slack=slack_click(action_id=slack_proof.DENY_ACTION))
    assert verdict.answer is ApprovalAnswer.DENIED and j.ballot.decided == verdict


@pytest.mark.parametrize(("click", "who", "why"), [
    (lambda: slack_click(secret="not-the-app-secret"), "slack", "Slack: the Slack signature does not match"),
    (lambda: slack_click(at=T0.timestamp() - 301), "slack", "Slack: the Slack request is stale: signed 301s ago"),
    (lambda: slack_click(at=T0.timestamp() + 301), "slack", "Slack: the Slack request is stale"),
    (lambda: "{not a signed request", "slack", "Slack: the Slack proof is not a signed request"),
    (lambda: slack_click(user_id="U0MALLORY"), "slack:U0MALLORY", "Slack user U0MALLORY is not an enrolled approver"),
    (lambda: slack_click(step=binding("act-other")), "alice", "the Slack button is for step"),
    (lambda: slack_click(run="00000000-0000-4000-8000-000000000000"), "alice", "the Slack button is for step"),
], ids=["bad-signature", "stale-301s", "from-the-future", "not-signed", "unknown-user", "other-step", "other-run"])
def test_a_slack_click_that_proves_nothing_for_this_step_is_refused(
        judge: MakeJudge, click: Callable[[], str], who: str, why: str) -> None:
    j = judge()
    verdict = j.answer("alice", slack=click())
    j.refused(verdict, why)
    assert verdict.approver == who and verdict.via == "slack"


def test_a_slack_click_is_refused_when_the_run_has_no_signing_secret(judge: MakeJudge) -> None:
    j = judge(slack_signing_secret=None)
    j.refused(j.answer("alice", slack=slack_click()), "no Slack signing secret is configured")


def test_the_same_slack_click_twice_is_refused_as_already_counted(judge: MakeJudge) -> None:
    j = judge(needed=2)
    click = slack_click()
    assert j.answer("alice", slack=click).answer is ApprovalAnswer.APPROVED
    j.refused(j.answer("alice", slack=click), "this Slack click was already counted")
    assert j.ballot.approved_by == ["alice"]
