"""Pure policy: may this plan be applied now, and on whose word?

``evaluate`` has no side effects and reads nothing but its arguments, so every rule is table-tested.
The gate that enforces the decision lives where plans are applied (``remediation.gate``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import Decision, EnableMaintenance, Mode, Plan, Risk, ScaleUp, Verdict


class PolicyContext(BaseModel):
    model_config = ConfigDict(frozen=True)

    mode: Mode
    preapproved_kinds: frozenset[str] = frozenset()
    kill_switch: bool = False
    other_active_remediations: int = Field(default=0, ge=0)
    actions_last_hour: int = Field(default=0, ge=0)
    max_actions_per_hour: int = 10
    max_maintenance_prefixes: int = 5
    max_replicas: int = 20
    max_scale_factor: float = 3.0
    evidence_confirmed: bool = True


def _blast_radius(plan: Plan, ctx: PolicyContext) -> list[str]:
    problems: list[str] = []
    if isinstance(plan, EnableMaintenance) and len(plan.path_prefixes) > ctx.max_maintenance_prefixes:
        problems.append(
            f"maintenance on {len(plan.path_prefixes)} prefixes exceeds the cap of {ctx.max_maintenance_prefixes}"
        )
    if isinstance(plan, ScaleUp):
        if plan.to_replicas > ctx.max_replicas:
            problems.append(f"{plan.to_replicas} replicas exceeds the cap of {ctx.max_replicas}")
        base = max(plan.from_replicas, 1)
        if plan.to_replicas / base > ctx.max_scale_factor:
            problems.append(f"scale factor {plan.to_replicas / base:.1f} exceeds the cap of {ctx.max_scale_factor}")
    return problems


def evaluate(plan: Plan, ctx: PolicyContext) -> Decision:
    """Decide ALLOW, NEEDS_APPROVAL or DENY for one plan. Denials list every reason, not only the first."""
    if plan.risk is Risk.OBSERVE:
        return Decision(verdict=Verdict.ALLOW, reasons=("read-only",))

    deny: list[str] = []
    if ctx.kill_switch:
        deny.append("kill switch is on: no mutations")
    if ctx.mode is Mode.DRY_RUN:
        deny.append("dry run: planned and recorded, nothing applied")
    if ctx.other_active_remediations:
        deny.append(f"one active remediation per service: {ctx.other_active_remediations} other run(s) active")
    if ctx.actions_last_hour >= ctx.max_actions_per_hour:
        deny.append(f"{ctx.actions_last_hour} actions in the last hour reached the cap of {ctx.max_actions_per_hour}")
    if plan.risk is Risk.DESTRUCTIVE and not ctx.evidence_confirmed:
        deny.append("destructive step without confirmed evidence")
    deny.extend(_blast_radius(plan, ctx))
    if deny:
        return Decision(verdict=Verdict.DENY, reasons=tuple(deny))

    if plan.risk is Risk.DESTRUCTIVE:
        if plan.kind in ctx.preapproved_kinds:
            return Decision(verdict=Verdict.ALLOW, reasons=(f"{plan.kind} is pre-approved by configuration",))
        return Decision(verdict=Verdict.NEEDS_APPROVAL, reasons=("destructive: a human must approve",))
    if ctx.mode is Mode.AUTO:
        return Decision(verdict=Verdict.ALLOW, reasons=("reversible, within policy, auto mode",))
    return Decision(verdict=Verdict.NEEDS_APPROVAL, reasons=("approve mode: every mutation waits for a human",))
