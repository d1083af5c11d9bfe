"""Instances over the simulated platform's ``/_sim/instances``: ``capabilities.Instances`` (the AWS one is
``aws.instances.ElbInstances``) plus ``capabilities.InstanceMetrics``.

Drain and restore wait, bounded, for the load balancer to report the target out of rotation / healthy, exactly as
the ELBv2 adapter does; a wait that runs out raises ``PlatformError`` naming the state last seen. Answers are
validated: an answer that does not fit the contract is a ``PlatformError``, never a guess. Each instance's metrics
page is read at ``/_sim/instances/<id>/direct/api/monitoring/metrics`` (the stand-in for the target's private
address) through an ``AppHttp`` with its own budget: the app's in-memory rate limit (100/min per client IP) is kept
per instance (docs/reference/kamkmserve.md §8), and these direct reads are our only traffic to an instance's limiter
besides the odd public scrape the load balancer sends there, hence 90/min. (With Upstash configured the limit is shared
by every instance: choose the SLO reading interval so that instances x readings stay under it.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediation.providers.budget import RequestBudget
from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.providers.http import AppHttp
from remediation.providers.instances import LoadBalancerStatus, MetricsPage
from remediation.providers.metrics import METRICS_PATH, page_problem
from remediation.providers.platform import Instance, PlatformError
from remediation.providers.sim_platform import ControlPlane

OUT_OF_ROTATION = ("unused",)


class _Target(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    service: str
    lb_state: str
    process: str
    generation: int = Field(ge=0)
    in_flight: int = Field(ge=0)
    changed: bool | None = None

    def instance(self) -> Instance:
        return Instance(id=self.id, state=self.lb_state,
                        detail=f"process {self.process}, generation {self.generation}, {self.in_flight} in flight")


class _HealthCheck(BaseModel):
    model_config = ConfigDict(extra="ignore")

    interval_s: float = Field(gt=0)
    healthy_threshold: int = Field(ge=1)


class _LoadBalancerBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    deregistration_delay_s: float = Field(ge=0)
    health_check: _HealthCheck
    requests: int = Field(ge=0)
    elb_5xx: int = Field(ge=0)
    target_5xx: int = Field(ge=0)


class _FleetBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service: str
    load_balancer: _LoadBalancerBody
    instances: list[_Target]


class SimInstances:
    def __init__(self, plane: ControlPlane, *, budget_per_min: int = 90, timeout_s: float = 5.0, poll_s: float = 0.1,
                 clock: Clock | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """``clock``: the run's (on virtual time the simulator's: the drain and restore waits must move it, and
        each instance page's budget counts on it). ``transport``: the plane's, for the instance pages too."""
        self.plane = plane
        self.budget_per_min = budget_per_min
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.clock = clock or RealClock()
        self.transport = transport
        self._direct: dict[str, AppHttp] = {}

    # -- platform.Instances ---------------------------------------------------------------------------------

    async def instances(self, service: str) -> list[Instance]:
        return [target.instance() for target in (await self._fleet(service)).instances]

    async def drain(self, service: str, instance: str, timeout_s: float) -> Instance:
        seen = await self._target("POST", f"/instances/{instance}/drain", service)
        return await self._wait(service, instance, seen, timeout_s, lambda t: t.lb_state in OUT_OF_ROTATION,
                                "out of rotation")

    async def restore(self, service: str, instance: str, timeout_s: float) -> Instance:
        seen = await self._target("POST", f"/instances/{instance}/restore", service)
        return await self._wait(service, instance, seen, timeout_s,
                                lambda t: t.lb_state == "healthy" and t.process == "running", "healthy")

    async def restart(self, service: str, instance: str) -> None:
        seen = await self._target("POST", f"/instances/{instance}/restart", service)
        if seen.process == "running":  # not restarting and nothing was started: the platform refused silently
            raise PlatformError(f"{instance}: the restart was not started ({seen.instance().detail})")

    # -- instances.InstanceMetrics ----------------------------------------------------------------------------

    async def metrics_page(self, service: str, instance_id: str) -> MetricsPage:
        http = self._direct.get(instance_id)
        if http is None:
            clock = self.clock
            budget = RequestBudget(self.budget_per_min, monotonic=clock.monotonic, wall=lambda: clock.now().timestamp())
            http = AppHttp(f"{self.plane.base_url}/_sim/instances/{instance_id}/direct", budget,
                           timeout_s=self.timeout_s, transport=self.transport)
            self._direct[instance_id] = http
        fetched = await http.get(METRICS_PATH)
        if problem := page_problem(fetched):
            return MetricsPage(instance_id=instance_id, error=problem)
        return MetricsPage(instance_id=instance_id, text=fetched.text)

    async def load_balancer(self, service: str) -> LoadBalancerStatus:
        lb = (await self._fleet(service)).load_balancer
        return LoadBalancerStatus(deregistration_delay_s=lb.deregistration_delay_s,
                                  health_interval_s=lb.health_check.interval_s,
                                  healthy_threshold=lb.health_check.healthy_threshold,
                                  requests=lb.requests, elb_5xx=lb.elb_5xx, target_5xx=lb.target_5xx)

    # -- internals --------------------------------------------------------------------------------------------

    async def _fleet(self, service: str) -> _FleetBody:
        body = await self.plane.json("GET", "/instances")
        try:
            fleet = _FleetBody.model_validate(body)
        except ValidationError as exc:
            raise PlatformError(f"/_sim/instances: not an instance listing ({str(exc)[:160]})") from exc
        if fleet.service != service:
            raise PlatformError(f"/_sim/instances answered for service {fleet.service!r}, not {service!r}")
        return fleet

    async def _target(self, method: str, path: str, service: str) -> _Target:
        body: Any = await self.plane.json(method, path)
        try:
            target = _Target.model_validate(body)
        except ValidationError as exc:
            raise PlatformError(f"/_sim{path}: not an instance ({str(exc)[:160]})") from exc
        if target.service != service:
            raise PlatformError(f"/_sim{path} answered for service {target.service!r}, not {service!r}")
        return target

    async def _wait(self, service: str, instance: str, seen: _Target, timeout_s: float,
                    done: Callable[[_Target], bool], goal: str) -> Instance:
        deadline = self.clock.monotonic() + timeout_s
        while not done(seen):
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise PlatformError(f"{instance} is still {seen.lb_state} ({seen.instance().detail}) after "
                                    f"{timeout_s:g}s waiting for it to be {goal}")
            await self.clock.sleep(min(self.poll_s, left))
            seen = await self._target("GET", f"/instances/{instance}", service)
        return seen.instance()
