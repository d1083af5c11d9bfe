"""The run's judge of the answers to one pending step: identity, proof, binding, and how many must agree.

Everything is checked here, inside the run, with the server's configuration: whoever answers (the Prefect UI,
``remediate approve``, a Slack click forwarded by ``serve``, or anyone else who reaches the Prefect API) only
carries an answer. An answer counts when, in this order:

1. its name is a plausible approver name (short, no control characters: the store can always record it);
2. it names this step (incident, action and plan digest): an answer meant for another step or incident is refused;
3. it proves who sent it: a Slack request signed with the app's signing secret, from a Slack user enrolled as an
   approver; or a name on the allow-list with a TOTP code valid now (±1 step) and never used before by that
   approver; or, on the simulator platform only, a listed name without a factor;
4. it is a deny (final), or an approval from someone who has not approved this step yet. The step is approved
   once ``needed`` distinct people approved it.

Every answer is recorded with its verdict and reason (``on_answer``), counted or refused; a refused answer
applies nothing and the run waits again.
"""

from __future__ import annotations

from collections.abc import Callable

from remediation import approvers, slack_proof
from remediation.models import Approval, ApprovalAnswer
from remediation.providers.approvals import TIMEOUT_APPROVER, Answer
from remediation.providers.capabilities import Clock
from remediation.settings import Settings
from remediation.store import PendingStep, Store


