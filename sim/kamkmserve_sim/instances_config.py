"""Settings of the simulated load balancer and the instances behind it (``rolling-restart`` scenario).

The defaults are AWS Application Load Balancer semantics with the clock compressed for tests and drills: ALB's
deregistration delay defaults to 300 s, its health checks to every 30 s with 5 passes to become healthy and 2
failures to become unhealthy. kamkmserve's own numbers are real: on SIGTERM it flushes Sentry and exits after
about 0.05 s (up to 2 s), without draining (docs/reference/kamkmserve.md §9).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaultAfterRestart(BaseModel):
    """What an instance that restarts from now on comes back with (e.g. it re-read a broken secret): this share
    of its requests on ``paths`` answer 500, and all of them get ``extra_latency_ms`` slower."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_share: float = Field(default=0.5, ge=0.0, le=1.0)
    paths: tuple[str, ...] = ("/",)
    extra_latency_ms: int = Field(default=0, ge=0)


class FleetConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Three by default: a rolling restart takes three actions per instance, and the default hourly cap is ten.
    instances: int = Field(default=3, ge=1, le=32, description="Instances behind the load balancer")
    deregistration_delay_s: float = Field(
        default=3.0, gt=0, description="How long a deregistered target may finish in-flight requests; the "
        "load balancer completes the deregistration earlier once none are left (ALB semantics)")
    shutdown_s: float = Field(default=0.05, ge=0, le=2.0,
                              description="SIGTERM to exit: the app flushes Sentry, then process.exit(0)")
    restart_s: float = Field(default=2.0, ge=0, description="From exit until the new process serves again")
    health_interval_s: float = Field(default=1.0, gt=0, description="Load balancer health check interval")
    healthy_threshold: int = Field(default=2, ge=1, description="Passing checks before a target gets traffic")
    unhealthy_threshold: int = Field(default=2, ge=1, description="Failed checks before a target stops getting it")
