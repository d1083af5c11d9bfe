"""The store's figures as Prometheus metric families, built fresh for every scrape.

The store is read at scrape time (``remediation.store.figures``) rather than counted as things happen, because
the flows that open, act on and close incidents run in other processes (Prefect workers) than this receiver:
the store is the one place that sees all of them. See docs/monitoring.md for what each series means.

Label values come from the store, and some of them from senders (an alert's ``service`` label), so they are
cleaned before they become labels: characters outside a conservative set become ``_``, values are cut to
:data:`LABEL_MAX` characters, and the store query returns at most ``max_groups`` groups per family, the rest
being shown as one group labelled :data:`OTHER`. A flood of made-up service names costs one series, not one each.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from remediation.models import ApprovalAnswer, Outcome
from remediation.store.figures import ClosedIncident, GroupCounts, StoreFigures

LABEL_MAX = 64
OTHER = "_other"  # the groups beyond the bound, summed
EMPTY = "_none"  # a NULL or blank value (e.g. the outcome of an incident closed without one)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]")

#: Bucket bounds (seconds). Containment should take minutes; recovery up to hours (a verification loop's deadline).
CONTAIN_BUCKETS_S = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)
RECOVER_BUCKETS_S = (60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0)


def label_value(raw: str) -> str:
    """A label value safe to show whoever can scrape: a bounded, plain token."""
    cleaned = _UNSAFE.sub("_", raw.strip())[:LABEL_MAX]
    return cleaned or EMPTY


def _labelled(counts: GroupCounts, width: int) -> dict[tuple[str, ...], int]:
    """Cleaned labels; groups that clean to the same labels are summed (a family may not repeat a series)."""
    out: dict[tuple[str, ...], int] = defaultdict(int)
    for labels, n in counts.groups.items():
        out[tuple(label_value(v) for v in labels)] += n
    if counts.rest > 0:
        out[(OTHER,) * width] += counts.rest
    return dict(out)


def _zeros(labelled: dict[tuple[str, ...], int], expected: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
    """``labelled`` with the expected series present at 0: increase() cannot see a counter's first step otherwise."""
    return {**dict.fromkeys(expected, 0), **labelled}


def _gauge(name: str, doc: str, labels: Sequence[str], counts: GroupCounts) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for values, n in sorted(_labelled(counts, len(labels)).items()):
        family.add_metric(list(values), n)
    return family


def _counter(name: str, doc: str, labels: Sequence[str], counts: GroupCounts,
             expected: Iterable[tuple[str, ...]] = ()) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for values, n in sorted(_zeros(_labelled(counts, len(labels)), expected).items()):
        family.add_metric(list(values), n)
    return family


def _histogram(name: str, doc: str, bounds: Sequence[float],
               durations: Iterable[tuple[str, float]]) -> GaugeHistogramMetricFamily:
    """Cumulative buckets per runbook over the given (runbook, seconds) pairs."""
    by_runbook: dict[str, list[float]] = defaultdict(list)
    for runbook, seconds in durations:
        by_runbook[label_value(runbook)].append(seconds)
    family = GaugeHistogramMetricFamily(name, doc, labels=["runbook"])
    for runbook, values in sorted(by_runbook.items()):
        buckets = [(floatToGoString(bound), float(sum(1 for v in values if v <= bound))) for bound in bounds]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([runbook], buckets, gsum_value=sum(values))
    return family


def store_families(figures: StoreFigures | None, now: datetime, recent: int) -> list[Metric]:
    """What to expose about the store; only ``remediate_store_up 0`` when it could not be read."""
    up = GaugeMetricFamily("remediate_store_up", "1 if this scrape could read the incident store, else 0.")
    up.add_metric([], 0.0 if figures is None else 1.0)
    if figures is None:
        return [up]
    return [up, *_incident_families(figures), *_approval_families(figures, now),
            *_duration_families(figures.recent_closed, recent)]


def _incident_families(figures: StoreFigures) -> list[Metric]:
    # Every outcome of every runbook seen (open incidents included: an incident is usually seen open at an earlier
    # scrape than the one that first sees it closed), so the first escalation of a runbook is an increase from 0.
    runbooks = {labels[0] for labels in (*_labelled(figures.open_incidents, 2), *_labelled(figures.runs, 2))}
    every_outcome = [(runbook, outcome.value) for runbook in runbooks for outcome in Outcome]
    return [
        _gauge("remediate_open_incidents", "Incidents open now (read from the store at scrape time).",
               ["runbook", "service"], figures.open_incidents),
        _counter("remediate_runs", "Closed incidents (finished runs) by runbook and outcome, counted in the store at "
                 "scrape time.", ["runbook", "outcome"], figures.runs, every_outcome),
        _gauge("remediate_actions", "Action-ledger rows by plan kind, policy decision and current state (a row moves "
               "from intent to applied/failed/unknown, so this is a gauge).", ["kind", "decision", "state"],
               figures.actions),
    ]


def _approval_families(figures: StoreFigures, now: datetime) -> list[Metric]:
    waiting = GaugeMetricFamily("remediate_approvals_waiting", "Steps waiting for approval now.")
    waiting.add_metric([], figures.approvals_waiting)
    oldest = GaugeMetricFamily("remediate_approval_oldest_wait_seconds",
                               "How long the longest-waiting approval has waited; 0 when none waits.")
    since = figures.oldest_waiting_since
    oldest.add_metric([], max(0.0, (now - since).total_seconds()) if since else 0.0)
    overdue = GaugeMetricFamily("remediate_approval_overdue_seconds",
                                "How far past its deadline the most overdue waiting approval is; 0 when none is. A "
                                "waiting step past its deadline means its run did not time it out (is the run alive?).")
    deadline = figures.approvals_overdue_since
    overdue.add_metric([], max(0.0, (now - deadline).total_seconds()) if deadline else 0.0)
    answers = _counter("remediate_approval_answers", "Recorded answers to approval requests by answer "
                       "(approved, denied, timeout, refused), counted in the store at scrape time.", ["answer"],
                       figures.approval_answers, [(answer.value,) for answer in ApprovalAnswer])
    return [waiting, oldest, overdue, answers]


def _duration_families(recent_closed: Sequence[ClosedIncident], recent: int) -> list[Metric]:
    window = f"over the last {recent} closed incidents (a window recomputed at each scrape, not a running total: " \
             "use histogram_quantile on the buckets directly, not on rate())"
    contain = [(c.runbook, s) for c in recent_closed if (s := c.time_to_contain_s) is not None]
    recover = [(c.runbook, s) for c in recent_closed if (s := c.time_to_recover_s) is not None]
    return [
        _histogram("remediate_time_to_contain_seconds",
                   f"Seconds from an incident opening to its first applied containment action, {window}.",
                   CONTAIN_BUCKETS_S, contain),
        _histogram("remediate_time_to_recover_seconds",
                   f"Seconds from an incident opening to its close, for recovered incidents only, {window}.",
                   RECOVER_BUCKETS_S, recover),
    ]
