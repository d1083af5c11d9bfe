"""The bundle of capabilities a run works with, and how a run finds it.

The composition root (``remediation.composition.connect``) builds the live bundle. ``use(providers)`` binds a
bundle for the duration of a block (tests, the demo, serve); flows find it through ``composition.current()``.
Nothing here connects or builds anything.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from remediation.providers.capabilities import (
    ActorBlocks,
    Antivirus,
    Approvals,
    AuditLog,
    Capacity,
    Clock,
    Deploys,
    EdgeControls,
    Errors,
    Identity,
    Instances,
    Jobs,
    Logs,
    Metrics,
    StatusUpdates,
    UploadPolicy,
)
from remediation.providers.clock import RealClock
from remediation.settings import Settings

if TYPE_CHECKING:
    from remediation.notify.notifier import Notifications
    from remediation.providers.access_probe import AccessProbe
    from remediation.providers.capabilities import DatabaseActions, DatabaseInspector, InstanceMetrics, Quarantine
    from remediation.providers.probe import LoadProbe
    from remediation.store import Store

    class Database(DatabaseInspector, DatabaseActions, Protocol):
        """What runbooks need of the database: the inspector's reads and its two repairs."""


@dataclass
class Providers:
    settings: Settings
    metrics: Metrics
    # A lever the platform lacks (or that no platform was chosen for) is None: a plan that needs it is refused
    # before anyone is asked to approve it (remediation.levers), and at the gate with NoLever.
    deploys: Deploys | None
    edge: EdgeControls | None
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
    # capability -> where it came from, for `remediate check` and the lever checks (remediation.composition).
    sources: dict[str, Source] = field(default_factory=dict)

    def read_only(self, capability: str) -> bool:
        source = self.sources.get(capability)
        return source is not None and source.read_only

    def no_lever(self, capability: str) -> str:
        """Why ``capability`` has no lever here, for notes and escalations (no platform, none on it, settings)."""
        source = self.sources.get(capability)
        platform = self.settings.platform
        why = source.why if source is not None and source.why else (
            f"platform '{platform}' has none" if platform else "no platform chosen (REMEDIATE_PLATFORM unset)")
        return f"no {capability} lever: {why}"

    def with_(self, **changes: Any) -> Providers:
        return replace(self, **changes)


@dataclass(frozen=True)
class Source:
    """Where a capability came from (remediation.composition): what ``remediate check`` reports about it."""

    implementation: str  # "sim", "aws", "sentry", ... or "none"
    explicit: bool  # named in [capabilities], not just the platform preset
    missing: tuple[str, ...] = ()  # settings it needs and does not have: it is absent
    read_only: bool = False  # built for its reads; its repairs are not levers (no platform chosen)
    detail: str = ""

    @property
    def why(self) -> str:
        """Why it is absent or limited, in a sentence: the settings it misses, else the detail."""
        return f"{self.implementation} needs {', '.join(self.missing)}" if self.missing else self.detail


_bound: ContextVar[Providers | None] = ContextVar("remediation_providers", default=None)
# Prefect may run a flow on another thread or event loop than the one that bound the providers; a
# process-wide fallback keeps ``use()`` visible there too.
_process_bound: list[Providers] = []
_lock = threading.Lock()


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


def bound() -> Providers | None:
    """The bundle bound by :func:`use` in this context (or, from another thread, in this process), if any.

    Building one from the environment is the composition root's job (``remediation.composition.current``)."""
    providers = _bound.get()
    if providers is not None:
        return providers
    with _lock:
        return _process_bound[-1] if _process_bound else None
