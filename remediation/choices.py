"""The menu of implementations per capability, and what each needs: pure data, no adapter imported.

The configuration file and the settings validate against this module; the composition root
(:mod:`remediation.composition`) builds from it. Keeping the menu apart from the builders is what lets settings
be read without importing a single adapter (and keeps the package free of import cycles).
"""

from __future__ import annotations

from pydantic import BaseModel

from remediation.settings_vendors import flat_values

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

#: Settings an implementation cannot work without (a list setting counts as missing when empty), by flat name
#: (remediation.settings_vendors): "vercel_token" is settings.vercel.token, set by REMEDIATE_VERCEL_TOKEN.
REQUIRES: dict[tuple[str, str], tuple[str, ...]] = {
    **{(capability, "sim"): ("sim_url",) for capability in CHOICES},
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
    ("logs", "file"): ("log_files",),
    ("logs", "vercel-drain"): ("vercel_drain_secret",),
    ("jobs", "aws"): ("aws_job_services",),
    ("blocks", "aws"): ("aws_waf_ip_set_name",),
    ("instances", "aws"): ("aws_target_group_arn",),
    ("instance_metrics", "aws"): ("aws_target_group_arn",),
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


def missing_settings(capability: str, implementation: str, settings: BaseModel) -> list[str]:
    """The ``REMEDIATE_*`` variables an implementation still needs."""
    values = flat_values(settings)
    return [f"REMEDIATE_{name.upper()}" for name in REQUIRES.get((capability, implementation), ())
            if not values[name]]
