"""The rolling restart's SLO reading: is the service healthy enough to take (or to have taken) an instance out?

One reading scrapes every in-service instance's own metrics page (each keeps its own buffers,
docs/reference/kamkmserve.md §2.4) and the load balancer's counters, then judges:

* **breach** when, over the pooled most recent ``window`` user requests of each instance, the 5xx share reaches
  ``error_pct`` or p95 exceeds ``p95_ms``; when one instance alone answers 5xx that often (at least two of its
  records: one error in a few dozen is noise); or when the load balancer itself answered 5xx (refused or cut
  connections: what a restart without drain causes, invisible in the app's own metrics) for that share of the
  requests since the previous reading;
* **unknown** when a page cannot be read, the app records no requests (kamkmserve today: its request metrics are
  dead, so a rolling restart can never be verified and is not started), or an instance has served fewer than
  ``min_records`` requests yet (just restarted); unknown is never healthy;
* **ok** otherwise.

Our own scrapes are left out of the figures (``instances.without_own_scrapes``).
"""

from __future__ import annotations

from dataclasses import dataclass

from remediation.models import Finding, FindingStatus
from remediation.providers.instances import LoadBalancerStatus, pooled_request_stats, user_request_stats
from remediation.providers.metrics import RequestStats
from remediation.runtime import Providers

MIN_INSTANCE_ERRORS = 2


@dataclass(frozen=True)
class Slo:
    """What a stable service is, for this run."""

    error_pct: float
    p95_ms: float
    min_records: int
    window: int

    def describe(self) -> str:
        return f"5xx < {self.error_pct:g}% and p95 <= {self.p95_ms:g} ms over the last {self.window} requests of " \
               f"each instance (at least {self.min_records} each)"


@dataclass(frozen=True)
class Reading:
    status: FindingStatus
    detail: str
    error_pct: float | None = None
    p95_ms: float | None = None
    records: int = 0
    elb_5xx: int = 0  # since the previous reading
    requests: int = 0  # since the previous reading
    lb: LoadBalancerStatus | None = None

    def finding(self, check: str, slo: Slo) -> Finding:
        return Finding(check=check, status=self.status, observed=self.p95_ms, threshold=slo.p95_ms, unit="ms",
                       detail=self.detail, evidence={"error_pct": self.error_pct, "records": self.records,
                                                     "elb_5xx": self.elb_5xx, "requests": self.requests})


async def read_slo(providers: Providers, service: str, instance_ids: list[str], slo: Slo,
                   previous: LoadBalancerStatus | None) -> Reading:
    """One reading over ``instance_ids`` (the instances in service); ``previous`` is the last load balancer status
    (None: the load balancer's own 5xx are counted from this reading on)."""
    probe = providers.instance_metrics
    if probe is None:
        return Reading(FindingStatus.UNKNOWN, "no per-instance metrics on this platform: stability cannot be read")
    if not instance_ids:
        return Reading(FindingStatus.UNKNOWN, "no instance is in service")
    try:
        lb: LoadBalancerStatus | None = await probe.load_balancer(service)
    except Exception as exc:  # read failures are unknown, never healthy
        lb, lb_error = None, f"load balancer unreadable: {type(exc).__name__}: {exc}"
    else:
        lb_error = ""
    texts: list[str] = []
    unknown: list[str] = []
    per_instance: dict[str, RequestStats] = {}
    for instance_id in instance_ids:
        page = await probe.metrics_page(service, instance_id)
        if page.text is None:
            unknown.append(f"{instance_id}: {page.error}")
            continue
        try:
            stats = user_request_stats(page.text, slo.window)
        except ValueError as exc:
            unknown.append(f"{instance_id}: unparseable metrics page ({exc})")
            continue
        texts.append(page.text)
        per_instance[instance_id] = stats
        if not stats.available:
            unknown.append(f"{instance_id}: {stats.reason}")
        elif stats.records < slo.min_records:
            unknown.append(f"{instance_id}: only {stats.records} requests since it started (need {slo.min_records})")
    pooled = pooled_request_stats(texts, slo.window) if texts else RequestStats(available=False, reason="no pages")
    elb, requests = _lb_delta(previous, lb)
    breaches = _breaches(slo, pooled, per_instance, elb, requests)
    figures = _figures(pooled, elb, requests)

    def reading(status: FindingStatus, detail: str) -> Reading:
        return Reading(status, detail, error_pct=pooled.error_rate_5xx_pct, p95_ms=pooled.p95_ms,
                       records=pooled.records, elb_5xx=elb, requests=requests, lb=lb)

    if breaches:
        return reading(FindingStatus.BREACH, f"{'; '.join(breaches)} ({figures})")
    gaps = unknown + ([lb_error] if lb_error else [])
    if gaps or not pooled.available:
        return reading(FindingStatus.UNKNOWN, f"unknown: {'; '.join(gaps) or pooled.reason}")
    return reading(FindingStatus.OK, f"within the SLO ({figures})")


def _lb_delta(previous: LoadBalancerStatus | None, now: LoadBalancerStatus | None) -> tuple[int, int]:
    if previous is None or now is None:
        return 0, 0
    # Totals only grow; a smaller one means the load balancer was replaced: count from zero.
    elb = now.elb_5xx - previous.elb_5xx if now.elb_5xx >= previous.elb_5xx else now.elb_5xx
    requests = now.requests - previous.requests if now.requests >= previous.requests else now.requests
    return elb, requests


def _breaches(slo: Slo, pooled: RequestStats, per_instance: dict[str, RequestStats], elb: int,
              requests: int) -> list[str]:
    found: list[str] = []
    if pooled.available and pooled.records >= slo.min_records and pooled.error_rate_5xx_pct is not None \
            and pooled.error_rate_5xx_pct >= slo.error_pct:
        found.append(f"5xx share {pooled.error_rate_5xx_pct:g}% >= {slo.error_pct:g}%")
    if pooled.p95_ms is not None and pooled.latency_samples >= slo.min_records and pooled.p95_ms > slo.p95_ms:
        found.append(f"p95 {pooled.p95_ms:g} ms > {slo.p95_ms:g} ms")
    for instance_id, stats in per_instance.items():
        share = stats.error_rate_5xx_pct
        if stats.available and share is not None and stats.records >= slo.min_records \
                and stats.errors_5xx >= MIN_INSTANCE_ERRORS and share >= slo.error_pct:
            found.append(f"{instance_id} answers 5xx to {share:g}% of its requests")
    if elb and 100.0 * elb / max(requests, 1) >= slo.error_pct:
        found.append(f"the load balancer answered {elb} of {requests} requests with 5xx itself")
    return found


def _figures(pooled: RequestStats, elb: int, requests: int) -> str:
    if not pooled.available:
        return f"load balancer 5xx {elb}/{requests}"
    p95 = f"{pooled.p95_ms:g} ms" if pooled.p95_ms is not None else "n/a"
    return f"5xx {pooled.error_rate_5xx_pct:g}%, p95 {p95} over {pooled.records} requests; " \
           f"load balancer 5xx {elb}/{requests}"
