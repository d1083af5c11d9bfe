"""Several kamkmserve instances behind a simulated load balancer (AWS ALB semantics), for rolling restarts.

Only the ``rolling-restart`` scenario attaches a ``Fleet`` to the ``SimState``; every other scenario keeps the
single instance of the app on Vercel. With a fleet, every request (simulated users and real HTTP alike) goes
through :meth:`Fleet.route`, which picks a target round-robin among the registered, healthy ones.

What it reproduces, because a rolling restart is judged by it:

* **Per-instance state** (docs/reference/kamkmserve.md §2.4): each instance is its own Node process with its own metric
ring
  buffers, rate-limit store and upload quota, all lost when it restarts (uptime from zero, empty buffers).
* **Restart without drain fails requests, as in reality.** SIGTERM makes the app log
  ``Received SIGTERM, initiating graceful shutdown...``, flush Sentry and exit after ``shutdown_s`` without
  draining (§9). Requests still in flight at the exit are cut (the client gets the load balancer's 502). Until
  ``unhealthy_threshold`` health checks have failed, the load balancer keeps sending new requests to the dead
  target: 502 as well. ``/monitoring/ready`` answers 200 whenever the process runs, so the checks only notice a
  process that is gone, never one that is merely starting.
* **Drain.** A deregistered target gets no new requests; those in flight finish; the deregistration completes
  as soon as none are left, or when ``deregistration_delay_s`` has passed (what is still in flight is cut then).
* **Registration.** A registered target gets traffic after ``healthy_threshold`` passing checks.

Time is the simulator's clock; state changes are computed lazily, in time order, whenever someone routes a request
or reads the fleet (:meth:`Fleet.advance`), so nothing needs a timer of its own.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from kamkmserve_sim.collector import MetricsCollector
from kamkmserve_sim.faults import Fault
from kamkmserve_sim.instances_config import FaultAfterRestart, FleetConfig
from kamkmserve_sim.jsfmt import js_iso
from kamkmserve_sim.process import SimulatedProcess
from kamkmserve_sim.ratelimit import ApiRateLimiter
from kamkmserve_sim.uploads import UploadQuota

if TYPE_CHECKING:
    from kamkmserve_sim.routes import AppRequest, Outcome
    from kamkmserve_sim.state import Instance, SimState

SERVICE = "kamkmserve"
Health = Literal["initial", "healthy", "unhealthy"]
ProcessState = Literal["running", "stopping", "starting"]
LbState = Literal["initial", "healthy", "unhealthy", "draining", "unused"]

_bound: ContextVar[Instance | None] = ContextVar("sim_fleet_target", default=None)


@dataclass
class Lifetime:
    """One run of an instance's process, from boot to exit."""

    generation: int
    up_at_ms: int
    runtime: Instance
    sigterm_at_ms: int | None = None
    down_at_ms: int | None = None  # when the process exits (set by SIGTERM)

    def alive_at(self, at_ms: int) -> bool:
        return at_ms >= self.up_at_ms and (self.down_at_ms is None or at_ms < self.down_at_ms)


@dataclass
class LbCounters:
    """What the load balancer itself counts (CloudWatch's RequestCount / HTTPCode_ELB_5XX / HTTPCode_Target_5XX)."""

    requests: int = 0
    elb_502: int = 0
    elb_503: int = 0
    target_5xx: int = 0

    def public(self) -> dict[str, int]:
        return {"requests": self.requests, "elb_502": self.elb_502, "elb_503": self.elb_503,
                "elb_5xx": self.elb_502 + self.elb_503, "target_5xx": self.target_5xx}


