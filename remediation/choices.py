"""The menu of implementations per capability, and what each needs: pure data, no adapter imported.

The configuration file and the settings validate against this module; the composition root
(:mod:`remediation.composition`) builds from it. Keeping the menu apart from the builders is what lets settings
be read without importing a single adapter (and keeps the package free of import cycles).
"""

from __future__ import annotations

from typing import Any

#: Notification channels (remediation.notify): Slack, Statuspage, PagerDuty.
CHANNELS = ("slack", "statuspage", "pagerduty")

#: The platforms ``REMEDIATE_PLATFORM`` may name. Unset means: no lever at all (read, plan, record, escalate).
PLATFORMS = ("sim", "aws", "vercel")

#: capability (a Providers field) -> implementations the configuration may name.
CHOICES: dict[str, tuple[str, ...]] = {
    "deploys": ("sim", "aws", "vercel", "none"),
    "edge": ("sim", "aws", "vercel", "none"),
    "logs": ("sim", "aws", "file", "vercel-drain", "none"),
    "errors": ("sim", "sentry", "none"),
    "capacity": ("sim", "aws", "none"),
    "jobs": ("sim", "aws", "none"),
    "instances": ("sim", "aws", "none"),
    "instance_metrics": ("sim", "aws", "none"),
    "blocks": ("sim", "aws", "vercel", "none"),
    "uploads": ("sim", "aws", "vercel", "none"),
    "antivirus": ("sim", "clamd", "none"),
    "database": ("sim", "postgres", "none"),
    "audit": ("sim", "postgres", "none"),
    "identity": ("sim", "clerk", "none"),
    "quarantine": ("sim", "none"),
    "status_page": ("sim", "statuspage", "none"),
}

#: Capabilities whose adapters change the world (the rest only read). Without a platform none of these is built
#: unless ``[capabilities]`` names it: an explicit choice is the operator's consent to mutate through it.
LEVERS = frozenset({"deploys", "edge", "capacity", "jobs", "instances", "blocks", "uploads", "antivirus",
                    "database", "identity"})

#: Settings an implementation cannot work without (a list setting counts as missing when empty), by attribute path:
#: "vercel.token" is settings.vercel.token, set by REMEDIATE_VERCEL_TOKEN.
REQUIRES: dict[tuple[str, str], tuple[str, ...]] = {
    **{(capability, "sim"): ("sim_url",) for capability in CHOICES},
    ("deploys", "vercel"): ("vercel.token", "vercel.project_id"),
    ("edge", "vercel"): ("vercel.token", "vercel.edge_config_id"),
    ("uploads", "vercel"): ("vercel.token", "vercel.edge_config_id"),
    ("blocks", "vercel"): ("vercel.token", "vercel.project_id"),
    ("errors", "sentry"): ("sentry.api_token", "sentry.org", "sentry.project"),
    ("identity", "clerk"): ("clerk.secret_key",),
    ("database", "postgres"): ("app_database_url",),
    ("audit", "postgres"): ("app_database_url",),
    ("antivirus", "clamd"): ("clamd.host",),
    ("status_page", "statuspage"): ("statuspage.api_key", "statuspage.page_id"),
    ("logs", "aws"): ("aws.log_group",),
    ("logs", "file"): ("log_files",),
    ("logs", "vercel-drain"): ("vercel.drain_secret",),
    ("jobs", "aws"): ("aws.job_services",),
    ("blocks", "aws"): ("aws.waf_ip_set_name",),
    ("instances", "aws"): ("aws.target_group_arn",),
    ("instance_metrics", "aws"): ("aws.target_group_arn",),
}


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


def missing_settings(capability: str, implementation: str, settings: Any) -> list[str]:
    """The ``REMEDIATE_*`` variables an implementation still needs."""
    return [f"REMEDIATE_{path.replace('.', '_').upper()}" for path in REQUIRES.get((capability, implementation), ())
            if not _setting(settings, path)]


def _setting(settings: Any, path: str) -> Any:
    value = settings
    for name in path.split("."):
        value = getattr(value, name, None)
    return value
