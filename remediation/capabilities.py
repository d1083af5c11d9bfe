"""Which implementation serves each capability: the platform's bundle, then the configuration's choices.

``REMEDIATE_PLATFORM`` (sim, aws, vercel) builds a whole bundle (remediation.runtime). ``[capabilities]`` in the
configuration file (or ``REMEDIATE_CAPABILITIES`` as JSON) then replaces single capabilities, e.g. the Vercel
bundle with ``capacity = "aws"``, or the simulator with ``errors = "sentry"``. ``none`` removes a lever (the gate
then answers NoLever). :data:`CHOICES` is the whole menu; anything else is a configuration error.

An implementation whose settings are incomplete is still built where the capability is required (its first call
says what is missing) and is None where the capability is optional; ``remediate check`` lists what is missing
either way (:func:`missing_settings`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from remediation.providers.clock import Clock
from remediation.settings import Settings

if TYPE_CHECKING:
    from remediation.providers.aws import AwsLevers
    from remediation.providers.sim_platform import ControlPlane
    from remediation.providers.vercel import VercelApi
    from remediation.providers.vercel_edge import EdgeConfig
    from remediation.runtime import Providers

#: capability (a Providers field) -> implementations the configuration may name.
CHOICES: dict[str, tuple[str, ...]] = {
    "deploys": ("sim", "aws", "vercel"),
    "edge": ("sim", "aws", "vercel"),
    "logs": ("sim", "aws"),
    "errors": ("sim", "sentry"),
    "capacity": ("sim", "aws", "none"),
    "jobs": ("sim", "aws", "none"),
    "instances": ("aws", "none"),
    "blocks": ("sim", "aws", "vercel", "none"),
    "uploads": ("sim", "aws", "vercel", "none"),
    "antivirus": ("sim", "clamd", "none"),
    "database": ("sim", "postgres", "none"),
    "audit": ("sim", "postgres", "none"),
    "identity": ("sim", "clerk", "none"),
    "status_page": ("sim", "statuspage", "none"),
}
#: Settings an implementation cannot work without (a list setting counts as missing when empty).
REQUIRES: dict[tuple[str, str], tuple[str, ...]] = {
    ("deploys", "vercel"): ("vercel_token", "vercel_project_id"),
    ("edge", "vercel"): ("vercel_token", "vercel_edge_config_id"),
    ("uploads", "vercel"): ("vercel_token", "vercel_edge_config_id"),
    ("blocks", "vercel"): ("vercel_token", "vercel_project_id"),
    ("errors", "sentry"): ("sentry_api_token", "sentry_org", "sentry_project"),
    ("identity", "clerk"): ("clerk_secret_key",),
    ("database", "postgres"): ("app_database_url",),
    ("audit", "postgres"): ("app_database_url",),
    ("antivirus", "clamd"): ("clamd_host",),
    ("status_page", "statuspage"): ("statuspage_api_key", "statuspage_page_id"),
    ("logs", "aws"): ("aws_log_group",),
    ("jobs", "aws"): ("aws_job_services",),
    ("blocks", "aws"): ("aws_waf_ip_set_name",),
    ("instances", "aws"): ("aws_target_group_arn",),
}
REQUIRED_CAPABILITIES = frozenset({"deploys", "edge", "logs", "errors"})


class CapabilityError(ValueError):
    """The configuration names a capability or an implementation that does not exist."""


def validate(choices: dict[str, str]) -> None:
    for capability, implementation in choices.items():
        if capability not in CHOICES:
            raise CapabilityError(f"unknown capability '{capability}' in [capabilities]; known: "
                                  f"{', '.join(sorted(CHOICES))} (and notify)")
        if implementation not in CHOICES[capability]:
            raise CapabilityError(f"capability '{capability}' has no implementation '{implementation}'; "
                                  f"choose one of {', '.join(CHOICES[capability])}")
        if implementation == "none" and capability in REQUIRED_CAPABILITIES:
            raise CapabilityError(f"capability '{capability}' is required and cannot be 'none'")


def missing_settings(capability: str, implementation: str, settings: Settings) -> list[str]:
    """The ``REMEDIATE_*`` variables an implementation still needs."""
    return [f"REMEDIATE_{name.upper()}" for name in REQUIRES.get((capability, implementation), ())
            if not getattr(settings, name)]


class _Parts:
    """Shared pieces, built once and only when a choice needs them (nothing connects here)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock

    @cached_property
    def plane(self) -> ControlPlane:
        from remediation.providers.sim_platform import ControlPlane

        return ControlPlane(self.settings.resolved_platform_url, timeout_s=self.settings.http_timeout_s)

    @cached_property
    def aws(self) -> AwsLevers:
        from remediation.providers.aws import aws_levers

        return aws_levers(self.settings, self.clock)

    @cached_property
    def vercel(self) -> VercelApi:
        from remediation.providers.vercel import VercelApi

        s = self.settings
        return VercelApi(s.vercel_token, project_id=s.vercel_project_id, team_id=s.vercel_team_id,
                         base_url=s.vercel_api_url, timeout_s=s.http_timeout_s, clock=self.clock)

    @cached_property
    def edge_config(self) -> EdgeConfig:
        from remediation.providers.vercel_edge import EdgeConfig

        return EdgeConfig(self.vercel, self.settings.vercel_edge_config_id)


def _sim(name: str) -> Callable[[_Parts], Any]:
    def build(parts: _Parts) -> Any:
        from remediation.providers import sim_capacity, sim_database, sim_identity, sim_platform, sim_security

        for module in (sim_platform, sim_capacity, sim_database, sim_security, sim_identity):
            if hasattr(module, name):
                return getattr(module, name)(parts.plane)
        raise CapabilityError(f"no simulated adapter {name}")

    return build


