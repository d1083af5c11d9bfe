"""One decision for the whole rolling restart, taken before anything is drained.

Restarting an instance is destructive (its memory is lost), so policy wants a human for every ``RestartInstance``.
Asking once per instance would leave each instance drained, out of the load balancer, for as long as the question
waits, and page someone N times for one decision. Instead the run asks once, up front, with every instance and
batch listed; an approval (or configuration: ``REMEDIATE_PREAPPROVED`` containing ``restart_instance``, or a drill
of a service in ``REMEDIATE_DRILL_PREAPPROVED``) then pre-approves ``restart_instance`` for the rest of *this run
only*, and every restart still goes through policy, the gate and the ledger (``tasks.common.act.act``).

Asking before the drains also makes the pause safe to resume after our own restart: nothing has been changed when
the run waits, so running it again from the top (``remediation.orchestration.resumable``) repeats only reads, and
the same pause key finds the answer already given.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediation import policy
from remediation.incident import RunningIncident
from remediation.models import Approval, Phase, RestartInstance, Verdict
from tasks import step

RESTART = "restart_instance"


@dataclass(frozen=True)
class Go:
    """Whether the restarts may proceed; ``approval`` is the human answer when one was asked for."""

    proceed: bool
    why: str
    approval: Approval | None = None
    refused_by_policy: bool = False


def why_text(batches: list[list[str]], drill: bool, slo_text: str) -> str:
    """The question's "why": what approving covers, since the form shows one restart's plan."""
    count = sum(len(batch) for batch in batches)
    order = " then ".join("+".join(batch) for batch in batches)
    return (f"{'drill: ' if drill else ''}rolling restart of {count} instance(s), in this order: {order}. Each batch "
            "is drained (in-flight requests finish), restarted, put back once healthy, and the next waits until "
            f"the service is stable ({slo_text}); an SLO breach stops it and puts drained instances back. "
            "Approving covers every restart of this run; nothing is drained until you answer")


@step(name="remediate: approve the rolling restart")
async def approve_restarts(incident: RunningIncident, batches: list[list[str]], *, drill: bool,
                           slo_text: str) -> Go:
    """Policy for a restart; ask once if it needs a human; pre-approve the restarts of this run on a yes."""
    providers = incident.providers
    settings = providers.settings
    first = RestartInstance(service=incident.report.service, instance_id=batches[0][0], drained=True,
                            reason="rolling restart")
    decision = policy.evaluate(first, incident.policy_context(evidence_confirmed=True))
    if decision.verdict is Verdict.DENY:
        return Go(False, "; ".join(decision.reasons), refused_by_policy=True)
    if decision.verdict is Verdict.ALLOW:
        return Go(True, "; ".join(decision.reasons))
    if drill and incident.report.service in settings.drill_preapproved:
        _preapprove(incident)
        why = f"a drill of {incident.report.service}, which REMEDIATE_DRILL_PREAPPROVED pre-approves: no approval asked"
        incident.note(Phase.REMEDIATE, "restarts pre-approved for this drill", why)
        return Go(True, why)
    # RunningIncident's own question (form, notifications, escalation ladder, ledger of answers), asked once about
    # the first restart with the whole plan as its reason.
    final = await incident._ask(Phase.REMEDIATE, first, decision.reasons, why_text(batches, drill, slo_text))
    if not final.granted:
        return Go(False, f"not approved ({final.answer.value}{': ' + final.reason if final.reason else ''})", final)
    _preapprove(incident)
    why = f"approved by {final.approver} for every restart of this run"
    incident.note(Phase.REMEDIATE, "restarts approved", why)
    return Go(True, why, final)


def _preapprove(incident: RunningIncident) -> None:
    """``restart_instance`` pre-approved for this run's policy decisions only (a copy of the settings)."""
    settings = incident.providers.settings
    if RESTART not in settings.preapproved:
        changed = settings.model_copy(update={"preapproved": [*settings.preapproved, RESTART]})
        incident.providers = incident.providers.with_(settings=changed)