@dataclass
class Target:
    """One instance: its process lifetimes and its registration with the load balancer."""

    id: str
    lifetime: Lifetime | None
    registered_at_ms: int
    next_check_ms: int
    generation: int = 0
    boot_at_ms: int | None = None  # the next process starts then (after an exit)
    registered: bool = True
    health: Health = "healthy"
    ok_streak: int = 0
    fail_streak: int = 0
    deregistered_at_ms: int | None = None
    drained_at_ms: int | None = None
    virtual_ends: list[int] = field(default_factory=list)  # simulated users' requests in flight: end times
    http_in_flight: int = 0
    last_request_end_ms: int = 0
    served: int = 0
    failed: int = 0
    events: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=64))

    def process_state(self, now_ms: int) -> ProcessState:
        life = self.lifetime
        if life is None or not life.alive_at(now_ms):
            return "starting"
        return "stopping" if life.sigterm_at_ms is not None else "running"

    def in_flight(self, now_ms: int) -> int:
        return sum(1 for end in self.virtual_ends if end > now_ms) + self.http_in_flight

    def lb_state(self, now_ms: int) -> LbState:
        if not self.registered:
            return "unused" if self.drained_at_ms is not None else "draining"
        return self.health

    def note(self, at_ms: int, event: str) -> None:
        self.events.append((at_ms, event))


