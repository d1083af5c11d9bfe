"""The database scenarios: a release's query on an unindexed column, and a job transaction left holding locks.

Registered in ``kamkmserve_sim.scenarios.SCENARIOS``. Both run on either database backend (``sim.database``).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from kamkmserve_sim.database_schema import SLOW_RELEASE
from kamkmserve_sim.routes import AppRequest
from kamkmserve_sim.traffic import HOUR_MS, PREFILL_REQUESTS, PREFILL_SPAN_MS, boot, prefill

if TYPE_CHECKING:
    from kamkmserve_sim.state import SimState

BACK_OFFICE_SHARE = 0.05  # staff order updates, as a share of the user traffic's rate
BACK_OFFICE_MAX_RPS = 10.0
_STAFF_IPS = ("198.51.100.40", "198.51.100.41", "198.51.100.42")
_STAFF_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5"


class SlowQuery:
    """``slow-query``: a release adds a query on an unindexed column; checkout slows past one second.

    Start: v1.4.2 current (deployed an hour ago), ~200 healthy requests recorded over the last minute, background
    jobs running (``report-export`` 2 workers, heavy; ``email-digest`` 1). After ``onset_s``: v1.6.0 is deployed
    and promoted; its checkout first looks up the customer's recent orders with
    ``where "kamkmserve_order"."user_id" = $1``, and ``user_id`` has no index, so ``POST /api/checkout`` takes
    about 1.2 s more (``Slow database operation: SELECT on kamkmserve_order`` and
    ``Slow request detected: POST /api/checkout`` in request-metrics mode), ``kamkmserve_order``'s sequential
    scans pile up, ``pg_stat_statements`` (Neon preloads it) shows the query at the top, and Sentry's tracing
    opens a "Slow DB Query" issue with the statement as culprit. Cures: an index on
    ``kamkmserve_order(user_id)`` (``POST /_sim/database/indexes``, or ``CREATE INDEX CONCURRENTLY`` on the real
    database) or rolling back to v1.4.2. Pausing ``report-export`` takes ~20 % off the query's time, not enough.
    """

    name = "slow-query"

    def start(self, state: SimState) -> None:
        _start(state)
        state.schedule(state.config.onset_s, lambda: self.onset(state))

    def onset(self, state: SimState) -> None:
        release = state.releases.deploy(SLOW_RELEASE, None, state.clock.now_ms())
        state.database.begin_slow_query(release.id)


class LockContention:
    """``lock-contention``: a stuck job transaction holds row locks; the app's order updates fail.

    Start: v1.4.2 current (deployed an hour ago, no deploy near the incident), ~200 healthy requests recorded,
    background jobs running, and staff updating orders (``PATCH /api/admin/orders/[id]``, 5 % of the traffic's
    rate, at most 10/s). After ``onset_s``: a ``report-export`` worker (session ``kamkmserve-jobs:report-export``)
    updates a batch of paid orders and then waits on something outside the database with its transaction open
    (``idle in transaction``). Every staff update of those orders waits 2 s for the row lock and fails with
    ``canceling statement due to lock timeout``: ``500 {"error":"Failed to update order"}``,
    ``DB UPDATE on kamkmserve_order failed`` and ``db_operation_duration{…,success="false"}`` in request-metrics
    mode. The inspector sees the waiters, the blocker's pid, application, query and age. Terminating the
    blocker (``pg_terminate_backend``) rolls its transaction back and the updates succeed again. Pausing the
    jobs does not help: the stuck session is idle in transaction, not working.
    """

    name = "lock-contention"

    def start(self, state: SimState) -> None:
        _start(state)
        rate = min(BACK_OFFICE_MAX_RPS, state.config.rps * BACK_OFFICE_SHARE)
        if rate > 0:
            _BackOffice(state, rate).schedule()
        state.schedule(state.config.onset_s, lambda: state.database.begin_lock_contention("report-export"))


def _start(state: SimState) -> None:
    now = state.clock.now_ms()
    boot(state, now - PREFILL_SPAN_MS - 1000)
    state.releases.deploy("v1.4.2", None, now, created_at_ms=now - HOUR_MS)
    state.database.prepare()
    prefill(state, PREFILL_REQUESTS, PREFILL_SPAN_MS)


class _BackOffice:
    """Staff moving orders along in the admin UI: a steady trickle of ``PATCH /api/admin/orders/<id>``."""

    def __init__(self, state: SimState, rate: float) -> None:
        self.state = state
        self.interval_s = 1.0 / rate
        rng = random.Random(state.seed + 4)
        self.rng = rng
        self.orders = [f"{rng.getrandbits(128):032x}" for _ in range(40)]

    def schedule(self) -> None:
        self.state.schedule(self.interval_s, self.send)

    def send(self) -> None:
        order = self.rng.choice(self.orders)
        order_id = f"{order[:8]}-{order[8:12]}-{order[12:16]}-{order[16:20]}-{order[20:]}"
        request = AppRequest(method="PATCH", path=f"/api/admin/orders/{order_id}",
                             forwarded_for=self.rng.choice(_STAFF_IPS), user_agent=_STAFF_AGENT, role="ADMIN",
                             content_type="application/json", json_body={"status": "IN_TECHNICAL_REVIEW"})
        if not self.state.at_edge(request.path):
            self.state.serve(request)
        self.schedule()