def _vercel_blocks(parts: _Parts) -> Any:
    from remediation.providers.clerk_blocks import ClerkBlocks
    from remediation.providers.vercel_bundle import RoutedBlocks, clerk_identity
    from remediation.providers.vercel_firewall import VercelFirewallBlocks

    identity = clerk_identity(parts.settings, parts.clock)
    return RoutedBlocks(VercelFirewallBlocks(parts.vercel) if parts.settings.vercel_project_id else None,
                        ClerkBlocks(identity) if identity is not None else None)


def _sentry(parts: _Parts) -> Any:
    from remediation.providers.vercel_bundle import UnconfiguredErrors, sentry_errors

    return sentry_errors(parts.settings, parts.clock) or UnconfiguredErrors()


def _clerk(parts: _Parts) -> Any:
    from remediation.providers.vercel_bundle import clerk_identity

    return clerk_identity(parts.settings, parts.clock)


def _postgres(kind: str) -> Callable[[_Parts], Any]:
    def build(parts: _Parts) -> Any:
        url = parts.settings.app_database_url
        if not url:
            return None
        if kind == "audit":
            from remediation.providers.audit import PostgresAuditLog

            return PostgresAuditLog(url)
        from remediation.providers.database import PostgresInspector

        return PostgresInspector(url)

    return build


def _clamd(parts: _Parts) -> Any:
    from remediation.providers.clamd import ClamdAntivirus

    s = parts.settings
    return ClamdAntivirus(s.clamd_host, s.clamd_port, timeout_s=s.http_timeout_s) if s.clamd_host else None


def _statuspage(parts: _Parts) -> Any:
    from remediation.notify.statuspage import StatuspageClient, StatuspageStatusUpdates

    s = parts.settings
    client = StatuspageClient(s.statuspage_api_key, s.statuspage_page_id, base_url=s.statuspage_api_url,
                              timeout_s=s.http_timeout_s, clock=parts.clock)
    return StatuspageStatusUpdates(client, s.statuspage_component_ids)


def _vercel(name: str) -> Callable[[_Parts], Any]:
    def build(parts: _Parts) -> Any:
        from remediation.providers.vercel import VercelDeploys
        from remediation.providers.vercel_edge import VercelEdge, VercelUploadPolicy

        if name == "deploys":
            return VercelDeploys(parts.vercel)
        if name == "edge":
            return VercelEdge(parts.edge_config)
        return VercelUploadPolicy(parts.edge_config) if parts.settings.vercel_edge_config_id else None

    return build


def _aws(name: str) -> Callable[[_Parts], Any]:
    return lambda parts: getattr(parts.aws, name)


BUILDERS: dict[tuple[str, str], Callable[[_Parts], Any]] = {
    ("deploys", "sim"): _sim("SimDeploys"), ("edge", "sim"): _sim("SimEdge"), ("logs", "sim"): _sim("SimLogs"),
    ("errors", "sim"): _sim("SimErrors"), ("capacity", "sim"): _sim("SimCapacity"), ("jobs", "sim"): _sim("SimJobs"),
    ("blocks", "sim"): _sim("SimBlocks"), ("uploads", "sim"): _sim("SimUploadPolicy"),
    ("antivirus", "sim"): _sim("SimAntivirus"), ("database", "sim"): _sim("SimDatabase"),
    ("audit", "sim"): _sim("SimAuditLog"), ("identity", "sim"): _sim("SimIdentity"),
    ("status_page", "sim"): _sim("SimStatusPage"),
    **{(cap, "aws"): _aws(cap) for cap in ("deploys", "edge", "logs", "capacity", "jobs", "instances", "blocks",
                                            "uploads")},
    ("deploys", "vercel"): _vercel("deploys"), ("edge", "vercel"): _vercel("edge"),
    ("uploads", "vercel"): _vercel("uploads"), ("blocks", "vercel"): _vercel_blocks,
    ("errors", "sentry"): _sentry, ("identity", "clerk"): _clerk,
    ("database", "postgres"): _postgres("database"), ("audit", "postgres"): _postgres("audit"),
    ("antivirus", "clamd"): _clamd, ("status_page", "statuspage"): _statuspage,
}


def compose(providers: Providers) -> Providers:
    """Apply the configured per-capability choices and attach the notification fan-out."""
    from remediation import notify

    settings = providers.settings
    validate(settings.capabilities)
    parts = _Parts(settings, providers.clock)
    changes: dict[str, Any] = {}
    for capability, implementation in settings.capabilities.items():
        changes[capability] = None if implementation == "none" else BUILDERS[(capability, implementation)](parts)
    changes["notifier"] = notify.build(settings, providers.clock)
    return providers.with_(**changes)


def implementation_of(adapter: object | None) -> str:
    """A short name for the implementation behind an adapter (for ``remediate check``)."""
    if adapter is None:
        return "none"
    module = type(adapter).__module__
    for marker, name in (("sim_", "sim"), (".aws", "aws"), ("vercel", "vercel"), ("sentry", "sentry"),
                         ("clerk", "clerk"), ("clamd", "clamd"), ("statuspage", "statuspage"),
                         ("database", "postgres"), ("audit", "postgres"), ("prefect", "prefect"),
                         ("store", "sqlalchemy"), ("metrics", "app"), ("probe", "app"), ("access", "app")):
        if marker in module:
            return name
    return module.rsplit(".", 1)[-1]
