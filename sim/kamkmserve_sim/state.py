"""All state of one simulated deployment: the platform around the app and the app's running instances.

Nothing is global: ``create_app`` builds one ``SimState`` and every handler and the traffic task use it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from kamkmserve_sim.applog import AppLog
from kamkmserve_sim.capacity import LoadModel
from kamkmserve_sim.clock import Clock, ManualClock, PinnableClock, WallClock
from kamkmserve_sim.collector import MetricsCollector
from kamkmserve_sim.config import SimConfig
from kamkmserve_sim.database import AppDatabase
from kamkmserve_sim.faults import DATABASE_DOWN, Fault
from kamkmserve_sim.identity import SimIdentity, disabled_feature
from kamkmserve_sim.platform import Edge, ErrorTracker, ReleaseBook
from kamkmserve_sim.process import SimulatedProcess
from kamkmserve_sim.ratelimit import ApiRateLimiter, client_identity
from kamkmserve_sim.routes import AppRequest, Outcome, RouteEnv, dispatch
from kamkmserve_sim.security import SimSecurity
from kamkmserve_sim.uploads import UploadQuota
from kamkmserve_sim.usermix import TrafficModel

if TYPE_CHECKING:
    from kamkmserve_sim.instances import Fleet

MetricsFault = Literal["ok", "down", "slow", "garbage", "html"]
METRICS_FAULTS: tuple[str, ...] = ("ok", "down", "slow", "garbage", "html")


@dataclass
class Instance:
    """One deployment's Node process: its own heap, metric buffers and in-memory rate-limit stores.

    A deploy starts a fresh instance (buffers empty, uptime from zero, as after a real redeploy); promoting an
    older deployment again finds its instance still warm with whatever it had recorded.
    """

    process: SimulatedProcess
    collector: MetricsCollector
    limiter: ApiRateLimiter
    upload_quota: UploadQuota
    fault: Fault | None = None  # this process's own (an instance that came back broken from a restart)


@dataclass
class Stats:
    app_served: int = 0
    edge_served: int = 0
    errors_5xx: int = 0


class SimState:
    def __init__(self, config: SimConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = PinnableClock(clock or (ManualClock() if config.virtual_time else WallClock()))
        self.seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
        self.port = config.port or 3000
        self.request_metrics = config.request_metrics
        self.metrics_fault: MetricsFault = "ok"
        self.slow_seconds = 5.0
        self.shutdown_signal = "SIGTERM"
        self._timeline: list[tuple[int, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self.reset(config.scenario)

    def reset(self, scenario: str) -> None:
        """A fresh world: new app log, platform and instances, nothing scheduled. The scenario fills it."""
        self.scenario = scenario
        self.rng = random.Random(self.seed)
        self.users = TrafficModel(random.Random(self.seed + 1))
        self.log = AppLog(self.clock, ring_size=self.config.log_ring_size, echo=self.config.echo_logs)
        self.releases = ReleaseBook(random.Random(self.seed ^ 0x5EED))
        self.edge = Edge()
        self.errors = ErrorTracker()
        self.load = LoadModel(random.Random(self.seed + 2))  # replicas and traffic (latency under load)
        previous: AppDatabase | None = getattr(self, "database", None)
        if previous is not None:
            previous.close()  # the previous world's sessions and threads (real PostgreSQL) end with it
        self.database = AppDatabase(self.config, self.clock, self.releases, self.errors, self.seed)
        previous_security: SimSecurity | None = getattr(self, "security", None)
        if previous_security is not None:
            previous_security.close()  # its audit writer thread (real PostgreSQL) ends with the old world
        self.security = SimSecurity(self.config, self.clock)  # block list, allowlist, scanner, audit table
        self.identity = SimIdentity(self.clock)  # Clerk configuration, the admin checks, the status page
        self.stats = Stats()
        self.dependency_fault: Fault | None = None
        self.metrics_fault = "ok"
        self._instances: dict[str, Instance] = {}
        # Instances behind a load balancer (rolling-restart scenario only); None: the single instance above.
        self.fleet: Fleet | None = None
        self._timeline.clear()

    @property
    def instance(self) -> Instance:
        if self.fleet is not None and (target := self.fleet.bound()) is not None:
            return target  # the instance the load balancer sent this request to
        release_id = self.releases.current.id
        instance = self._instances.get(release_id)
        if instance is None:
            process = SimulatedProcess(self.clock, seed=self.rng.randrange(2**32),
                                       ratio_low=self.config.heap_ratio_low, ratio_high=self.config.heap_ratio_high)
            instance = Instance(process=process, collector=MetricsCollector(self.log, self.clock, process),
                                limiter=ApiRateLimiter(self.config.rate_limit), upload_quota=UploadQuota())
            self._instances[release_id] = instance
        return instance

    def schedule(self, delay_s: float, action: Callable[[], None]) -> None:
        due = self.clock.now_ms() + round(delay_s * 1000)
        heapq.heappush(self._timeline, (due, next(self._sequence), action))

    def run_due(self) -> None:
        now = self.clock.now_ms()
        while self._timeline and self._timeline[0][0] <= now:
            _, _, action = heapq.heappop(self._timeline)
            action()

    def at_edge(self, path: str) -> bool:
        """True when the edge answers (maintenance, an admin feature switched off): the app never sees the request."""
        if self.edge.under_maintenance(path) or disabled_feature(self.edge, path) is not None:
            self.stats.edge_served += 1
            return True
        return False

    def serve(self, request: AppRequest) -> Outcome:
        """The app handles one request that got past the edge (and, for /api, past the rate limit)."""
        if self.fleet is not None and self.fleet.bound() is None:
            return self.fleet.serve(request, self.serve)  # simulated users go through the load balancer too
        now = self.clock.now_ms()
        instance = self.instance
        release = self.releases.current
        outage_covers_uploads = self.dependency_fault is not None and self.dependency_fault.applies_to("/api/uploads")
        env = RouteEnv(
            rng=self.rng, log=self.log, collector=instance.collector, upload_quota=instance.upload_quota,
            request_metrics=self.request_metrics, now_ms=now,
            release_fault=instance.fault or release.fault, dependency_fault=self.dependency_fault,
            audit_error=DATABASE_DOWN.message if outage_covers_uploads else None,
            audit=self.security.audit.write, upload_rules=self.security.upload_rules(),
            database=self.database, identity=self.identity,
        )
        outcome = dispatch(request, env)
        wait = self.load.wait_ms(self.edge.under_maintenance)  # queued before a replica picked it up
        if wait:
            outcome = replace(outcome, duration_ms=outcome.duration_ms + wait)
        self.count_app_request(outcome.status)
        if outcome.exception is not None:
            self.errors.capture(
                title=f"{outcome.exception.name}: {outcome.exception.message}",
                culprit=f"{request.method} {request.path}", release=release.version,
                user=client_identity(request.forwarded_for, request.real_ip), now_ms=now,
            )
        if self.request_metrics and records_request(request.path):
            instance.collector.record_request(request.fields(), outcome.duration_ms, outcome.status)
        return outcome

    def count_app_request(self, status: int) -> None:
        self.stats.app_served += 1
        if status >= 500:
            self.stats.errors_5xx += 1

    def public_state(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "current_release": self.releases.public(self.releases.current),
            "maintenance": list(self.edge.maintenance),
            "flags": self.edge.public_flags(),
            "request_metrics": self.request_metrics,
            "faults": {"metrics": self.metrics_fault, "slow_seconds": self.slow_seconds},
            "stats": {"app_served": self.stats.app_served, "edge_served": self.stats.edge_served,
                      "errors_5xx": self.stats.errors_5xx},
        }


def records_request(path: str) -> bool:
    """Paths the switched-on metrics middleware would see: src/middleware.ts's matcher skips /monitoring."""
    return not (path == "/monitoring" or path.startswith("/monitoring/") or path.startswith("/_next/"))
