"""``GET /metrics``: Prometheus metrics about the remediation service itself (docs/monitoring.md).

Two kinds of series, on the receiver's own port:

* what this process counts as it happens (:class:`IntakeMetrics`): alerts received by source and outcome, run
  starts by state, and the process's own CPU/memory/GC. They live on a ``CollectorRegistry`` owned by one app,
  never the module-global default registry, so two apps (or two tests) never share a count;
* what the incident store says at scrape time (remediation.intake.store_metrics): open incidents, finished runs,
  the ledger, the approvals inbox and how long incidents took. The store is read in a worker thread under a
  deadline; when it cannot be read the scrape still answers 200, with ``remediate_store_up 0`` and no store
  series, so an outage of the store shows as a value rather than as a failed scrape of everything else.

Only counts leave: labels are runbook, service, source, outcome, kind, decision, state and answer, never an
incident id, an alert's text or a person.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from remediation.intake.logsafe import intake_logger
from remediation.intake.service import AlertVerdict, StartState
from remediation.intake.store_metrics import label_value, store_families
from remediation.store import Store
from remediation.store.figures import DEFAULT_MAX_GROUPS, DEFAULT_RECENT, StoreFigures

log = intake_logger()

#: The alert sources intake parses (remediation.intake.alertmanager/sentry/generic); their series start at 0.
SOURCES = ("alertmanager", "sentry", "generic")
#: An alert whose write to the store failed (the delivery was answered 503 and will be redelivered).
FAILED = "failed"
#: Under a typical 10 s scrape timeout, so the answer (with ``remediate_store_up 0``) arrives before Prometheus
#: gives up on the scrape.
DEFAULT_STORE_TIMEOUT_S = 4.0


class IntakeMetrics:
    """The receiver's own counters; the counting hook :class:`~remediation.intake.service.IntakeService` calls."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._alerts = Counter(
            "remediate_alerts_received",
            "Alerts received by source and by what intake did with each: created (opened an incident), attached, "
            "suppressed (within the reopen cooldown), recorded (no incident), unrouted, failed (not stored: 503).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self._starts = Counter(
            "remediate_run_starts",
            "Attempts to start an incident's runbook run, by result: started, existing, in_progress, closed, failed.",
            ["state"],
            registry=self.registry,
        )
        # Every known series exists from the first scrape: increase() misses a counter's first step otherwise.
        for source in SOURCES:
            for outcome in (*get_args(AlertVerdict), FAILED):
                self._alerts.labels(source, outcome)
        for state in get_args(StartState):
            self._starts.labels(state)
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def alert_outcome(self, source: str, outcome: str) -> None:
        self._alerts.labels(label_value(source), outcome).inc()

    def run_start(self, state: str) -> None:
        self._starts.labels(state).inc()


class _Families:
    """One scrape's store families, in the shape ``generate_latest`` collects from."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def metrics_endpoint(
    metrics: IntakeMetrics,
    store: Store,
    now: Callable[[], datetime],
    *,
    store_timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
    max_groups: int = DEFAULT_MAX_GROUPS,
    recent: int = DEFAULT_RECENT,
) -> Callable[[Request], Awaitable[Response]]:
    """The ``GET /metrics`` handler. Never answers 500 for the store's sake (see the module docstring)."""

    async def endpoint(request: Request) -> Response:
        figures: StoreFigures | None
        try:
            figures = await asyncio.wait_for(
                run_in_threadpool(store.figures, max_groups=max_groups, recent=recent), store_timeout_s
            )
        except Exception as exc:  # any store trouble, a timeout included: the scrape goes on without the store
            log.warning("GET /metrics: store unreadable, exposing remediate_store_up 0: %s: %s",
                        type(exc).__name__, str(exc)[:200])
            figures = None
        body = generate_latest(metrics.registry) + generate_latest(_Families(store_families(figures, now(), recent)))
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return endpoint
