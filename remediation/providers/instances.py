"""What a rolling restart reads about the service's instances, beside ``capabilities.Instances`` (list, drain, restart,
restore): each instance's own metrics page, and the load balancer's counters.

kamkmserve on Vercel has no instances to address and no drain (docs/reference/kamkmserve.md §9, §13:
``/monitoring/ready`` is constant, SIGTERM exits without draining), so the drain must come from the load balancer side:
EC2/ECS targets behind an ELBv2 target group in production, the simulator's load balancer
(``kamkmserve_sim.instances``) here.

Each instance keeps its own metric buffers, lost on restart (docs/reference/kamkmserve.md §2.4), so a reading of the
service scrapes every instance directly (as Prometheus scrapes targets), not through the load balancer, and pools the
samples.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from remediation.providers.metrics import METRICS_PATH, REQUEST_SERIES, RequestStats, parse_request_stats
from remediation.providers.promtext import sample_name, tail_samples

_HEADERS = {
    "process_uptime_seconds": ("# HELP process_uptime_seconds Process uptime in seconds",
                               "# TYPE process_uptime_seconds gauge"),
    "http_requests_total": ("# HELP http_requests_total Total HTTP requests observed",
                            "# TYPE http_requests_total counter"),
    "http_request_duration": ("# HELP http_request_duration Auto-exported metric",
                              "# TYPE http_request_duration gauge"),
}


class LoadBalancerStatus(BaseModel):
    """The load balancer's settings and running totals (CloudWatch-style sums: callers diff two readings)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    deregistration_delay_s: float = Field(ge=0)
    health_interval_s: float = Field(gt=0)
    healthy_threshold: int = Field(ge=1)
    requests: int = Field(ge=0)
    elb_5xx: int = Field(ge=0)  # answered by the load balancer itself (502 refused/reset, 503 no target)
    target_5xx: int = Field(ge=0)  # answered 5xx by an instance


class MetricsPage(BaseModel):
    """One instance's metrics page as read; ``text`` None means it could not be read (``error`` says why)."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    text: str | None = None
    error: str | None = None


def uptime_s(page: str) -> float | None:
    """``process_uptime_seconds`` of a page (it exists in the real app): a restart shows as a small value."""
    for line in page.splitlines():
        if sample_name(line) == "process_uptime_seconds":
            try:
                return float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                return None
    return None


def without_own_scrapes(page: str) -> str:
    """Drop the request samples of the metrics endpoint itself: our scrapes are not user traffic, and on a freshly
    restarted instance they would be its only records (and all fast, all 200)."""
    marker = f'path="{METRICS_PATH}"'
    return "\n".join(line for line in page.splitlines() if marker not in line or line.lstrip().startswith("#")) + "\n"


def user_request_stats(page: str, window_records: int) -> RequestStats:
    """Request figures of one instance's page, our scrapes excluded. Raises ValueError on a page that is not one."""
    trimmed = tail_samples(without_own_scrapes(page), REQUEST_SERIES, window_records)
    return parse_request_stats(trimmed, window_records)


def pooled_request_stats(pages: Iterable[str], window_records: int) -> RequestStats:
    """Figures over the most recent ``window_records`` user requests of *each* page, pooled: error share over every
    record, p95 over every duration sample. Raises ValueError when a page is not a kamkmserve metrics page."""
    kept: dict[str, list[str]] = {name: [] for name in _HEADERS}
    count = 0
    for page in pages:
        trimmed = tail_samples(without_own_scrapes(page), REQUEST_SERIES, window_records)
        if "process_uptime_seconds" not in trimmed and "http_requests_total" not in trimmed:
            raise ValueError("not kamkmserve's metrics page: neither process_uptime_seconds nor http_requests_total")
        count += 1
        for line in trimmed.splitlines():
            if line.strip() and not line.lstrip().startswith("#") and sample_name(line) in kept:
                kept[sample_name(line)].append(line)
    kept["process_uptime_seconds"] = kept["process_uptime_seconds"][:1]
    merged = [line for name, lines in kept.items() for line in (*_HEADERS[name], *lines)]
    return parse_request_stats("\n".join(merged) + "\n", window_records * max(count, 1))
