"""Every capability the runbooks use, one ``typing.Protocol`` each: what a runbook may ask of the world.

The live adapters (AWS, Vercel, Sentry, Clerk, PostgreSQL, ClamAV, the app's HTTP) and the simulator's HTTP clients
(``sim_*``) satisfy these structurally; ``remediation.composition`` picks one per capability and ``runtime.Providers``
bundles them. The data they exchange stays with the modules that parse it; this module only names the contracts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from remediation.models import Approval
    from remediation.providers.approvals import Answer, ApprovalRequest
    from remediation.providers.dbops import DbOperationStats
    from remediation.providers.dbqueries import (
        IndexReport,
        LockReport,
        Presence,
        ScanReport,
        SessionReport,
        StatementReport,
    )
    from remediation.providers.instances import LoadBalancerStatus, MetricsPage
    from remediation.providers.metrics import HealthReading, RequestStats
    from remediation.providers.platform import ErrorIssue, FlagChange, Instance, Job, LogLine, Release
    from remediation.providers.quarantine import QuarantineReport
    from remediation.providers.security import (
        AuditReport,
        Block,
        BlockKind,
        IdentityCheck,
        ScanVerdict,
        UploadAllowlist,
    )
    from remediation.providers.uploadstats import UploadCounts
    from remediation.sqlindex import CreateIndex


class Metrics(Protocol):
    async def request_stats(self, window_records: int) -> RequestStats: ...

    async def db_operations(self, window_samples: int) -> DbOperationStats: ...

    async def upload_counts(self) -> UploadCounts: ...

    async def health(self) -> HealthReading: ...


class InstanceMetrics(Protocol):
    """What a rolling restart reads besides the instances' states (``platform.Instances``): each instance's own
    metrics page and the load balancer's counters. Without it, stability after a restart is unknown."""

    async def metrics_page(self, service: str, instance_id: str) -> MetricsPage:
        """The instance's own ``/api/monitoring/metrics`` page, read directly from it (not through the load
        balancer, which would pick any instance). Never raises: an unreadable page says why."""
        ...

    async def load_balancer(self, service: str) -> LoadBalancerStatus: ...


class Deploys(Protocol):
    async def releases(self) -> list[Release]:
        """Newest first; the current one has ``state == "current"``."""
        ...

    async def rollback(self, to_release: str) -> Release:
        """Promote ``to_release``; idempotent when it is already current."""
        ...


class EdgeControls(Protocol):
    async def maintenance_prefixes(self) -> list[str]: ...

    async def set_maintenance(self, prefix: str, enabled: bool) -> bool:
        """Returns whether anything changed (idempotent)."""
        ...

    async def flag_history(self) -> list[FlagChange]: ...

    async def flag(self, name: str) -> bool | None:
        """The flag's value now; None when the platform holds no value for it (never set)."""
        ...

    async def set_flag(self, name: str, enabled: bool) -> bool: ...


class Capacity(Protocol):
    """How many replicas (instances, tasks) serve the service. Platforms that autoscale with no knob have none."""

    async def replicas(self, service: str) -> int: ...

    async def scale(self, service: str, replicas: int) -> int:
        """Set the desired replica count (idempotent); returns the count now desired."""
        ...


class Jobs(Protocol):
    """The service's background job pools. Pausing one is ``set_workers(name, 0)``; the caller remembers the
    previous count (returned) so that resuming restores exactly what ran before."""

    async def jobs(self, service: str) -> list[Job]: ...

    async def set_workers(self, service: str, job: str, workers: int) -> int:
        """Set the pool's worker count (idempotent); returns the count it had before."""
        ...


class Logs(Protocol):
    async def lines(self, since: datetime | None = None, limit: int = 500) -> list[LogLine]: ...


class Errors(Protocol):
    async def issues(self, since: datetime | None = None) -> list[ErrorIssue]: ...