class StepBallot:
    def __init__(self, step: PendingStep, *, settings: Settings, store: Store, clock: Clock,
                 on_answer: Callable[[Approval], None], proof_clock: Clock | None = None) -> None:
        """``clock``: the run's, which dates the answers. ``proof_clock``: what a TOTP code and a Slack signature's
        stamp are checked against; a run gives the wall clock, whatever its own clock is (an authenticator and Slack
        keep real time, while a run on the simulator's virtual time sees it stand still during a pause). Defaults to
        ``clock``, for callers that pin time."""
        self.step = step
        self._settings = settings
        self._store = store
        self._clock = clock
        self._proof_clock = proof_clock or clock
        self._on_answer = on_answer
        self.approved_by: list[str] = []
        self._decided: Approval | None = None

    @property
    def decided(self) -> Approval | None:
        return self._decided

    def judge(self, answer: Answer) -> Approval:
        verdict = self._verdict(answer)
        self._on_answer(verdict)
        return verdict

    def timed_out(self) -> Approval:
        timeout_s = (self.step.deadline - self.step.requested_at).total_seconds()
        got = f"; {len(self.approved_by)} of {self.step.needed} approvals came" if self.approved_by else ""
        final = Approval(answer=ApprovalAnswer.TIMEOUT, approver=TIMEOUT_APPROVER, at=self._clock.now(),
                         reason=f"no approval within {timeout_s:g}s{got}: treated as deny")
        self._decided = final
        self._on_answer(final)
        return final

    # -- the rules ------------------------------------------------------------------------------------------

    def _verdict(self, answer: Answer) -> Approval:
        name = answer.approver.strip()
        reason = answer.reason.strip()[: approvers.REASON_MAX]
        via = "slack" if answer.slack else "form"

        def refuse(why: str, who: str = name) -> Approval:
            return self._record(ApprovalAnswer.REFUSED, who, f"{why}; {reason}".strip("; "), answer, via)

        if answer.slack:
            return self._slack(answer, reason, refuse)
        if not approvers.valid_name(name):
            shown = approvers.shown(name, approvers.NAME_MAX) or "(no name)"
            return refuse(f"'{shown}' ({len(name)} characters) is not a valid approver name: "
                          f"letters, digits and . _ @ -, at most {approvers.NAME_MAX}", shown)
        if answer.step != self.step.step:
            named = approvers.shown(answer.step, 80) or "(none)"
            return refuse(f"the answer is for step '{named}', not the step waiting here ('{self.step.step}')")
        if name not in self._settings.approvers:
            return refuse(f"'{name}' is not on the approver list")
        problem = self._factor_problem(name, answer.code)
        if problem:
            return refuse(problem)
        return self._count(name, answer.approve, reason, answer, via)

    def _factor_problem(self, name: str, code: str) -> str | None:
        factor = self._settings.approver_factors.get(name, approvers.ApproverFactor())
        if factor.totp_ref(name) is None:
            if self._settings.platform == "sim":
                return None
            how = "answer with the Slack buttons" if factor.slack_user else \
                f"enrol a code with `remediate approvers enroll {name}`"
            return (f"'{name}' has no second factor, and a bare name is believed only on the simulator platform: "
                    f"{how}")
        if not code:
            return f"no code: '{name}' is enrolled and must give the current code from their authenticator"
        secret, why_not = approvers.totp_secret(name, factor)
        if secret is None:
            return f"the code cannot be checked ({why_not})"
        counter = approvers.matching_counter(secret, code, self._proof_clock.now())
        if counter is None:
            return "wrong or expired code"
        if not self._store.claim_proof(name, f"totp:{counter}", self.step.incident_id, self._proof_clock.now()):
            return "this code was already used: each code counts once (a replayed answer is refused)"
        return None

    def _slack(self, answer: Answer, reason: str, refuse: Callable[..., Approval]) -> Approval:
        try:
            request = slack_proof.SignedRequest.loads(answer.slack)
            click = slack_proof.verify(request, self._settings.slack.signing_secret,
                                       self._proof_clock.now().timestamp())
        except slack_proof.SlackProofError as exc:
            return refuse(f"Slack: {exc}", "slack")
        name = next((n for n, f in self._settings.approver_factors.items() if f.slack_user == click.user_id), None)
        if name is None or name not in self._settings.approvers:
            return refuse(f"Slack user {click.user_id} is not an enrolled approver ([approvers.NAME] slack_user)",
                          f"slack:{click.user_id}"[: approvers.NAME_MAX])
        other_run = self.step.flow_run_id is not None and click.flow_run_id != self.step.flow_run_id
        if click.step != self.step.step or other_run:
            return refuse(f"the Slack button is for step '{click.step}', not the step waiting here "
                          f"('{self.step.step}')", name)
        if not self._store.claim_proof(name, click.proof_id[:128], self.step.incident_id, self._proof_clock.now()):
            return refuse("this Slack click was already counted (a replayed request is refused)", name)
        return self._count(name, click.approve, reason or f"Slack {click.user_name or click.user_id}", answer,
                           "slack")

    def _count(self, name: str, approve: bool, reason: str, answer: Answer, via: str) -> Approval:
        if self._decided is not None:  # a deny (or the last approval) is final: a later answer changes nothing
            return self._record(ApprovalAnswer.REFUSED, name, f"this step was already decided "
                                f"({self._decided.answer.value} by {self._decided.approver})", answer, via)
        if not approve:
            return self._final(self._record(ApprovalAnswer.DENIED, name, reason, answer, via))
        if name in self.approved_by:
            return self._record(ApprovalAnswer.REFUSED, name,
                                f"'{name}' already approved this step; {self._still()} from someone else", answer, via)
        self.approved_by.append(name)
        self._store.note_pending_approval(self.step.action_id, tuple(self.approved_by))
        count = f"{len(self.approved_by)} of {self.step.needed}"
        if len(self.approved_by) < self.step.needed:
            return self._record(ApprovalAnswer.APPROVED, name, f"{count}: {self._still()}; {reason}".strip("; "),
                                answer, via)
        recorded = self._record(ApprovalAnswer.APPROVED, name, f"{count}; {reason}".strip("; "), answer, via)
        self._decided = recorded.model_copy(update={"approver": ", ".join(self.approved_by)})
        return recorded

    def _final(self, approval: Approval) -> Approval:
        self._decided = approval
        return approval

    def _still(self) -> str:
        missing = self.step.needed - len(self.approved_by)
        return f"{missing} more approval{'s' if missing != 1 else ''} needed"

    def _record(self, verdict: ApprovalAnswer, who: str, reason: str, answer: Answer, via: str) -> Approval:
        return Approval(answer=verdict, approver=who, reason=reason[: approvers.REASON_MAX + 200],
                        at=self._clock.now(), answer_id=answer.answer_id[: approvers.ANSWER_ID_MAX], via=via)

