"""One mutation as one named step, so the run graph shows each action under its phase."""

from __future__ import annotations

from remediation.incident import RunningIncident
from remediation.models import ActionRecord, Phase, Plan
from tasks import step


@step(name="act")
async def _act(incident: RunningIncident, phase: Phase, plan: Plan, evidence_confirmed: bool, why: str
               ) -> ActionRecord:
    return await incident.act(phase, plan, evidence_confirmed=evidence_confirmed, why=why)


async def act(incident: RunningIncident, phase: Phase, plan: Plan, *, evidence_confirmed: bool,
              why: str = "") -> ActionRecord:
    """Policy → approval pause if needed → gate → ledger, as a task named ``<phase>: <plan>``."""
    named = _act.with_options(name=f"{phase.value}: {plan.kind.replace('_', ' ')}")
    return await named(incident, phase, plan, evidence_confirmed, why)
