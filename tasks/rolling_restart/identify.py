"""Identify and plan for the rolling-restart runbook: the instances, the load balancer, the batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from remediation.models import Evidence, Finding, FindingStatus
from remediation.providers.instances import LoadBalancerStatus, uptime_s
from remediation.providers.platform import Instance
from remediation.runtime import Providers
from tasks import step

DRAIN_MARGIN_S = 30.0  # beyond the deregistration delay, for the load balancer to report the target unused


@dataclass(frozen=True)
class Fleet:
    """The instances as the load balancer saw them at the start, and its settings (None: not readable)."""

    instances: tuple[Instance, ...]
    lb: LoadBalancerStatus | None
    error: str = ""

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.instances]

    @property
    def not_in_service(self) -> list[Instance]:
        return [i for i in self.instances if i.state != "healthy"]


@step(name="identify: instances and load balancer")
async def read_fleet(providers: Providers, service: str) -> Fleet:
    if providers.instances is None:
        return Fleet((), None, f"{providers.no_lever('instances')} (kamkmserve on Vercel has no instances to "
                     "restart and no drain)")
    try:
        instances = tuple(sorted(await providers.instances.instances(service), key=lambda i: i.id))
    except Exception as exc:
        return Fleet((), None, f"the instances could not be listed: {type(exc).__name__}: {exc}")
    lb = None
    if providers.instance_metrics is not None:
        try:
            lb = await providers.instance_metrics.load_balancer(service)
        except Exception as exc:
            return Fleet(instances, None, f"the load balancer could not be read: {type(exc).__name__}: {exc}")
    return Fleet(instances, lb)


def fleet_finding(fleet: Fleet) -> Finding:
    """Every instance in service: the precondition of taking any one out."""
    if fleet.error:
        return Finding(check="instances_in_service", status=FindingStatus.UNKNOWN, detail=fleet.error)
    total = len(fleet.instances)
    missing = fleet.not_in_service
    detail = ", ".join(f"{i.id} {i.state}" + (f" ({i.detail})" if i.detail else "") for i in fleet.instances)
    status = FindingStatus.BREACH if missing or not total else FindingStatus.OK
    return Finding(check="instances_in_service", status=status, observed=total - len(missing), threshold=total,
                   unit="instances", detail=detail or "no instances")


def budget_finding(providers: Providers, service: str, instances: int) -> Finding:
    """Room under the hourly caps for the whole restart: one operation under
    ``REMEDIATE_MAX_ACTIONS_PER_SERVICE_PER_HOUR`` (all of a run's drains and restarts count once) and every instance
    under ``REMEDIATE_MAX_RESTART_INSTANCES_PER_HOUR``. Checked before anything is touched: a cap would otherwise stop
    the run half-way. ``observed``: instances to restart; ``threshold``: instances the caps leave room for."""
    settings = providers.settings
    since = providers.clock.now() - timedelta(hours=1)
    operations = providers.store.changes_applied_since(service, since)
    restarted = providers.store.instances_restarted_since(service, since)
    cap, instance_cap = settings.max_actions_per_service_per_hour, settings.max_restart_instances_per_hour
    left = max(instance_cap - restarted, 0) if operations < cap else 0
    return Finding(check="action_budget", status=FindingStatus.OK if instances <= left else FindingStatus.BREACH,
                   observed=instances, threshold=left, unit="instances",
                   detail=f"{instances} instance restart(s), one operation; in the last hour {operations} of {cap} "
                   f"operations (REMEDIATE_MAX_ACTIONS_PER_SERVICE_PER_HOUR) and {restarted} of {instance_cap} "
                   "instance restarts (REMEDIATE_MAX_RESTART_INSTANCES_PER_HOUR) were used")


def batches(ids: list[str], max_unavailable: int) -> list[list[str]]:
    """Instances in order, ``max_unavailable`` at a time; never all of them at once (that is an outage)."""
    size = max(1, min(max_unavailable, len(ids) - 1))
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def drain_timeout(lb: LoadBalancerStatus | None, configured: float | None) -> float:
    """How long a drain may take: given, else the load balancer's deregistration delay plus a margin (ALB's
    default delay, 300 s, when it cannot be read)."""
    if configured is not None:
        return configured
    return (lb.deregistration_delay_s if lb is not None else 300.0) + DRAIN_MARGIN_S


@step(name="investigate: instance inventory")
async def inventory(providers: Providers, service: str, fleet: Fleet) -> Evidence:
    """Each instance's state and process uptime (from its own metrics page), and the load balancer's settings."""
    items: list[dict[str, object]] = []
    for instance in fleet.instances:
        item: dict[str, object] = {"id": instance.id, "state": instance.state, "detail": instance.detail}
        if providers.instance_metrics is not None:
            page = await providers.instance_metrics.metrics_page(service, instance.id)
            item["uptime_s"] = uptime_s(page.text) if page.text is not None else None
        items.append(item)
    lb = fleet.lb
    settings = (f"deregistration delay {lb.deregistration_delay_s:g}s, health checks every "
                f"{lb.health_interval_s:g}s ({lb.healthy_threshold} to pass)") if lb else "load balancer not readable"
    return Evidence(source="instances", summary=f"{len(items)} instance(s); {settings}", items=tuple(items))
