"""The bundle of capabilities a run works with, and how a run finds it.

``connect(settings)`` builds the live bundle for the configured platform. ``use(providers)`` binds a bundle
for the duration of a block (tests, the demo); flows call ``current()``. Nothing here connects at import.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from remediation.providers.approvals import Approvals
from remediation.providers.budget import RequestBudget
from remediation.providers.clock import Clock, RealClock
from remediation.providers.http import AppHttp
from remediation.providers.metrics import AppMetrics, Metrics
from remediation.providers.platform import Capacity, Deploys, EdgeControls, Errors, Instances, Jobs, Logs
from remediation.providers.security import ActorBlocks, Antivirus, AuditLog, Identity, StatusUpdates, UploadPolicy
from remediation.settings import Settings

if TYPE_CHECKING:
    from remediation.notify.notifier import Notifications
    from remediation.providers.access_probe import AccessProbe
    from remediation.providers.database import DatabaseActions, DatabaseInspector
    from remediation.providers.instances import InstanceMetrics
    from remediation.providers.probe import LoadProbe
    from remediation.providers.quarantine import Quarantine
    from remediation.store import Store

    class Database(DatabaseInspector, DatabaseActions, Protocol):
        """What runbooks need of the database: the inspector's reads and its two repairs."""


@dataclass
class Providers:
    settings: Settings
    metrics: Metrics
    deploys: Deploys
    edge: EdgeControls
    logs: Logs
    errors: Errors
    approvals: Approvals
    store: Store
    clock: Clock = field(default_factory=RealClock)
    # Levers a platform may lack (kamkmserve on Vercel has no scale knob and no jobs): None means "no lever",
    # and a plan that needs it is refused at the gate with NoLever rather than half-applied.
    capacity: Capacity | None = None
    jobs: Jobs | None = None
    database: Database | None = None
    blocks: ActorBlocks | None = None
    uploads: UploadPolicy | None = None
    antivirus: Antivirus | None = None
    audit: AuditLog | None = None
    identity: Identity | None = None
    quarantine: Quarantine | None = None  # what the upload scanner kept of rejected files (samples, file types)
    probe: LoadProbe | None = None  # k6-like smoke probe of public pages (recovery checks)
    instances: Instances | None = None  # rolling restarts: drain, restart, restore (AWS: ELBv2 + EC2)
    # Each instance's own metrics page and the load balancer's counters; None: stability after a restart is unknown.
    instance_metrics: InstanceMetrics | None = None
    status_page: StatusUpdates | None = None  # public status updates (a notification, not a lever)
    access: AccessProbe | None = None  # admin-area denials and probes with non-admin/admin test identities
    # Slack / Statuspage / PagerDuty fan-out (remediation.notify); None: the run notifies nobody. Failures are
    # recorded on the run's timeline, never raised into the runbook.
    notifier: Notifications | None = None

    def with_(self, **changes: Any) -> Providers:
        return replace(self, **changes)


class UnsupportedPlatform(RuntimeError):
    pass


def connect(settings: Settings, *, migrate: bool = True) -> Providers:
    """Live providers: the platform's bundle, then the configuration's per-capability choices and the
    notification channels (remediation.capabilities)."""
    from remediation.capabilities import compose

    return compose(_connect_platform(settings, migrate=migrate))


def _connect_platform(settings: Settings, *, migrate: bool = True) -> Providers:
    """Live providers for ``settings.platform``; the store is migrated to head on first use."""
    from remediation.providers.audit import PostgresAuditLog
    from remediation.providers.database import PostgresInspector
    from remediation.providers.prefect_approvals import PrefectApprovals
    from remediation.providers.probe import LoadProbe
    from remediation.providers.sim_capacity import SimCapacity
    from remediation.providers.sim_database import SimDatabase, SimJobs
    from remediation.providers.sim_identity import SimIdentity, SimStatusPage
    from remediation.providers.sim_instances import SimInstances
    from remediation.providers.sim_platform import ControlPlane, SimDeploys, SimEdge, SimErrors, SimLogs
    from remediation.providers.sim_security import SimAuditLog, SimBlocks, SimQuarantine, SimUploadPolicy

    if settings.platform == "aws":
        return _connect_aws(settings, migrate=migrate)
    if settings.platform == "vercel":
        from remediation.providers.vercel_bundle import connect_vercel

        return connect_vercel(settings, migrate=migrate)  # Vercel + Sentry + Clerk; see vercel_bundle
    if settings.platform != "sim":
        raise UnsupportedPlatform(
            f"platform '{settings.platform}' has no adapters yet; use REMEDIATE_PLATFORM=sim or aws"
        )
    store, http = _store_and_http(settings, migrate=migrate)
    plane = ControlPlane(settings.resolved_platform_url, timeout_s=settings.http_timeout_s)
    fleet = SimInstances(plane, timeout_s=settings.http_timeout_s)
    return Providers(
        settings=settings,
        metrics=AppMetrics(http),
        deploys=SimDeploys(plane),
        edge=SimEdge(plane),
        logs=SimLogs(plane),
        errors=SimErrors(plane),
        approvals=PrefectApprovals(poll_interval_s=settings.approval_poll_s),
        store=store,
        capacity=SimCapacity(plane),
        jobs=SimJobs(plane),
        database=(PostgresInspector(settings.app_database_url) if settings.app_database_url
                  else SimDatabase(plane)),
        probe=LoadProbe(http),
        blocks=SimBlocks(plane),
        uploads=SimUploadPolicy(plane),
        antivirus=_antivirus(settings, plane),
        audit=(PostgresAuditLog(settings.app_database_url) if settings.app_database_url else SimAuditLog(plane)),
        quarantine=SimQuarantine(plane),
        identity=SimIdentity(plane),
        status_page=SimStatusPage(plane),
        access=_sim_access(http),
        instances=fleet,
        instance_metrics=fleet,
    )


