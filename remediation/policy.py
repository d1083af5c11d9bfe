"""Pure policy: may this plan be applied now, and on whose word?

``evaluate`` has no side effects and reads nothing but its arguments, so every rule is table-tested.
The gate that enforces the decision lives where plans are applied (``remediation.gate``).
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import (
    BlockActor,
    Decision,
    EnableMaintenance,
    Mode,
    Plan,
    RestartInstance,
    Risk,
    ScaleUp,
    Verdict,
)

#: Addresses no automatic block may touch unless configuration says otherwise: loopback, private and link-local
#: ranges are where our own load balancers, proxies and health checkers live (a blocked LB is a full outage).
DEFAULT_NEVER_BLOCK = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                       "::1/128", "fc00::/7", "fe80::/10")


#: The steps of a rolling restart. One run's drains and restarts count as one operation toward the hourly cap: a
#: restart of six instances is twelve steps, and counting each would let one routine restart spend the whole cap.
#: Instances get their own cap (``max_restart_instances_per_hour``). Restores are never counted: see below.
ROLLING_RESTART_KINDS = frozenset({"drain_instance", "restart_instance", "restore_instance"})
#: Putting an instance back into the load balancer undoes a drain, whatever incident drained it: it only adds
#: capacity, so no cap counts or stops it (a refused restore would leave the service short of an instance).
UNCOUNTED_KINDS = frozenset({"restore_instance"})


def continues_operation(plan: Plan, applied: list[Plan]) -> bool:
    """Whether ``plan`` is a further step of an operation this incident already started (and the cap counted): a
    rolling restart's next drain or restart after one of its drains or restarts was applied."""
    started = any(p.kind in ROLLING_RESTART_KINDS - UNCOUNTED_KINDS for p in applied)
    return plan.kind in ROLLING_RESTART_KINDS and started


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
    never_block: tuple[str, ...] = DEFAULT_NEVER_BLOCK
    max_block_ttl_s: int = 86_400
    min_block_prefix_v4: int = 24  # a block on a network broader than /24 (IPv4) or /64 (IPv6) is refused
    min_block_prefix_v6: int = 64
    evidence_confirmed: bool = True
    # Why no lever can carry the plan out now (remediation.levers.preflight), or None: such a step is denied
    # before a person is asked to approve it.
    lever_problem: str | None = None
    # The plan puts back a change its own incident made (remediation.models.undoes): the hourly cap never stops it.
    restores_own_change: bool = False
    # The plan is a further step of an operation the hourly cap already counted (:func:`continues_operation`).
    continues_counted_operation: bool = False
    restart_instances_last_hour: int = Field(default=0, ge=0)
    max_restart_instances_per_hour: int = 20


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
    if isinstance(plan, BlockActor):
        problems.extend(_block_problems(plan, ctx))
    return problems


def _block_problems(plan: BlockActor, ctx: PolicyContext) -> list[str]:
    problems: list[str] = []
    if plan.ttl_s > ctx.max_block_ttl_s:
        problems.append(f"block TTL {plan.ttl_s}s exceeds the cap of {ctx.max_block_ttl_s}s")
    if plan.actor_kind != "ip":
        return problems
    try:
        network = ipaddress.ip_network(plan.value.strip(), strict=False)
    except ValueError:
        return [*problems, f"{plan.value!r} is not an IP address or network"]
    floor = ctx.min_block_prefix_v4 if network.version == 4 else ctx.min_block_prefix_v6
    if network.prefixlen < floor:
        problems.append(f"{network} is broader than /{floor}: too much collateral to block automatically")
    for raw in ctx.never_block:
        protected = ipaddress.ip_network(raw, strict=False)
        if protected.version == network.version and network.overlaps(protected):
            problems.append(f"{network} overlaps the never-block range {protected}")
    return problems


def evaluate(plan: Plan, ctx: PolicyContext) -> Decision:
    """Decide ALLOW, NEEDS_APPROVAL or DENY for one plan. Denials list every reason, not only the first."""
    if plan.risk is Risk.OBSERVE:
        return Decision(verdict=Verdict.ALLOW, reasons=("read-only",))

    deny: list[str] = []
    if ctx.kill_switch:
        deny.append("kill switch is on: no mutations")
    if ctx.lever_problem:
        deny.append(ctx.lever_problem)
    if ctx.mode is Mode.DRY_RUN:
        deny.append("dry run: planned and recorded, nothing applied")
    if ctx.other_active_remediations:
        deny.append(f"one active remediation per service: {ctx.other_active_remediations} other run(s) active")
    counted = not (ctx.restores_own_change or ctx.continues_counted_operation or plan.kind in UNCOUNTED_KINDS)
    if counted and ctx.actions_last_hour >= ctx.max_actions_per_hour:
        deny.append(f"{ctx.actions_last_hour} actions in the last hour reached the cap of {ctx.max_actions_per_hour}")
    if isinstance(plan, RestartInstance) and ctx.restart_instances_last_hour >= ctx.max_restart_instances_per_hour:
        deny.append(f"{ctx.restart_instances_last_hour} instance restarts in the last hour reached the cap of "
                    f"{ctx.max_restart_instances_per_hour}")
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
