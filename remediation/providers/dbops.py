"""Database operation figures from kamkmserve's raw ``db_operation_duration`` samples, by table and operation.

The app records one ``db_operation_duration{operation,table,success}`` sample (ms) per operation that goes
through its ``db.execute`` wrapper (docs/reference/kamkmserve.md §2.3). Today nothing calls that wrapper, so against the
real app the series is dead: no samples means *unknown*, never "no failures".
"""

from __future__ import annotations

import math
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field

from remediation.models import utcnow
from remediation.stats import percentile

DURATION = "db_operation_duration"


class DbOperation(BaseModel):
    """One (table, operation) pair over the samples read."""

    model_config = ConfigDict(frozen=True)

    table: str
    operation: str
    count: int
    failures: int
    avg_ms: float
    p95_ms: float
    max_ms: float

    @property
    def failure_pct(self) -> float:
        return round(100.0 * self.failures / self.count, 3) if self.count else 0.0


class DbOperationStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    samples: int = 0
    failures: int = 0
    operations: tuple[DbOperation, ...] = ()

    def failing(self) -> list[DbOperation]:
        """Pairs with at least one failure, most failures first."""
        return sorted((o for o in self.operations if o.failures), key=lambda o: (-o.failures, o.table, o.operation))

    def slowest(self) -> list[DbOperation]:
        """Pairs by p95, slowest first."""
        return sorted(self.operations, key=lambda o: (-o.p95_ms, o.table, o.operation))


def parse_db_operations(text: str, window_samples: int = 1000) -> DbOperationStats:
    """Group the last ``window_samples`` duration samples by (table, operation). Raises ValueError on a bad page."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    if "process_uptime_seconds" not in families and "http_requests" not in families:
        raise ValueError("not kamkmserve's metrics page: neither process_uptime_seconds nor http_requests_total")
    samples = list(families[DURATION].samples) if DURATION in families else []
    samples = [s for s in samples if math.isfinite(float(s.value))][-window_samples:]
    if not samples:
        return DbOperationStats(
            available=False,
            reason="no db_operation_duration samples on the metrics page (kamkmserve's db.execute wrapper is unused)",
        )
    groups: dict[tuple[str, str], tuple[list[float], list[bool]]] = {}
    for sample in samples:
        key = (sample.labels.get("table", "?"), sample.labels.get("operation", "?"))
        durations, outcomes = groups.setdefault(key, ([], []))
        durations.append(float(sample.value))
        outcomes.append(sample.labels.get("success") == "false")
    operations = tuple(
        DbOperation(table=table, operation=operation, count=len(durations), failures=sum(outcomes),
                    avg_ms=round(sum(durations) / len(durations), 1), p95_ms=percentile(durations, 95),
                    max_ms=max(durations))
        for (table, operation), (durations, outcomes) in sorted(groups.items())
    )
    return DbOperationStats(available=True, samples=len(samples), failures=sum(o.failures for o in operations),
                            operations=operations)