def _sim_access(http: AppHttp) -> AccessProbe:
    """The access probe with the simulator's test users (its stand-in for Clerk test-user sessions)."""
    from remediation.providers.access_probe import AccessProbe, ProbeIdentity
    from remediation.providers.sim_identity import PROBE_ADMIN_SESSION, PROBE_USER_SESSION, SESSION_COOKIE

    return AccessProbe(http, user=ProbeIdentity(name="probe-member", role="USER",
                                                cookies={SESSION_COOKIE: PROBE_USER_SESSION}),
                       admin=ProbeIdentity(name="probe-admin", role="ADMIN",
                                           cookies={SESSION_COOKIE: PROBE_ADMIN_SESSION}))


def _connect_aws(settings: Settings, *, migrate: bool) -> Providers:
    """The levers are AWS (remediation.providers.aws, REMEDIATE_AWS_*). The app's metrics still come from its own
    HTTP endpoints (REMEDIATE_APP_URL); errors come from the error tracker at REMEDIATE_PLATFORM_URL (the
    simulator's) until the Sentry adapter is wired; database and audit reads need REMEDIATE_APP_DATABASE_URL, the
    scanner REMEDIATE_CLAMD_HOST. A lever the settings do not name is None: the gate answers NoLever."""
    from remediation.providers.audit import PostgresAuditLog
    from remediation.providers.aws import aws_levers
    from remediation.providers.database import PostgresInspector
    from remediation.providers.prefect_approvals import PrefectApprovals
    from remediation.providers.probe import LoadProbe
    from remediation.providers.sim_platform import ControlPlane, SimErrors

    store, http = _store_and_http(settings, migrate=migrate)
    clock = RealClock()
    aws = aws_levers(settings, clock)
    return Providers(
        settings=settings, metrics=AppMetrics(http), deploys=aws.deploys, edge=aws.edge, logs=aws.logs,
        errors=SimErrors(ControlPlane(settings.resolved_platform_url, timeout_s=settings.http_timeout_s)),
        approvals=PrefectApprovals(poll_interval_s=settings.approval_poll_s), store=store, clock=clock,
        capacity=aws.capacity, jobs=aws.jobs, blocks=aws.blocks, uploads=aws.uploads, instances=aws.instances,
        database=PostgresInspector(settings.app_database_url) if settings.app_database_url else None,
        audit=PostgresAuditLog(settings.app_database_url) if settings.app_database_url else None,
        antivirus=_clamd(settings), probe=LoadProbe(http),
    )


def _store_and_http(settings: Settings, *, migrate: bool) -> tuple[Store, AppHttp]:
    """Our store (migrated to head when ``migrate``) and the app's rate-budgeted HTTP client, as every bundle has."""
    from remediation.store import Store

    store = Store(settings.resolved_database_url)
    if migrate:
        store.migrate()
    return store, AppHttp(settings.app_url, RequestBudget(settings.metrics_budget_per_min),
                          timeout_s=settings.http_timeout_s)


def _clamd(settings: Settings) -> Antivirus | None:
    """clamd at REMEDIATE_CLAMD_HOST; None when unset."""
    from remediation.providers.clamd import ClamdAntivirus

    if settings.clamd_host:
        return ClamdAntivirus(settings.clamd_host, settings.clamd_port, timeout_s=settings.http_timeout_s)
    return None


def _antivirus(settings: Settings, plane: Any) -> Antivirus:
    from remediation.providers.sim_security import SimAntivirus

    return _clamd(settings) or SimAntivirus(plane)


_bound: ContextVar[Providers | None] = ContextVar("remediation_providers", default=None)
# Prefect may run a flow on another thread or event loop than the one that bound the providers; a
# process-wide fallback keeps ``use()`` visible there too.
_process_bound: list[Providers] = []
_lock = threading.Lock()
_connected: dict[str, Providers] = {}


@contextlib.contextmanager
def use(providers: Providers) -> Iterator[Providers]:
    token = _bound.set(providers)
    with _lock:
        _process_bound.append(providers)
    try:
        yield providers
    finally:
        _bound.reset(token)
        with _lock:
            _process_bound.remove(providers)


def current() -> Providers:
    bound = _bound.get()
    if bound is not None:
        return bound
    with _lock:
        if _process_bound:
            return _process_bound[-1]
    settings = Settings()
    key = settings.model_dump_json()
    with _lock:
        if key not in _connected:
            _connected[key] = connect(settings)
        return _connected[key]