class Fleet:
    """The instances of the service and the load balancer in front of them."""

    def __init__(self, state: SimState, config: FleetConfig) -> None:
        self.state = state
        self.config = config
        self.counters = LbCounters()
        self.fault_after_restart: FaultAfterRestart | None = None
        self._rng = random.Random(state.seed + 3)
        self._round_robin = itertools.count()
        self._last_ms = 0
        now = state.clock.now_ms()
        self.targets: dict[str, Target] = {}
        for index in range(config.instances):
            target_id = f"i-{index + 1:02d}"
            target = Target(id=target_id, lifetime=self._boot(0, now), registered_at_ms=now,
                            next_check_ms=now + self._ms(config.health_interval_s))
            target.note(now, "registered, healthy")
            self.targets[target_id] = target

    # -- binding: which instance's process a request is served by ---------------------------------------------

    @staticmethod
    def bound() -> Instance | None:
        return _bound.get()

    @staticmethod
    @contextmanager
    def serving_on(instance: Instance) -> Iterator[None]:
        token = _bound.set(instance)
        try:
            yield
        finally:
            _bound.reset(token)

    # -- time -----------------------------------------------------------------------------------------------

    def now(self) -> int:
        return self.state.clock.now_ms()

    def advance(self, now_ms: int | None = None) -> int:
        """Apply every process exit, boot, health check and drain completion due by ``now_ms``, in time order."""
        now = self.now() if now_ms is None else now_ms
        if now < self._last_ms:  # a backdated prefill: the fleet's own history only moves forward
            return now
        self._last_ms = now
        for target in self.targets.values():
            self._advance(target, now)
        return now

    def _advance(self, target: Target, now: int) -> None:
        while True:
            life = target.lifetime
            exit_at = life.down_at_ms if life is not None and life.down_at_ms is not None else None
            due = [t for t in (exit_at, target.boot_at_ms, target.next_check_ms) if t is not None and t <= now]
            drain_due = self._drain_due(target, now)
            if drain_due is not None:
                due.append(drain_due)
            if not due:
                return
            at = min(due)
            if exit_at is not None and at == exit_at:
                self._exit(target, at)
            elif at == target.boot_at_ms:
                self._come_up(target, at)
            elif drain_due is not None and at == drain_due:
                self._drained(target, at)
            else:
                self._health_check(target, at)

    def _drain_due(self, target: Target, now: int) -> int | None:
        if target.registered or target.drained_at_ms is not None or target.deregistered_at_ms is None:
            return None
        cut_at = target.deregistered_at_ms + self._ms(self.config.deregistration_delay_s)
        if target.http_in_flight == 0:
            pending = [end for end in target.virtual_ends if end > target.deregistered_at_ms]
            done_at = max([target.deregistered_at_ms, target.last_request_end_ms, *pending])
            if done_at <= now:
                return min(done_at, cut_at)
        return cut_at if cut_at <= now else None

    def _exit(self, target: Target, at: int) -> None:
        cut = [end for end in target.virtual_ends if end > at]
        if cut:  # connection reset mid-request: the client gets the load balancer's 502
            self.counters.elb_502 += len(cut)
            target.failed += len(cut)
        target.virtual_ends = []
        target.lifetime = None
        target.boot_at_ms = at + self._ms(self.config.restart_s)
        target.note(at, f"process exited ({len(cut)} request(s) in flight cut)")

    def _come_up(self, target: Target, at: int) -> None:
        target.boot_at_ms = None
        target.generation += 1
        target.lifetime = self._boot(target.generation, at)
        target.note(at, f"process started (generation {target.generation})")
        self.state.log.print_banner(self.state.port)  # `next start` again: the fresh process's banner

    def _drained(self, target: Target, at: int) -> None:
        cut = [end for end in target.virtual_ends if end > at]
        if cut:  # the deregistration delay ran out: the load balancer closes what is left
            self.counters.elb_502 += len(cut)
            target.failed += len(cut)
            target.virtual_ends = [end for end in target.virtual_ends if end <= at]
        target.drained_at_ms = at
        target.note(at, "deregistration complete" + (f" ({len(cut)} request(s) cut at the delay)" if cut else ""))

    def _health_check(self, target: Target, at: int) -> None:
        target.next_check_ms = at + self._ms(self.config.health_interval_s)
        if not target.registered:
            return
        passed = target.lifetime is not None and target.lifetime.alive_at(at)  # /monitoring/ready: 200 while up
        if passed:
            target.ok_streak, target.fail_streak = target.ok_streak + 1, 0
            if target.health != "healthy" and target.ok_streak >= self.config.healthy_threshold:
                target.health = "healthy"
                target.note(at, "healthy")
        else:
            target.ok_streak, target.fail_streak = 0, target.fail_streak + 1
            if target.health != "unhealthy" and target.fail_streak >= self.config.unhealthy_threshold:
                target.health = "unhealthy"
                target.note(at, "unhealthy")

    def _boot(self, generation: int, at_ms: int) -> Lifetime:
        from kamkmserve_sim.state import Instance

        config = self.state.config
        process = SimulatedProcess(self.state.clock, seed=self._rng.randrange(2**32),
                                   ratio_low=config.heap_ratio_low, ratio_high=config.heap_ratio_high)
        fault = self.fault_after_restart if generation > 0 else None
        runtime = Instance(process=process, collector=MetricsCollector(self.state.log, self.state.clock, process),
                           limiter=ApiRateLimiter(config.rate_limit), upload_quota=UploadQuota(),
                           fault=Fault(fault.error_share, fault.paths, fault.extra_latency_ms) if fault else None)
        return Lifetime(generation=generation, up_at_ms=at_ms, runtime=runtime)

    @staticmethod
    def _ms(seconds: float) -> int:
        return round(seconds * 1000)

    # -- operations (the control plane) --------------------------------------------------------------------

    def get(self, target_id: str) -> Target:
        try:
            return self.targets[target_id]
        except KeyError:
            raise KeyError(f"instance {target_id}") from None

    def deregister(self, target_id: str) -> bool:
        """Take the target out of the load balancer (drain). Idempotent: returns whether anything changed."""
        now = self.advance()
        target = self.get(target_id)
        if not target.registered:
            return False
        target.registered = False
        target.deregistered_at_ms, target.drained_at_ms = now, None
        target.note(now, f"deregistered: draining {target.in_flight(now)} request(s) in flight")
        self.advance(now)  # nothing in flight: the deregistration completes at once
        return True

    def register(self, target_id: str) -> bool:
        """Put the target back; it gets traffic after ``healthy_threshold`` passing checks. Idempotent."""
        now = self.advance()
        target = self.get(target_id)
        if target.registered:
            return False
        target.registered, target.health = True, "initial"
        target.ok_streak = target.fail_streak = 0
        target.registered_at_ms, target.deregistered_at_ms, target.drained_at_ms = now, None, None
        target.next_check_ms = now + self._ms(self.config.health_interval_s)
        target.note(now, "registered")
        return True

    def restart(self, target_id: str) -> bool:
        """SIGTERM the instance's process; it exits after ``shutdown_s`` and starts again ``restart_s`` later.
        Whether it is still registered is up to the caller: that is what makes a restart naive or drained.
        Returns False (nothing done) while a restart is already under way."""
        now = self.advance()
        target = self.get(target_id)
        life = target.lifetime
        if life is None or life.sigterm_at_ms is not None or not life.alive_at(now):
            return False
        life.sigterm_at_ms = now
        life.down_at_ms = now + self._ms(self.config.shutdown_s)
        target.note(now, "SIGTERM" + ("" if not target.registered else " while registered (no drain)"))
        self.state.log.log("warn", "Received SIGTERM, initiating graceful shutdown...", at_ms=now)
        self.advance(now)
        return True

    # -- routing --------------------------------------------------------------------------------------------

    def route(self, now_ms: int | None = None) -> Target | None:
        """The target the load balancer sends the next request to (None: no registered target at all).

        Round robin over registered, healthy targets; with none healthy, over every registered one (ALB fails
        open). The choice may be a target whose process is gone: the load balancer does not know yet.
        """
        self.advance(now_ms)
        healthy = [t for t in self.targets.values() if t.registered and t.health == "healthy"]
        candidates = healthy or [t for t in self.targets.values() if t.registered]
        if not candidates:
            return None
        return candidates[next(self._round_robin) % len(candidates)]

    def serve(self, request: AppRequest, serve: Callable[[AppRequest], Outcome]) -> Outcome:
        """A simulated user's request through the load balancer (``serve`` is the app on the chosen instance)."""
        from kamkmserve_sim.routes import Outcome

        now = self.now()
        self.counters.requests += 1
        target = self.route(now)
        if target is None:
            self.counters.elb_503 += 1
            return Outcome(503, "api", duration_ms=1)
        life = target.lifetime
        if life is None or not life.alive_at(now):
            self.counters.elb_502 += 1
            target.failed += 1
            return Outcome(502, "api", duration_ms=1)
        with self.serving_on(life.runtime):
            outcome = serve(request)
        end = now + outcome.duration_ms
        target.served += 1
        target.last_request_end_ms = max(target.last_request_end_ms, end)
        target.virtual_ends = [e for e in target.virtual_ends if e > now]
        target.virtual_ends.append(end)
        if outcome.status >= 500:
            self.counters.target_5xx += 1
        return outcome

    # -- reading --------------------------------------------------------------------------------------------

    def public_target(self, target: Target, now: int) -> dict[str, object]:
        life = target.lifetime
        return {
            "id": target.id,
            "service": SERVICE,
            "lb_state": target.lb_state(now),
            "registered": target.registered,
            "process": target.process_state(now),
            "generation": target.generation,
            "in_flight": target.in_flight(now),
            "uptime_s": round(life.runtime.process.uptime_s(), 3) if life is not None and life.alive_at(now) else None,
            "served": target.served,
            "failed": target.failed,
            "events": [{"at": js_iso(at), "event": event} for at, event in target.events],
        }

    def public(self) -> dict[str, object]:
        now = self.advance()
        config = self.config
        return {
            "service": SERVICE,
            "load_balancer": {
                "deregistration_delay_s": config.deregistration_delay_s,
                "health_check": {"path": "/monitoring/ready", "interval_s": config.health_interval_s,
                                 "healthy_threshold": config.healthy_threshold,
                                 "unhealthy_threshold": config.unhealthy_threshold},
                **self.counters.public(),
            },
            "restart": {"shutdown_s": config.shutdown_s, "restart_s": config.restart_s},
            "fault_after_restart": (self.fault_after_restart.model_dump(mode="json")
                                    if self.fault_after_restart else None),
            "instances": [self.public_target(t, now) for t in self.targets.values()],
        }
