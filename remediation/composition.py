"""The composition root: the one place capabilities are built.

A run's capabilities come from the **platform preset** (``REMEDIATE_PLATFORM``: sim, aws, vercel, or unset), then
the per-capability choices of ``[capabilities]`` in ``remediate.toml`` (or ``REMEDIATE_CAPABILITIES``), each builder
naming its implementation. An implementation whose settings are incomplete is *absent* with what it misses, never
built half-configured and never reported ``ok``.

Nothing mutates unless a platform is chosen: with ``REMEDIATE_PLATFORM`` unset every lever is absent (the runbooks
read, plan, record and escalate with "no lever configured"), and an adapter that both reads and acts (the database
inspector, clamd) is built for its reads only. ``[capabilities]`` naming a lever explicitly is consent to use it.

Builders connect lazily: building a bundle opens no socket and reads no file but the settings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import httpx

from remediation.choices import LEVERS, CapabilityError, missing_settings, validate
from remediation.notify import build as build_notifier
from remediation.providers import absent
from remediation.providers.access_probe import AccessProbe, ProbeIdentity
from remediation.providers.budget import RequestBudget, SharedRequestBudget, app_budget
from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.providers.http import AppHttp
from remediation.providers.metrics import AppMetrics
from remediation.providers.prefect_approvals import PrefectApprovals
from remediation.providers.probe import LoadProbe
from remediation.runtime import Providers, Source, bound
from remediation.settings import Settings
from remediation.store import Store

if TYPE_CHECKING:
    from remediation.notify.notifier import Notifications

#: Capabilities built from the preset and the configuration, in the order ``remediate check`` shows them.
BUILT = ("deploys", "edge", "logs", "errors", "capacity", "jobs", "instances", "instance_metrics", "database",
         "audit", "blocks", "uploads", "antivirus", "identity", "quarantine", "status_page")


def preset(settings: Settings) -> dict[str, str]:
    """capability -> implementation for ``settings.platform`` (None: reads only)."""
    s = settings
    logs = "vercel-drain" if s.vercel.drain_secret is not None and not s.log_files else "file"
    reads = {
        "logs": logs, "errors": "sentry",
        "database": "postgres" if s.app_database_url else "none",
        "audit": "postgres",
        "antivirus": "clamd" if s.clamd.host else "none",
        "status_page": "statuspage",
        "identity": "clerk" if s.clerk.secret_key is not None else "none",
    }
    if s.platform == "sim":
        sim = dict.fromkeys(BUILT, "sim")
        real = {"database": "postgres", "audit": "postgres"} if s.app_database_url else {}
        return {**sim, **real, **({"antivirus": "clamd"} if s.clamd.host else {})}
    if s.platform == "aws":
        aws = dict.fromkeys(("deploys", "edge", "uploads", "capacity", "jobs", "blocks", "instances",
                             "instance_metrics"), "aws")
        return {**reads, **aws, "logs": "aws" if s.aws.log_group else logs}
    if s.platform == "vercel":
        vercel = dict.fromkeys(("deploys", "edge", "uploads", "blocks"), "vercel")
        return {**reads, **vercel, "identity": "clerk", "logs": "file" if s.log_files else "vercel-drain"}
    return reads


class Parts:
    """Shared pieces, each built once and only when a builder needs it (nothing connects here)."""

    def __init__(self, settings: Settings, clock: Clock, *, local_budget: bool = False,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.local_budget = local_budget
        self.transport = transport  # tests and the demo: the simulator in-process (kamkmserve_sim.inprocess)
        self.virtual = False  # the clock is the simulator's virtual time (sim_clock.SimClock)

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.resolved_database_url)

    @cached_property
    def http(self) -> AppHttp:
        """The app's HTTP client; every reader of one app URL in one deployment shares one budget (the store's)."""
        s = self.settings
        # On virtual time the app's rate-limit window moves with the simulator's clock, so the budget's must too.
        wall = (lambda: self.clock.now().timestamp()) if self.virtual else time.time
        budget: RequestBudget | SharedRequestBudget
        if not self.local_budget:
            budget = app_budget(s, self.store, wall=wall)
        elif self.virtual:
            budget = RequestBudget(s.metrics_budget_per_min, monotonic=self.clock.monotonic, wall=wall)
        else:
            budget = RequestBudget(s.metrics_budget_per_min)
        return AppHttp(s.app_url, budget, timeout_s=s.http_timeout_s, transport=self.transport)

    @cached_property
    def plane(self) -> Any:
        from remediation.providers.sim_platform import ControlPlane

        if not self.settings.sim_url:
            raise CapabilityError("the simulator's control plane needs REMEDIATE_SIM_URL")
        return ControlPlane(self.settings.sim_url, timeout_s=self.settings.http_timeout_s, transport=self.transport)

    @cached_property
    def fleet(self) -> Any:
        """The simulated fleet: one object is both the instances lever and their metrics reader."""
        from remediation.providers.sim_instances import SimInstances

        # The run's clock and transport: on virtual time the drain and restore waits, and each instance page's
        # budget, must count the simulator's seconds, and the pages go through the in-process transport.
        return SimInstances(self.plane, timeout_s=self.settings.http_timeout_s, clock=self.clock,
                            transport=self.transport)

    @cached_property
    def aws(self) -> Any:
        from remediation.providers.aws import aws_levers

        return aws_levers(self.settings, self.clock)

    @cached_property
    def vercel(self) -> Any:
        from remediation.providers.vercel import VercelApi

        s = self.settings
        return VercelApi(s.vercel.token, project_id=s.vercel.project_id, team_id=s.vercel.team_id,
                         base_url=s.vercel.api_url, timeout_s=s.http_timeout_s, clock=self.clock)

    @cached_property
    def edge_config(self) -> Any:
        from remediation.providers.vercel_edge import EdgeConfig

        return EdgeConfig(self.vercel, self.settings.vercel.edge_config_id)

    @cached_property
    def clerk(self) -> Any:
        from remediation.providers.vercel_bundle import clerk_identity

        return clerk_identity(self.settings, self.clock)


Builder = Callable[[Parts], Any]


def _sim(module: str, name: str) -> Builder:
    def build(parts: Parts) -> Any:
        import importlib

        return getattr(importlib.import_module(f"remediation.providers.{module}"), name)(parts.plane)

    return build


def _aws(name: str) -> Builder:
    return lambda parts: getattr(parts.aws, name)


def _vercel(name: str) -> Builder:
    def build(parts: Parts) -> Any:
        from remediation.providers.vercel import VercelDeploys
        from remediation.providers.vercel_edge import VercelEdge, VercelUploadPolicy

        if name == "deploys":
            return VercelDeploys(parts.vercel)
        return VercelEdge(parts.edge_config) if name == "edge" else VercelUploadPolicy(parts.edge_config)

    return build


def _vercel_blocks(parts: Parts) -> Any:
    from remediation.providers.clerk_blocks import ClerkBlocks
    from remediation.providers.vercel_bundle import RoutedBlocks
    from remediation.providers.vercel_firewall import VercelFirewallBlocks

    return RoutedBlocks(VercelFirewallBlocks(parts.vercel),
                        ClerkBlocks(parts.clerk) if parts.clerk is not None else None)


def _sentry(parts: Parts) -> Any:
    from remediation.providers.vercel_bundle import sentry_errors

    return sentry_errors(parts.settings, parts.clock)


def _postgres(kind: str) -> Builder:
    def build(parts: Parts) -> Any:
        url = parts.settings.app_database_url
        if kind == "audit":
            from remediation.providers.audit import PostgresAuditLog

            return PostgresAuditLog(url or "")
        from remediation.providers.database import PostgresInspector

        return PostgresInspector(url or "")

    return build


def _clamd(parts: Parts) -> Any:
    from remediation.providers.clamd import ClamdAntivirus

    s = parts.settings
    return ClamdAntivirus(s.clamd.host or "", s.clamd.port, timeout_s=s.http_timeout_s)


def _statuspage(parts: Parts) -> Any:
    from remediation.notify.statuspage import StatuspageClient, StatuspageStatusUpdates

    s = parts.settings
    client = StatuspageClient(s.statuspage.api_key, s.statuspage.page_id, base_url=s.statuspage.api_url,
                              timeout_s=s.http_timeout_s, clock=parts.clock)
    return StatuspageStatusUpdates(client, s.statuspage.component_ids)


def _file_logs(parts: Parts) -> Any:
    from remediation.providers.file_logs import build_file_logs

    return build_file_logs(parts.settings)


def _drain_logs(parts: Parts) -> Any:
    from remediation.providers.drain_logs import build_drain_logs

    return build_drain_logs(parts.settings, parts.store)


BUILDERS: dict[tuple[str, str], Builder] = {
    ("deploys", "sim"): _sim("sim_platform", "SimDeploys"), ("edge", "sim"): _sim("sim_platform", "SimEdge"),
    ("logs", "sim"): _sim("sim_platform", "SimLogs"), ("errors", "sim"): _sim("sim_platform", "SimErrors"),
    ("capacity", "sim"): _sim("sim_capacity", "SimCapacity"), ("jobs", "sim"): _sim("sim_database", "SimJobs"),
    ("database", "sim"): _sim("sim_database", "SimDatabase"), ("blocks", "sim"): _sim("sim_security", "SimBlocks"),
    ("uploads", "sim"): _sim("sim_security", "SimUploadPolicy"),
    ("antivirus", "sim"): _sim("sim_security", "SimAntivirus"), ("audit", "sim"): _sim("sim_security", "SimAuditLog"),
    ("quarantine", "sim"): _sim("sim_security", "SimQuarantine"),
    ("identity", "sim"): _sim("sim_identity", "SimIdentity"),
    ("status_page", "sim"): _sim("sim_identity", "SimStatusPage"),
    ("instances", "sim"): lambda parts: parts.fleet, ("instance_metrics", "sim"): lambda parts: parts.fleet,
    **{(cap, "aws"): _aws(cap) for cap in ("deploys", "edge", "logs", "capacity", "jobs", "instances",
                                            "instance_metrics", "blocks", "uploads")},
    ("deploys", "vercel"): _vercel("deploys"), ("edge", "vercel"): _vercel("edge"),
    ("uploads", "vercel"): _vercel("uploads"), ("blocks", "vercel"): _vercel_blocks,
    ("errors", "sentry"): _sentry, ("identity", "clerk"): lambda parts: parts.clerk,
    ("database", "postgres"): _postgres("database"), ("audit", "postgres"): _postgres("audit"),
    ("antivirus", "clamd"): _clamd, ("status_page", "statuspage"): _statuspage,
    ("logs", "file"): _file_logs, ("logs", "vercel-drain"): _drain_logs,
}


def _access(parts: Parts) -> AccessProbe:
    """Signed-out probes of the admin routes everywhere; the simulator also has test users to sign in as."""
    if parts.settings.platform != "sim":
        return AccessProbe(parts.http, user=None, admin=None)
    from remediation.providers.sim_identity import PROBE_ADMIN_SESSION, PROBE_USER_SESSION, SESSION_COOKIE

    return AccessProbe(parts.http, user=ProbeIdentity(name="probe-member", role="USER",
                                                      cookies={SESSION_COOKIE: PROBE_USER_SESSION}),
                       admin=ProbeIdentity(name="probe-admin", role="ADMIN",
                                           cookies={SESSION_COOKIE: PROBE_ADMIN_SESSION}))


def _probe(parts: Parts) -> LoadProbe:
    if not parts.virtual:
        return LoadProbe(parts.http)
    from remediation.providers.sim_clock import request_timer

    # Answers come back at once on virtual time: time them by their simulated durations, not the machine's.
    return LoadProbe(parts.http, timer=request_timer)


def _build_one(capability: str, implementation: str, explicit: bool, parts: Parts) -> tuple[Any, Source]:
    if implementation == "none":
        why = "switched off by configuration" if explicit else (
            "no platform chosen (REMEDIATE_PLATFORM unset)" if parts.settings.platform is None
            and capability in LEVERS else "not available on this platform")
        return None, Source(implementation="none", explicit=explicit, detail=why)
    missing = tuple(missing_settings(capability, implementation, parts.settings))
    if missing:
        return None, Source(implementation=implementation, explicit=explicit, missing=missing,
                            detail="not configured")
    adapter = BUILDERS[(capability, implementation)](parts)
    if adapter is None:  # e.g. REMEDIATE_AWS_CAPACITY=none: the settings say there is no such lever
        return None, Source(implementation=implementation, explicit=explicit,
                            detail=f"the {implementation} settings name no {capability} resource")
    read_only = parts.settings.platform is None and capability in LEVERS and not explicit
    return adapter, Source(implementation=implementation, explicit=explicit, read_only=read_only,
                           detail="reads only: no platform chosen, so its repairs are not levers" if read_only else "")


def _virtual_clock(parts: Parts) -> Clock:
    from remediation.providers.sim_clock import SimClock

    parts.virtual = True
    return SimClock(parts.plane)


def connect(settings: Settings, *, migrate: bool = True, clock: Clock | None = None,
            local_budget: bool = False, transport: httpx.AsyncBaseTransport | None = None) -> Providers:
    """The live bundle: the platform preset, then the configuration's per-capability choices.

    ``local_budget``: the app's request budget is this process's own instead of the store's shared one, for
    ``remediate check``, which must not write the store (its few reads are counted by the app all the same).
    ``transport``: every request to the app and the simulator's control plane goes through it (a test seam).
    With ``sim_virtual_time`` (platform sim only: a live platform's time is never the simulator's) the clock is
    the simulator's, so the runbooks' waits are what moves it."""
    validate(settings.capabilities)
    parts = Parts(settings, clock or RealClock(), local_budget=local_budget, transport=transport)
    if clock is None and settings.platform == "sim" and settings.sim_virtual_time:
        parts.clock = _virtual_clock(parts)
    if migrate:
        parts.store.migrate()
    choice = {**preset(settings), **settings.capabilities}
    built: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for capability in BUILT:
        built[capability], sources[capability] = _build_one(
            capability, choice.get(capability, "none"), capability in settings.capabilities, parts)
    # Logs and errors are read by every runbook: absent, they answer every read with why (evidence unavailable).
    built["logs"] = built["logs"] or absent.NoLogs(sources["logs"].why)
    built["errors"] = built["errors"] or absent.NoErrors(sources["errors"].why)
    for name in ("metrics", "probe", "access", "approvals"):
        sources[name] = Source(implementation="prefect" if name == "approvals" else "app", explicit=False)
    return Providers(
        settings=settings, store=parts.store, clock=parts.clock, metrics=AppMetrics(parts.http),
        probe=_probe(parts), access=_access(parts),
        approvals=PrefectApprovals(poll_interval_s=settings.approval_poll_s),
        # The store keeps what PagerDuty and Statuspage did per incident, so a restarted serve carries on.
        notifier=cast("Notifications | None", build_notifier(settings, parts.clock, state=parts.store)),
        sources=sources, **built,
    )


_connected: dict[str, Providers] = {}
_lock = threading.Lock()


def current() -> Providers:
    """The bundle bound by ``runtime.use`` (tests, the demo, serve), else one built from the environment."""
    providers = bound()
    if providers is not None:
        return providers
    settings = Settings()
    key = settings.model_dump_json()
    with _lock:
        if key not in _connected:
            _connected[key] = connect(settings)
        return _connected[key]
