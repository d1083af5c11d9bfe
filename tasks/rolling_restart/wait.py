"""The rolling restart's waits: for a restarted process to run again, and for the service to be stable again.

Both keep reading the SLO while they wait (:class:`SloWatch`): an instance is out of the load balancer the whole
time, and if the others cannot carry the load, or the restarted one comes back broken, the drill must stop at
once rather than at the end of a wait. A breach is ``BREACH_AFTER`` readings in a row over a threshold (one noisy
reading is not one).

Whether a restart happened is read from the app itself: ``process_uptime_seconds`` (it exists in the real app)
below the time since the restart was asked for can only come from a new process. The platform's word that it
rebooted is not enough: ``/monitoring/ready`` answers 200 while the old process is still flushing Sentry.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediation.incident import RunningIncident
from remediation.models import FindingStatus, Phase, Sample, Verification
from remediation.providers.instances import LoadBalancerStatus, uptime_s, user_request_stats
from tasks import step
from tasks.rolling_restart.checks import Reading, Slo, read_slo

BREACH_AFTER = 2
POLL_S = 0.25


class SloWatch:
    """SLO readings during the drill, at most one per ``interval_s`` when taken through :meth:`due`."""

    def __init__(self, incident: RunningIncident, service: str, slo: Slo, interval_s: float) -> None:
        self.incident = incident
        self.service = service
        self.slo = slo
        self.interval_s = interval_s
        self.lb: LoadBalancerStatus | None = None
        self.streak = 0  # breaching readings in a row
        self.last: Reading | None = None
        self.samples: list[Sample] = []
        self._read_at: float | None = None

    @property
    def breached(self) -> bool:
        return self.streak >= BREACH_AFTER

    async def in_service(self) -> list[str]:
        instances = self.incident.providers.instances
        if instances is None:
            return []
        return [i.id for i in await instances.instances(self.service) if i.state == "healthy"]

    async def read(self, label: str = "reading") -> Reading:
        providers = self.incident.providers
        self._read_at = providers.clock.monotonic()
        reading = await read_slo(providers, self.service, await self.in_service(), self.slo, self.lb)
        if reading.lb is not None:
            self.lb = reading.lb
        self.streak = self.streak + 1 if reading.status is FindingStatus.BREACH else 0
        self.last = reading
        self.samples.append(Sample(at=providers.clock.now(), value=reading.p95_ms,
                                   healthy=reading.status is FindingStatus.OK))
        self.incident.note(Phase.REMEDIATE, f"SLO {label}: {reading.status.value}", reading.detail)
        return reading

    async def due(self, label: str = "reading") -> Reading | None:
        """A reading if ``interval_s`` has passed since the last one, else None."""
        now = self.incident.providers.clock.monotonic()
        if self._read_at is not None and now - self._read_at < self.interval_s:
            return None
        return await self.read(label)


@dataclass(frozen=True)
class Waited:
    ok: bool
    detail: str
    seconds: float


@step(name="remediate: wait for the restart")
async def wait_restarted(watch: SloWatch, instance_id: str, asked_at: float, timeout_s: float) -> Waited:
    """Until the instance runs a process younger than the restart request (``asked_at``, monotonic), the SLO
    breaches, or ``timeout_s`` passes."""
    providers = watch.incident.providers
    clock = providers.clock
    probe = providers.instance_metrics
    last = "not read yet"
    while True:
        elapsed = clock.monotonic() - asked_at
        if probe is not None:
            page = await probe.metrics_page(watch.service, instance_id)
            uptime = uptime_s(page.text) if page.text is not None else None
            if uptime is not None and uptime < elapsed:
                return Waited(True, f"{instance_id} runs a new process (uptime {uptime:.1f}s)", elapsed)
            last = page.error or f"uptime {uptime}s: still the old process"
        await watch.due("while restarting")
        if watch.breached and watch.last is not None:
            return Waited(False, f"SLO breached while {instance_id} was restarting: {watch.last.detail}", elapsed)
        if elapsed > timeout_s:
            return Waited(False, f"{instance_id} did not come back within {timeout_s:g}s ({last})", elapsed)
        await clock.sleep(POLL_S)


@step(name="remediate: wait for traffic")
async def wait_warm(watch: SloWatch, instance_id: str, timeout_s: float) -> Waited:
    """Until the restored instance has served ``min_records`` user requests: it starts with empty buffers, and until
    then a reading of it is unknown. Polls only its own page (one request, not the whole fleet) every ``POLL_S``,
    so the stability readings start as soon as they can pass; the SLO is still read every interval meanwhile."""
    providers = watch.incident.providers
    clock = providers.clock
    probe = providers.instance_metrics
    started = clock.monotonic()
    last = "not read yet"
    while probe is not None:
        page = await probe.metrics_page(watch.service, instance_id)
        if page.text is not None:
            try:
                stats = user_request_stats(page.text, watch.slo.window)
            except ValueError as exc:
                stats, last = None, f"unparseable metrics page ({exc})"
            if stats is not None and stats.available and stats.records >= watch.slo.min_records:
                return Waited(True, f"{instance_id} has served {stats.records} requests", clock.monotonic() - started)
            if stats is not None:
                last = f"{stats.records} requests" if stats.available else stats.reason
        else:
            last = page.error or "unreadable"
        await watch.due("while it warms up")
        if watch.breached and watch.last is not None:
            return Waited(False, f"SLO breached: {watch.last.detail}", clock.monotonic() - started)
        if clock.monotonic() - started > timeout_s:
            break
        await clock.sleep(POLL_S)
    return Waited(False, f"{instance_id} did not serve {watch.slo.min_records} requests within {timeout_s:g}s "
                  f"({last})", clock.monotonic() - started)


@step(name="remediate: wait for stability")
async def wait_stable(watch: SloWatch, checks: int, timeout_s: float, label: str) -> Verification:
    """``checks`` readings in a row within the SLO, one per interval; stops at a breach (``BREACH_AFTER`` in a row)
    or when ``timeout_s`` has passed without enough (unknown: a restarted instance that never serves, dead
    metrics). The first reading is taken at once."""
    clock = watch.incident.providers.clock
    started = clock.monotonic()
    first = len(watch.samples)
    streak = 0
    check = f"{watch.slo.describe()}: {checks} readings in a row, {watch.interval_s:g}s apart"
    while True:
        reading = await watch.read(label)
        streak = streak + 1 if reading.status is FindingStatus.OK else 0
        samples = tuple(watch.samples[first:])
        if streak >= checks:
            return Verification(check=check, healthy=True, samples=samples, required_consecutive=checks,
                                detail=f"stable: {reading.detail}")
        if watch.breached:
            return Verification(check=check, healthy=False, samples=samples, required_consecutive=checks,
                                detail=f"SLO breached: {reading.detail}")
        if clock.monotonic() - started + watch.interval_s > timeout_s:
            return Verification(check=check, healthy=False, samples=samples, required_consecutive=checks,
                                detail=f"not stable within {timeout_s:g}s: {reading.detail}")
        await clock.sleep(watch.interval_s)