class Instances(Protocol):
    """Rolling restarts: take one instance out of rotation, restart it, put it back. Waits are bounded: a wait that
    runs out raises PlatformError with what was seen, it never hangs."""

    async def instances(self, service: str) -> list[Instance]: ...

    async def drain(self, service: str, instance: str, timeout_s: float) -> Instance:
        """Take it out of rotation and wait until it serves nothing (idempotent)."""
        ...

    async def restore(self, service: str, instance: str, timeout_s: float) -> Instance:
        """Put it back into rotation and wait until it is healthy (idempotent)."""
        ...

    async def restart(self, service: str, instance: str) -> None:
        """Restart it once; never retried automatically (a second restart is a second action)."""
        ...


class Quarantine(Protocol):
    async def samples(self, since: datetime, limit: int = 100) -> QuarantineReport: ...


class ActorBlocks(Protocol):
    async def blocks(self) -> list[Block]: ...

    async def block(self, kind: BlockKind, value: str, ttl_s: int, reason: str) -> Block:
        """Block (idempotent: an existing block's expiry moves to now + ttl)."""
        ...

    async def unblock(self, kind: BlockKind, value: str) -> bool:
        """True when a block was removed; False when there was none."""
        ...


class UploadPolicy(Protocol):
    async def allowlist(self) -> UploadAllowlist: ...

    async def set_allowlist(self, allowlist: UploadAllowlist) -> UploadAllowlist:
        """Replace the allowlist; returns the previous one."""
        ...


class Antivirus(Protocol):
    async def ping(self) -> bool: ...

    async def version(self) -> str | None: ...

    async def scan(self, data: bytes) -> ScanVerdict: ...

    async def reload(self) -> bool:
        """Ask the daemon to reload its signatures; True when it acknowledged."""
        ...


class AuditLog(Protocol):
    async def events(self, since: datetime, event_prefix: str = "upload.", limit: int = 5000) -> AuditReport: ...


class Identity(Protocol):
    async def check(self) -> IdentityCheck: ...

    async def set_setting(self, name: str, value: str) -> str | None:
        """Change one configuration setting; returns the previous value (None: it was unset)."""
        ...

    async def user_roles(self, user_ids: Sequence[str]) -> dict[str, str | None]:
        """Each user's role at the identity provider (Clerk ``publicMetadata.role``); None: none set, or unknown.

        This is who a user *is*, whatever a broken session token says: access decisions are judged against it."""
        ...


class StatusUpdates(Protocol):
    """The public status page (Statuspage and the like). Posting is a notification, not a mutation of the service."""

    async def post(self, title: str, body: str, status: str) -> str:
        """Open a status incident (``investigating``, ``identified``, ``monitoring``, ``resolved``); returns its id."""
        ...

    async def update(self, incident_id: str, body: str, status: str) -> None: ...


class DatabaseInspector(Protocol):
    async def blocking_locks(self) -> LockReport: ...

    async def long_running(self, min_seconds: float) -> SessionReport:
        """Queries active for ``min_seconds`` or more, and transactions left idle that long."""
        ...

    async def scan_stats(self, min_seq_scans: int) -> ScanReport: ...

    async def unused_indexes(self) -> IndexReport: ...

    async def top_statements(self, limit: int) -> StatementReport: ...

    async def backend_present(self, pid: int) -> Presence:
        """Whether a backend with this pid exists now, in any state (``detail``: its state)."""
        ...

    async def index_present(self, schema_name: str, name: str) -> Presence:
        """Whether the index exists now and whether it is valid (``valid``)."""
        ...


class DatabaseActions(Protocol):
    async def terminate_backend(self, pid: int) -> bool:
        """True when the backend is gone; False when no such backend (or it outlived the wait)."""
        ...

    async def create_index_concurrently(self, statement: CreateIndex) -> None: ...


class Ballot(Protocol):
    """The run's judge of answers for one step; it records each verdict as it makes it."""

    def judge(self, answer: Answer) -> Approval:
        ...

    @property
    def decided(self) -> Approval | None:
        """The final answer once enough people approved or someone denied; None while more are needed."""
        ...

    def timed_out(self) -> Approval:
        """The deadline passed: the final answer is a deny (recorded)."""
        ...


class Approvals(Protocol):
    async def request(self, req: ApprovalRequest, ballot: Ballot) -> Approval:
        """Ask until ``ballot`` decides or ``req.timeout_s`` passes; the final answer."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...
